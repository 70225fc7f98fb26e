"""One consent change as cartpulse records it: the current view on ``consents`` (compacted,
keyed ``customer_id:channel``) and its entry on ``consents.history`` (never compacted, keyed
by the subject's pseudonym, so one customer's trail is one partition, in order). Pure: no
Kafka, no clock.

Every writer builds a ``ConsentEntry`` and hands it to the one ledger
(``streams.runtime.consent_ledger``), which writes ``history_record`` and then ``consents_record``.
A record a store writes to ``consents`` itself becomes an entry with ``store_entry``.

The history is kept for good, so it names nobody in clear (docs/compliance.md, Consent
history): a customer (or a number's ``addr:`` subject) only as ``Pseudonyms.customer`` of it,
an address only as ``address_hash`` (HMAC-SHA256 under ``CARTPULSE_ADDRESS_HASH_KEY``); a
customer id the evidence names becomes its pseudonym, and an email address or phone number in
text cartpulse did not write (a store's statement, a STOP's body) its hash. It is
pseudonymous, not anonymous: whoever holds the key can compute a customer's pseudonym.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal, cast

from pydantic import Field

from streams.contract.commands import CHANNELS, Channel
from streams.contract.consent_record import ConsentRecord, RecordedAt
from streams.contract.consent_record import (
    ConsentStatus as ConsentStatus,  # the senders name it here
)
from streams.contract.erasure import ERASED_PREFIX, SUPPRESSED_PREFIX
from streams.contract.errors import InvalidRecord
from streams.contract.events import format_ms
from streams.contract.json_record import json_object
from streams.contract.privacy import Pseudonyms
from streams.contract.wire import Lenient, WireRecord, from_data

STATUSES: Final[tuple[ConsentStatus, ...]] = ("opted_in", "opted_out")

# On a ``consents`` record cartpulse wrote: the id of its history entry. A record without it
# was written by someone else (the store), and the consent mirror appends it to the history.
HISTORY_ID_HEADER: Final = "cartpulse.history_id"
SOURCE_STORE: Final = "store"  # a record a store wrote to ``consents`` itself
SOURCE_IMPORT: Final = "import"  # ``cartpulse import --format consents``
SOURCE_SIMULATED: Final = "simulated"  # ``cartpulse simulate --audience``
MAX_ADDRESS_CHARS: Final = 320  # the longest email address RFC 3696 allows
NUMBER_PREFIX: Final = (
    "addr:"  # a number's own subject (``senders.adapters.consents.address_subject``)
)

SubjectKind = Literal["customer", "number", "erased", "suppressed"]
# What looks like an address in text cartpulse did not write: an email address, or a phone
# number: + and 7 to 15 digits (single spaces, dots, dashes or parentheses between them), a
# North American 3-3-4 number however punctuated, or a bare run of 10 to 15 digits. Dates,
# times, IP addresses and version numbers stay as they are.
_EMAIL: Final = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE: Final = re.compile(
    r"(?<![\w.+])"
    r"(?:\+\(?\d(?:[ ().-]{0,2}\d){6,14}|\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}|\d{10,15})"
    r"(?![\w.])"
)


def subject_kind(subject: str) -> SubjectKind:
    """What a ``consents`` subject is: a customer id, a number no customer is known for
    (``addr:<hash>``), or one an erasure wrote (``erased:<pseudonym>``,
    ``suppressed:<address hash>``)."""
    if subject.startswith(NUMBER_PREFIX):
        return "number"
    if subject.startswith(ERASED_PREFIX):
        return "erased"
    if subject.startswith(SUPPRESSED_PREFIX):
        return "suppressed"
    return "customer"


def history_subject(subject: str, names: Pseudonyms) -> str:
    """The name ``consents.history`` keeps ``subject`` under (its key and ``subject``):
    ``Pseudonyms.customer`` of a customer id or a number's ``addr:`` subject; the customer's
    own pseudonym for the erasure's ``erased:<pseudonym>`` (so it is in their trail); a
    ``suppressed:<address hash>`` as it is (it names nobody in clear)."""
    kind = subject_kind(subject)
    if kind == "erased":
        return subject.removeprefix(ERASED_PREFIX)
    if kind == "suppressed":
        return subject
    return names.customer(subject)


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One consent change, what both records are built from.

    ``source`` and ``evidence`` are the statement as the ``consents`` record carries it.
    ``history_source`` / ``history_evidence`` are the history's, where they differ: a change
    cartpulse did not decide itself (an import, a store's own record) names the path it came
    by, with the statement inside the evidence; a STOP's history evidence leaves out the
    request fields that hold the number in clear. ``address`` is kept only as its hash.

    The history's evidence is pseudonymised (``history_record``): a string equal to the
    subject or to one of ``customers`` (other customer ids it names, a STOP's resolved
    customers) becomes that id's pseudonym, and in the fields ``free_text`` names (text
    cartpulse did not write) every email address and phone number becomes its hash.
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
    customers: tuple[str, ...] = ()
    free_text: tuple[str, ...] = ()

    @property
    def consents_key(self) -> bytes:
        return f"{self.subject}:{self.channel}".encode()


def history_id(entry: ConsentEntry, names: Pseudonyms) -> str:
    """The entry's identity: its subject's history name and kind, channel, time, status and
    source (no clear id: the name is a pseudonym). The same change written twice (a retry, a
    re-import, the mirror reading a store's record again) has the same id, and the history's
    readers print it once."""
    source = entry.history_source or entry.source
    subject = history_subject(entry.subject, names)
    text = (
        f"{subject_kind(entry.subject)}:{subject}:{entry.channel}\n{entry.recorded_at_ms}\n"
        f"{entry.status}\n{source}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def consents_record(entry: ConsentEntry) -> tuple[bytes, bytes]:
    """Key and value of the entry's record on ``consents`` (the current view)."""
    record = ConsentRecord(
        customer_id=entry.subject,
        channel=entry.channel,
        status=entry.status,
        source=entry.source,
        recorded_at_ms=entry.recorded_at_ms,
        evidence=dict(entry.evidence),
    )
    return entry.consents_key, record.to_json()


def history_record(
    entry: ConsentEntry, names: Pseudonyms, written_at_ms: int
) -> tuple[bytes, bytes]:
    """Key and value of the entry's record on ``consents.history``, keyed by the subject's
    history name (``history_subject``: both channels of one subject in one partition);
    ``written_at`` is when cartpulse appended it (``recorded_at`` is when the person
    decided). Nothing in it names the customer or an address in clear."""
    evidence = entry.evidence if entry.history_evidence is None else entry.history_evidence
    subject = history_subject(entry.subject, names)
    record = HistoryRecord(
        history_id=history_id(entry, names),
        subject=subject,
        kind=subject_kind(entry.subject),
        channel=entry.channel,
        status=entry.status,
        source=entry.history_source or entry.source,
        recorded_at_ms=entry.recorded_at_ms,
        address_hash=names.address(entry.address) if entry.address else None,
        evidence=_pseudonymised_evidence(entry, evidence, names),
        written_at=format_ms(written_at_ms),
    )
    return subject.encode(), record.to_json()


def _pseudonymised_evidence(
    entry: ConsentEntry, evidence: Mapping[str, Any], names: Pseudonyms
) -> dict[str, Any]:
    ids = list(entry.customers)
    if subject_kind(entry.subject) in ("customer", "number"):
        ids.append(entry.subject)
    named = {customer: names.customer(customer) for customer in ids if customer}
    kept: dict[str, Any] = {}
    for field, value in evidence.items():
        value = _replaced(value, named)
        kept[field] = _without_addresses(value, names) if field in entry.free_text else value
    return kept


def _replaced(value: Any, named: Mapping[str, str]) -> Any:
    """``value`` with every string equal to a key of ``named`` (an id) replaced by its value."""
    if isinstance(value, str):
        return named.get(value, value)
    if isinstance(value, dict):
        return {k: _replaced(v, named) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(v, named) for v in value]
    return value


def _without_addresses(value: Any, names: Pseudonyms) -> Any:
    """``value`` with every email address and phone number in its strings replaced by the
    address's hash (``Pseudonyms.address``; a number is hashed as it is written)."""
    if isinstance(value, str):
        hashed = _EMAIL.sub(lambda m: names.address(m.group()), value)
        return _PHONE.sub(lambda m: names.address(m.group()), hashed)
    if isinstance(value, dict):
        return {k: _without_addresses(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_addresses(v, names) for v in value]
    return value


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
    data = json_object(value, "consent record")
    subject, channel = _subject(key, data)
    record = from_data(ConsentRecord, data)
    source, evidence, address = record.source, record.evidence, record.address
    proof: dict[str, Any] = {"source": source, "evidence": evidence, "record": where}
    if address is not None and not _usable(address):
        # the consent stands without it: the change is kept, the address left out, and said so
        proof["address_left_out"] = f"not a string of 1 to {MAX_ADDRESS_CHARS} characters"
        address = None
    return ConsentEntry(
        subject, channel, record.status, source, record.recorded_at_ms, evidence,
        address=address, history_source=via, history_evidence=proof,
        free_text=("source", "evidence"),
    )  # fmt: skip


def _usable(address: object) -> bool:
    return isinstance(address, str) and 0 < len(address.strip()) <= MAX_ADDRESS_CHARS


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


class HistoryRecord(WireRecord):
    """A record of ``consents.history``, as ``history_record`` writes it and ``parse_history``
    reads it back. ``kind``, ``address_hash``, ``evidence`` and ``written_at`` (kept as
    written) are read leniently: a record is kept for good, and older ones may lack them.
    ``value`` is the whole record as read, unknown keys included, for printing it as
    written; it is never written itself."""

    REASONS: ClassVar = dict.fromkeys(
        ("history_id", "subject", "channel", "status", "source"),
        "a history record needs history_id, subject, channel, status",
    )

    history_id: str = Field(min_length=1)
    subject: str = Field(min_length=1)  # the history name (``history_subject``), never a clear id
    kind: Annotated[SubjectKind | None, Lenient(None)] = None
    channel: str = Field(min_length=1)
    status: str = Field(min_length=1)
    source: str
    recorded_at_ms: RecordedAt = Field(
        validation_alias="recorded_at", serialization_alias="recorded_at"
    )
    address_hash: Annotated[str | None, Lenient(None)] = None
    evidence: Annotated[dict[str, Any], Lenient(factory=dict)] = Field(default_factory=dict)
    written_at: Annotated[str | None, Lenient(None)] = None  # when appended; nobody reads it
    value: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def parse_history(value: bytes | None) -> HistoryRecord:
    """Decode a ``consents.history`` record; ``InvalidRecord`` when it is not one."""
    if value is None:
        raise InvalidRecord("a history record is never a tombstone")
    data = json_object(value, "consent record")
    return from_data(HistoryRecord, {**data, "value": data})
