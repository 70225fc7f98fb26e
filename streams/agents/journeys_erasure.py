"""The journeys' part of an erasure (docs/compliance.md, Erasure).

``erasures`` is co-partitioned with the journeys (each record on the partition of its
customer's id), so partition *p*'s erasures reach the worker that holds *p*'s customers, in
order with their other inputs. For an open request the journeys:

1. remember the erased subject in the ``journeys-erased`` table (its changelog holds only
   pseudonyms), so every later input of the customer is ignored, a replay's included;
2. drop the customer's state (a tombstone on the ``journeys`` changelog), its scheduled steps
   in the deadline index and its product watches;
3. keep each opted-out address of the customer as a hash on the suppression list
   (``suppressed:<hash>:<channel>`` on ``consents``), and delete the customer's own consent
   records and profile (tombstones on ``consents`` and ``customers``);
4. confirm on ``erasures.done`` (part ``journeys``).

A closed erasure (what a replay reads once the request was closed) only does 1 and 2, finding
the customer by their pseudonym among the partition's states. Writes go through the journeys'
producer before the input's offset is committed, so a crash repeats the whole erasure.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from streams.agents.ports import Clock, StateTable
from streams.contract.commands import CHANNELS, Channel
from streams.contract.erasure import Done, Erasure, parse_erasure, suppression_record
from streams.contract.events import format_ms
from streams.contract.privacy import Pseudonyms, cached_customer
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.erasure import opted_out_addresses
from streams.core.journey_inputs import JourneyInput, customer_of
from streams.runtime.metrics import ErasureMetrics
from streams.runtime.settings import Settings

if TYPE_CHECKING:
    from streams.agents.journeys import JourneyShell

log = logging.getLogger(__name__)

CLOCK_SUFFIX = b"\x00"  # the journeys table's own keys (the partition clock) start with it


def marker_key(partition: int, subject: str) -> bytes:
    return b"%d:%s" % (partition, subject.encode())


class JourneyErasure:
    """See the module docstring. ``table`` maps ``marker_key`` to the erasure's record."""

    def __init__(
        self,
        *,
        table: StateTable,
        topics: TopicCatalogue,
        pseudonyms: Pseudonyms,
        metrics: ErasureMetrics,
        wall_clock: Clock = time.time,
    ) -> None:
        self.table = table
        self.pseudonyms = pseudonyms
        self.pseudonym = cached_customer(pseudonyms)  # on every input: each customer hashed once
        self.metrics = metrics
        self.wall_clock = wall_clock
        self._consents = topics.name(Topic.CONSENTS)
        self._customers = topics.name(Topic.CUSTOMERS)
        self._done = topics.name(Topic.ERASURES_DONE)

    def ignores(self, partition: int, item: JourneyInput) -> bool:
        """Whether ``item`` belongs to an erased customer (then it is counted and dropped)."""
        customer = customer_of(item)
        if not customer:
            return False
        if self.table.get(marker_key(partition, self.pseudonym(customer))) is None:
            return False
        self.metrics.ignored.labels("journeys").inc()
        return True

    async def on_record(
        self, shell: JourneyShell, partition: int, key: bytes | None, value: bytes | None
    ) -> None:
        """Apply one ``erasures`` record; ``InvalidRecord`` (the shell dead-letters it) when it
        is not an erasure."""
        erasure = parse_erasure(key, value)
        self.table[marker_key(partition, erasure.subject)] = _marker(erasure)
        if erasure.customer_id is not None:
            customers = [erasure.customer_id]
        else:
            customers = self._customers_of(shell, partition, erasure.subject)
        kept: set[tuple[Channel, str]] = set()
        dropped = 0
        for customer in customers:
            state = shell.forget(partition, customer)
            if state is not None:
                dropped += 1
                kept.update(opted_out_addresses(state))
        self.metrics.dropped.labels("journeys").inc(dropped)
        if erasure.customer_id is None:
            return
        await self._write(shell, erasure, erasure.customer_id, sorted(kept), dropped)

    async def _write(
        self,
        shell: JourneyShell,
        erasure: Erasure,
        customer: str,
        kept: list[tuple[Channel, str]],
        dropped: int,
    ) -> None:
        """The suppression list's entries, the tombstones, then the confirmation."""
        for channel, address in kept:
            key, value = suppression_record(self.pseudonyms.address(address), channel, erasure)
            await shell.send(self._consents, key, value, None)
        for channel in CHANNELS:
            await shell.send(self._consents, f"{customer}:{channel}".encode(), None, None)
        await shell.send(self._customers, customer.encode(), None, None)
        done = Done(
            erasure.subject, erasure.request_id, "journeys", int(self.wall_clock() * 1000),
            counts={"states": dropped, "suppressed": len(kept)},
        )  # fmt: skip
        await shell.send(self._done, done.key, done.to_json(), None)
        self.metrics.applied.labels("journeys").inc()
        log.info(
            "erasure %s: %d journey state(s) dropped, %d address(es) kept suppressed",
            erasure.request_id, dropped, len(kept),
        )  # fmt: skip

    def _customers_of(self, shell: JourneyShell, partition: int, subject: str) -> list[str]:
        """The partition's customers whose pseudonym is ``subject`` (a scan: a closed erasure
        names nobody; rare, and only in a replay or after a lost state)."""
        prefix = b"%d:" % partition
        found: list[str] = []
        for key in shell.states.keys(partition):
            if key[len(prefix) :].startswith(CLOCK_SUFFIX):
                continue
            customer = key[len(prefix) :].decode("utf-8", "replace")
            if self.pseudonyms.customer(customer) == subject:
                found.append(customer)
        return found


def install_journey_erasure(
    app: Any, settings: Settings, topics: TopicCatalogue, metrics: ErasureMetrics
) -> JourneyErasure:
    """The journeys' erasure part and its table of erased subjects (co-partitioned with the
    journeys table: same partitions, keyed ``"<partition>:<subject>"``)."""
    table = app.Table(
        "journeys-erased", key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
    )
    return JourneyErasure(
        table=table, topics=topics, pseudonyms=Pseudonyms.of(settings), metrics=metrics
    )


def _marker(erasure: Erasure) -> bytes:
    """What the table keeps of an erasure: no customer id."""
    return orjson.dumps(
        {"request_id": erasure.request_id, "requested_at": format_ms(erasure.requested_at_ms)}
    )
