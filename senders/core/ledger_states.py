"""What the exactly-once ledger (``ledger.py``) answers about a command (pure values).

Their own module so that the send loop's decisions (``decide.py``) read them without
importing the ledger's Redis side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Claimed:
    """The caller owns the command now (new, or its own claim refreshed)."""


@dataclass(frozen=True, slots=True)
class Busy:
    """Another owner's live claim; it expires in ``retry_in`` seconds at the latest."""

    retry_in: float


@dataclass(frozen=True, slots=True)
class Sending:
    """A request may have left ``age`` seconds ago (by ``owner``)."""

    age: float
    owner: str


@dataclass(frozen=True, slots=True)
class Finished:
    result: bytes
    published: bool


ClaimState = Claimed | Busy | Sending | Finished
FinishOutcome = Literal["ok", "lost"] | Finished
