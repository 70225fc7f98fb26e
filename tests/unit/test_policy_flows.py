"""The policy's flows a marketer writes: several flows per trigger, priorities, ``when``
conditions, the catalogue keys, per-flow cooldowns; every refusal names the file, the line
and the flow; and ``cartpulse policy check`` prints them as an outline."""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

import pytest

from streams.cli.policy import outline, run_check
from streams.contract.errors import ConfigurationError
from streams.core.policy import DEFAULT_LOOKBACK_MS, Policy, parse_policy
from streams.runtime.settings import Settings

D = 86_400_000

POLICY = """\
[eligibility]
reentry_cooldown = "24h"

[stores.default]
timezone = "Europe/Berlin"
postal_address = "Shop, Street 1, Berlin"

[flows.cart]
trigger = "cart"

[[flows.cart.steps]]
after = "1h"
channel = "email"
template = "cart_email_1"

[flows.vip]
trigger = "cart"
priority = 10
when = "cart.value >= 150 && 'vip' in customer.tags"
reentry_cooldown = "3d"

[[flows.vip.steps]]
after = "30m"
channel = "email"
template = "cart_email_vip_1"

[[flows.vip.steps]]
after = 86400
channel = "email"
template = "cart_email_2"
incentive = true
when = "!engagement.clicked"

[[flows.vip.steps]]
after = "2d"
channel = "sms"
template = "cart_sms_1"
enabled = false
expires_after = "72h"

[flows.big]
trigger = "cart"
priority = 10
when = "cart.value >= 500.0"

[[flows.big.steps]]
after = "1h"
channel = "email"
template = "cart_email_vip_1"

[flows.checkout]
trigger = "checkout"

[[flows.checkout.steps]]
after = "45m"
channel = "email"
template = "checkout_email_1"

[flows.drop]
trigger = "price_drop"
min_drop = "15%"
lookback = "7d"

[[flows.drop.steps]]
after = "0s"
channel = "email"
template = "price_drop_email_1"

[flows.back]
trigger = "back_in_stock"

[[flows.back.steps]]
after = "10m"
channel = "email"
template = "back_in_stock_email_1"
"""


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY, "p.toml")


def test_flows_of_a_trigger_go_highest_priority_first_then_by_name(policy: Policy) -> None:
    assert [f.name for f in policy.flows_for("cart")] == ["big", "vip", "cart"]
    assert [f.name for f in policy.flows_for("checkout")] == ["checkout"]
    assert policy.flows_for("browse") == ()


def test_the_new_flow_keys_are_read(policy: Policy) -> None:
    vip, cart, drop, back = (policy.flows[n] for n in ("vip", "cart", "drop", "back"))
    assert (vip.priority, cart.priority) == (10, 0)
    assert vip.when is not None and vip.when.source.startswith("cart.value >= 150")
    assert cart.when is None
    assert (vip.reentry_cooldown_ms, cart.reentry_cooldown_ms) == (3 * D, None)
    assert (policy.reentry_cooldown_for(vip), policy.reentry_cooldown_for(cart)) == (3 * D, D)
    assert (drop.min_drop, drop.lookback_ms) == (Decimal("0.15"), 7 * D)
    assert (back.min_drop, back.lookback_ms) == (Decimal("0.10"), DEFAULT_LOOKBACK_MS)
    assert DEFAULT_LOOKBACK_MS == 14 * D


def test_a_step_condition_and_its_delay_as_written_are_read(policy: Policy) -> None:
    steps = policy.flows["vip"].steps
    assert [s.when.source if s.when else None for s in steps] == [
        None,
        "!engagement.clicked",
        None,
    ]
    assert [s.after_text for s in steps] == ["30m", "86400s", "2d"]
    assert steps[1].after_ms == D


@pytest.mark.parametrize(
    ("written", "fraction"),
    [("10", "0.10"), ('"10%"', "0.10"), ('"12.5 %"', "0.125"), ("2.5", "0.025"), ("99", "0.99")],
)
def test_min_drop_is_a_percentage_kept_as_a_fraction(written: str, fraction: str) -> None:
    text = POLICY.replace('min_drop = "15%"', f"min_drop = {written}")
    assert parse_policy(text).flows["drop"].min_drop == Decimal(fraction)


def test_equal_priorities_on_one_trigger_are_allowed() -> None:
    text = POLICY.replace('priority = 10\nwhen = "cart.value >= 500.0"', "priority = 0")
    assert [f.name for f in parse_policy(text).flows_for("cart")] == ["vip", "big", "cart"]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(needle))


