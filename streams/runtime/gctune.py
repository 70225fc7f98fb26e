"""Garbage-collector settings for the long loops (the worker, offline ``detect``).

The detector keeps every open session as objects. At CPython's default thresholds the cyclic
collector walks the young heap every 700 allocations, which cost the worker a third of its
time (docs/architecture.md, "Where the worker's time goes"). Session state holds no reference
cycles, so startup objects are frozen out of the collector and collections made rarer.
"""

from __future__ import annotations

import gc


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
