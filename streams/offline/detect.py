"""``cartpulse detect``: a file of events → the detection core in event mode → abandonments.

The same ``Detector`` as the worker, over one file in input order, as one partition. Invalid
lines are counted and reported, unknown types counted and ignored; nothing stops the run.
A JSONL file goes through the native reader and core whole (``Detector.run_jsonl``); only the
lines it refuses come back here, to be counted and reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from streams.contract.events import Event
from streams.core.detection import Closed, Detector, DetectorConfig
from streams.offline.output import Reject
from streams.offline.sources import Format, is_plain_file, read_jsonl, read_rees46, unknown_type_of


@dataclass(slots=True)
class DetectSummary:
    events: int = 0
    invalid: int = 0
    unknown_types: Counter[str] = field(default_factory=Counter)  # lines per unknown type
    abandonments: Counter[str] = field(default_factory=Counter)


def detect_file(
    path: Path,
    fmt: Format,
    config: DetectorConfig,
    out: IO[bytes],
    summary: DetectSummary,
    reject: Reject,
    flush: bool = False,
) -> DetectSummary:
    """Run the core over a file and write each abandonment as a JSON line to ``out``."""
    if fmt == "rees46":
        return detect(rees46_events(path, summary, reject), config, out, summary, flush)
    if not is_plain_file(path):  # standard input or gzip: the native reader takes a path
        return detect(jsonl_events(path, summary, reject), config, out, summary, flush)
    detector = Detector(config, track_changes=False)  # nothing is persisted offline
    name = path.name

    def refused(line: bytes, lineno: int, reason: str, unknown_type: bool) -> None:
        if unknown_type:
            summary.unknown_types[unknown_type_of(reason) or "?"] += 1
        elif line.strip():
            summary.invalid += 1
            reject(f"{name}:{lineno}", line.rstrip(b"\r\n"), reason)

    events, carts, browses = detector.run_jsonl(str(path), out.write, refused, flush)
    summary.events += events
    summary.abandonments.update({k: n for k, n in (("cart", carts), ("browse", browses)) if n})
    return summary


def rees46_events(path: Path, summary: DetectSummary, reject: Reject) -> Iterator[Event]:
    for record in read_rees46(path):
        if record.event is not None:
            yield record.event
        else:
            summary.invalid += 1
            unknown = unknown_type_of(record.reason or "")
            if unknown is not None:
                summary.unknown_types[unknown] += 1
            reject(record.source, record.line, record.reason or "invalid")


def jsonl_events(path: Path, summary: DetectSummary, reject: Reject) -> Iterator[Event]:
    """The events of a JSONL stream the native reader cannot open (stdin, gzip), as
    ``detect_file`` counts them: unknown types apart, other bad lines invalid."""
    for record in read_jsonl(path):
        if record.event is not None:
            yield record.event
            continue
        unknown = unknown_type_of(record.reason or "")
        if unknown is not None:
            summary.unknown_types[unknown] += 1
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
    detector = Detector(config, track_changes=False)
    on_event = detector.on_event
    for event in events:
        summary.events += 1
        closed = on_event(event)
        if closed:
            _write_all(closed, out, summary)
    if flush:
        _write_all(detector.flush(), out, summary)
    return summary


def _write_all(closed: Iterable[Closed], out: IO[bytes], summary: DetectSummary) -> None:
    for abandonment in closed:
        summary.abandonments[abandonment.kind] += 1
        out.write(abandonment.json + b"\n")
