"""The abandonment record (docs/semantics.md), identical on the topic and in offline JSONL.

The detection core (native/src/records.rs) writes it; tests/support/abandonments.py holds a Python
encoding of the same record that the tests compare the core's output with, byte for byte.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["cart", "browse"]
