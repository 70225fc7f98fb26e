"""The watermark merge (streams/core/watermarks.py): a table of cases and its properties."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.watermarks import InputMerge, read_tick, tick_value, ticks

A, B, C = "clickstream", "cart", "repartition"


@dataclass(frozen=True)
class In:
    """One input's state for a case: delivered offset, newest event, high watermark, position."""

    delivered: int | None = None
    newest: int | None = None
    highwater: int | None = None
    position: int | None = None


def merged(inputs: dict[str, In], lateness: int = 0) -> int | None:
    merge = InputMerge(inputs, lateness)
    for tp, given_in in inputs.items():
        if given_in.delivered is not None:
            merge.delivered(tp, given_in.delivered)
        if given_in.newest is not None:
            merge.took(tp, given_in.newest)
    highwaters = {tp: i.highwater for tp, i in inputs.items()}
    for tp in merge.to_ask(highwaters):
        merge.position(tp, highwaters[tp], inputs[tp].position)
    return merge.advance(highwaters)


CASES = {
    "the slowest input with records to deliver wins": (
        {A: In(3, 500, 10), B: In(1, 200, 10), C: In(0, 900, 1)},
        200,
    ),
    "inputs that delivered everything hold nothing back: the newest wins": (
        {A: In(9, 500, 10), B: In(9, 200, 10), C: In(None, None, 0, 0)},
        500,
    ),
    "an input not fetched yet holds": ({A: In(3, 500, 10), B: In(None, None, None)}, None),
    "an input that delivered nothing and is not at its end holds": (
        {A: In(3, 500, 10), B: In(None, None, 10, 4)},
        None,
    ),
    "an input that delivered nothing and is at its end is idle": (
        {A: In(3, 500, 10), B: In(None, None, 10, 10)},
        500,
    ),
    "an input with records to deliver and no event taken holds": (
        {A: In(3, 500, 10), B: In(2, None, 10)},
        None,
    ),
    "all idle and nothing taken: no watermark": ({A: In(None, None, 0, 0)}, None),
}


@pytest.mark.parametrize(("inputs", "expected"), CASES.values(), ids=CASES.keys())
def test_the_merge(inputs: dict[str, In], expected: int | None) -> None:
    assert merged(inputs) == expected


def test_the_lateness_comes_off() -> None:
    assert merged({A: In(9, 5_000, 10), B: In(9, 7_000, 10)}, lateness=1_000) == 6_000


def test_an_idle_input_is_asked_its_position_once_per_high_watermark() -> None:
    merge = InputMerge([A, B], 0)
    merge.delivered(A, 0)
    merge.took(A, 100)
    assert merge.to_ask({A: 1, B: 5}) == [B]
    merge.position(B, 5, 5)
    assert merge.to_ask({A: 1, B: 5}) == []  # known idle at 5
    assert merge.advance({A: 1, B: 5}) == 100
    assert merge.to_ask({A: 1, B: 6}) == [B]  # a new record arrived on B: ask again


def test_live_is_held_by_an_input_with_records_still_to_deliver() -> None:
    merge = InputMerge([A, B], 0)
    assert merge.holding({A: 2, B: None}) == [A, B]  # B never fetched: it cannot say
    merge.delivered(A, 0)
    assert merge.holding({A: 2, B: 0}) == [A, B]  # A holds one more; B delivered nothing yet
    merge.delivered(A, 1)
    assert merge.holding({A: 2, B: 0}) == [B]
    merge.position(B, 0, 0)  # B's position stands at its high watermark: nothing to deliver
    assert merge.holding({A: 2, B: 0}) == []
    assert merge.holding({A: 3, B: 0}) == [A]  # a record arrived on A
    assert merge.holding({A: 2, B: 1}) == [B]  # one arrived on B


def test_live_is_not_held_by_offsets_the_consumer_never_delivers() -> None:
    merge = InputMerge([A], 0)
    merge.delivered(A, 4)  # offset 5 is a transaction's marker: the high watermark is 6
    assert merge.holding({A: 6}) == [A]
    merge.position(A, 6, 6)
    assert merge.holding({A: 6}) == []


