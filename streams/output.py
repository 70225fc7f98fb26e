"""Where the command-line tools write: a file, or standard output for ``-``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def open_output(target: str) -> Iterator[IO[bytes]]:
    """``-`` is standard output; anything else a file, created or truncated."""
    if target == "-":
        yield sys.stdout.buffer
    else:
        with Path(target).open("wb") as handle:
            yield handle
