"""What the command-line tools share: where they write (a file, or standard output for ``-``),
how they report bad lines, how they read a time argument."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol, TypeVar

from streams.contract.durations import parse_duration_ms
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.events import parse_time

Reject = Callable[[str, bytes, str], None]  # (where, line, reason)


class ReadLine(Protocol):
    """A line of an input file as a reader yields it: where it is, and why it was rejected."""

    @property
    def source(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


LineT = TypeVar("LineT", bound=ReadLine)


@contextlib.contextmanager
def open_output(target: str) -> Iterator[IO[bytes]]:
    """``-`` is standard output; anything else a file, created or truncated."""
    if target == "-":
        yield sys.stdout.buffer
    else:
        with Path(target).open("wb") as handle:
            yield handle


MAX_REPORTED_REJECTS = 200  # bad lines a command prints; the rest are counted


def duration_seconds(text: str) -> float:
    """An argparse ``type``: a duration flag (``90s``, ``5m``, ``PT5M``, ``300``) in seconds."""
    import argparse

    try:
        return parse_duration_ms(text) / 1000
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def time_argument(text: str, name: str) -> int:
    """A command-line time: RFC 3339 with an offset, or epoch milliseconds."""
    try:
        return parse_time(int(text) if text.isdigit() else text, name)
    except InvalidRecord as exc:
        raise ConfigurationError(exc.reason) from None


def stderr_rejects(limit: int = MAX_REPORTED_REJECTS) -> Reject:
    """A reject handler that prints ``where: reason`` for the first ``limit`` bad lines."""
    reported = 0

    def reject(where: str, line: bytes, reason: str) -> None:
        nonlocal reported
        reported += 1
        if reported <= limit:
            print(f"{where}: {reason}", file=sys.stderr)  # noqa: T201 - the tools' own output

    return reject


def reported_rejects(lines: Iterator[LineT]) -> Iterator[LineT]:
    """``lines`` unchanged; the first ``MAX_REPORTED_REJECTS`` rejected ones named on stderr."""
    reported = 0
    for item in lines:
        if item.reason is not None:
            reported += 1
            if reported <= MAX_REPORTED_REJECTS:
                print(f"{item.source}: {item.reason}", file=sys.stderr)  # noqa: T201 - the tools' own output
            elif reported == MAX_REPORTED_REJECTS + 1:
                print("… further rejected lines are counted, not printed", file=sys.stderr)  # noqa: T201 - ditto
        yield item
