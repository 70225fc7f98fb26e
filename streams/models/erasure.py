"""Erasure records: a request on ``erasures``, a part's confirmation on ``erasures.done``, and
the ``consents`` records an erasure leaves behind. Pure: no Kafka, no clock.

``erasures`` is compacted and keyed by the customer's subject (``Pseudonyms.customer``), and
each record goes to the partition the customer's id maps to, so the journeys (co-partitioned by
customer id) read it with the customer's other inputs. A request first carries the customer id
(the parts need it to find what to delete); once every part confirmed, ``cartpulse forget``
*closes* it: the same key gets a record without the id, which is what the topic keeps for good
(compaction drops the open one), and what a replay reads to keep the customer out.

What an erasure writes to ``consents`` (keyed ``subject:channel``, like every consent):

* ``erased:<customer subject>:<channel>``, ``opted_out``: the erased customer id is retired;
  a sender refuses any command for it (``erased``), a command already queued included.
* ``suppressed:<address hash>:<channel>``, ``opted_out``: the suppression list, one record per
  address of a channel the customer had opted out of, recorded at the erasure: a consent for
  that address recorded before it (a re-import of the old data) never sends to it again.

Both have source ``erasure`` and name the request in their evidence, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from streams.errors import InvalidRecord
from streams.models.commands import Channel
from streams.models.events import format_ms, parse_time
from streams.models.json_record import json_object

ERASURE_SOURCE: Final = "erasure"
ERASED_PREFIX: Final = "erased:"
SUPPRESSED_PREFIX: Final = "suppressed:"
Part = Literal["customers", "journeys", "detector", "senders"]
PARTS: Final[tuple[Part, ...]] = ("customers", "journeys", "detector", "senders")
MAX_REASON_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class Erasure:
    """One erasure: open (``customer_id`` set) until every part confirmed, then closed."""

    subject: str
    request_id: str
    requested_at_ms: int
    reason: str
    customer_id: str | None  # None once closed
    closed_at_ms: int | None = None

    @property
    def is_open(self) -> bool:
        return self.customer_id is not None

    def closed(self, at_ms: int) -> Erasure:
        """The record that replaces this one for good: the same erasure without the id."""
        return Erasure(
            self.subject, self.request_id, self.requested_at_ms, self.reason, None, at_ms
        )

    def to_json(self) -> bytes:
        value: dict[str, Any] = {
            "subject": self.subject,
            "request_id": self.request_id,
            "state": "open" if self.is_open else "closed",
            "requested_at": format_ms(self.requested_at_ms),
            "reason": self.reason,
        }
        if self.customer_id is not None:
            value["customer_id"] = self.customer_id
        if self.closed_at_ms is not None:
            value["closed_at"] = format_ms(self.closed_at_ms)
        return orjson.dumps(value)


def parse_erasure(key: bytes | None, value: bytes | None) -> Erasure:
    """An ``erasures`` record; ``InvalidRecord`` with the reason when it is not one."""
    data = json_object(value or b"", "an erasure")
    subject, request_id = data.get("subject"), data.get("request_id")
    if (
        not isinstance(subject, str)
        or not subject
        or (key and key.decode("utf-8", "replace") != subject)
    ):
        raise InvalidRecord("an erasure needs its subject, the same as its key")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRecord("an erasure needs its request_id")
    state = data.get("state")
    customer = data.get("customer_id")
    if state == "open":
        if not isinstance(customer, str) or not customer:
            raise InvalidRecord("an open erasure needs the customer_id it erases")
    elif state == "closed":
        if customer is not None:
            raise InvalidRecord("a closed erasure keeps no customer_id")
    else:
        raise InvalidRecord("an erasure's state is open or closed")
    reason = data.get("reason", "")
    closed = data.get("closed_at")
    return Erasure(
        subject=subject,
        request_id=request_id,
        requested_at_ms=parse_time(data.get("requested_at"), "requested_at"),
        reason=reason if isinstance(reason, str) else "",
        customer_id=customer if state == "open" else None,
        closed_at_ms=None if closed is None else parse_time(closed, "closed_at"),
    )


@dataclass(frozen=True, slots=True)
class Done:
    """One part's confirmation that it applied an erasure (per partition for the detector,
    whose sessions are spread over every partition)."""

    subject: str
    request_id: str
    part: Part
    at_ms: int
    partition: int | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        where = "" if self.partition is None else f":{self.partition}"
        return f"{self.subject}:{self.part}{where}".encode()

    @property
    def label(self) -> str:
        return self.part if self.partition is None else f"{self.part}:{self.partition}"

    def to_json(self) -> bytes:
        value: dict[str, Any] = {
            "subject": self.subject,
            "request_id": self.request_id,
            "part": self.part,
            "at": format_ms(self.at_ms),
        }
        if self.partition is not None:
            value["partition"] = self.partition
        value["counts"] = self.counts
        return orjson.dumps(value)


def parse_done(value: bytes | None) -> Done:
    data = json_object(value or b"", "an erasure confirmation")
    subject, request_id, part = data.get("subject"), data.get("request_id"), data.get("part")
    partition, counts = data.get("partition"), data.get("counts", {})
    if not isinstance(subject, str) or not isinstance(request_id, str) or part not in PARTS:
        raise InvalidRecord("an erasure confirmation needs subject, request_id and part")
    if partition is not None and type(partition) is not int:
        raise InvalidRecord("an erasure confirmation's partition is a number")
    if not isinstance(counts, dict) or not all(type(v) is int for v in counts.values()):
        raise InvalidRecord("an erasure confirmation's counts are numbers")
    return Done(
        subject, request_id, part, parse_time(data.get("at"), "at"), partition, dict(counts)
    )


def erased_record(erasure: Erasure, channel: Channel) -> tuple[bytes, bytes]:
    """The ``consents`` record that retires the erased customer's id on ``channel``."""
    return _opt_out(f"{ERASED_PREFIX}{erasure.subject}", channel, erasure)


def suppression_record(
    address_hash: str, channel: Channel, erasure: Erasure
) -> tuple[bytes, bytes]:
    """The ``consents`` record that keeps an opted-out address (as its hash) suppressed."""
    return _opt_out(f"{SUPPRESSED_PREFIX}{address_hash}", channel, erasure)


def _opt_out(subject: str, channel: Channel, erasure: Erasure) -> tuple[bytes, bytes]:
    value = {
        "customer_id": subject,
        "channel": channel,
        "status": "opted_out",
        "source": ERASURE_SOURCE,
        "recorded_at": format_ms(erasure.requested_at_ms),
        "evidence": {"erasure_request": erasure.request_id},
    }
    return f"{subject}:{channel}".encode(), orjson.dumps(value)


def is_erasure_subject(consent_subject: bytes | str) -> bool:
    """Whether a ``consents`` key's subject is one an erasure wrote (not a customer)."""
    text = (
        consent_subject.decode("utf-8", "replace")
        if isinstance(consent_subject, bytes)
        else consent_subject
    )
    return text.startswith((ERASED_PREFIX, SUPPRESSED_PREFIX))
