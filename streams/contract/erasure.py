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

from typing import Annotated, ClassVar, Final, Literal

from pydantic import BaseModel, Field, StrictInt, ValidationInfo, field_validator

from streams.contract.commands import Channel
from streams.contract.consent_record import ConsentRecord
from streams.contract.wire import (
    WRITTEN_TIME,
    Lenient,
    WireRecord,
    from_json,
    positional,
    wire_time,
)

ERASURE_SOURCE: Final = "erasure"
ERASED_PREFIX: Final = "erased:"
SUPPRESSED_PREFIX: Final = "suppressed:"
Part = Literal["customers", "journeys", "detector", "senders"]
PARTS: Final[tuple[Part, ...]] = ("customers", "journeys", "detector", "senders")
MAX_REASON_CHARS: Final = 200
NO_SUBJECT: Final = "an erasure needs its subject, the same as its key"
OPEN_NEEDS_ID: Final = "an open erasure needs the customer_id it erases"
CLOSED_KEEPS_NO_ID: Final = "a closed erasure keeps no customer_id"
NO_PART: Final = "an erasure confirmation needs subject, request_id and part"

RequestedAt = Annotated[int, wire_time("requested_at"), WRITTEN_TIME]
ClosedAt = Annotated[int, wire_time("closed_at"), WRITTEN_TIME]
At = Annotated[int, wire_time("at"), WRITTEN_TIME]


class Erasure(WireRecord):
    """One erasure: open (``customer_id`` set) until every part confirmed, then closed.

    Built positionally, as the parts and ``cartpulse forget`` do; ``state`` follows from
    ``customer_id`` then. A record read (``parse_erasure``) must say its state, and agree."""

    REASONS: ClassVar = {
        "subject": NO_SUBJECT,
        "request_id": "an erasure needs its request_id",
        "state": "an erasure's state is open or closed",
    }

    subject: str = Field(min_length=1)
    request_id: str = Field(min_length=1)
    state: Literal["open", "closed"]
    customer_id: str | None = Field(None, validate_default=True)  # None once closed
    requested_at_ms: RequestedAt = Field(
        validation_alias="requested_at", serialization_alias="requested_at"
    )
    reason: Annotated[str, Lenient("")] = ""
    closed_at_ms: ClosedAt | None = Field(
        None, validation_alias="closed_at", serialization_alias="closed_at"
    )

    @positional
    def __init__(
        self,
        subject: str,
        request_id: str,
        requested_at_ms: int,
        reason: str,
        customer_id: str | None,
        closed_at_ms: int | None = None,
    ) -> None:
        BaseModel.__init__(  # the fields' own validation; see ``positional``
            self,
            subject=subject,
            request_id=request_id,
            state="open" if customer_id is not None else "closed",
            customer_id=customer_id,
            requested_at_ms=requested_at_ms,
            reason=reason,
            closed_at_ms=closed_at_ms,
        )

    @field_validator("subject")
    @classmethod
    def _keyed(cls, value: str, info: ValidationInfo) -> str:
        key = (info.context or {}).get("key")
        if key and key.decode("utf-8", "replace") != value:
            raise ValueError(NO_SUBJECT)
        return value

    @field_validator("customer_id", mode="before")
    @classmethod
    def _open_or_closed(cls, value: object, info: ValidationInfo) -> object:
        state = info.data.get("state")
        if state == "open" and (not isinstance(value, str) or not value):
            raise ValueError(OPEN_NEEDS_ID)
        if state == "closed" and value is not None:
            raise ValueError(CLOSED_KEEPS_NO_ID)
        return value

    @property
    def is_open(self) -> bool:
        return self.customer_id is not None

    def closed(self, at_ms: int) -> Erasure:
        """The record that replaces this one for good: the same erasure without the id."""
        return Erasure(
            self.subject, self.request_id, self.requested_at_ms, self.reason, None, at_ms
        )

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


def parse_erasure(key: bytes | None, value: bytes | None) -> Erasure:
    """An ``erasures`` record; ``InvalidRecord`` with the reason when it is not one."""
    return from_json(Erasure, value or b"", "an erasure", context={"key": key})


class Done(WireRecord):
    """One part's confirmation that it applied an erasure (per partition for the detector,
    whose sessions are spread over every partition). Built positionally, as the parts do."""

    REASONS: ClassVar = {
        "subject": NO_PART,
        "request_id": NO_PART,
        "part": NO_PART,
        "partition": "an erasure confirmation's partition is a number",
        "counts": "an erasure confirmation's counts are numbers",
    }

    subject: str
    request_id: str
    part: Part
    at_ms: At = Field(validation_alias="at", serialization_alias="at")
    partition: StrictInt | None = None
    counts: dict[str, StrictInt] = Field(default_factory=dict)

    @positional
    def __init__(
        self,
        subject: str,
        request_id: str,
        part: Part,
        at_ms: int,
        partition: int | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        BaseModel.__init__(  # the fields' own validation; see ``positional``
            self,
            subject=subject,
            request_id=request_id,
            part=part,
            at_ms=at_ms,
            partition=partition,
            counts={} if counts is None else counts,
        )

    @property
    def key(self) -> bytes:
        where = "" if self.partition is None else f":{self.partition}"
        return f"{self.subject}:{self.part}{where}".encode()

    @property
    def label(self) -> str:
        return self.part if self.partition is None else f"{self.part}:{self.partition}"

    def to_json(self) -> bytes:
        exclude = {"partition"} if self.partition is None else None
        return self.model_dump_json(by_alias=True, exclude=exclude).encode()


def parse_done(value: bytes | None) -> Done:
    """An ``erasures.done`` record; ``InvalidRecord`` with the reason when it is not one."""
    return from_json(Done, value or b"", "an erasure confirmation")


def erased_record(erasure: Erasure, channel: Channel) -> tuple[bytes, bytes]:
    """The ``consents`` record that retires the erased customer's id on ``channel``."""
    return _opt_out(f"{ERASED_PREFIX}{erasure.subject}", channel, erasure)


def suppression_record(
    address_hash: str, channel: Channel, erasure: Erasure
) -> tuple[bytes, bytes]:
    """The ``consents`` record that keeps an opted-out address (as its hash) suppressed."""
    return _opt_out(f"{SUPPRESSED_PREFIX}{address_hash}", channel, erasure)


def _opt_out(subject: str, channel: Channel, erasure: Erasure) -> tuple[bytes, bytes]:
    record = ConsentRecord(
        customer_id=subject,
        channel=channel,
        status="opted_out",
        source=ERASURE_SOURCE,
        recorded_at_ms=erasure.requested_at_ms,
        evidence={"erasure_request": erasure.request_id},
    )
    return f"{subject}:{channel}".encode(), record.to_json()


def is_erasure_subject(consent_subject: bytes | str) -> bool:
    """Whether a ``consents`` key's subject is one an erasure wrote (not a customer)."""
    text = (
        consent_subject.decode("utf-8", "replace")
        if isinstance(consent_subject, bytes)
        else consent_subject
    )
    return text.startswith((ERASED_PREFIX, SUPPRESSED_PREFIX))
