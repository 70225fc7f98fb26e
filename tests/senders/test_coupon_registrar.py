"""The registrar's decisions (senders/coupons/registrar.py) through its ports, with fakes; and
what an erasure does to the coupons (senders/coupons/forgetting.py): the customer's codes are
rewritten without them, and the registrar never keeps or emits a state naming a retired id."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from senders.coupons.forgetting import CouponErasure
from senders.coupons.ports import Redemption, Registration
from senders.coupons.registrar import OrderUse, Registrar
from senders.runtime.metrics import CouponMetrics
from streams.contract.coupons import CouponRecord, normal_code
from streams.core.policy import parse_policy
from streams.runtime.policy_file import default_policy_text

NOW = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)


def pseudonym(customer: str) -> str:
    return f"sub-{customer}"


class States:
    """In memory, as store.py keeps them in Redis; ``retired``: the ids an erasure retired."""

    def __init__(self) -> None:
        self.kept: dict[str, CouponRecord] = {}
        self.redeemed: dict[str, str] = {}
        self.reuses: dict[str, set[str]] = {}
        self.index: dict[str, dict[str, int]] = {}  # pseudonym → code → expiry (ms)
        self.retired: set[str] = set()

    async def get(self, code: str) -> CouponRecord | None:
        return self.kept.get(normal_code(code))

    async def put(self, record: CouponRecord) -> CouponRecord:
        for customer in record.customers:
            expires = int(record.expires_at.timestamp() * 1000)
            self.index.setdefault(pseudonym(customer), {})[record.code] = expires
        code = normal_code(record.code)
        kept = self.kept.get(code)
        if kept is None or kept.rank <= record.rank:
            self.kept[code] = record
        return self.kept[code]

    async def erased(self, customers: Collection[str]) -> dict[str, str]:
        return {c: pseudonym(c) for c in customers if c in self.retired}

    async def unindex(self, code: str, subjects: Collection[str]) -> None:
        for subject in subjects:
            self.index.get(subject, {}).pop(code, None)

    async def codes_of(self, subject: str) -> dict[str, int]:
        return dict(self.index.get(subject, {}))

    async def drop_index(self, subject: str) -> None:
        self.index.pop(subject, None)

    async def redeem(self, code: str, order_id: str) -> Redemption:
        code = normal_code(code)
        if code not in self.kept:
            return "unknown"
        first = self.redeemed.setdefault(code, order_id)
        if first == order_id:
            return "first" if len(self.reuses.setdefault(code, set())) == 0 else "same"
        if order_id in self.reuses.setdefault(code, set()):
            return "repeat"
        self.reuses[code].add(order_id)
        return "reuse"


class Provider:
    name = "webhook"

    def __init__(self, *answers: Registration) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def register(self, coupon: CouponRecord, now: datetime) -> Registration:
        self.calls += 1
        return self.answers.pop(0)

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def coupon(**fields: Any) -> CouponRecord:
    data: dict[str, Any] = {
        "code": "CP-ONE", "customer_id": "c1", "journey_id": "jr-1", "store_id": "default",
        "percent": 10, "currency": "USD", "issued_at": NOW, "expires_at": NOW + timedelta(hours=72),
    }  # fmt: skip
    return CouponRecord.model_validate(data | fields)


def registrar(provider: Provider, states: States, emitted: list[CouponRecord]) -> Registrar:
    policy = parse_policy(
        default_policy_text().replace(
            "[stores.default]\n", '[stores.default]\ncoupon_provider = "webhook"\n', 1
        )
    )

    async def emit(record: CouponRecord) -> None:
        emitted.append(record)

    return Registrar(
        policy, {"webhook": provider}, states, emit, CouponMetrics.create(CollectorRegistry()),
        wait=timedelta(hours=1), retry_base=1.0, retry_max=60.0,
    )  # fmt: skip


async def test_a_retry_comes_back_later_and_registers() -> None:
    states, emitted = States(), list[CouponRecord]()
    provider = Provider(Registration("retry", "webhook 503", 5.0), Registration("registered"))
    reg = registrar(provider, states, emitted)
    delay = await reg.on_coupon(coupon(), 0, NOW)
    assert delay is not None and delay >= 5.0  # Retry-After wins over a shorter back-off
    assert emitted == []
    assert await reg.on_coupon(coupon(), 1, NOW + timedelta(seconds=5)) is None
    assert [(r.status, r.provider) for r in emitted] == [("registered", "webhook")]


async def test_a_provider_down_past_the_senders_wait_makes_the_code_unavailable() -> None:
    states, emitted = States(), list[CouponRecord]()
    reg = registrar(Provider(Registration("retry", "webhook unreachable")), states, emitted)
    late = NOW + timedelta(minutes=59, seconds=59)
    assert await reg.on_coupon(coupon(), 12, late) is None
    [record] = emitted
    assert record.status == "unavailable" and "unreachable" in (record.reason or "")


async def test_an_issued_record_read_again_neither_registers_again_nor_undoes_it() -> None:
    states, emitted = States(), list[CouponRecord]()
    provider = Provider(Registration("registered"))
    reg = registrar(provider, states, emitted)
    await reg.on_coupon(coupon(), 0, NOW)
    await reg.on_coupon(emitted[0], 0, NOW)  # our own record coming back: kept
    await reg.on_coupon(coupon(), 0, NOW)  # a replay issues it again
    assert provider.calls == 1
    assert [r.status for r in emitted] == ["registered", "registered"]  # said again
    assert (await states.get("cp-one")).status == "registered"  # type: ignore[union-attr]


async def test_first_use_redeems_a_second_order_is_a_reuse_and_repeats_count_once() -> None:
    states, emitted = States(), list[CouponRecord]()
    reg = registrar(Provider(Registration("registered")), states, emitted)
    await reg.on_coupon(coupon(), 0, NOW)
    first = OrderUse("o-1", "c1", ("cp-one", "OTHER"), NOW)
    second = OrderUse("o-2", "c9", ("CP-ONE",), NOW)
    for use in (first, first, second, second):
        await reg.on_order(use)
    assert [r.status for r in emitted] == ["registered", "redeemed", "reused"]
    assert emitted[1].redeemed_order_id == "o-1"
    assert [r.order_id for r in emitted[2].reuses] == ["o-2"]


# --- erasures --------------------------------------------------------------------------------


def test_a_record_without_an_erased_customer_keeps_what_the_store_needs() -> None:
    reuse = {"order_id": "o-2", "customer_id": "c1", "at": NOW}
    record = coupon(
        status="reused", command_id="cmd-1", redeemed_order_id="o-1", redeemed_by="c1",
        redeemed_at=NOW, reuses=[reuse, {"order_id": "o-3", "customer_id": "c9", "at": NOW}],
    )  # fmt: skip
    clean = record.without({"c1": "sub-c1"})
    assert clean.to_dict() == {
        "code": "CP-ONE", "subject": "sub-c1", "store_id": "default", "percent": 10,
        "currency": "USD", "single_use": True, "status": "reused",
        "issued_at": "2026-06-10T14:00:00.000Z", "expires_at": "2026-06-13T14:00:00.000Z",
        "redeemed_order_id": "o-1",
        "redeemed_at": "2026-06-10T14:00:00.000Z",
        "reuses": [
            {"order_id": "o-2", "at": "2026-06-10T14:00:00.000Z"},
            {"order_id": "o-3", "customer_id": "c9", "at": "2026-06-10T14:00:00.000Z"},
        ],
    }  # fmt: skip
    assert clean.rank == record.rank and clean.customers == {"c9"}
    assert clean.without({"c1": "sub-c1"}) == clean  # idempotent
    assert record.without({"c7": "sub-c7"}) is record  # names nobody erased: as it is
    # another customer erased: only their reuse changes
    assert record.without({"c9": "sub-c9"}).customer_id == "c1"


async def test_an_erasure_rewrites_every_code_of_the_customer_and_drops_the_index() -> None:
    states, emitted = States(), list[tuple[str, bytes | None]]()
    reg = registrar(Provider(Registration("registered"), Registration("registered")), states, [])
    await reg.on_coupon(coupon(), 0, NOW)
    await reg.on_coupon(coupon(code="CP-TWO", customer_id="c2"), 0, NOW)
    await reg.on_order(OrderUse("o-1", "c1", ("CP-TWO",), NOW))  # c1 redeems c2's code
    # noted but never kept (the registrar has not read it yet), and one Redis forgot long ago
    states.index["sub-c1"] |= {"CP-LATE": 1_781_200_000_000, "CP-OLD": 1_600_000_000_000}
    states.retired.add("c1")

    async def emit(code: str, value: bytes | None) -> None:
        emitted.append((code, value))

    erasure = CouponErasure(states, emit, timedelta(days=30))
    counts = await erasure.forget("c1", "sub-c1", int(NOW.timestamp() * 1000))
    assert counts == {"coupons": 2, "coupons_deleted": 1}
    assert [code for code, _ in emitted] == ["CP-OLD", "CP-ONE", "CP-TWO"]
    assert emitted[0][1] is None  # expired a month ago and forgotten: nothing to honour
    for _, value in emitted[1:]:
        assert value is not None and b'"c1"' not in value
    own, theirs = states.kept["CP-ONE"], states.kept["CP-TWO"]
    assert (own.status, own.subject, own.customer_id, own.journey_id) == (
        "registered", "sub-c1", None, None,
    )  # fmt: skip
    assert (theirs.status, theirs.customer_id, theirs.redeemed_by) == ("redeemed", "c2", None)
    assert "sub-c1" not in states.index and states.index["sub-c2"] == {"CP-TWO": 1_781_359_200_000}


async def test_the_registrar_never_leaves_a_retired_id_in_what_it_keeps_or_emits() -> None:
    states, emitted = States(), list[CouponRecord]()
    provider = Provider(Registration("registered"))
    reg = registrar(provider, states, emitted)
    await reg.on_coupon(coupon(), 0, NOW)
    states.retired.add("c1")  # erased since: the rewrite of the erasure is not there yet
    # an issued code of the erased customer is never registered: no message of theirs is sent
    await reg.on_coupon(coupon(code="CP-NEW"), 0, NOW)
    assert provider.calls == 1
    assert (emitted[-1].code, emitted[-1].status, emitted[-1].subject) == (
        "CP-NEW", "unavailable", "sub-c1",
    )  # fmt: skip
    assert emitted[-1].reason == "the customer was erased"
    # a store's ack naming them, read after the erasure: kept and said again without them
    ack = coupon(status="registered", provider="store")
    await reg.on_coupon(ack, 0, NOW)
    assert emitted[-1].code == "CP-ONE" and emitted[-1].customer_id is None
    # an order of theirs redeems it: emitted as kept, then again without them
    await reg.on_order(OrderUse("o-1", "c1", ("CP-ONE",), NOW))
    assert [r.redeemed_by for r in emitted[-2:]] == ["c1", None]
    for code in ("CP-ONE", "CP-NEW"):
        assert states.kept[code].customers == frozenset()
    assert "CP-ONE" not in states.index.get("sub-c1", {})
