"""``mirror_age`` and ``MirrorHealth`` (pure): when the consent mirror counts as stale, and how
often that is reported."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senders.core.mirror_health import MirrorHealth, MirrorReport, mirror_age


@pytest.mark.parametrize(
    ("beats", "partitions", "now", "age"),
    [
        ({}, 4, 100.0, math.inf),  # no mirror ever ran
        ({0: 90.0, 1: 95.0, 2: 99.0}, 4, 100.0, math.inf),  # partition 3 never caught up
        ({0: 90.0, 1: 95.0, 2: 99.0, 3: 99.5}, 4, 100.0, 10.0),  # the oldest partition counts
        ({0: 99.0, 1: 99.0, 7: 1.0}, 2, 100.0, 1.0),  # a partition beyond the topic is ignored
        ({0: 101.0}, 1, 100.0, 0.0),  # the mirror's clock runs ahead: not negative
        ({0: 99.0}, 0, 100.0, math.inf),  # partition count unknown
    ],
)
def test_the_age_is_that_of_the_partition_caught_up_longest_ago(
    beats: dict[int, float], partitions: int, now: float, age: float
) -> None:
    assert mirror_age(beats, partitions, now) == age


@given(
    st.dictionaries(st.integers(0, 7), st.floats(0, 1e9), min_size=1),
    st.integers(1, 8),
    st.floats(0, 1e9),
)
def test_the_age_is_never_negative_and_infinite_exactly_when_a_partition_is_missing(
    beats: dict[int, float], partitions: int, now: float
) -> None:
    age = mirror_age(beats, partitions, now)
    assert age >= 0.0
    assert math.isinf(age) == any(p not in beats for p in range(partitions))


def test_stale_at_start_until_observed_fresh() -> None:
    health = MirrorHealth(stale_after=60.0)
    assert health.stale
    assert health.observe(5.0, now=0.0) is None  # fresh from the start: nothing to say
    assert not health.stale


@pytest.mark.parametrize(("age", "stale"), [(59.9, False), (60.0, False), (60.1, True)])
def test_stale_only_beyond_the_limit(age: float, stale: bool) -> None:
    health = MirrorHealth(stale_after=60.0)
    health.observe(age, now=0.0)
    assert health.stale is stale


def test_stale_is_reported_at_once_then_at_most_once_a_minute_then_recovery_once() -> None:
    health = MirrorHealth(stale_after=60.0, report_every=60.0)
    first = health.observe(math.inf, now=0.0)
    assert first == MirrorReport(stale=True, age=math.inf) and first.absent
    assert health.observe(math.inf, now=0.0) is None  # the same instant: silent
    assert [health.observe(math.inf, now=t) for t in (10.0, 30.0, 59.0)] == [None] * 3
    later = health.observe(120.0, now=61.0)
    assert later == MirrorReport(stale=True, age=120.0) and not later.absent
    assert health.observe(125.0, now=62.0) is None
    assert health.observe(2.0, now=63.0) == MirrorReport(stale=False, age=2.0)
    assert not health.stale
    assert health.observe(2.0, now=65.0) is None  # recovery is said once
    assert health.observe(61.0, now=66.0) == MirrorReport(stale=True, age=61.0)  # stale again