REFUSALS = [
    # (replace, with, path in the message, what it says, the line it points at)
    ('trigger = "price_drop"', 'trigger = "drop"', "flows.drop.trigger", "must be one of", None),
    ("priority = 10\nwhen = \"cart.value >= 150", 'priority = "high"\nwhen = "cart.value >= 150',
     "flows.vip.priority", "must be an integer", 'priority = "high"'),
    ("priority = 10\nwhen = \"cart.value >= 150", "priority = true\nwhen = \"cart.value >= 150",
     "flows.vip.priority", "must be an integer", "priority = true"),
    ('reentry_cooldown = "3d"', 'lookback = "3d"', "flows.vip.lookback",
     "only price_drop and back_in_stock flows take it, not cart", 'lookback = "3d"'),
    ('reentry_cooldown = "3d"', "min_drop = 5", "flows.vip.min_drop",
     "only price_drop flows take it, not cart", "min_drop = 5"),
    ('trigger = "back_in_stock"', 'trigger = "back_in_stock"\nmin_drop = 5', "flows.back.min_drop",
     "only price_drop flows take it, not back_in_stock", "min_drop = 5"),
    ('min_drop = "15%"', "min_drop = 0", "flows.drop.min_drop", "not a percentage", "min_drop = 0"),
    ('min_drop = "15%"', "min_drop = 100", "flows.drop.min_drop", "not a percentage", None),
    ('min_drop = "15%"', 'min_drop = "ten"', "flows.drop.min_drop", "'ten' is not a percentage", None),
    ('min_drop = "15%"', "min_drop = true", "flows.drop.min_drop", "not a percentage", None),
    ('lookback = "7d"', 'lookback = "0s"', "flows.drop.lookback", "must be longer than 0", None),
    ('lookback = "7d"', 'lookback = "a week"', "flows.drop.lookback", "not a duration", None),
    ('reentry_cooldown = "3d"', 'reentry_cooldown = "soon"', "flows.vip.reentry_cooldown",
     "not a duration", None),
    ('when = "cart.value >= 150 &&', 'when = "cart.value >= 150 &&&', "flows.vip.when",
     "is not valid CEL", None),
    ("'vip' in customer.tags\"", "'vip' in customer.tag\"", "flows.vip.when",
     "customer has no field 'tag' (did you mean 'tags'?)", None),
    ("'vip' in customer.tags\"", "'vip' in shopper.tags\"", "flows.vip.when",
     "unknown name 'shopper'", None),
    ('when = "cart.value >= 500.0"', 'when = "cart.value + 1 > 500.0"', "flows.big.when",
     "CEL does not mix int and double", None),
    ('when = "cart.value >= 500.0"', 'when = "cart.value"', "flows.big.when",
     "gave 0.0, not true or false", None),
    ('when = "cart.value >= 500.0"', "when = 500", "flows.big.when", "must be a CEL expression", None),
    ('when = "cart.value >= 500.0"', 'when = " "', "flows.big.when", "must be a CEL expression", None),
    ('when = "!engagement.clicked"', 'when = "!engagement.click"', "flows.vip.steps[1].when",
     "engagement has no field 'click'", 'when = "!engagement.click"'),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "path", "says", "line"), REFUSALS)
def test_each_refusal_names_the_file_the_line_and_the_flow(
    old: str, new: str, path: str, says: str, line: str | None
) -> None:
    assert POLICY.count(old) == 1, old
    text = POLICY.replace(old, new)
    with pytest.raises(ConfigurationError) as err:
        parse_policy(text, "p.toml")
    message = str(err.value)
    at = int(message.split(":")[1])
    assert message.startswith(f"p.toml:{at}: {path}: "), message
    assert says in message
    assert "\n" not in message
    # the line of the key itself, else one of the flow's lines
    if line is not None:
        assert at == line_of(text, line)
    flow = path.split(".")[1]
    assert at >= line_of(text, f"[flows.{flow}]")


def test_a_flow_with_two_conditions_is_toml_s_own_error() -> None:
    text = POLICY.replace('when = "!engagement.clicked"', 'when = "true"\nwhen = "false"')
    with pytest.raises(ConfigurationError, match=r"p\.toml: not valid TOML"):
        parse_policy(text, "p.toml")


def test_the_outline_lists_flows_per_trigger_in_the_order_they_are_tried(policy: Policy) -> None:
    assert outline(policy) == [
        "",
        "trigger cart:",
        "  1. big: priority 10, when cart.value >= 500.0",
        "       after 1h  email  cart_email_vip_1  no coupon  enabled  always",
        "  2. vip: priority 10, when cart.value >= 150 && 'vip' in customer.tags, "
        "reentry_cooldown 3d",
        "       after 30m     email  cart_email_vip_1  no coupon  enabled   always",
        "       after 86400s  email  cart_email_2      coupon     enabled   when !engagement.clicked",
        "       after 2d      sms    cart_sms_1        no coupon  disabled  always",
        "  3. cart: priority 0, always",
        "       after 1h  email  cart_email_1  no coupon  enabled  always",
        "",
        "trigger checkout (then the cart flows):",
        "  1. checkout: priority 0, always",
        "       after 45m  email  checkout_email_1  no coupon  enabled  always",
        "",
        "trigger price_drop:",
        "  1. drop: priority 0, always, min_drop 15%, lookback 7d",
        "       after 0s  email  price_drop_email_1  no coupon  enabled  always",
        "",
        "trigger back_in_stock:",
        "  1. back: priority 0, always, lookback 14d",
        "       after 10m  email  back_in_stock_email_1  no coupon  enabled  always",
    ]


def test_the_outline_shows_an_experiment_and_one_line_per_condition() -> None:
    text = POLICY.replace(
        'when = "cart.value >= 500.0"', 'when = """\ncart.value >= 500.0\n  && true"""'
    )
    text += '[flows.big.experiment]\nname = "big-q3"\nholdout = 0.25\n'
    text += 'variants = [{ name = "a" }, { name = "b" }]\n'
    lines = outline(parse_policy(text))
    assert lines[2] == (
        "  1. big: priority 10, when cart.value >= 500.0 && true, "
        "experiment big-q3 (holdout 25%; a, b)"
    )


def test_policy_check_prints_the_outline_after_the_summary_and_keeps_its_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "p.toml"
    source.write_text(POLICY)
    args = argparse.Namespace(file=source, templates_dir=None, strict=True)
    code = run_check(args, Settings(coupon_secret="", click_secret=""))  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(f"{source}: valid; flows: cart (cart, 1 step), vip (cart, 3 steps)")
    assert lines[1:] == outline(parse_policy(POLICY))
    # a coupon step without CARTPULSE_COUPON_SECRET: a warning, so --strict exits 1
    assert "CARTPULSE_COUPON_SECRET is not set" in err
    assert code == 1
