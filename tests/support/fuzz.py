"""How many cases a fuzz test runs: bounded in ``make test``, longer in ``make fuzz``.

A fuzz test is marked ``@pytest.mark.fuzz`` and sizes its hypothesis run with
``examples(n)``: ``n`` cases by default, ``n`` times ``CARTPULSE_FUZZ_SCALE`` when set
(``make fuzz`` sets it). A failure hypothesis finds becomes an ``@example`` regression case.
"""

from __future__ import annotations

import os


def scale() -> int:
    """The multiplier from ``CARTPULSE_FUZZ_SCALE`` (default 1; must be a positive integer)."""
    raw = os.environ.get("CARTPULSE_FUZZ_SCALE", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"CARTPULSE_FUZZ_SCALE must be a positive integer, not {raw!r}")
    return int(raw)


def examples(n: int) -> int:
    """``n`` hypothesis examples, scaled for long fuzzing runs."""
    return n * scale()
