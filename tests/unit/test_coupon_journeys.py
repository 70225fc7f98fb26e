"""The journey engine's part in coupons: a recovery records the code the order used, and a
coupon step the sender could not send (``coupon_unavailable``) is skipped with that reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson

from streams.contract.commands import SendResult
from streams.contract.event_parse import canonical_json, parse_event
from streams.contract.journey import OrderIn
from streams.core.journeys import JourneyEngine
from streams.core.policy import parse_policy
from tests.support.journeys import POLICY, SECRET
from tests.unit.test_journeys import H, abandonment, customer, ms, order, run


def test_a_recovery_records_the_journeys_coupon_when_the_order_used_it() -> None:
    engine = JourneyEngine(parse_policy(POLICY), SECRET)
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    out = run(engine, state, last + 49 * H, (last + H // 2, abandonment(last)))
    code = out.commands[-1].variables["coupon"]["code"]
    used = replace(order(last + 50 * H), discount_codes=("SUMMER", code.lower()))
    out = run(engine, state, last + 51 * H, (last + 50 * H, used))
    [recovery] = out.recoveries
    assert recovery.coupon_code == code
    assert recovery.to_dict()["coupon_code"] == code


def test_a_recovery_without_the_coupon_has_no_code() -> None:
    engine = JourneyEngine(parse_policy(POLICY), SECRET)
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    run(engine, state, last + 49 * H, (last + H // 2, abandonment(last)))
    out = run(engine, state, last + 51 * H, (last + 50 * H, order(last + 50 * H)))
    [recovery] = out.recoveries
    assert recovery.coupon_code is None
    assert "coupon_code" not in recovery.to_dict()


def test_a_coupon_step_not_sent_is_skipped_as_coupon_unavailable() -> None:
    engine = JourneyEngine(parse_policy(POLICY), SECRET)
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    out = run(engine, state, last + 49 * H, (last + H // 2, abandonment(last)))
    command = out.commands[-1]
    result = SendResult(
        command_id=command.command_id, status="suppressed", error_code="coupon_unavailable",
        at=datetime.fromtimestamp((last + 50 * H) / 1000, tz=UTC), channel="email",
        journey_id=command.journey_id, customer_id="c1", attempts=1,
    )  # fmt: skip
    out = run(engine, state, last + 50 * H, (last + 50 * H, result))
    skipped = [(d.step, d.reason, d.channel) for d in out.decisions if d.action == "skipped"]
    assert skipped == [(2, "coupon_unavailable", "email")]
    # and never twice (a redelivered result)
    again = run(engine, state, last + 50 * H, (last + 50 * H, result))
    assert [d for d in again.decisions if d.action == "skipped"] == []


def test_an_order_event_carries_its_discount_codes_to_the_journeys() -> None:
    raw = (
        b'{"event_id":"e1","type":"order_completed","occurred_at":"2026-06-12T14:00:00Z",'
        b'"session_id":"s","customer_id":"c1","order":{"id":"o1","value":"120",'
        b'"discount_codes":["CP-AAA",{"code":" cp-bbb ","amount":"12.00","type":"percentage"}]}}'
    )
    event = parse_event(raw)
    assert OrderIn.of(event).discount_codes == ("CP-AAA", "cp-bbb")
    canonical = orjson.loads(canonical_json(raw))
    assert canonical["order"]["discount_codes"] == ["CP-AAA", "cp-bbb"]


async def test_the_journeys_shell_issues_the_coupon_before_its_command() -> None:
    from prometheus_client import CollectorRegistry

    from streams.agents.journeys import JourneyShell
    from streams.contract.coupons import parse_coupon
    from streams.contract.topics import TopicCatalogue
    from streams.core.journeys import Outputs
    from streams.runtime.metrics import JourneyMetrics
    from tests.support.emails import sample_command

    sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: object) -> None:
        sent.append((topic, key, value))

    shell = JourneyShell(
        engine=JourneyEngine(parse_policy(POLICY), SECRET), topics=TopicCatalogue("p."),
        live=True, table={}, send=send, metrics=JourneyMetrics.create(CollectorRegistry()),
        max_record_bytes=65536,
    )  # fmt: skip
    with_coupon = sample_command("cart_email_2", "en")
    dry = with_coupon.model_copy(update={"mode": "dry_run"})
    without = sample_command("cart_email_1", "en")
    await shell._emit(Outputs(commands=[with_coupon, dry, without]))
    assert [topic for topic, _, _ in sent] == [
        "p.coupons",
        "p.send.email",
        "p.send.email",
        "p.send.email",
    ]
    _, key, value = sent[0]
    coupon = parse_coupon(value)
    assert key == coupon.code.encode() and coupon.code == with_coupon.variables["coupon"]["code"]
    assert (coupon.status, coupon.command_id) == ("issued", with_coupon.command_id)
