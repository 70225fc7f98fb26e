"""Where the command-line tools write: a file, or standard output for ``-``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

Reject = Callable[[str, bytes, str], None]  # (where, line, reason)


@contextlib.contextmanager
def open_output(target: str) -> Iterator[IO[bytes]]:
    """``-`` is standard output; anything else a file, created or truncated."""
    if target == "-":
        yield sys.stdout.buffer
    else:
        with Path(target).open("wb") as handle:
            yield handle


def stderr_rejects(limit: int) -> Reject:
    """A reject handler that prints ``where: reason`` for the first ``limit`` bad lines."""
    reported = 0

    def reject(where: str, line: bytes, reason: str) -> None:
        nonlocal reported
        reported += 1
        if reported <= limit:
            print(f"{where}: {reason}", file=sys.stderr)  # noqa: T201 - the tools' own output

    return reject
