"""The consent history's pure core and its writers on in-memory ports: the records one change
becomes, the customer kept only as their pseudonym and the address only as its keyed hash
(evidence included), the identity that makes a repeat one entry, the ledger's order (history
first) and what each writer puts in the evidence."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import murmur2

from senders.adapters.consents import address_subject
from senders.messages.unsubscribe import UnsubscribeToken, make_token, token_id
from streams.cli.main import main
from streams.contract.consent_history import (
    HISTORY_ID_HEADER,
    ConsentEntry,
    consents_record,
    history_id,
    history_record,
    history_subject,
    parse_history,
    store_entry,
    subject_kind,
)
from streams.contract.errors import InvalidRecord
from streams.contract.privacy import AddressHasher, Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.offline.consent_import import import_consents, read_consent_lines
from streams.offline.importer import FileRejects
from streams.runtime.consent_ledger import ConsentLedger
from streams.runtime.kafka import partition_of
from tests.support.webhooks import (
    NAMES,
    UNSUBSCRIBE_SECRET,
    inbound_form,
    post_signed,
    world,
)

NUMBER = "+14155550100"
KEY = b"address-hash-test-key"


def entry(**overrides: Any) -> ConsentEntry:
    values: dict[str, Any] = {
        "subject": "cust-1",
        "channel": "sms",
        "status": "opted_out",
        "source": "sms_keyword",
        "recorded_at_ms": 1_700_000_000_000,
        "evidence": {"keyword": "STOP"},
        "address": NUMBER,
    }
    return ConsentEntry(**(values | overrides))


# --- the records -----------------------------------------------------------------------


def test_one_change_becomes_a_current_record_and_a_history_record() -> None:
    change = entry(history_evidence={"keyword": "STOP", "message_sid": "SM1"})
    key, value = consents_record(change)
    assert key == b"cust-1:sms"
    assert orjson.loads(value) == {
        "customer_id": "cust-1",
        "channel": "sms",
        "status": "opted_out",
        "source": "sms_keyword",
        "recorded_at": "2023-11-14T22:13:20.000Z",
        "evidence": {"keyword": "STOP"},
    }
    key, value = history_record(change, NAMES, 1_700_000_000_500)
    # the customer's pseudonym: both channels in one partition, in order, and no clear id
    subject = "sub-" + hmac.new(KEY, b"customer\x00cust-1", hashlib.sha256).hexdigest()[:32]
    assert key == subject.encode()
    record = orjson.loads(value)
    digest = hmac.new(KEY, NUMBER.encode(), hashlib.sha256).hexdigest()
    assert record == {
        "history_id": history_id(change, NAMES),
        "subject": subject,
        "kind": "customer",
        "channel": "sms",
        "status": "opted_out",
        "source": "sms_keyword",
        "recorded_at": "2023-11-14T22:13:20.000Z",
        "address_hash": f"hmac-sha256:{digest}",
        "evidence": {"keyword": "STOP", "message_sid": "SM1"},
        "written_at": "2023-11-14T22:13:20.500Z",
    }
    assert NUMBER not in value.decode() and "cust-1" not in value.decode()
    assert parse_history(value).history_id == history_id(change, NAMES)
    assert parse_history(value).subject == subject


def test_the_address_hash_is_keyed_and_says_how_it_was_made() -> None:
    keyed = AddressHasher(KEY).digest(" +14155550100 ")
    assert keyed == AddressHasher(KEY).digest(NUMBER)  # the number, not its spelling
    assert keyed != AddressHasher(b"another key").digest(NUMBER)
    plain = AddressHasher().digest(NUMBER)
    assert plain == "sha256:" + hashlib.sha256(NUMBER.encode()).hexdigest()
    assert AddressHasher(KEY).digest("Ann@Example.com") == AddressHasher(KEY).digest(
        "ann@example.com"
    )
    assert NAMES.address(NUMBER) == AddressHasher(KEY).digest(NUMBER)
    _, value = history_record(entry(address=None), NAMES, 0)
    assert orjson.loads(value)["address_hash"] is None


def test_the_identity_is_key_time_status_and_source() -> None:
    first = history_id(entry(), NAMES)
    assert first == history_id(entry(evidence={"other": "evidence"}), NAMES)
    for other in (
        entry(subject="cust-2"),
        entry(channel="email"),
        entry(recorded_at_ms=1_700_000_000_001),
        entry(status="opted_in"),
        entry(source="provider:21610"),
    ):
        assert history_id(other, NAMES) != first
    # keyed: without the key nobody tries customer ids against it
    assert history_id(entry(), Pseudonyms(b"another key")) != first


@pytest.mark.parametrize(
    ("subject", "kind", "named"),
    [
        ("cust-1", "customer", NAMES.customer("cust-1")),
        (address_subject(NUMBER), "number", NAMES.customer(address_subject(NUMBER))),
        # the erasure's retirement of an id is in the erased customer's own trail
        (f"erased:{NAMES.customer('cust-1')}", "erased", NAMES.customer("cust-1")),
        ("suppressed:hmac-sha256:ab12", "suppressed", "suppressed:hmac-sha256:ab12"),
    ],
)
def test_the_history_names_each_subject_by_a_pseudonym(subject: str, kind: str, named: str) -> None:
    assert subject_kind(subject) == kind
    assert history_subject(subject, NAMES) == named
    key, value = history_record(entry(subject=subject), NAMES, 0)
    assert key == named.encode() and orjson.loads(value)["kind"] == kind
    if kind in ("customer", "number"):
        assert subject.encode() not in value


def test_the_history_evidence_names_customers_only_by_pseudonym() -> None:
    stop = entry(
        subject="cust-1",
        history_evidence={"keyword": "STOP", "resolved_customers": ["cust-1", "cust-2"],
                          "body": "STOP texting +1 (415) 555-0100 or ann@example.com",
                          "to": "+15005550006"},
        customers=("cust-1", "cust-2"), free_text=("body",),
    )  # fmt: skip
    _, value = history_record(stop, NAMES, 0)
    evidence = orjson.loads(value)["evidence"]
    names = [NAMES.customer("cust-1"), NAMES.customer("cust-2")]
    assert evidence["resolved_customers"] == names
    assert evidence["body"] == (
        f"STOP texting {NAMES.address('+1 (415) 555-0100')} or {NAMES.address('ann@example.com')}"
    )
    assert evidence["to"] == "+15005550006"  # the store's own number: cartpulse wrote it there
    for clear in (b"cust-1", b"cust-2", b"555-0100", b"ann@example.com"):
        assert clear not in value


def test_a_store_record_keeps_its_own_statement_inside_the_evidence() -> None:
    value = orjson.dumps(
        {
            "status": "opted_in",
            "source": "checkout_sms_checkbox",
            "recorded_at": "2024-03-02T17:40:00Z",
            "evidence": {
                "ip": "203.0.113.7",
                "consent_text": "Text me offers",
                "at": "2024-03-02 17:40:00",
                "form": {"customer": "cust-9", "email": "Ann@Example.com", "phone": "4155550100"},
            },
            "address": NUMBER,
        }
    )
    found = store_entry(b"cust-9:sms", value, "consents:3:17", "store")
    assert (found.subject, found.channel, found.status) == ("cust-9", "sms", "opted_in")
    assert found.source == "checkout_sms_checkbox"  # the current view keeps the store's words
    assert consents_record(found)[1].count(b"Ann@Example.com") == 1
    _, record = history_record(found, NAMES, 0)
    history = orjson.loads(record)
    assert history["source"] == "store"
    # the store's statement, with the customer as their pseudonym and addresses as hashes
    assert history["evidence"] == {
        "source": "checkout_sms_checkbox",
        "evidence": {
            "ip": "203.0.113.7",
            "consent_text": "Text me offers",
            "at": "2024-03-02 17:40:00",
            "form": {
                "customer": NAMES.customer("cust-9"),
                "email": NAMES.address("Ann@Example.com"),
                "phone": NAMES.address("4155550100"),
            },
        },
        "record": "consents:3:17",
    }
    assert history["address_hash"] == AddressHasher(KEY).digest(NUMBER)
    for clear in (b"cust-9", b"Example.com", b"4155550100", NUMBER.encode()):
        assert clear not in record
    # the same record read again (another offset, a new group) is the same entry
    again = store_entry(b"cust-9:sms", value, "consents:3:99", "store")
    assert history_id(again, NAMES) == history_id(found, NAMES)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"cust-1:sms", None, "tombstone"),
        (b"cust-1:fax", b'{"status":"opted_in","recorded_at":1e12}', "channel"),
        (b"nochannel", b'{"status":"opted_in","recorded_at":1e12}', "channel"),
        (b"cust-1:sms", b'{"status":"maybe","recorded_at":1e12}', "status"),
        (b"cust-1:sms", b'{"status":"opted_in"}', "recorded_at"),
        (b"cust-1:sms", b"[1]", "object"),
        (b"cust-1:sms", b"{", "JSON"),
        (None, b'{"status":"opted_in","recorded_at":0,"channel":"sms"}', "customer_id"),
    ],
)
def test_what_is_not_a_consent_change(key: bytes | None, value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        store_entry(key, value, "here", "store")


def test_an_unusable_address_is_left_out_and_said_so() -> None:
    value = b'{"status":"opted_in","recorded_at":"2024-03-02T17:40:00Z","address":12}'
    found = store_entry(b"cust-1:sms", value, "here", "store")
    assert found.address is None
    assert found.history_evidence is not None
    assert "address_left_out" in found.history_evidence


def test_the_trail_partition_is_the_producers() -> None:
    # murmur2 as the Java client and aiokafka's DefaultPartitioner compute it
    spread = {partition_of(f"cust-{i}".encode(), 8) for i in range(200)}
    assert spread == set(range(8))
    keys = [f"cust-{i}".encode() for i in range(200)]
    assert all(partition_of(k, 8) == (murmur2(k) & 0x7FFFFFFF) % 8 for k in keys)


# --- the ledger ------------------------------------------------------------------------


@dataclass
class Broker:
    """A producer whose sends are acknowledged in order; ``refuse`` names topics it fails."""

    sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]] = field(
        default_factory=list
    )
    refuse: set[str] = field(default_factory=set)

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]:
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if topic in self.refuse:
            done.set_exception(KafkaConnectionError("refused (test)"))
        else:
            assert key is not None and value is not None
            self.sent.append((topic, key, value, headers))
            done.set_result(None)
        return done


TOPICS = TopicCatalogue("t.")
HISTORY, CONSENTS = TOPICS.name(Topic.CONSENT_HISTORY), TOPICS.name(Topic.CONSENTS)


async def test_the_ledger_writes_the_history_first_and_tags_the_current_record() -> None:
    broker = Broker()
    ledger = ConsentLedger(broker, TOPICS, NAMES, clock=lambda: 1_700_000_001.0)
    change = entry()
    await ledger.record(change)
    assert [(topic, key) for topic, key, _, _ in broker.sent] == [
        (HISTORY, NAMES.customer("cust-1").encode()),
        (CONSENTS, b"cust-1:sms"),
    ]
    assert broker.sent[1][3] == [(HISTORY_ID_HEADER, history_id(change, NAMES).encode())]
    assert await ledger.append(change) == history_id(change, NAMES)
    assert orjson.loads(broker.sent[0][2])["written_at"] == "2023-11-14T22:13:21.000Z"


async def test_no_current_record_without_its_history_entry() -> None:
    broker = Broker(refuse={HISTORY})
    ledger = ConsentLedger(broker, TOPICS, NAMES)
    with pytest.raises(KafkaConnectionError):
        await ledger.record(entry())
    assert broker.sent == []
    errors = await ledger.record_all([entry(), entry(subject="cust-2")])
    assert len(errors) == 2
    assert all(isinstance(e, KafkaConnectionError) for e in errors)
    assert broker.sent == []


async def test_a_history_entry_without_its_current_record_is_the_callers_error() -> None:
    broker = Broker(refuse={CONSENTS})
    ledger = ConsentLedger(broker, TOPICS, NAMES)
    with pytest.raises(KafkaConnectionError):
        await ledger.record(entry())
    assert [topic for topic, *_ in broker.sent] == [HISTORY]  # the caller repeats the change


# --- the writers -----------------------------------------------------------------------


async def test_a_stop_keeps_the_number_only_as_its_hash_in_the_history() -> None:
    async with world() as w:
        w.directory.numbers[NUMBER] = ["cust-1"]
        form = inbound_form("STOP", sender=NUMBER)
        assert (await post_signed(w, "/twilio/sms", form)).status == 200
        keys = [key for key, _ in w.outbox.history]
        named = [NAMES.customer(address_subject(NUMBER)), NAMES.customer("cust-1")]
        assert keys == [name.encode() for name in named]
        assert [record["kind"] for _, record in w.outbox.history] == ["number", "customer"]
        for _, record in w.outbox.history:
            assert record["source"] == "sms_keyword"
            assert record["address_hash"] == NAMES.address(NUMBER)
            assert record["evidence"] == {
                "keyword": "STOP",
                "message_sid": form["MessageSid"],
                "body": "STOP",
                "to": form["To"],
                "account_sid": form["AccountSid"],
                "messaging_service_sid": None,
                "opt_out_type": None,
                "idempotency_token": None,
                "resolved_customers": [NAMES.customer("cust-1")],
            }
            assert NUMBER not in orjson.dumps(record).decode()
            assert "cust-1" not in orjson.dumps(record).decode()
        # the current view keeps the whole request, signature included, as before
        assert w.outbox.consents[1][1]["evidence"]["form"]["From"] == [NUMBER]


async def test_an_unsubscribe_names_its_token_by_its_id_in_the_history() -> None:
    async with world() as w:
        token = make_token(
            UNSUBSCRIBE_SECRET, UnsubscribeToken("cust-1", "email", "store-1", 2_000_000_000_000)
        )
        answer = await w.client.post(
            f"/unsubscribe?token={token}",
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Gmail"},
        )
        assert answer.status == 200
        [(key, record)] = w.outbox.history
        assert key == NAMES.customer("cust-1").encode()
        assert (record["channel"], record["status"]) == ("email", "opted_out")
        assert record["source"] == "email_one_click"
        # not the token (its payload is the customer id): its id, and what rebuilds it with
        # the secret (customer, channel, store, expiry) for an audit to check it
        assert record["evidence"] == {
            "token_id": token_id(token),
            "token_expires_at": "2033-05-18T03:33:20.000Z",
            "store_id": "store-1",
            "one_click": True,
            "user_agent": "Gmail",
        }
        assert token not in orjson.dumps(record).decode()
        assert "cust-1" not in orjson.dumps(record).decode()
        assert record["address_hash"] is None  # the link names the customer, not the address
        # the current view keeps the token while it is the latest record
        assert w.outbox.consents[0][1]["evidence"]["token"] == token


async def test_an_import_writes_each_line_through_the_ledger(tmp_path: Path) -> None:
    lines = tmp_path / "consents.jsonl"
    lines.write_bytes(
        b'{"customer_id":"cust-1","channel":"sms","status":"opted_in",'
        b'"source":"checkout_sms_checkbox","recorded_at":"2024-03-02T17:40:00Z",'
        b'"evidence":{"ip":"203.0.113.7"},"address":"+14155550100"}\n'
        b"\n"
        b'{"customer_id":"cust-1","channel":"fax","status":"opted_in","recorded_at":0}\n'
    )
    broker = Broker()
    rejected = tmp_path / "rejects.jsonl"
    with rejected.open("wb") as handle:
        summary = await import_consents(
            read_consent_lines(lines, 65_536),
            ConsentLedger(broker, TOPICS, NAMES),
            FileRejects(handle),
        )
    assert (summary.imported, summary.invalid, summary.failed) == (1, 1, 0)
    assert [topic for topic, *_ in broker.sent] == [HISTORY, CONSENTS]
    history = orjson.loads(broker.sent[0][2])
    assert history["source"] == "import"
    assert history["evidence"]["record"] == "consents.jsonl:1"
    assert history["evidence"]["source"] == "checkout_sms_checkbox"
    assert orjson.loads(broker.sent[1][2])["source"] == "checkout_sms_checkbox"
    assert b"consents.jsonl:3" in rejected.read_bytes()


def test_history_needs_a_customer_or_an_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["consents", "history", "--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert "give a CUSTOMER or --address" in capsys.readouterr().err
    told = ["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"]
    assert main(["consents", "export", *told]) == 2
    assert "--to must be after --from" in capsys.readouterr().err
