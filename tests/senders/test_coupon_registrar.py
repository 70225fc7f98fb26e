"""The registrar's decisions (senders/coupons/registrar.py) through its ports, with fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from senders.coupons.ports import Redemption, Registration
from senders.coupons.registrar import OrderUse, Registrar
from senders.metrics import CouponMetrics
from streams.core.policy import parse_policy
from streams.models.coupons import CouponRecord, normal_code
from streams.policy_file import default_policy_text

NOW = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)


class States:
    """In memory, as store.py keeps them in Redis."""

    def __init__(self) -> None:
        self.kept: dict[str, CouponRecord] = {}
        self.redeemed: dict[str, str] = {}
        self.reuses: dict[str, set[str]] = {}

    async def get(self, code: str) -> CouponRecord | None:
        return self.kept.get(normal_code(code))

    async def put(self, record: CouponRecord) -> CouponRecord:
        code = normal_code(record.code)
        kept = self.kept.get(code)
        if kept is None or kept.rank <= record.rank:
            self.kept[code] = record
        return self.kept[code]

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
