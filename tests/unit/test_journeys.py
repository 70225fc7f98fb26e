"""The journey engine's rules (docs/semantics.md, Journeys), one customer at a time, on a fake timeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from streams.contract.commands import SendResult
from streams.contract.journey import AbandonmentIn, ConsentChange, OrderIn, Profile
from streams.core.journey_state import CustomerState, Journey, StepState
from streams.core.journeys import JourneyEngine, Outputs
from streams.core.messages import build_command
from streams.core.policy import Policy, parse_policy
from streams.runtime.policy_file import default_policy_text
from tests.support.journeys import POLICY, SECRET

H = 3_600_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat()


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY)


@pytest.fixture
def engine(policy: Policy) -> JourneyEngine:
    return JourneyEngine(policy, SECRET)


def customer(
    cid: str = "c1",
    sms: bool = True,
    email: bool = True,
    timezone: str | None = "America/New_York",
) -> CustomerState:
    state = CustomerState(cid)
    state.profile = Profile(
        cid, phone="+14155550123", email="ann@example.com", first_name="Ann", timezone=timezone
    )
    if sms:
        state.consents["sms"] = ("opted_in", 0, "checkout")
    if email:
        state.consents["email"] = ("opted_in", 0, "checkout")
    return state


def abandonment(
    last: int,
    kind: str = "cart",
    ab_id: str = "ab-1",
    value: str = "120.00",
    store: str = "default",
) -> AbandonmentIn:
    return AbandonmentIn(
        abandonment_id=ab_id,
        kind=kind,  # type: ignore[arg-type]
        session_id="s1",
        customer_id="c1",
        store_id=store,
        last_activity_ms=last,
        detected_ms=last + 30 * 60_000,
        checkout_started=False,
        cart={
            "items": [{"product_id": "p1", "quantity": 1, "price": value, "name": "Lamp"}],
            "value": value,
            "currency": "USD",
            "url": "https://shop.example.com/cart",
        }
        if kind == "cart"
        else {"items": [], "value": None, "currency": None, "url": None},
        viewed_products=[{"product_id": "p1", "views": 2, "name": "Lamp"}],
    )


def order(at: int, event_id: str = "o1", value: str = "120.00") -> OrderIn:
    return OrderIn(event_id, "c1", "s2", at, "order-1", Decimal(value), "USD", None)


def run(engine: JourneyEngine, state: CustomerState, until: int, *inputs: Any) -> Outputs:
    """Apply inputs at their own times, then advance to ``until``."""
    out = Outputs()
    for at, item in inputs:
        if isinstance(item, AbandonmentIn):
            out.extend(engine.on_abandonment(state, item, at))
        elif isinstance(item, OrderIn):
            out.extend(engine.on_order(state, item, at))
        elif isinstance(item, ConsentChange):
            out.extend(engine.on_consent(state, item, at))
        elif isinstance(item, SendResult):
            out.extend(engine.on_result(state, item, at))
    out.extend(engine.advance(state, until))
    return out


def reasons(out: Outputs, action: str) -> list[tuple[int | None, str]]:
    return [(d.step, d.reason) for d in out.decisions if d.action == action]


# -- the happy path ------------------------------------------------------------------------


def test_cart_flow_sends_sms_then_two_emails_at_their_times(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")  # 10:00 in New York
    state = customer()
    out = run(engine, state, last + 200 * H, (last + H // 2, abandonment(last)))
    assert [(c.channel, c.template) for c in out.commands] == [
        ("sms", "cart_sms_1"),
        ("email", "cart_email_1"),
        ("email", "cart_email_2"),
    ]
    assert [c.not_before for c in out.commands] == [
        datetime.fromtimestamp((last + h * H) / 1000, tz=UTC) for h in (1, 20, 48)
    ]
    sms = out.commands[0]
    assert sms.to == "+14155550123"
    assert sms.variables["first_name"] == "Ann"
    assert sms.variables["cart_url"] == "https://shop.example.com/cart"
    assert sms.variables["cart_items"][0]["name"] == "Lamp"
    assert "coupon" not in sms.variables
    coupon = out.commands[2].variables["coupon"]
    assert coupon["percent"] == 10
    assert coupon["code"].startswith("CP-")
    assert ("ended", "completed") in [(d.action, d.reason) for d in out.decisions]


def test_commands_are_stable_across_runs(policy: Policy) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    runs = []
    for _ in range(2):
        engine = JourneyEngine(policy, SECRET)
        out = run(engine, customer(), last + 100 * H, (last + H, abandonment(last)))
        runs.append([c.to_json() for c in out.commands])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 3


# -- quiet hours and time zones ------------------------------------------------------------


def test_sms_in_quiet_hours_is_deferred_to_eight_local(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T23:30:00-04:00")  # SMS due 00:30 New York time
    out = run(engine, customer(), last + 30 * H, (last + H // 2, abandonment(last)))
    assert (0, "quiet_hours") in reasons(out, "deferred")
    sms = next(c for c in out.commands if c.channel == "sms")
    assert sms.not_before == datetime.fromisoformat("2026-06-11T08:00:00-04:00")


def test_step_in_the_hour_skipped_by_dst_is_deferred_to_eight_edt(engine: JourneyEngine) -> None:
    # 2026-03-08: New York skips 02:00-03:00. Due 06:30Z = 01:30 EST, inside quiet hours; the
    # window ends at 08:00 EDT = 12:00Z (13:00Z would be EST's 08:00, an hour late).
    last = ms("2026-03-08T05:30:00+00:00")
    out = run(engine, customer(), last + 30 * H, (last + H // 2, abandonment(last)))
    sms = next(c for c in out.commands if c.channel == "sms")
    assert sms.not_before == datetime.fromisoformat("2026-03-08T12:00:00+00:00")


def test_unknown_time_zone_falls_back_to_the_store_zone(policy: Policy) -> None:
    engine = JourneyEngine(policy, SECRET)
    last = ms("2026-06-11T01:00:00+00:00")  # 21:00 in New York, 03:00 in Berlin
    state = customer(timezone="Mars/Olympus_Mons")
    out = run(engine, state, last + 30 * H, (last + H // 2, abandonment(last)))
    sms = next(c for c in out.commands if c.channel == "sms")
    # New York (the store's zone), not UTC: 02:00 UTC is 22:00 there → 08:00 EDT = 12:00Z.
    assert sms.not_before == datetime.fromisoformat("2026-06-11T12:00:00+00:00")


def test_quiet_hours_defer_past_expiry_skips(engine: JourneyEngine, policy: Policy) -> None:
    tight = parse_policy(POLICY.replace('expires_after = "48h"', 'expires_after = "2h"', 1))
    engine = JourneyEngine(tight, SECRET)
    last = ms("2026-06-10T23:30:00-04:00")
    out = run(engine, customer(), last + 30 * H, (last + H // 2, abandonment(last)))
    assert (0, "expired_quiet_hours") in reasons(out, "skipped")
    assert [c.channel for c in out.commands] == ["email"]


# -- frequency caps ------------------------------------------------------------------------


def test_one_sms_per_24h_defers_the_next(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    state.sends.append(("sms", last + H - 2 * H))  # an SMS an hour before this one is due
    out = run(engine, state, last + 100 * H, (last + H, abandonment(last)))
    assert (0, "sms_cap") in reasons(out, "deferred")
    sms = next(c for c in out.commands if c.channel == "sms")
    assert sms.not_before == datetime.fromtimestamp((last + 23 * H) / 1000, tz=UTC)


def test_one_email_per_16h(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer(sms=False)
    state.sends.append(("email", last + 10 * H))  # 10 h before the first email is due
    out = run(engine, state, last + 100 * H, (last + H, abandonment(last)))
    first = next(c for c in out.commands if c.template == "cart_email_1")
    assert first.not_before == datetime.fromtimestamp((last + 26 * H) / 1000, tz=UTC)


def test_three_messages_per_rolling_day_across_flows(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    state.sends += [("email", last - 20 * H), ("sms", last - 30 * H), ("email", last - 4 * H)]
    state.sends += [("other", last - 2 * H)]  # e.g. another flow's channel
    out = run(engine, state, last + 100 * H, (last + H, abandonment(last)))
    # the last SMS was 31 h before: no SMS cap; but -20h, -4h and -2h fill the rolling day
    assert reasons(out, "deferred")[0] == (0, "daily_cap")
    sms = next(c for c in out.commands if c.channel == "sms")
    # ... until the oldest of them ages out of it: -20h + 24h
    assert sms.not_before == datetime.fromtimestamp((last + 4 * H) / 1000, tz=UTC)


# -- exits and precedence ------------------------------------------------------------------


def test_order_arriving_late_but_before_due_ends_the_journey(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    out = engine.on_abandonment(state, abandonment(last), last + H // 2)
    assert [d.reason for d in out.decisions if d.action == "scheduled"] == ["eligible"] * 3
    # the order occurred 40 min after the last activity, before the SMS was due...
    # ...and arrives while the engine's clock still is before the SMS's due time
    out = engine.on_order(state, order(last + 40 * 60_000), last + 50 * 60_000)
    out.extend(engine.advance(state, last + 100 * H))
    assert out.commands == []
    assert ("ended", "converted") in [(d.action, d.reason) for d in out.decisions]
    assert reasons(out, "skipped") == [(0, "converted"), (1, "converted"), (2, "converted")]


def test_cart_supersedes_browse(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    out = engine.on_abandonment(state, abandonment(last, "browse", "ab-b"), last + H // 2)
    out.extend(engine.on_abandonment(state, abandonment(last + H, "cart", "ab-c"), last + H))
    assert ("ended", "superseded") in [(d.action, d.reason) for d in out.decisions]
    out.extend(engine.advance(state, last + 200 * H))
    assert [c.abandonment_id for c in out.commands] == ["ab-c"] * 3


def test_browse_while_cart_runs_is_ignored_and_cart_update_keeps_schedule(
    engine: JourneyEngine,
) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    engine.on_abandonment(state, abandonment(last, "cart", "ab-1"), last + H // 2)
    out = engine.on_abandonment(state, abandonment(last, "browse", "ab-2"), last + H // 2)
    assert reasons(out, "ignored") == [(None, "cart_journey_active")]
    out = engine.on_abandonment(
        state, abandonment(last + H // 2, "cart", "ab-3", "300.00"), last + H // 2
    )
    assert ("updated", "cart_changed") in [(d.action, d.reason) for d in out.decisions]
    out = engine.advance(state, last + 100 * H)
    assert next(c.not_before for c in out.commands) == datetime.fromtimestamp(
        (last + H) / 1000, tz=UTC
    )
    assert out.commands[-1].variables["coupon"]["percent"] == 15  # the updated cart's value


def test_reentry_cooldown(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    run(engine, state, last + 5 * 24 * H, (last + H, abandonment(last, "browse", "ab-1")))
    out = engine.on_abandonment(state, abandonment(last + 10 * H, "browse", "ab-2"), last + 11 * H)
    assert reasons(out, "ignored") == [(None, "reentry_cooldown")]
    out = engine.on_abandonment(state, abandonment(last + 25 * H, "browse", "ab-3"), last + 26 * H)
    assert ("started", "browse") in [(d.action, d.reason) for d in out.decisions]


def test_opt_out_drops_already_scheduled_steps(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    engine.on_abandonment(state, abandonment(last), last + H // 2)
    out = engine.on_consent(
        state, ConsentChange("c1", "sms", "opted_out", last + 40 * 60_000, "sms:STOP"), last
    )
    assert reasons(out, "skipped") == [(0, "opted_out")]
    out = engine.advance(state, last + 100 * H)
    assert [c.channel for c in out.commands] == ["email", "email"]


def test_an_older_consent_record_never_moves_the_ledger_back(engine: JourneyEngine) -> None:
    state = customer()
    engine.on_consent(state, ConsentChange("c1", "sms", "opted_out", 2000, "stop"), 0)
    engine.on_consent(state, ConsentChange("c1", "sms", "opted_in", 1000, "replay"), 0)
    assert state.consents["sms"][0] == "opted_out"


# -- consent rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "existing", "expected"),
    [
        ("default", True, ["email", "email"]),  # soft opt-in allowed, existing customer
        ("default", False, []),  # not an existing customer
        ("nosoft", True, []),  # the store does not allow soft opt-in
    ],
)
def test_email_soft_opt_in(
    engine: JourneyEngine, store: str, existing: bool, expected: list[str]
) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer(sms=False, email=False)
    state.ordered = existing
    out = run(engine, state, last + 100 * H, (last + H, abandonment(last, store=store)))
    assert [c.channel for c in out.commands] == expected
    assert (0, "no_consent") in reasons(out, "skipped")


def test_sms_needs_explicit_opt_in_and_a_reachable_number(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    state.profile = Profile("c1", phone="0415 555", email="ann@example.com")
    out = run(engine, state, last + 100 * H, (last + H, abandonment(last)))
    assert (0, "no_address") in reasons(out, "skipped")


def test_sms_opt_in_cannot_be_soft() -> None:
    with pytest.raises(Exception, match=r"eligibility\.sms\.consent"):
        parse_policy(POLICY.replace('quiet_hours = "20:00-08:00"', 'consent = "opt_in_or_soft"'))


# -- attribution ---------------------------------------------------------------------------


def test_order_after_a_sent_message_is_a_recovery_for_the_last_touch(
    engine: JourneyEngine,
) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    out = run(
        engine,
        state,
        last + 25 * H,
        (last + H // 2, abandonment(last)),
        (last + 22 * H, order(last + 22 * H, value="99.50")),
    )
    assert len(out.recoveries) == 1
    recovery = out.recoveries[0]
    assert recovery.channel == "email"  # the 20 h email is the last touch before 22 h
    assert recovery.revenue == Decimal("99.50")


def test_a_failed_send_is_not_a_touch(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer(email=False)
    out = engine.on_abandonment(state, abandonment(last), last + 2 * H)
    sms = out.commands[0]
    result = SendResult(
        command_id=sms.command_id, status="failed", error_code="21211", at=iso(last + 2 * H),
        channel="sms",
    )  # fmt: skip
    engine.on_result(state, result, last + 2 * H)
    out = engine.on_order(state, order(last + 3 * H), last + 3 * H)
    assert out.recoveries == []
    assert state.undeliverable["sms"] == "+14155550123"


def test_an_smtp_bad_mailbox_marks_the_email_address_undeliverable(engine: JourneyEngine) -> None:
    from senders.core.outcomes import smtp_outcome

    last = ms("2026-06-10T14:00:00+00:00")
    state = customer(sms=False)
    out = run(engine, state, last + 21 * H, (last + H // 2, abandonment(last)))
    email = out.commands[0]
    bounced = smtp_outcome(550, "5.1.1 no such user")  # what the email sender reports
    assert bounced.error_code == "550 5.1.1"
    result = SendResult(
        command_id=email.command_id, status="failed", error_code=bounced.error_code,
        at=iso(last + 21 * H), channel="email",
    )  # fmt: skip
    engine.on_result(state, result, last + 21 * H)
    assert state.undeliverable["email"] == "ann@example.com"
    out = engine.advance(state, last + 100 * H)
    assert out.commands == []
    assert reasons(out, "skipped") == [(2, "undeliverable")]


# -- incentives and experiments ------------------------------------------------------------


def test_coupon_codes_are_unique_per_journey_and_stable(policy: Policy) -> None:
    from streams.core.eligibility import coupon_code

    codes = {coupon_code(SECRET, f"jr-{i}", "CP") for i in range(20_000)}
    assert len(codes) == 20_000
    assert coupon_code(SECRET, "jr-1", "CP") == "CP-SXWBHPFLRCDR"  # stable across runs
    assert coupon_code(b"other", "jr-1", "CP") != coupon_code(SECRET, "jr-1", "CP")


def test_no_coupon_under_the_lowest_tier(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    out = run(engine, customer(), last + 100 * H, (last + H, abandonment(last, value="40")))
    assert [c.template for c in out.commands] == ["cart_sms_1", "cart_email_1", "cart_email_2"]
    assert all("coupon" not in c.variables for c in out.commands)


@pytest.mark.parametrize("value", ["lots", "NaN", "Infinity", "", "12,50"])
def test_a_cart_value_that_is_not_a_number_gives_no_coupon_and_no_error(
    engine: JourneyEngine, value: str
) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    out = run(engine, customer(), last + 100 * H, (last + H, abandonment(last, value=value)))
    assert [c.template for c in out.commands] == ["cart_sms_1", "cart_email_1", "cart_email_2"]
    assert all("coupon" not in c.variables for c in out.commands)


def test_cart_value_reads_numbers_only() -> None:
    from streams.contract.journey import cart_value

    assert cart_value({"value": "120.00"}) == Decimal("120.00")
    assert cart_value({"value": 75}) == Decimal(75)
    for bad in ({}, {"value": None}, {"value": "x"}, {"value": "NaN"}, {"value": True}):
        assert cart_value(bad) is None


def test_assignment_is_sticky_and_follows_the_weights() -> None:
    from streams.core.eligibility import assign_variant
    from streams.core.policy import Experiment, Variant

    experiment = Experiment(
        "exp", 0.2, (Variant("a", 1.0), Variant("b", 3.0))
    )  # holdout 20 %, then a:b = 1:3 → a 20 %, b 60 %
    counts = {"holdout": 0, "a": 0, "b": 0}
    for i in range(100_000):
        counts[assign_variant(experiment, f"customer-{i}")] += 1
    assert abs(counts["holdout"] / 100_000 - 0.2) < 0.01
    assert abs(counts["a"] / 100_000 - 0.2) < 0.01
    assert abs(counts["b"] / 100_000 - 0.6) < 0.01
    # Sticky: the same customer always lands in the same arm, whatever the process.
    assert [assign_variant(experiment, f"c-{i}") for i in range(8)] == [
        "b", "b", "holdout", "a", "b", "b", "b", "a"
    ]  # fmt: skip


def test_holdout_gets_no_messages_but_its_conversion_counts() -> None:
    policy = parse_policy(POLICY + '[flows.cart.experiment]\nname = "e"\nholdout = 0.9999999\n')
    engine = JourneyEngine(policy, SECRET)
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    out = run(
        engine, state, last + 100 * H,
        (last + H // 2, abandonment(last)), (last + 30 * H, order(last + 30 * H)),
    )  # fmt: skip
    assert out.commands == []
    assert reasons(out, "skipped") == [(0, "holdout"), (1, "holdout"), (2, "holdout")]
    ended = [d for d in out.decisions if d.action == "ended"]
    assert [(d.reason, d.variant, d.value) for d in ended] == [("converted", "holdout", "120.00")]


# -- the policy file -----------------------------------------------------------------------


def test_the_shipped_default_policy_is_valid() -> None:
    policy = parse_policy(default_policy_text(), "default.toml")
    cart = policy.flows["cart"]
    assert [(s.after_ms // H, s.channel) for s in cart.steps] == [
        (1, "sms"), (20, "email"), (48, "email")
    ]  # fmt: skip
    assert cart.steps[2].incentive
    assert policy.flows["browse"].steps[0].after_ms == 2 * H
    assert policy.channels["sms"].min_interval_ms == 24 * H
    assert policy.channels["email"].min_interval_ms == 16 * H
    assert policy.max_per_day == 3
    store = policy.store("default")
    assert store.postal_address and "Example Street" in store.postal_address
    assert store.support == "help@shop.example.com"


def test_commands_carry_the_store_postal_address_and_support() -> None:
    policy = parse_policy(default_policy_text(), "default.toml")
    store = policy.store("default")
    state = CustomerState("c1")
    step = StepState(1, 0, 1)
    journey = Journey(
        "j1", "cart", "cart", "a1", "s1", "default", 0, 1, "", False, {"url": "https://x.example"},
        [], [step],
    )  # fmt: skip
    command = build_command(policy, SECRET, "live", state, journey, step, "a@b.co")
    assert command.variables["store_postal_address"] == store.postal_address
    assert command.variables["store_support"] == "help@shop.example.com"
    assert command.locale == "en"  # no profile locale: the store's
    german = replace(policy, stores={"default": replace(store, locale="de-AT")})
    assert build_command(german, SECRET, "live", state, journey, step, "a@b.co").locale == "de-AT"
    state.profile = Profile("c1", locale="fr")
    assert build_command(german, SECRET, "live", state, journey, step, "a@b.co").locale == "fr"


@pytest.mark.parametrize("value", ['""', "7", '"  "'])
def test_a_store_postal_address_must_be_text(value: str) -> None:
    from streams.contract.errors import ConfigurationError

    text = (
        default_policy_text()
        .replace('support = "help@shop.example.com"', f"postal_address = {value}", 1)
        .replace('postal_address = "Cartpulse Demo Store', '# postal_address = "x', 1)
    )
    with pytest.raises(ConfigurationError, match=r"stores\.default\.postal_address"):
        parse_policy(text, "p.toml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('after = "20h"', 'after = "20x"'), r"policy\.toml:\d+: flows\.cart\.steps\[1\]\.after"),
        (('channel = "sms"', 'channel = "fax"'), r"flows\.cart\.steps\[0\]\.channel"),
        (('timezone = "Europe/Berlin"', 'timezone = "Berlin"'), r"stores\.nosoft\.timezone"),
        (("[flows.browse]", '[flows.browse]\ncolour = "red"'), r"flows\.browse\.colour"),
        (("[eligibility.sms]", "[eligibility.sms"), r"not valid TOML"),
    ],
)
def test_policy_errors_name_the_line_and_the_field(change: tuple[str, str], expected: str) -> None:
    from streams.contract.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=expected):
        parse_policy(POLICY.replace(*change, 1), "policy.toml")


def test_policy_error_line_points_at_the_field() -> None:
    from streams.contract.errors import ConfigurationError

    text = POLICY.replace('after = "20h"', 'after = "20x"', 1)
    with pytest.raises(ConfigurationError) as err:
        parse_policy(text, "p.toml")
    line = int(str(err.value).split(":")[1])
    assert text.splitlines()[line - 1].strip() == 'after = "20x"'


def test_state_round_trips(engine: JourneyEngine) -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    engine.on_abandonment(state, abandonment(last), last + 2 * H)
    again = CustomerState.from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes()
    assert again.next_due() == state.next_due() == last + 20 * H


@pytest.mark.parametrize("order_first", [False, True])
def test_outcome_does_not_depend_on_whether_the_order_or_the_abandonment_arrives_first(
    policy: Policy, order_first: bool
) -> None:
    engine = JourneyEngine(policy, SECRET)
    last = ms("2026-06-10T14:00:00+00:00")
    state = customer()
    later = order(last + 21 * H)
    inputs = [(last + 21 * H, later), (last + H // 2, abandonment(last))]
    out = run(engine, state, last + 200 * H, *(inputs if order_first else inputs[::-1]))
    assert [(c.channel, c.template) for c in out.commands] == [
        ("sms", "cart_sms_1"),
        ("email", "cart_email_1"),
    ]
    assert [(r.channel, r.revenue) for r in out.recoveries] == [("email", Decimal("120.00"))]
    assert reasons(out, "skipped") == [(2, "converted")]


def test_a_variant_replaces_templates_shifts_delays_and_can_drop_the_coupon() -> None:
    policy = parse_policy(
        POLICY + '[flows.cart.experiment]\nname = "e"\nholdout = 0\nvariants = [{ name = "lean", '
        'templates = { cart_sms_1 = "cart_sms_2" }, delay = "30m", incentive = false }]\n'
    )
    engine = JourneyEngine(policy, SECRET)
    last = ms("2026-06-10T14:00:00+00:00")
    out = run(engine, customer(), last + 100 * H, (last + H // 2, abandonment(last, value="300")))
    assert [c.template for c in out.commands] == ["cart_sms_2", "cart_email_1", "cart_email_2"]
    assert {c.variant for c in out.commands} == {"lean"}
    assert out.commands[0].not_before == datetime.fromtimestamp((last + H + H // 2) / 1000, tz=UTC)
    assert all("coupon" not in c.variables for c in out.commands)


# -- browse by SMS and browse incentives ----------------------------------------------------

BROWSE_SMS = (
    POLICY
    + """