def test_live_asks_the_position_only_of_a_held_input_that_delivered_nothing_since() -> None:
    merge = InputMerge([A, B], 0)
    assert merge.to_ask_live({A: 5, B: None}) == [A]  # A never delivered; B never fetched
    merge.delivered(A, 1)
    assert merge.to_ask_live({A: 5, B: 0}) == [B]  # A's records flow in: no reason to ask
    merge.delivered(A, 2)
    assert merge.to_ask_live({A: 5, B: 0}) == [B]
    assert merge.to_ask_live({A: 5, B: 0}) == [A, B]  # A stands at 2: ask
    merge.delivered(A, 4)
    merge.position(B, 0, 0)
    assert merge.to_ask_live({A: 5, B: 0}) == []  # nothing holds


def test_no_position_is_asked_when_another_input_holds_anyway() -> None:
    merge = InputMerge([A, B], 0)
    assert merge.to_ask({A: None, B: 5}) == []


# -- properties ------------------------------------------------------------------------------

inputs = st.sampled_from([A, B, C])
step = st.one_of(
    st.tuples(st.just("record"), inputs, st.integers(0, 10_000)),  # a record with event time
    st.tuples(st.just("invalid"), inputs, st.just(0)),  # a record with no event taken
    st.tuples(st.just("arrive"), inputs, st.integers(1, 3)),  # new records at the broker
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=60), st.integers(0, 500))
def test_the_watermark_never_goes_back_and_waits_for_the_slowest_busy_input(
    steps: list[tuple[str, str, int]], lateness: int
) -> None:
    """A random history of deliveries and arrivals: each input's records come in offset
    order; what the merge returns only ever grows, never passes an input that still has
    records to deliver (it waits for the slowest), and never passes what was seen."""
    merge = InputMerge([A, B, C], lateness)
    highwater = dict.fromkeys((A, B, C), 0)
    delivered: dict[str, int] = {}
    newest: dict[str, int] = {}
    last: int | None = None
    for kind, tp, n in steps:
        if kind == "arrive":
            highwater[tp] += n
        else:
            offset = delivered.get(tp, -1) + 1
            if offset >= highwater[tp]:
                highwater[tp] = offset + 1  # the record must exist to be delivered
            delivered[tp] = offset
            merge.delivered(tp, offset)
            if kind == "record":
                merge.took(tp, n)
                newest[tp] = max(newest.get(tp, n), n)
        positions = {tp: delivered.get(tp, -1) + 1 for tp in (A, B, C)}
        for tp in merge.to_ask(highwater):
            merge.position(tp, highwater[tp], positions[tp])
        moved = merge.advance(highwater)
        if moved is None:
            continue
        assert last is None or moved > last  # never backwards (None: it did not move)
        last = moved
        busy = [tp for tp in (A, B, C) if positions[tp] < highwater[tp]]
        for tp in busy:  # it waits for the slowest input with records to deliver
            assert tp in newest
            assert moved <= newest[tp] - lateness
        assert moved <= max(newest.values()) - lateness


# -- ticks -----------------------------------------------------------------------------------


@given(st.integers(0, 2**53), st.none() | st.integers(0, 2**53))
def test_a_tick_reads_back_what_was_written(wall_ms: int, watermark: int | None) -> None:
    assert read_tick(tick_value(wall_ms, watermark)) == (watermark, wall_ms)


@pytest.mark.parametrize("raw", [None, b"", b"not json", b"[1]", b'{"wall_ms": "1"}'])
def test_an_unreadable_tick_says_nothing(raw: bytes | None) -> None:
    assert read_tick(raw) == (None, None)


def test_ticks_reach_every_partition_with_one_value() -> None:
    sent = list(ticks(3, 1_000, 2_000))
    assert [p for p, _ in sent] == [0, 1, 2]
    assert {read_tick(v) for _, v in sent} == {(2_000, 1_000)}
