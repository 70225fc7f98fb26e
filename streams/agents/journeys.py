"""The journeys shell: decode, call the journey engine, emit, persist, count.

Keyed by customer. The agent reads ``abandonments``, ``orders``, ``customers``, ``engagement``
(all keyed by customer id), ``journey.inputs`` (consents and send results re-keyed by customer
id, see ``rekey``) and ``journey.ticks``; they are co-partitioned with the ``journeys`` table,
so one partition's customers live on one worker. Catalogue changes come from the catalogue
reader (every worker reads all of ``products``) through ``on_version``. Each customer's state
is one table value (key ``"<partition>:<customer_id>"``). The states a batch of records changed
are written at its end, once each and in one table write per partition (``flush``; a watermark
that releases a customer's held inputs and fires their steps writes their state once, not once
per input and step), and the batch's records are acknowledged after that. The latest states stay
decoded in a bounded cache, so a customer seen again soon is not read back from the table.
A partition revoked while a batch is under way (a rebalance may come at any await) loses the
changes its records made in the batch, and its records that are left are not taken: none of
them is acknowledged, so all come again, from the committed offset, to the partition's next
owner, as the detector's do (streams/agents/detector.py).

Time: each partition keeps a clock. In ``live`` mode ticks move it to the wall clock. In
``event`` mode only explicit watermarks move it (``cartpulse watermark``, which a replay sends
once the journeys have read their inputs), never the wall clock and never the inputs' own
times: the inputs come from several topics that Kafka does not order with each other, so a
clock following them could pass a step's due time before an order that came earlier in event
time had arrived, and a replay would not repeat the original run. A deadline index (a heap
per partition, rebuilt from the table on first use) finds the
customers whose next step is due when the clock moves.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import orjson

from streams.agents.journey_states import JourneyStates, state_key
from streams.agents.ports import Clock, Send, StateTable
from streams.agents.rekeying import InputHeaders, origin
from streams.contract.coupons import issued_coupon
from streams.contract.errors import InvalidRecord
from streams.contract.journey import AbandonmentIn, Profile
from streams.contract.products import ProductVersion
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.journey_inputs import (
    JourneyInput,
    apply,
    customer_of,
    decode,
    order_key,
    watch,
)
from streams.core.journey_state import CustomerState, Held
from streams.core.journeys import REASONS, JourneyEngine, Outputs, anonymous
from streams.core.watermarks import read_tick
from streams.runtime.kafka import dead_letter
from streams.runtime.metrics import JourneyMetrics

if TYPE_CHECKING:
    from streams.agents.journeys_erasure import JourneyErasure

log = logging.getLogger(__name__)

CLOCK_KEY: Final = b"\x00clock"
MAX_HELD: Final = 10_000  # inputs held per customer; more are applied at once (and counted)
DEFAULT_LATENESS_MS: Final = 5_000


@dataclass(slots=True)
class PartitionClock:
    clock: int | None = None
    index: list[tuple[int, str]] = field(default_factory=list)  # (due, customer)
    # product id → customers of this partition who watch it (catalogue triggers)
    watchers: dict[str, set[str]] = field(default_factory=dict)
    # catalogue changes not yet applied: (updated ms, arrival, version), applied once the
    # clock reaches them, inside one of the partition's own records (table writes need one)
    products: list[tuple[int, str, int, ProductVersion]] = field(default_factory=list)
    # inputs held until the clock reaches them: (event time, rank, identity, customer,
    # arrival wall ms); the records themselves are in their customer's state (``held``)
    held: list[tuple[int, int, str, str, int]] = field(default_factory=list)


class JourneyShell:
    """See the module docstring.

    Ports (streams/agents/ports.py): ``table`` the journeys table (bytes to bytes), ``send``
    the producer, ``wall_clock`` the clock (only for the age of held inputs: decisions follow
    the partition's clock). ``on_record`` returns once the record's outputs are handed to the
    producer; ``flush`` writes the states the records since the last flush changed. The agent
    acknowledges a batch's records after its ``flush`` (those of a partition in ``dropped``
    not), and Faust flushes the producer (outputs and the table's changelog) before it
    commits the offsets."""

    def __init__(
        self,
        *,
        engine: JourneyEngine,
        topics: TopicCatalogue,
        live: bool,
        table: StateTable,
        send: Send,
        metrics: JourneyMetrics,
        max_record_bytes: int,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        wall_clock: Clock = time.time,
    ) -> None:
        self.wall_clock = wall_clock
        self.engine = engine
        self.lateness_ms = lateness_ms
        self.live = live
        self.table = table
        self.send = send
        self.metrics = metrics
        self.max_record_bytes = max_record_bytes
        self.partitions: dict[int, PartitionClock] = {}
        self._arrivals = 0
        self.states = JourneyStates(table)  # what the records changed, until ``flush``
        # Partitions revoked and not assigned here again since (``revoke``, ``assign``), and
        # those revoked since the batch began (``begin``): not taken, not acknowledged.
        self._revoked: set[int] = set()
        self.dropped: set[int] = set()
        self.erasure: JourneyErasure | None = None  # set by install_journey_erasure
        name = topics.name
        self._kinds = {
            name(Topic.ABANDONMENTS): "abandonments",
            name(Topic.ORDERS): "orders",
            name(Topic.CUSTOMERS): "customers",
            name(Topic.JOURNEY_INPUTS): "rekeyed",
            name(Topic.ENGAGEMENT): "engagement",
            name(Topic.JOURNEY_TICKS): "ticks",
            name(Topic.ERASURES): "erasures",
        }
        self._commands = {"sms": name(Topic.SEND_SMS), "email": name(Topic.SEND_EMAIL)}
        self._decisions, self._recoveries = name(Topic.DECISIONS), name(Topic.RECOVERIES)
        self._coupons = name(Topic.COUPONS)
        self._dlq = {
            "abandonments": topics.dlq(Topic.ABANDONMENTS),
            "orders": topics.dlq(Topic.ORDERS),
            "customers": topics.dlq(Topic.CUSTOMERS),
            "consents": topics.dlq(Topic.CONSENTS),
            "send.results": topics.dlq(Topic.SEND_RESULTS),
            "engagement": topics.dlq(Topic.ENGAGEMENT),
            "erasures": topics.dlq(Topic.ERASURES),
        }

    # -- one record ----------------------------------------------------------------------

    async def on_record(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: InputHeaders,
    ) -> None:
        """Handle one record of any input; never raises for bad data (DLQ and count). The
        states it changed are written by the next ``flush``. A record of a partition in
        ``dropped`` is not taken."""
        if partition in self.dropped:
            return  # revoked since the batch began: not taken
        kind = self._kinds.get(topic, "unknown")
        source = kind
        try:
            clock = self._partition(partition)
            if kind == "ticks":
                await self._tick(partition, clock, value)
            elif kind == "erasures":  # streams/agents/journeys_erasure.py
                if self.erasure is not None:
                    await self.erasure.on_record(self, partition, key, value)
            else:
                if kind == "rekeyed":
                    source, key = origin(headers)
                await self._input(partition, clock, source, key, value)
        except Exception as exc:  # nothing escapes the agent: bad data and bugs go to the DLQ
            # The states it changed before it failed are written (its outputs so far went
            # out); a cached state may have been changed and not stored: the cache goes.
            self.states.forget_cache()
            if isinstance(exc, InvalidRecord):
                reason = exc.reason
            else:
                log.exception("journeys failed on a record of %s:%s", topic, partition)
                reason = f"internal error: {exc!r}"
            self.metrics.invalid.labels(source).inc()
            dlq = self._dlq.get(source, self._dlq["abandonments"])
            letter = dead_letter(value, reason, f"{topic}:{partition}", topic)
            await self.send(dlq, key, letter.value, letter.headers)

    async def _input(
        self,
        partition: int,
        clock: PartitionClock,
        source: str,
        key: bytes | None,
        value: bytes | None,
    ) -> None:
        """An input of ``source``: held until its time, or applied now."""
        item = decode(source, key, value, self.max_record_bytes)
        if item is None:
            return
        if self.erasure is not None and self.erasure.ignores(partition, item):
            return  # an erased customer's input (a replay, a re-import)
        self.metrics.inputs.labels(source).inc()
        if self._hold(partition, clock, source, key, value, item):
            return
        await self._release(partition, clock)  # catalogue changes queued since the tick
        await self._apply(partition, clock, item)

    def _hold(
        self,
        partition: int,
        clock: PartitionClock,
        source: str,
        key: bytes | None,
        value: bytes | None,
        item: JourneyInput,
    ) -> bool:
        """Hold ``item`` in its customer's state until the clock reaches its event time, so
        the inputs of a customer apply in event-time order, as offline (docs/semantics.md,
        The clock). False: apply it now — a profile (it has no event time), an input without
        a customer, or one that comes after the clock passed its time (counted as late)."""
        customer = customer_of(item)
        if not customer or isinstance(item, Profile):
            return False
        at, rank, ident, _ = order_key(item, 0)
        if clock.clock is not None and at <= clock.clock:
            if at < clock.clock:
                self.metrics.late.labels(source).inc()
            return False
        try:
            held = Held(
                at, rank, ident, source,
                None if key is None else key.decode(), (value or b"").decode(),
            )  # fmt: skip
        except UnicodeDecodeError:
            return False  # cannot be kept as text: applied now (decode accepted it)
        state = self.states.load(partition, customer)
        if len(state.held) >= MAX_HELD:
            self.metrics.late.labels("overflow").inc()
            return False
        bisect.insort(state.held, held, key=lambda h: h.order)
        self._store(partition, clock, state, indexed=state.next_due())
        heapq.heappush(clock.held, (at, rank, ident, customer, self.wall_ms()))
        self.metrics.held.labels(source).inc()
        return True

    async def _release(self, partition: int, clock: PartitionClock) -> None:
        """Apply the held inputs and catalogue changes the clock has reached, in event-time
        order (catalogue changes first among equals), each at its own time."""
        now = clock.clock
        if now is None:
            return
        held, products = clock.held, clock.products
        while True:
            next_held = held[0] if held and held[0][0] <= now else None
            next_product = products[0] if products and products[0][0] <= now else None
            if next_product is not None and (next_held is None or next_product[0] <= next_held[0]):
                version = heapq.heappop(products)[-1]
                await self._catalogue_change(partition, clock, version, version.updated_ms)
                continue
            if next_held is None:
                return
            at, rank, ident, customer, _ = heapq.heappop(held)
            state = self.states.load(partition, customer)
            taken = [h for h in state.held if h.order <= (at, rank, ident)]
            if not taken:
                continue  # released already (an entry of a repeated record)
            state.held = state.held[len(taken) :]
            due_before = state.next_due()
            outputs = Outputs()
            for record in taken:
                self.metrics.held.labels(record.source).dec()
                key = None if record.key is None else record.key.encode()
                item = decode(record.source, key, record.value.encode(), self.max_record_bytes)
                if item is not None:
                    outputs.extend(apply(self.engine, state, item, record.at_ms))
            self._store(partition, clock, state, indexed=due_before)
            watch(clock.watchers, state)
            await self._emit(outputs)

    def wall_ms(self) -> int:
        return int(self.wall_clock() * 1000)

    async def _apply(self, partition: int, clock: PartitionClock, item: JourneyInput) -> None:
        customer = customer_of(item)
        if not customer:
            if isinstance(item, AbandonmentIn):
                await self._emit(Outputs(decisions=[anonymous(item)]))
            return
        now = clock.clock if clock.clock is not None else 0
        state = self.states.load(partition, customer)
        due_before = state.next_due()
        outputs = apply(self.engine, state, item, now)
        self._store(partition, clock, state, indexed=due_before)
        if isinstance(item, AbandonmentIn):  # the only input that adds watched products
            watch(clock.watchers, state)
        await self._emit(outputs)
        await self._fire_due(partition, clock)

    # -- the catalogue -------------------------------------------------------------------

    def on_version(self, version: ProductVersion) -> None:
        """A new catalogue version (from the catalogue reader): queued on every partition,
        applied to the customers who watch the product once the partition's clock reaches
        its time (docs/semantics.md, Catalogue triggers)."""
        if not self.engine.watch_ms:
            return
        self._arrivals += 1
        for clock in self.partitions.values():
            heapq.heappush(clock.products, _queued(version, self._arrivals))

    async def _catalogue_change(
        self, partition: int, clock: PartitionClock, version: ProductVersion, now: int
    ) -> None:
        for customer in sorted(clock.watchers.get(version.product_id, ())):
            state = self.states.load(partition, customer)
            due_before = state.next_due()
            outputs = self.engine.on_product(state, version, now)
            self._store(partition, clock, state, indexed=due_before)
            await self._emit(outputs)

    # -- time ------------------------------------------------------------------------------

    async def _tick(self, partition: int, clock: PartitionClock, raw: bytes | None) -> None:
        watermark, wall_ms = read_tick(raw)
        if watermark is not None:
            self._move(partition, clock, watermark)
        if self.live and wall_ms is not None:
            # A step due at T is judged at T + the allowed lateness: an input that happened
            # before T and arrives up to that late is still applied before it.
            self._move(partition, clock, wall_ms - self.lateness_ms)
        await self._release(partition, clock)
        await self._fire_due(partition, clock)
        self.metrics.due_customers.labels(str(partition)).set(len(clock.index))
        oldest = min((h[4] for h in clock.held[:1]), default=None)
        age = 0.0 if oldest is None else max(0, self.wall_ms() - oldest) / 1000
        self.metrics.held_age.labels(str(partition)).set(age)

    def _move(self, partition: int, clock: PartitionClock, to: int) -> None:
        if clock.clock is None or to > clock.clock:
            clock.clock = to
            if not self.live:  # a live clock is the wall clock again after a restart
                self.states.put(partition, state_key(partition, "") + CLOCK_KEY, orjson.dumps(to))

    async def _fire_due(self, partition: int, clock: PartitionClock) -> None:
        now = clock.clock
        if now is None:
            return
        index = clock.index
        while index and index[0][0] <= now:
            due, customer = heapq.heappop(index)
            state = self.states.load(partition, customer)
            if state.next_due() != due:
                continue  # a stale entry: the state moved on since it was indexed
            outputs = self.engine.advance(state, now)
            self._store(partition, clock, state)
            await self._emit(outputs)

    # -- state -----------------------------------------------------------------------------

    def _partition(self, partition: int) -> PartitionClock:
        clock = self.partitions.get(partition)
        if clock is None:
            clock = self.partitions[partition] = self._rebuild(partition)
        return clock

    def _rebuild(self, partition: int) -> PartitionClock:
        """The partition's clock and deadline index, from the table (after an assignment)."""
        prefix = b"%d:" % partition
        clock = PartitionClock()
        for key, value in self.table.items():
            if not key.startswith(prefix) or value is None:
                continue
            if key == prefix + CLOCK_KEY:
                clock.clock = orjson.loads(value)
                continue
            try:
                state = CustomerState.from_bytes(value)
            except InvalidRecord as exc:
                log.warning("dropping unreadable journey state %r: %s", key, exc.reason)
                continue
            due = state.next_due()
            if due is not None:
                clock.index.append((due, state.customer_id))
            watch(clock.watchers, state)
            for record in state.held:
                clock.held.append((*record.order, state.customer_id, self.wall_ms()))
                self.metrics.held.labels(record.source).inc()
        heapq.heapify(clock.index)
        heapq.heapify(clock.held)
        # Catalogue changes this partition has not applied: those after its clock (all the
        # reader knows when the clock is not known yet; a repeat is ignored by the cooldown).
        for version in self.engine.catalogue.versions() if self.engine.watch_ms else ():
            if clock.clock is None or version.updated_ms > clock.clock:
                self._arrivals += 1
                clock.products.append(_queued(version, self._arrivals))
        heapq.heapify(clock.products)
        log.info("journeys partition %d: %d due customers", partition, len(clock.index))
        return clock

    def _store(
        self,
        partition: int,
        clock: PartitionClock,
        state: CustomerState,
        indexed: int | None = None,
    ) -> None:
        """Mark the state changed (``flush`` writes it); index its next due moment unless
        ``indexed`` already holds it."""
        self.states.store(partition, state)
        due = state.next_due()
        if due is not None and due != indexed:
            heapq.heappush(clock.index, (due, state.customer_id))

    def begin(self) -> None:
        """A batch begins: of its records, those of a partition revoked and not assigned here
        since are dropped (fetched before a rebalance, handed over after it)."""
        self.dropped = set(self._revoked)

    async def flush(self) -> None:
        """Write what the records since the last flush changed (``JourneyStates.flush``).
        Raises what the table raises: the records are then not acknowledged, and come again
        after the worker restarts."""
        await self.states.flush()

    def forget(self, partition: int, customer: str) -> CustomerState | None:
        """Drop ``customer``'s state (an erasure): the table value (deleting a key writes a
        tombstone to the changelog), their deadline-index entries and their product
        watches. The state dropped, or None when none was held."""
        clock = self._partition(partition)
        state = self.states.delete(partition, customer)
        clock.index = [entry for entry in clock.index if entry[1] != customer]
        heapq.heapify(clock.index)
        for watchers in clock.watchers.values():
            watchers.discard(customer)
        return state

    def revoke(self, partitions: set[int]) -> None:
        """Forget revoked partitions: their clocks, what the batch under way changed in them
        (``dropped``: its records are not acknowledged), and every cached state (the table is
        the truth again when a partition comes back, perhaps changed by another worker)."""
        for partition in partitions:
            self.partitions.pop(partition, None)
        self.states.drop(partitions)
        self.dropped |= partitions
        self._revoked |= partitions

    def assign(self, partitions: set[int]) -> None:
        """Partitions the group gives this worker: their records are taken from the next batch
        on (not in the batch under way, whose changes to them were dropped)."""
        self._revoked -= partitions

    # -- outputs ---------------------------------------------------------------------------

    async def _emit(self, outputs: Outputs) -> None:
        metrics = self.metrics
        for command in outputs.commands:
            # The code goes to the store's registration before its message may go out (the
            # senders wait for it: senders/coupons); a dry run issues none.
            coupon = issued_coupon(command) if command.mode == "live" else None
            if coupon is not None:
                await self.send(self._coupons, coupon.code.encode(), coupon.to_json(), None)
            topic = self._commands[command.channel]
            await self.send(topic, command.to.encode(), command.to_json(), None)
            metrics.commands.labels(command.channel, command.mode).inc()
        for decision in outputs.decisions:
            key = decision.customer_id.encode() or None
            await self.send(self._decisions, key, decision.to_json(), None)
            metrics.decisions.labels(decision.action, _reason_label(decision.reason)).inc()
            if decision.action == "started":
                metrics.journeys.labels(decision.flow or "", "started").inc()
            elif decision.action == "ended":
                metrics.journeys.labels(decision.flow or "", decision.reason).inc()
        for recovery in outputs.recoveries:
            key = recovery.customer_id.encode()
            await self.send(self._recoveries, key, recovery.to_json(), None)
            metrics.recoveries.labels(recovery.flow, recovery.channel).inc()
            if recovery.revenue is not None:
                metrics.revenue.labels(recovery.flow, recovery.channel).inc(float(recovery.revenue))


def _queued(version: ProductVersion, arrival: int) -> tuple[int, str, int, ProductVersion]:
    """A catalogue change in a partition's queue: in time order, then by product (the order
    ``cartpulse journeys`` applies changes of one moment in), then by arrival."""
    return version.updated_ms, version.product_id, arrival, version


def _reason_label(reason: str) -> str:
    """A closed set: ``condition:<step>`` counts as ``condition``."""
    reason = reason.partition(":")[0]
    return reason if reason in REASONS else "other"
