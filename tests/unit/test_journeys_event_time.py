"""Journeys decide in event time (docs/semantics.md, The clock): the worker's shell holds each
input until its clock passes the input's event time, so any arrival order the watermark
allows gives the commands and decisions of ``cartpulse journeys``, byte for byte (hypothesis).

Arrivals: each input arrives up to ``LATENESS`` after it happened, in any order that allows,
spread over two partitions; before each arrival the partitions' clocks move to the watermark
that arrival order guarantees (every input that happened at or before it has arrived), as
``cartpulse watermark`` and the live clock (wall clock minus the allowed lateness) move it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.agents.journeys import JourneyShell
from streams.contract.events import format_ms
from streams.contract.journey import ConsentChange, Profile
from streams.contract.products import ProductVersion
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.catalogue import Catalogue
from streams.core.journey_inputs import JourneyInput, order_key, time_of
from streams.core.journeys import JourneyEngine, Outputs
from streams.core.watermarks import tick_value
from streams.offline.journeys import run_journeys
from streams.runtime.metrics import JourneyMetrics
from tests.unit.test_flows_live_offline import (
    CUSTOMERS,
    T0,
    TEXT,
    abandonment,
    clicks,
    orders,
    versions,
)
from tests.unit.test_flows_live_offline import _record as record_of

H = 3_600_000
LATENESS = 2 * H
TOPICS = TopicCatalogue()
PARTITIONS = 2

consents = st.builds(
    lambda c, ch, status, at: ConsentChange(c, ch, status, at, "test"),
    st.sampled_from(CUSTOMERS),
    st.sampled_from(["sms", "email"]),
    st.sampled_from(["opted_in", "opted_out"]),
    st.integers(0, 120).map(lambda m: T0 + m * 30 * 60_000),
)


@st.composite
def arrivals(draw: Any) -> list[tuple[int, JourneyInput]]:
    """Inputs with their arrival times (each within LATENESS after it happened)."""
    items: list[JourneyInput] = [draw(abandonment(n)) for n in range(draw(st.integers(1, 6)))]
    items += draw(st.lists(versions, max_size=6))
    items += draw(st.lists(clicks, max_size=3))
    items += draw(st.lists(orders, max_size=3))
    items += draw(st.lists(consents, max_size=4))
    delays = draw(st.lists(st.integers(0, LATENESS), min_size=len(items), max_size=len(items)))
    return sorted(
        ((time_of(item) + delay, item) for item, delay in zip(items, delays, strict=True)),
        key=lambda pair: pair[0],
    )


def _profiles() -> list[Profile]:
    return [
        Profile(c, "+14155550123", f"{c}@example.com", None, None, "America/New_York", None)
        for c in CUSTOMERS
    ]


def _engine(catalogue: Catalogue) -> JourneyEngine:
    from streams.core.policy import parse_policy
    from tests.support.journeys import SECRET

    return JourneyEngine(parse_policy(TEXT), SECRET, catalogue=catalogue)


def _offline(items: list[JourneyInput]) -> list[bytes]:
    out: list[bytes] = []

    def write(outputs: Outputs) -> None:
        out.extend(c.to_json() for c in outputs.commands)
        out.extend(d.to_json() for d in outputs.decisions)

    everything: list[JourneyInput] = [*_profiles(), *items]
    ordered = sorted(
        ((order_key(item, i), item) for i, item in enumerate(everything)), key=lambda p: p[0]
    )
    run_journeys([item for _, item in ordered], _engine(Catalogue()), write, T0 + 400 * H)
    return sorted(out)


def _record(item: JourneyInput) -> tuple[str, bytes, bytes, Any]:
    """The record as the journeys agent receives it (consents re-keyed, with their origin)."""
    if isinstance(item, ConsentChange):
        value = orjson.dumps(
            {
                "status": item.status,
                "source": item.source,
                "recorded_at": format_ms(item.recorded_ms),
            }
        )
        origin = [
            ("cartpulse.source", b"consents"),
            ("cartpulse.key", f"{item.customer_id}:{item.channel}".encode()),
        ]
        return TOPICS.name(Topic.JOURNEY_INPUTS), item.customer_id.encode(), value, origin
    topic, key, value = record_of(item)
    return topic, key, value, None


def _live(arrived: list[tuple[int, JourneyInput]], live_clock: bool) -> list[bytes]:
    catalogue = Catalogue()
    sent: list[tuple[str, bytes | None]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> None:
        sent.append((topic, value))

    shell = JourneyShell(
        engine=_engine(catalogue), topics=TOPICS, live=live_clock, table={}, send=send,
        metrics=JourneyMetrics.create(CollectorRegistry()), max_record_bytes=65_536,
        lateness_ms=LATENESS,
    )  # fmt: skip
    ticks = TOPICS.name(Topic.JOURNEY_TICKS)

    def partition_of(customer: str) -> int:
        return CUSTOMERS.index(customer) % PARTITIONS

    async def tick(wall: int) -> None:
        for partition in range(PARTITIONS):
            # event clock: the watermark (wall - lateness); live clock: the wall clock, which
            # the shell moves back by its allowed lateness itself
            value = tick_value(wall) if live_clock else tick_value(wall, wall - LATENESS)
            await shell.on_record(ticks, partition, None, value, None)

    async def run() -> None:
        customers = TOPICS.name(Topic.CUSTOMERS)
        for profile in _profiles():
            data = {k: v for k, v in profile.to_dict().items() if v not in (None, [], False, 0)}
            await shell.on_record(
                customers, partition_of(profile.customer_id), profile.customer_id.encode(),
                orjson.dumps(data), None,
            )  # fmt: skip
        await tick(T0 - 10 * H)  # the partitions exist (and queue catalogue changes) from here
        for at, item in arrived:
            # every input that happened before (at - lateness) has arrived: one that happened
            # exactly then may still be arriving now
            await tick(at - 1)
            if isinstance(item, ProductVersion):
                if catalogue.add(item):  # the catalogue reader gets it when it arrives
                    shell.on_version(item)
                continue
            topic, key, value, headers = _record(item)
            customer = key.decode()
            await shell.on_record(topic, partition_of(customer), key, value, headers)
        await tick(T0 + 400 * H + LATENESS)

    loop = asyncio.new_event_loop()  # not installed: see test_flows_live_offline
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert not shell.metrics.late.labels("abandonments")._value.get()
    wanted = {TOPICS.name(t) for t in (Topic.SEND_SMS, Topic.SEND_EMAIL, Topic.DECISIONS)}
    return sorted(value for topic, value in sent if topic in wanted and value is not None)


@settings(max_examples=300, deadline=None)
@given(arrivals(), st.booleans())
def test_any_arrival_order_within_the_lateness_decides_as_offline(
    arrived: list[tuple[int, JourneyInput]], live_clock: bool
) -> None:
    offline = _offline([item for _, item in arrived])
    got = _live(arrived, live_clock)
    assert got == offline