[[flows.browse.steps]]
after = "4h"
channel = "sms"
template = "browse_sms_1"
expires_after = "24h"
incentive = true
enabled = ENABLED
"""
)
VIEWED = [
    {"product_id": "p9", "views": 1, "name": "Mug", "price": "9.00", "url": "https://s.example/p9"},
    {
        "product_id": "p1",
        "views": 3,
        "name": "Lamp",
        "price": "120.00",
        "url": "https://s.example/p1",
    },
    {
        "product_id": "p2",
        "views": 3,
        "name": "Desk",
        "price": "300.00",
        "url": "https://s.example/p2",
    },
]


def _browse(last: int) -> AbandonmentIn:
    return replace(abandonment(last, kind="browse"), viewed_products=VIEWED)


def test_the_browse_sms_step_is_off_until_enabled() -> None:
    last = ms("2026-06-10T14:00:00+00:00")
    off = JourneyEngine(parse_policy(BROWSE_SMS.replace("ENABLED", "false")), SECRET)
    out = run(off, customer(), last + 30 * H, (last + H // 2, _browse(last)))
    assert [(c.channel, c.template) for c in out.commands] == [("email", "browse_email_1")]
    on = JourneyEngine(parse_policy(BROWSE_SMS.replace("ENABLED", "true")), SECRET)
    out = run(on, customer(), last + 30 * H, (last + H // 2, _browse(last)))
    assert [(c.channel, c.template) for c in out.commands] == [
        ("email", "browse_email_1"),
        ("sms", "browse_sms_1"),
    ]
    sms = out.commands[1]
    # The most-viewed product (the most recent of two with 3 views) is the one linked...
    assert sms.variables["product"]["name"] == "Lamp"
    assert sms.variables["product_url"] == "https://s.example/p1"
    # ... and its price picks the coupon tier (120 -> 10 %), a browse having no cart value.
    assert sms.variables["coupon"]["percent"] == 10
    assert "coupon" not in out.commands[0].variables  # the email step offers none


def test_the_shipped_browse_sms_step_is_off() -> None:
    policy = parse_policy(default_policy_text(), "default.toml")
    (sms,) = [s for s in policy.flows["browse"].steps if s.channel == "sms"]
    assert sms.template == "browse_sms_1" and not sms.enabled


def test_enabled_must_be_true_or_false() -> None:
    from streams.contract.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"flows\.browse\.steps\[1\]\.enabled"):
        parse_policy(BROWSE_SMS.replace("ENABLED", '"yes"'), "p.toml")


# -- the SMS opt-out line: every message, or the first to a number in 30 days --------------

FIRST_IN_30 = POLICY.replace(
    'url = "https://shop.example.com"', 'url = "https://shop.example.com"\nsms_opt_out = "RULE"', 1
)
D = 24 * H


def _sms_notices(rule: str, *extra: Any) -> list[bool]:
    """Whether each SMS of three cart abandonments (days 0, 3 and 40) carries the line."""
    engine = JourneyEngine(parse_policy(FIRST_IN_30.replace("RULE", rule)), SECRET)
    state = customer()
    start = ms("2026-06-10T14:00:00+00:00")
    inputs = [
        (start + day * D + H // 2, abandonment(start + day * D, ab_id=f"ab-{day}"))
        for day in (0, 3, 40)
    ]
    out = run(engine, state, start + 50 * D, *inputs, *extra)
    sms = [c for c in out.commands if c.channel == "sms"]
    assert len(sms) == 3
    return [c.variables.get("sms_opt_out_notice", True) for c in sms]


def test_every_message_carries_the_opt_out_line_by_default() -> None:
    assert _sms_notices("every_message") == [True, True, True]


def test_first_in_30_days_tells_a_number_once_a_month() -> None:
    assert _sms_notices("first_in_30_days") == [True, False, True]


def test_a_notice_that_never_arrived_is_due_again() -> None:
    engine = JourneyEngine(parse_policy(FIRST_IN_30.replace("RULE", "first_in_30_days")), SECRET)
    state = customer()
    start = ms("2026-06-10T14:00:00+00:00")
    first = run(engine, state, start + 2 * H, (start + H // 2, abandonment(start, ab_id="ab-0")))
    (sms,) = [c for c in first.commands if c.channel == "sms"]
    assert state.notices == {"+14155550123": (start + H, sms.command_id)}
    failed = SendResult(
        command_id=sms.command_id, status="failed", provider_id=None, error_code="30003",
        attempts=1, at=datetime.fromtimestamp((start + 2 * H) / 1000, tz=UTC), channel="sms",
    )  # fmt: skip
    engine.on_result(state, failed, start + 2 * H)
    assert state.notices == {}
    again = run(
        engine, state, start + 4 * D, (start + 3 * D, abandonment(start + 3 * D, ab_id="ab-3"))
    )
    (sms,) = [c for c in again.commands if c.channel == "sms"]
    assert "sms_opt_out_notice" not in sms.variables  # carries the line again
    assert CustomerState.from_bytes(state.to_bytes()).notices == state.notices


def test_the_rule_must_be_one_of_the_two() -> None:
    from streams.contract.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"stores\.default\.sms_opt_out"):
        parse_policy(FIRST_IN_30.replace("RULE", "never"), "p.toml")


def test_an_opt_out_wins_a_tie_with_any_other_input_at_the_same_moment() -> None:
    """Found by the property test: an SMS opt-in at the very moment a browse email was due,
    applied before the email opt-out of that moment, fired the email."""
    from streams.core.journey_inputs import apply, order_key

    engine = JourneyEngine(parse_policy(POLICY), SECRET)
    state = customer()
    last = ms("2026-06-10T14:00:00+00:00")
    due = last + 2 * H  # the browse email
    inputs = [
        abandonment(last, kind="browse"),
        ConsentChange("c1", "sms", "opted_in", due, "test"),
        ConsentChange("c1", "email", "opted_out", due, "test"),
    ]
    out = Outputs()
    for _, item in sorted((order_key(item, i), item) for i, item in enumerate(inputs)):
        at = item.detected_ms if isinstance(item, AbandonmentIn) else item.recorded_ms
        out.extend(apply(engine, state, item, at))
    out.extend(engine.advance(state, last + 30 * H))
    assert [c.channel for c in out.commands] == []
    assert reasons(out, "skipped") == [(0, "opted_out")]
