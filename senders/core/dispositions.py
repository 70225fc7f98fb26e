"""What the send loop tells the consumer to do with a command's record, and one task's work.

``Done``: nothing more (the outcome is on ``send.results``, or another owner records it);
``Defer``: move it to the retry topic, due at ``not_before``; ``Reject``: dead-letter it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from senders.core.decide import DeferReason
from streams.contract.commands import ResultStatus


@dataclass(frozen=True, slots=True)
class Done:
    status: ResultStatus | None  # None: another owner records this command's outcome


@dataclass(frozen=True, slots=True)
class Defer:
    not_before: float  # epoch seconds
    reason: DeferReason
    attempts: int


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str


Disposition = Done | Defer | Reject


@dataclass(slots=True)
class Work:
    """One task's identity in the ledger; ``critical`` while a request may be out."""

    owner: str
    critical: bool = False
    attempts: int = field(default=0)
