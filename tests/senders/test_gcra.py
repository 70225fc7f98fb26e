"""The GCRA math (pure): what any sequence of requests may be granted, and when."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from senders.adapters.ratelimit import gcra

MS = 1000  # microseconds


@dataclass
class Sent:
    at: int
    cost: int


def run(
    requests: list[tuple[int, int]], limits: list[tuple[int, int]], max_wait: int
) -> tuple[list[list[Sent]], list[tuple[int, int, bool, int]]]:
    """Feed (time, cost) requests; returns sends per limit and (time, cost, granted, wait)."""
    tats: list[int | None] = [None] * len(limits)
    sent: list[Sent] = []
    log = []
    for now, cost in requests:
        decision = gcra(tats, limits, now, cost, max_wait)
        log.append((now, cost, decision.granted, decision.wait_us))
        if decision.granted:
            tats = list(decision.tats)
            sent.append(Sent(now + decision.wait_us, cost))
    return [sent] * len(limits), log


requests_strategy = st.lists(
    st.tuples(st.integers(0, 400 * MS), st.integers(1, 4)), min_size=1, max_size=60
).map(lambda rs: sorted(rs))
limit_strategy = st.tuples(st.integers(1 * MS, 100 * MS), st.integers(1, 5))


@settings(max_examples=300)
@given(
    requests_strategy, st.lists(limit_strategy, min_size=1, max_size=3), st.integers(0, 300 * MS)
)
def test_no_window_holds_more_than_rate_plus_burst(
    requests: list[tuple[int, int]], limits: list[tuple[int, int]], max_wait: int
) -> None:
    sends, log = run(requests, limits, max_wait)
    for (interval, burst), sent in zip(limits, sends, strict=True):
        ordered = sorted(sent, key=lambda s: s.at)
        biggest = max([burst] + [s.cost for s in ordered])
        for i in range(len(ordered)):
            total = 0
            for j in range(i, len(ordered)):
                total += ordered[j].cost
                span = ordered[j].at - ordered[i].at
                assert total <= biggest + span / interval + 1e-9
    for _, _, granted, wait in log:
        assert wait >= 0
        assert granted == (wait <= max_wait)


@given(requests_strategy, limit_strategy)
def test_a_refusal_changes_nothing(requests: list[tuple[int, int]], limit: tuple[int, int]) -> None:
    tats: list[int | None] = [None]
    for now, cost in requests:
        refused = gcra(tats, [limit], now, cost, -1)  # max_wait < 0: always refused
        assert not refused.granted and refused.tats == ()
        granted = gcra(tats, [limit], now, cost, 10**12)
        assert granted.granted
        tats = list(granted.tats)


@pytest.mark.parametrize("burst", [1, 3, 10])
def test_a_backlog_is_paced_exactly(burst: int) -> None:
    interval = 20 * MS  # 50/s
    tats: list[int | None] = [None]
    waits = []
    for _ in range(100):  # everything asks at t=0 and may wait as long as it takes
        decision = gcra(tats, [(interval, burst)], 0, 1, 10**12)
        tats = list(decision.tats)
        waits.append(decision.wait_us)
    assert waits[:burst] == [0] * burst
    assert waits[burst:] == [(k - burst + 1) * interval for k in range(burst, 100)]


def test_cost_is_charged_in_full() -> None:
    interval = 100 * MS
    first = gcra([None], [(interval, 1)], 0, 3, 10**9)
    assert first.granted and first.wait_us == 0  # larger than the burst: goes alone, now
    second = gcra(list(first.tats), [(interval, 1)], 0, 1, 10**9)
    assert second.wait_us == 3 * interval  # the three segments are paid before the next


def test_the_strictest_limit_governs_and_every_limit_is_charged() -> None:
    sender, account = (100 * MS, 1), (10 * MS, 1)
    a = gcra([None, None], [sender, account], 0, 1, 10**9)
    b = gcra(list(a.tats), [sender, account], 0, 1, 10**9)
    assert b.wait_us == 100 * MS
    # b leaves at 100 ms, and the account is charged at that moment (not at its own, earlier
    # slot), so another sender of the same account waits for 100 + 10 ms
    assert b.tats == (200 * MS, 110 * MS)
    c = gcra([None, b.tats[1]], [sender, account], 0, 1, 10**9)
    assert c.wait_us == 110 * MS
