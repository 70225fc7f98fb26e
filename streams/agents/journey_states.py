"""The journeys' customer states between the table and the shell: read, changed, written.

A customer's state is one value of the ``journeys`` table (key ``"<partition>:<customer_id>"``,
``state_key``). ``JourneyStates`` holds what the records since the last ``flush`` changed, by
partition, and writes it at the end of a batch: each changed state once, however many records
changed it, all of a partition's in one table write (``StateTable.write``: one RocksDB write
batch and the changelog records in order, streams/agents/changelog.py). The latest states
written stay decoded in a bounded cache, so a customer seen again soon is not read back from
the table. The table is written here only, never key by key through Faust.
"""

from __future__ import annotations

import logging
from typing import Final

from streams.agents.ports import StateTable
from streams.contract.errors import InvalidRecord
from streams.core.journey_state import CustomerState

log = logging.getLogger(__name__)

CACHED_STATES: Final = 10_000  # decoded customer states kept between batches
# A change not yet written: a customer's state, a raw value (a partition's clock), None: deleted.
Pending = CustomerState | bytes | None


def state_key(partition: int, customer_id: str) -> bytes:
    return b"%d:%s" % (partition, customer_id.encode())


class JourneyStates:
    """See the module docstring. Reads see the changes not yet written."""

    def __init__(self, table: StateTable) -> None:
        self.table = table
        self._changed: dict[int, dict[bytes, Pending]] = {}
        # insertion order is recency: the oldest go first
        self._cached: dict[bytes, CustomerState] = {}

    def load(self, partition: int, customer: str) -> CustomerState:
        """The customer's state (a new one when none is held or it cannot be read)."""
        key = state_key(partition, customer)
        changed = self._changed.get(partition)
        if changed is not None and key in changed:
            state = changed[key]
            return state if isinstance(state, CustomerState) else CustomerState(customer)
        state = self._cached.pop(key, None)
        if state is not None:
            self._cached[key] = state  # the most recent now
            return state
        raw = self.table.get(key)
        if raw is None:
            return CustomerState(customer)
        try:
            return CustomerState.from_bytes(raw)
        except InvalidRecord as exc:
            log.warning("journey state of a customer is unreadable (%s); starting afresh", exc)
            return CustomerState(customer)

    def store(self, partition: int, state: CustomerState) -> None:
        """Mark ``state`` changed: the next ``flush`` writes it."""
        self._changed.setdefault(partition, {})[state_key(partition, state.customer_id)] = state

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """A raw value of the partition (its clock), written by the next ``flush``."""
        self._changed.setdefault(partition, {})[key] = value

    def delete(self, partition: int, customer: str) -> CustomerState | None:
        """Drop the customer's state (the next ``flush`` writes a tombstone); the state
        dropped, or None when none was held."""
        key = state_key(partition, customer)
        self._cached.pop(key, None)
        changed = self._changed.setdefault(partition, {})
        if key in changed:
            value = changed[key]
            state = value if isinstance(value, CustomerState) else None
        else:
            raw = self.table.get(key)
            state = None if raw is None else _decoded(customer, raw)
        if state is not None:
            changed[key] = None
        return state

    def keys(self, partition: int) -> list[bytes]:
        """The partition's keys in the table, as the next ``flush`` will leave it."""
        prefix = b"%d:" % partition
        keys = {key for key in self.table.keys() if key.startswith(prefix)}  # noqa: SIM118 - a StateTable is not iterable
        for key, value in self._changed.get(partition, {}).items():
            if value is None:
                keys.discard(key)
            else:
                keys.add(key)
        return sorted(keys)

    async def flush(self) -> None:
        """Write what changed since the last flush: one table write per partition (its
        changelog records handed to the producer), the states kept decoded, the oldest dropped
        past the bound. Raises what the table raises."""
        changed, self._changed = self._changed, {}
        cached = self._cached
        for partition, values in changed.items():
            changes: list[tuple[bytes, bytes | None]] = []
            for key, value in values.items():
                cached.pop(key, None)
                if isinstance(value, CustomerState):
                    changes.append((key, value.to_bytes()))
                    cached[key] = value
                else:
                    changes.append((key, value))
            await self.table.write(partition, changes)
        while len(cached) > CACHED_STATES:
            del cached[next(iter(cached))]

    def drop(self, partitions: set[int]) -> None:
        """Forget what was not written of ``partitions`` (revoked), and every cached state
        (the table is the truth again when a partition comes back, perhaps changed by another
        worker)."""
        for partition in partitions:
            self._changed.pop(partition, None)
        if partitions:
            self._cached.clear()

    def forget_cache(self) -> None:
        """Drop the decoded states (one may have been changed and not stored: a record that
        failed mid-way)."""
        self._cached.clear()


def _decoded(customer: str, raw: bytes) -> CustomerState:
    try:
        return CustomerState.from_bytes(raw)
    except InvalidRecord:
        return CustomerState(customer)
