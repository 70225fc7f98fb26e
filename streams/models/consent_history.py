"""One consent change as cartpulse records it: the current view on ``consents`` (compacted,
keyed ``customer_id:channel``) and its entry on ``consents.history`` (never compacted, keyed
by the customer, so one customer's trail is one partition, in order). Pure: no Kafka, no clock.

Every writer builds a ``ConsentEntry`` and hands it to the one ledger
(``streams.consent_ledger``), which writes ``history_record`` and then ``consents_record``.
A record a store writes to ``consents`` itself becomes an entry with ``store_entry``.

The history never holds an address in clear: ``address_hash`` is an HMAC-SHA256 of it under
``CARTPULSE_ADDRESS_HASH_KEY`` (docs/compliance.md says why, and what the evidence holds).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import orjson

from streams.errors import InvalidRecord
from streams.models.commands import CHANNELS, Channel
from streams.models.events import format_ms, parse_time

ConsentStatus = Literal["opted_in", "opted_out"]
STATUSES: Final[tuple[ConsentStatus, ...]] = ("opted_in", "opted_out")

# On a ``consents`` record cartpulse wrote: the id of its history entry. A record without it
# was written by someone else (the store), and the consent mirror appends it to the history.
HISTORY_ID_HEADER: Final = "cartpulse.history_id"
SOURCE_STORE: Final = "store"  # a record a store wrote to ``consents`` itself
SOURCE_IMPORT: Final = "import"  # ``cartpulse import --format consents``
SOURCE_SIMULATED: Final = "simulated"  # ``cartpulse simulate --audience``
MAX_ADDRESS_CHARS: Final = 320  # the longest email address RFC 3696 allows


@dataclass(frozen=True, slots=True)
class AddressHasher:
    """How an address becomes ``address_hash``: HMAC-SHA256 under ``key``, or plain SHA-256
    when there is no key (prefixed ``sha256:``, so a record says which it is)."""

    key: bytes = b""

    def digest(self, address: str) -> str:
        normal = address.strip().lower().encode()
        if self.key:
            return "hmac-sha256:" + hmac.new(self.key, normal, hashlib.sha256).hexdigest()
        return "sha256:" + hashlib.sha256(normal).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One consent change, what both records are built from.

    ``source`` and ``evidence`` are the statement as the ``consents`` record carries it.
    ``history_source`` / ``history_evidence`` are the history's, where they differ: a change
    cartpulse did not decide itself (an import, a store's own record) names the path it came
    by, with the statement inside the evidence; a STOP's history evidence leaves out the
    request fields that hold the number in clear. ``address`` is kept only as its hash.
    """

    subject: str  # customer_id, or addr:<hash> for a number no customer is known for
    channel: Channel
    status: ConsentStatus
    source: str
    recorded_at_ms: int
    evidence: Mapping[str, Any]
    address: str | None = None
    history_source: str | None = None
    history_evidence: Mapping[str, Any] | None = None

    @property
    def consents_key(self) -> bytes:
        return f"{self.subject}:{self.channel}".encode()

    @property
    def history_key(self) -> bytes:
        """The customer (or ``addr:<hash>``): both channels of one subject in one partition."""
        return self.subject.encode()

    @property
    def history_id(self) -> str:
        """The entry's identity: its consents key, time, status and source. The same change
        written twice (a retry, a re-import, the mirror reading a store's record again) has the
        same id, and the history's readers print it once."""
        source = self.history_source or self.source
        text = f"{self.subject}:{self.channel}\n{self.recorded_at_ms}\n{self.status}\n{source}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def consents_record(entry: ConsentEntry) -> tuple[bytes, bytes]:
    """Key and value of the entry's record on ``consents`` (the current view)."""
    value = {
        "customer_id": entry.subject,
        "channel": entry.channel,
        "status": entry.status,
        "source": entry.source,
        "recorded_at": format_ms(entry.recorded_at_ms),
        "evidence": dict(entry.evidence),
    }
    return entry.consents_key, orjson.dumps(value)


