"""Erasure's pure parts and the worker's shells through their ports (docs/compliance.md,
Erasure): the records, the pseudonyms, what a journey state keeps, the detector's sweep and
its per-event guard, and the journeys' part."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from streams.agents.detector import DetectorShell
from streams.agents.forgetting import ErasedCustomers
from streams.agents.journeys import JourneyShell, state_key
from streams.agents.journeys_erasure import JourneyErasure
from streams.agents.rekeying import rekey
from streams.contract.erasure import (
    Done,
    Erasure,
    erased_record,
    is_erasure_subject,
    parse_done,
    parse_erasure,
    suppression_record,
)
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.event_parse import parse_event
from streams.contract.journey import Profile
from streams.contract.privacy import AddressHasher, Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.catalogue import Catalogue
from streams.core.detection import Detector, DetectorConfig
from streams.core.erasure import opted_out_addresses
from streams.core.journey_state import CustomerState
from streams.core.journeys import JourneyEngine
from streams.core.policy import parse_policy
from streams.core.watermarks import tick_value
from streams.runtime.kafka import partition_of
from streams.runtime.metrics import ErasureMetrics, JourneyMetrics
from streams.tools.forget import check_reason, expected_parts
from tests.agents.fakes import FakeTable, Journal
from tests.support.events import cart_event
from tests.support.journeys import POLICY, SECRET
from tests.unit.test_detector_shell import Message, Sent
from tests.unit.test_detector_shell import shell as detector_shell

TOPICS = TopicCatalogue("t.")
KEY = b"pseudonym-key"
NAMES = Pseudonyms(KEY)
OPEN = Erasure(NAMES.customer("c1"), "er-1", 1_781_100_000_000, "gdpr request", "c1")


# -- records and pseudonyms --------------------------------------------------------------------


def test_an_open_erasure_and_its_closed_record_read_back() -> None:
    assert parse_erasure(OPEN.subject.encode(), OPEN.to_json()) == OPEN
    closed = OPEN.closed(1_781_100_060_000)
    assert not closed.is_open
    assert b"c1" not in closed.to_json()  # what erasures keeps for good names nobody
    assert parse_erasure(closed.subject.encode(), closed.to_json()) == closed


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"sub-x", b"{}", "needs its subject"),
        (b"other", OPEN.to_json(), "the same as its key"),
        (None, b"[1]", "JSON object"),
        (None, orjson.dumps({"subject": "s", "request_id": "r", "state": "open"}), "customer_id"),
        (
            None,
            orjson.dumps(
                {"subject": "s", "request_id": "r", "state": "closed", "customer_id": "c"}
            ),
            "keeps no customer_id",
        ),
        (None, orjson.dumps({"subject": "s", "request_id": "r", "state": "x"}), "open or closed"),
    ],
)
def test_what_is_not_an_erasure_says_why(key: bytes | None, value: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        parse_erasure(key, value)


def test_a_confirmation_reads_back_and_is_keyed_by_part_and_partition() -> None:
    done = Done(OPEN.subject, "er-1", "detector", 1_781_100_000_000, 3, {"sessions": 2})
    assert done.key == f"{OPEN.subject}:detector:3".encode()
    assert done.label == "detector:3"
    assert parse_done(done.to_json()) == done
    with pytest.raises(InvalidRecord):
        parse_done(orjson.dumps({"subject": "s", "request_id": "r", "part": "nope"}))


def test_pseudonyms_are_keyed_stable_and_the_address_rule_is_the_historys() -> None:
    expected = hmac.new(KEY, b"customer\x00c1", hashlib.sha256).hexdigest()[:32]
    assert NAMES.customer("c1") == f"sub-{expected}"
    assert NAMES.customer("C1") != NAMES.customer("c1")  # ids are taken as they are
    assert (
        Pseudonyms().customer("c1") == "sub-" + hashlib.sha256(b"customer\x00c1").hexdigest()[:32]
    )
    assert NAMES.address(" Ann@Example.com ") == AddressHasher(KEY).digest("ann@example.com")
    assert NAMES.address("+14155550100").startswith("hmac-sha256:")
    assert Pseudonyms().address("+14155550100").startswith("sha256:")


def test_the_consents_records_an_erasure_leaves_name_nobody() -> None:
    key, value = erased_record(OPEN, "sms")
    assert key == f"erased:{OPEN.subject}:sms".encode()
    key2, value2 = suppression_record(NAMES.address("+14155550100"), "sms", OPEN)
    assert key2.startswith(b"suppressed:hmac-sha256:")
    for record in (value, value2):
        data = orjson.loads(record)
        assert data["status"] == "opted_out"
        assert data["source"] == "erasure"
        assert data["evidence"] == {"erasure_request": "er-1"}
        assert b"c1" not in record and b"4155550100" not in record
    assert is_erasure_subject(b"erased:sub-1") and is_erasure_subject("suppressed:sha256:ab")
    assert not is_erasure_subject("addr:ab") and not is_erasure_subject("c1")
    # the journeys route a consents record to its customer, and these to nobody
    assert rekey("consents", b"c1:sms", None) == b"c1"
    for nobody in (key, key2, b"addr:sha256:ab:sms", b"c1", b":sms", None):
        assert rekey("consents", nobody, None) is None


@pytest.mark.parametrize(
    "reason", ["ann@example.com asked", "call +1 415 555 0100", "customer c1 asked", "x" * 201]
)
def test_a_reason_that_could_name_the_person_is_refused(reason: str) -> None:
    with pytest.raises(ConfigurationError):
        check_reason(reason, "c1")


def test_a_reason_without_personal_data_is_kept() -> None:
    assert check_reason("  gdpr art. 17 request ", "c1") == "gdpr art. 17 request"


@pytest.mark.parametrize("customer", ["c1", "c2", "42", "ünïcode", "a" * 100])
def test_the_request_goes_to_the_partition_of_the_customer_id(customer: str) -> None:
    partitions = [0, 1, 2, 3]
    assert partition_of(customer.encode(), {3, 1, 0, 2}) == DefaultPartitioner()(
        customer.encode(), partitions, partitions
    )


def test_forget_waits_for_every_detector_partition_unless_told_otherwise() -> None:
    assert expected_parts(2) == ["journeys", "detector:0", "detector:1", "senders"]
    assert expected_parts(2, ["senders", "detector"]) == ["journeys"]


# -- what a journey state keeps ----------------------------------------------------------------


def test_only_the_addresses_of_opted_out_channels_are_kept() -> None:
    state = CustomerState("c1")
    state.profile = Profile("c1", "+14155550100", "ann@example.com", "Ann", None, None, None)
    state.consents = {"sms": ("opted_out", 1, "sms_keyword"), "email": ("opted_in", 1, "form")}
    state.notices = {"+14155550199": (1, "cmd-1")}
    state.undeliverable = {"email": "old@example.com"}
    assert opted_out_addresses(state) == [("sms", "+14155550100"), ("sms", "+14155550199")]
    state.consents["email"] = ("opted_out", 2, "email_one_click")
    assert ("email", "ann@example.com") in opted_out_addresses(state)
    assert ("email", "old@example.com") in opted_out_addresses(state)
    assert opted_out_addresses(CustomerState("c2")) == []


# -- the detector ------------------------------------------------------------------------------


def _event(event_id: str, session: str, customer: str | None, minute: int = 0) -> bytes:
    return cart_event(
        event_id=event_id,
        session_id=session,
        customer_id=customer,
        occurred_at=f"2019-10-01T00:{minute:02d}:00Z",
    )


def test_the_core_finds_and_drops_the_sessions_that_name_a_customer() -> None:
    detector = Detector(DetectorConfig(lateness_ms=3_600_000), auto_watermark=False)
    for n, (session, customer) in enumerate([("s1", "c1"), ("s2", "c2"), ("s3", None)]):
        detector.take(parse_event(_event(f"e{n}", session, customer)))
    detector.advance(parse_event(_event("x", "s1", None, 5)).occurred_at)  # s1..s3 applied
    detector.take(parse_event(_event("e9", "s3", "c1", 30)))  # pending: ahead of the watermark
    assert sorted(detector.customer_sessions()) == [("c1", "s1"), ("c1", "s3"), ("c2", "s2")]
    detector.take_changes()
    assert detector.forget(["s1", "s3", "nope"]) == 2
    assert detector.session_ids() == ["s2"]
    changed, deleted = detector.take_changes()
    assert changed == [] and sorted(deleted) == ["s1", "s3"]
    # their deadline-index entries are stale now: only c2's period closes
    assert [closed.key for closed in detector.advance(2_000_000_000_000)] == ["c2"]


def _detector_shell(
    sent: Sent, erased: ErasedCustomers, table: dict[bytes, bytes]
) -> DetectorShell:
    return detector_shell(
        sent, table=table, flush_interval=0, erased=erased, erasure_metrics=erased.metrics
    )


async def _nothing(_: object) -> None:
    return None


async def test_the_detector_drops_an_erased_customers_sessions_and_events() -> None:
    sent, table = Sent(), dict[bytes, bytes]()
    erased = ErasedCustomers(NAMES, ErasureMetrics.create(CollectorRegistry()))
    shell = _detector_shell(sent, erased, table)
    await shell.on_batch(
        [
            Message(_event("e1", "s1", "c1"), key=b"s1"),
            Message(_event("e2", "s2", "c2"), key=b"s2", offset=1),
        ]
    )
    assert {b"0:s1", b"0:s2"} <= table.keys()
    erased.add(OPEN, live=True)  # the reader read c1's erasure while the worker ran
    await shell.on_batch([Message(_event("e3", "s1", "c1", 1), key=b"s1", offset=2)])
    assert b"0:s1" not in table and b"0:s2" in table  # dropped, its saved state deleted
    dones = [parse_done(value) for topic, _, value, _ in sent.records if topic == "t.erasures.done"]
    assert dones == [Done(OPEN.subject, "er-1", "detector", dones[0].at_ms, 0, {"sessions": 1})]
    assert shell.partitions[0].detector.session_ids() == ["s2"]  # e3 (c1's) was not taken
    assert erased.metrics is not None
    assert erased.metrics.ignored.labels("detector")._value.get() == 1
    # a replay of c1's events later: still nothing, and no second confirmation
    await shell.on_batch([Message(_event("e1", "s1", "c1"), key=b"s1", offset=3)])
    assert b"0:s1" not in table
    assert len([r for r in sent.records if r[0] == "t.erasures.done"]) == 1


async def test_an_erased_customers_event_to_re_key_is_dropped_on_its_input_topic() -> None:
    sent, table = Sent(), dict[bytes, bytes]()
    erased = ErasedCustomers(NAMES, ErasureMetrics.create(CollectorRegistry()))
    erased.add(OPEN, live=False)
    shell = _detector_shell(sent, erased, table)
    await shell.on_batch([Message(_event("e1", "s1", "c1"), key=b"c1")])  # keyed by customer
    assert not [r for r in sent.records if r[0] == TOPICS.name(Topic.REPARTITION)]
    assert erased.metrics is not None
    assert erased.metrics.ignored.labels("detector")._value.get() == 1


def test_erased_customers_know_what_each_partition_must_sweep_and_confirm() -> None:
    erased = ErasedCustomers(NAMES)
    assert not erased.is_erased("c1")  # nothing known: no hashing at all
    closed = Erasure(NAMES.customer("c9"), "er-0", 1, "old", None, 2)
    erased.add(closed, live=False)  # read while catching up: known, not confirmed
    assert erased.is_erased("c9") and not erased.is_erased("c1")
    erased.add(OPEN, live=True)
    assert erased.is_erased("c1")  # its cached pseudonym matches the new erasure
    assert erased.generation == 2
    assert erased.to_confirm(after=0) == [OPEN] and erased.to_confirm(after=2) == []
    erased.add(OPEN, live=True)  # re-sent (cartpulse forget run again): confirmed again
    assert erased.to_confirm(after=2) == [OPEN]


# -- the journeys ------------------------------------------------------------------------------


def _journey_shell(
    table: dict[bytes, bytes], sent: list[tuple[str, bytes | None, bytes | None]]
) -> JourneyShell:
    """A journeys shell (and its erasure part) over one map, for both tables."""

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> None:
        sent.append((topic, key, value))

    engine = JourneyEngine(parse_policy(POLICY), SECRET, catalogue=Catalogue())
    shell = JourneyShell(
        engine=engine, topics=TOPICS, live=False, table=_table(table), send=send,
        metrics=JourneyMetrics.create(CollectorRegistry()), max_record_bytes=65_536,
    )  # fmt: skip
    shell.erasure = JourneyErasure(
        table=_table(table),
        topics=TOPICS,
        pseudonyms=NAMES,
        metrics=ErasureMetrics.create(CollectorRegistry()),
        wall_clock=lambda: 1_781_200_000.0,
    )
    return shell


def _table(data: dict[bytes, bytes]) -> FakeTable:
    return FakeTable(Journal(), changelog=False, data=data)


async def _record(
    shell: JourneyShell,
    topic: str,
    partition: int,
    key: bytes | None,
    value: bytes,
    headers: Any,
) -> None:
    """One record as a batch of its own: handled, then its states written (the agent)."""
    shell.begin()
    await shell.on_record(topic, partition, key, value, headers)
    await shell.flush()


def _abandonment(customer: str, n: int = 1) -> bytes:
    return orjson.dumps(
        {
            "abandonment_id": f"ab-{customer}-{n}",
            "kind": "cart",
            "session_id": f"s-{customer}",
            "customer_id": customer,
            "store_id": "default",
            "last_activity_at": "2026-06-10T14:00:00.000Z",
            "detected_at": "2026-06-10T14:30:00.000Z",
            "checkout_started": False,
            "cart": {"items": [{"product_id": "p1", "quantity": 1, "price": "150.00"}],
                     "value": "150.00", "currency": "USD", "url": None},
            "viewed_products": [],
        }
    )  # fmt: skip


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "held"])
async def test_the_journeys_drop_the_customer_keep_the_opt_out_hashed_and_ignore_replays(
    applied: bool,
) -> None:
    """``held``: the opt-out is still held until the journeys' clock reaches it."""
    table: dict[bytes, bytes] = {}
    sent: list[tuple[str, bytes | None, bytes | None]] = []
    shell = _journey_shell(table, sent)
    profile = {"customer_id": "c1", "phone": "+14155550100", "email": "ann@example.com"}
    await _record(shell, "t.customers", 0, b"c1", orjson.dumps(profile), None)
    stop = orjson.dumps({"status": "opted_out", "source": "sms_keyword",
                         "recorded_at": "2026-06-01T00:00:00.000Z"})  # fmt: skip
    origin = [("cartpulse.source", b"consents"), ("cartpulse.key", b"c1:sms")]
    await _record(shell, "t.journey.inputs", 0, b"c1", stop, origin)
    await _record(shell, "t.customers", 0, b"c2", orjson.dumps({"customer_id": "c2"}), None)
    if applied:  # the clock passes the opt-out
        await _record(shell, "t.journey.ticks", 0, None, tick_value(0, 1_781_000_000_000), None)
    state = CustomerState.from_bytes(table[state_key(0, "c1")])
    assert bool(state.consents) is applied and bool(state.held) is not applied
    sent.clear()

    await _record(shell, "t.erasures", 0, OPEN.subject.encode(), OPEN.to_json(), None)
    assert state_key(0, "c1") not in table and state_key(0, "c2") in table
    by_topic: dict[str, list[tuple[bytes | None, bytes | None]]] = {}
    for topic, key, value in sent:
        by_topic.setdefault(topic, []).append((key, value))
    suppressed = f"suppressed:{NAMES.address('+14155550100')}:sms".encode()
    assert (b"c1:sms", None) in by_topic["t.consents"]  # the customer's own records: tombstones
    assert (b"c1:email", None) in by_topic["t.consents"]
    assert [k for k, v in by_topic["t.consents"] if v is not None] == [suppressed]
    assert by_topic["t.customers"] == [(b"c1", None)]
    (done,) = [parse_done(v) for _, v in by_topic["t.erasures.done"]]
    assert done.part == "journeys" and done.counts == {"states": 1, "suppressed": 1}
    # what the table keeps of the erasure: the pseudonym, no id
    marker = table[b"0:" + OPEN.subject.encode()]
    assert b"c1" not in marker

    sent.clear()  # a replay or a re-import of the customer: nothing comes back
    await _record(shell, "t.abandonments", 0, b"c1", _abandonment("c1"), None)
    await _record(shell, "t.customers", 0, b"c1", orjson.dumps(profile), None)
    assert state_key(0, "c1") not in table
    assert sent == []


async def test_a_closed_erasure_finds_the_customer_by_pseudonym() -> None:
    table: dict[bytes, bytes] = {}
    sent: list[tuple[str, bytes | None, bytes | None]] = []
    shell = _journey_shell(table, sent)
    await _record(shell, "t.customers", 1, b"c1", orjson.dumps({"customer_id": "c1"}), None)
    closed = OPEN.closed(1_781_100_060_000)
    sent.clear()
    await _record(shell, "t.erasures", 1, closed.subject.encode(), closed.to_json(), None)
    assert state_key(1, "c1") not in table
    assert sent == []  # a replay's namespace: no suppressions, tombstones or confirmation


async def test_a_record_that_is_not_an_erasure_is_dead_lettered() -> None:
    table: dict[bytes, bytes] = {}
    sent: list[tuple[str, bytes | None, bytes | None]] = []
    shell = _journey_shell(table, sent)
    await _record(shell, "t.erasures", 0, b"k", b"not json", None)
    assert [topic for topic, _, _ in sent] == [TOPICS.dlq(Topic.ERASURES)]
