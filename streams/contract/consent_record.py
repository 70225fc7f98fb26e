"""The value of a ``consents`` record (compacted, keyed ``customer_id:channel``): one model for
whoever writes one (``consent_history.consents_record``, an erasure's opt-outs) and whoever
reads one (the senders' mirror, ``consent_history.store_entry``). Pure.

The key names the subject and the channel; ``customer_id`` and ``channel`` in the value repeat
them for a reader without the key (a line of an import file), and a reader with the key does
not rely on them: like ``source`` and ``evidence``, a value of the wrong type there reads as
absent rather than refusing the consent. ``status`` and ``recorded_at`` are required.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field

from streams.contract.wire import WRITTEN_TIME, Lenient, WireRecord, from_json, wire_time

ConsentStatus = Literal["opted_in", "opted_out"]
STATUS_REASON: Final = "consent status must be opted_in or opted_out"


RecordedAt = Annotated[int, wire_time("recorded_at"), WRITTEN_TIME]


class ConsentRecord(WireRecord):
    """One ``consents`` value. ``address`` (optional, a store's) is kept as read: whoever
    uses it decides whether it is one (``consent_history.store_entry``)."""

    REASONS: ClassVar = {"status": STATUS_REASON}

    customer_id: Annotated[str | None, Lenient(None)] = None
    channel: Annotated[str | None, Lenient(None)] = None
    status: ConsentStatus
    source: Annotated[str, Lenient("")] = ""
    recorded_at_ms: RecordedAt = Field(
        validation_alias="recorded_at", serialization_alias="recorded_at"
    )
    evidence: Annotated[dict[str, Any], Lenient(factory=dict)] = Field(default_factory=dict)
    address: Any = None

    def to_json(self) -> bytes:
        """The value as cartpulse writes it (``address`` only when there is one)."""
        exclude = {"address"} if self.address is None else None
        return self.model_dump_json(by_alias=True, exclude=exclude).encode()


def parse_consent_value(raw: bytes) -> ConsentRecord:
    """A ``consents`` value; ``InvalidRecord`` with the reason when it is not one."""
    return from_json(ConsentRecord, raw, "consent record")
