"""``ProviderHealth`` (pure): when the provider counts as unavailable, how often that is
logged, and how requests are let through while it lasts."""

from __future__ import annotations

import pytest

from senders.core.health import ProviderHealth


def health() -> ProviderHealth:
    return ProviderHealth(base=1.0, cap=8.0, probe_hold=3.0, report_every=60.0)


def test_a_fault_is_reported_at_once_then_at_most_once_a_minute_with_a_count() -> None:
    h = health()
    first = h.fault("auth", "20003", now=0.0)
    assert first is not None and (first.reason, first.code, first.count) == ("auth", "20003", 1)
    assert h.down and h.reason == "auth"
    assert [h.fault("auth", "20003", now=t) for t in (10.0, 30.0, 59.0)] == [None] * 3
    later = h.fault("auth", "20003", now=61.0)
    assert later is not None and later.count == 4  # 10, 30, 59 and 61: since the last line
    assert later.since == 0.0
    assert h.fault("auth", "20003", now=62.0) is None


def test_recovery_is_reported_once_and_lets_everything_through() -> None:
    h = health()
    assert h.recovered(now=0.0) is None  # nothing to recover from
    h.fault("connection", "ClientConnectorError", now=0.0)
    h.fault("connection", "ClientConnectorError", now=1.0)
    back = h.recovered(now=5.0)
    assert back is not None and (back.reason, back.count, back.since) == ("connection", 2, 0.0)
    assert not h.down and h.reason is None
    assert h.admit(now=5.0) == 0.0
    assert h.recovered(now=6.0) is None


def test_while_down_one_probe_goes_after_the_back_off_the_rest_wait() -> None:
    h = health()
    h.fault("auth", "20003", now=100.0, rand=0.0)  # back-off 1 s: [0.5, 1) → 0.5 with rand 0
    assert h.admit(now=100.0) == pytest.approx(0.5)
    assert h.admit(now=100.5) == 0.0  # the probe
    assert h.admit(now=100.5) == pytest.approx(3.0)  # the others wait for its answer
    h.fault("auth", "20003", now=101.0, rand=0.0)  # a second refusal: 2 s → 1 s
    assert h.admit(now=101.0) == pytest.approx(1.0)


def test_the_back_off_is_capped() -> None:
    h = health()
    for n in range(20):
        h.fault("server_error", "20500", now=float(n), rand=0.999)
    assert h.admit(now=19.0) <= 8.0