def history_record(
    entry: ConsentEntry, hasher: AddressHasher, written_at_ms: int
) -> tuple[bytes, bytes]:
    """Key and value of the entry's record on ``consents.history``; ``written_at`` is when
    cartpulse appended it (``recorded_at`` is when the person decided)."""
    evidence = entry.evidence if entry.history_evidence is None else entry.history_evidence
    value = {
        "history_id": entry.history_id,
        "customer_id": entry.subject,
        "channel": entry.channel,
        "status": entry.status,
        "source": entry.history_source or entry.source,
        "recorded_at": format_ms(entry.recorded_at_ms),
        "address_hash": hasher.digest(entry.address) if entry.address else None,
        "evidence": dict(evidence),
        "written_at": format_ms(written_at_ms),
    }
    return entry.history_key, orjson.dumps(value)


def store_entry(key: bytes | None, value: bytes | None, where: str, via: str) -> ConsentEntry:
    """A consent statement cartpulse did not make (a line of an import file, a record a store
    wrote to ``consents``) as an entry: its own source and evidence stay on the consents
    record; the history's source is ``via`` and its evidence holds the statement and ``where``
    it was read. An optional ``address`` (a string) is kept as its hash; one that is not
    usable is left out and the evidence says so. Raises ``InvalidRecord`` for a record that is
    not a consent (a tombstone included: deleting a current record is not a consent
    change)."""
    if value is None:
        raise InvalidRecord("a tombstone deletes a consent; it is not a consent change")
    data = _object(value)
    subject, channel = _subject(key, data)
    status = data.get("status")
    if status not in STATUSES:
        raise InvalidRecord("consent status must be opted_in or opted_out")
    recorded_at = parse_time(data.get("recorded_at"), "recorded_at")
    source = data.get("source")
    source = source if isinstance(source, str) else ""
    evidence = data.get("evidence")
    evidence = evidence if isinstance(evidence, dict) else {}
    proof: dict[str, Any] = {"source": source, "evidence": evidence, "record": where}
    address = data.get("address")
    if address is not None and not _usable(address):
        # the consent stands without it: the change is kept, the address left out, and said so
        proof["address_left_out"] = f"not a string of 1 to {MAX_ADDRESS_CHARS} characters"
        address = None
    return ConsentEntry(
        subject, channel, cast(ConsentStatus, status), source, recorded_at, evidence,
        address=address, history_source=via, history_evidence=proof,
    )  # fmt: skip


def _usable(address: object) -> bool:
    return isinstance(address, str) and 0 < len(address.strip()) <= MAX_ADDRESS_CHARS


def _object(value: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidRecord("consent record is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRecord("consent record must be a JSON object")
    return data


def _subject(key: bytes | None, data: dict[str, Any]) -> tuple[str, Channel]:
    """The subject and channel: the key ``customer_id:channel`` when there is one, else the
    value's ``customer_id`` and ``channel`` (a file line has no key)."""
    subject: object
    channel: object
    if key:
        subject, sep, channel = key.decode("utf-8", errors="replace").rpartition(":")
        if not sep:
            subject = ""
    else:
        subject, channel = data.get("customer_id"), data.get("channel")
    if not isinstance(subject, str) or not subject.strip() or channel not in CHANNELS:
        raise InvalidRecord(
            "a consent needs its customer_id and a channel sms or email (key customer_id:channel)"
        )
    return subject, cast(Channel, channel)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A record read back from ``consents.history``."""

    history_id: str
    customer_id: str
    channel: str
    status: str
    source: str
    recorded_at_ms: int
    value: dict[str, Any]  # the whole record, as written


def parse_history(value: bytes | None) -> HistoryEntry:
    """Decode a ``consents.history`` record; ``InvalidRecord`` when it is not one."""
    if value is None:
        raise InvalidRecord("a history record is never a tombstone")
    data = _object(value)
    fields = [data.get(name) for name in ("history_id", "customer_id", "channel", "status")]
    source = data.get("source")
    if not all(isinstance(f, str) and f for f in fields) or not isinstance(source, str):
        raise InvalidRecord("a history record needs history_id, customer_id, channel, status")
    history_id, customer_id, channel, status = cast(list[str], fields)
    recorded_at = parse_time(data.get("recorded_at"), "recorded_at")
    return HistoryEntry(history_id, customer_id, channel, status, source, recorded_at, data)
