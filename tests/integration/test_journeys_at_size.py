"""A test at the size that found it: hours of simulated traffic with returning customers through
the worker in event mode, 8 partitions, give the same commands and decisions as ``cartpulse
detect --flush`` piped into ``cartpulse journeys``, byte for byte, and a second run under
another prefix gives the same bytes again (docs/semantics.md, "The guarantee").

The small journeys tests do not see what only volume brings: one customer's abandonments
arriving on several partitions in any order, orders landing between a journey's steps, a
consent recorded long before the traffic. Before the journeys held inputs until their event
time, a day of such traffic differed from offline by a few commands and two runs differed from
each other. This shape, a few hours long, differs from offline by hundreds of commands on
that code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.offline.simulate import SimulationConfig
from streams.runtime.settings import Settings
from tests.support.live_offline import Difference, live, offline, write_traffic

pytestmark = pytest.mark.integration

# 18,000 events over about 5 h of event time: 800 shoppers, most of them back for several
# sessions, and 40-minute pauses (longer than the 30-minute gap) so periods close mid-session.
SHAPE = SimulationConfig(
    events=18_000,
    rate=18_000 / (4.5 * 3600),
    shoppers=800,
    start_ms=1_781_100_000_000,  # 2026-06-10T14:00:00Z, 10:00 in New York (the audience's zone)
    seed=5,
    break_probability=0.1,
    break_minutes=(40.0, 40.0),
)


async def test_hours_of_traffic_through_the_worker_equal_offline_and_repeat_byte_for_byte(
    settings: Settings, tmp_path: Path
) -> None:
    traffic = await asyncio.to_thread(write_traffic, tmp_path / "traffic", SHAPE)
    assert traffic.hours > 4
    assert traffic.returning > 300, traffic  # customers whose abandonments meet in one state
    wanted = await asyncio.to_thread(offline, traffic, tmp_path / "offline")
    assert len(wanted.commands) > 500
    assert len(wanted.decisions) > 5_000

    eight = settings.model_copy(update={"topic_partitions": 8})
    first, _ = await live(eight, traffic, tmp_path / "first", patience=240)
    commands = Difference.of(first.commands, wanted.commands)
    decisions = Difference.of(first.decisions, wanted.decisions)
    assert not (commands.missing or commands.extra or decisions.missing or decisions.extra), (
        f"live against offline: commands {commands}\ndecisions {decisions}"
    )

    again = eight.model_copy(update={"topic_prefix": f"{eight.topic_prefix}again."})
    second, _ = await live(again, traffic, tmp_path / "second", patience=240)
    assert second.commands == first.commands, (
        f"second run: {Difference.of(second.commands, first.commands)}"
    )
    assert second.decisions == first.decisions, (
        f"second run: {Difference.of(second.decisions, first.decisions)}"
    )
