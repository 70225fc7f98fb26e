"""``cartpulse detect``: a file of events → the detection core in event mode → abandonments.

The same ``Detector`` as the worker, over one file in input order, as one partition. Invalid
lines are counted and reported, unknown types counted and ignored; nothing stops the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from streams.core.detection import Detector, DetectorConfig
from streams.errors import InvalidRecord, UnknownEventType
from streams.models.abandonment import Abandonment
from streams.models.event_parse import parse_event
from streams.models.events import Event
from streams.output import Reject
from streams.sources import Format, read_rees46


@dataclass(slots=True)
class DetectSummary:
    events: int = 0
    invalid: int = 0
    unknown_types: int = 0
    abandonments: Counter[str] = field(default_factory=Counter)


def jsonl_events(path: Path, summary: DetectSummary, reject: Reject) -> Iterator[Event]:
    """Valid events of a JSONL file in file order; the rest go to ``reject``."""
    name = path.name
    with path.open("rb") as handle:
        for lineno, line in enumerate(handle, start=1):
            try:
                yield parse_event(line)
            except UnknownEventType:
                summary.unknown_types += 1
            except InvalidRecord as exc:
                if line.strip():
                    summary.invalid += 1
                    reject(f"{name}:{lineno}", line.rstrip(b"\r\n"), exc.reason)


def rees46_events(path: Path, summary: DetectSummary, reject: Reject) -> Iterator[Event]:
    for record in read_rees46(path):
        if record.event is not None:
            yield record.event
        else:
            summary.invalid += 1
            reject(record.source, record.line, record.reason or "invalid")


def detect(
    events: Iterable[Event],
    config: DetectorConfig,
    out: IO[bytes],
    summary: DetectSummary,
    flush: bool = False,
) -> DetectSummary:
    """Run the core over ``events`` and write each abandonment as a JSON line to ``out``."""
    detector = Detector(config, track_changes=False)  # nothing is persisted offline
    on_event = detector.on_event
    write = out.write
    for event in events:
        summary.events += 1
        closed = on_event(event)
        if closed:
            _write_all(closed, write, summary)
    if flush:
        _write_all(detector.flush(), write, summary)
    return summary


def events_of(path: Path, fmt: Format, summary: DetectSummary, reject: Reject) -> Iterator[Event]:
    if fmt == "rees46":
        return rees46_events(path, summary, reject)
    return jsonl_events(path, summary, reject)


def _write_all(
    closed: Iterable[Abandonment], write: Callable[[bytes], object], summary: DetectSummary
) -> None:
    for abandonment in closed:
        summary.abandonments[abandonment.kind] += 1
        write(abandonment.to_json() + b"\n")
