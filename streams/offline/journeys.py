"""``cartpulse journeys``: the journey engine over files, in event-time order.

Reads abandonments, customer profiles, consents, orders (any event file: only
``order_completed`` events are taken) and, optionally, send results; merges them by event
time (``streams.core.journey_inputs.order_key``); runs the same ``JourneyEngine`` as the
worker's agent; and writes send commands, decisions and recoveries as JSON lines in the
topics' shapes. At the end every customer is advanced to ``until`` (default: the end of
time, so every pending step fires or is skipped at its own due moment).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from streams.contract.errors import InvalidRecord
from streams.contract.events import MAX_EVENT_MS
from streams.contract.journey import (
    AbandonmentIn,
    Decision,
)
from streams.contract.products import ProductVersion
from streams.core.journey_inputs import (
    JourneyInput,
    OrderKey,
    apply,
    customer_of,
    decode,
    order_key,
    time_of,
    watch,
)
from streams.core.journey_state import CustomerState
from streams.core.journeys import JourneyEngine, Outputs, anonymous
from streams.offline.output import Reject
from streams.offline.sources import detect_format, read_lines, read_rees46, unknown_type_of


@dataclass(slots=True)
class JourneySummary:
    inputs: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    recoveries: int = 0


@dataclass(frozen=True, slots=True)
class JourneyFiles:
    abandonments: Path
    customers: Path | None = None
    consents: Path | None = None
    orders: Path | None = None
    results: Path | None = None
    products: Path | None = None
    engagement: Path | None = None


def _parse(kind: str, line: bytes) -> JourneyInput | None:
    """A line of a ``kind`` file as the worker would read its record from the topic."""
    key = None
    if kind == "consents":  # a file has no record keys: the topic's is customer_id:channel
        data = orjson.loads(line)
        if not isinstance(data, dict):
            raise InvalidRecord("consent must be a JSON object")
        key = f"{data.get('customer_id', '')}:{data.get('channel', '')}".encode()
    return decode("send.results" if kind == "results" else kind, key, line)


def _event_lines(path: Path, refused: Reject) -> Iterator[tuple[str, bytes]]:
    """An event file's lines as ``cartpulse import`` writes them to Kafka, where the detector
    forwards the orders from: a JSON lines file as it is, a REES46 / Open CDP export's rows
    converted (docs/semantics.md, "Events"); a row that cannot be is ``refused`` with its
    reason, a row of a type cartpulse does not know is passed over, as in a JSON lines file."""
    if detect_format(path) == "jsonl":
        yield from read_lines(path)
        return
    for record in read_rees46(path):
        if record.payload is not None:
            yield record.source, record.payload
        elif unknown_type_of(reason := record.reason or "") is None:
            refused(record.source, record.line, reason)


def read_inputs(files: JourneyFiles, summary: JourneySummary, reject: Reject) -> list[JourneyInput]:
    """Every valid input of the files, in event-time order (ties: see ``order_key``)."""
    items: list[tuple[OrderKey, JourneyInput]] = []
    seq = 0

    def refuse(where: str, line: bytes, reason: str) -> None:
        summary.invalid += 1
        reject(where, line, reason)

    for kind in (
        "customers", "consents", "orders", "abandonments", "results", "products", "engagement"
    ):  # fmt: skip
        path = getattr(files, kind)
        if path is None:
            continue
        lines = _event_lines(path, refuse) if kind == "orders" else read_lines(path)
        for where, line in lines:
            try:
                item = _parse(kind, line)
            except (InvalidRecord, orjson.JSONDecodeError) as exc:
                refuse(where, line, getattr(exc, "reason", None) or f"not valid JSON: {exc}")
                continue
            if item is None:
                continue
            summary.inputs[kind] += 1
            items.append((order_key(item, seq), item))
            seq += 1
    items.sort(key=lambda pair: pair[0])
    return [item for _, item in items]


def run_journeys(
    inputs: list[JourneyInput],
    engine: JourneyEngine,
    write: Callable[[Outputs], None],
    until: int = MAX_EVENT_MS,
) -> None:
    """Feed ``inputs`` (already in order) to the engine, then advance everyone to ``until``.

    A catalogue change goes to every customer who saw the product (as the worker's journeys
    agent does it), in customer order."""
    states: dict[str, CustomerState] = {}
    watchers: dict[str, set[str]] = {}
    # The whole catalogue first, as a worker's reader has it once caught up (a step reads it
    # as of its own moment); a repeat is not a change, there as here.
    changes = {id(v) for v in inputs if isinstance(v, ProductVersion) and engine.catalogue.add(v)}
    for item in inputs:
        if isinstance(item, ProductVersion):
            if id(item) not in changes:
                continue
            for watcher in sorted(watchers.get(item.product_id, ())):
                write(apply(engine, states[watcher], item, time_of(item)))
            continue
        customer = customer_of(item)
        if not customer:
            if isinstance(item, AbandonmentIn):
                write(Outputs(decisions=[anonymous(item)]))
            continue
        state = states.get(customer)
        if state is None:
            state = states[customer] = CustomerState(customer)
        write(apply(engine, state, item, time_of(item)))
        if isinstance(item, AbandonmentIn):  # the only input that adds watched products
            watch(watchers, state)
    for state in states.values():
        write(engine.advance(state, until))


class OutputWriter:
    """Writes outputs as JSON lines: commands to one stream, decisions and recoveries to others."""

    def __init__(
        self,
        commands: IO[bytes],
        decisions: IO[bytes] | None,
        recoveries: IO[bytes] | None,
        summary: JourneySummary,
    ) -> None:
        self._commands, self._decisions, self._recoveries = commands, decisions, recoveries
        self._summary = summary

    def __call__(self, outputs: Outputs) -> None:
        summary = self._summary
        for command in outputs.commands:
            summary.commands[command.channel] += 1
            self._commands.write(command.to_json() + b"\n")
        for decision in outputs.decisions:
            summary.decisions[_label(decision)] += 1
            if self._decisions is not None:
                self._decisions.write(decision.to_json() + b"\n")
        for recovery in outputs.recoveries:
            summary.recoveries += 1
            if self._recoveries is not None:
                self._recoveries.write(recovery.to_json() + b"\n")


def _label(decision: Decision) -> str:
    return f"{decision.action}:{decision.reason}"
