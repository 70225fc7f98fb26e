"""Coupon tiers per currency (streams/core/incentives.py) and the coupon a step carries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contract.coupons import issued_coupon
from streams.contract.errors import ConfigurationError
from streams.core.incentives import Incentives, Offer, Tier
from streams.core.journey_state import Journey, StepState
from streams.core.messages import coupon_for
from streams.core.policy import parse_policy
from streams.runtime.policy_file import default_policy_text

BASE = default_policy_text()
HEAD, _, REST = BASE.partition("[incentives]")
_, _, TAIL = REST.partition("[stores.default]")


def policy_with(incentives: str) -> str:
    return f"{HEAD}{incentives}\n[stores.default]{TAIL}"


EUR_AND_USD = """
[incentives]
currency = "USD"
tiers = [{ min_value = "100", percent = 10 }, { min_value = "250", percent = 15 }]

[incentives.currencies.EUR]
tiers = [
  { min_value = "90", percent = 10 },
  { min_value = "230", amount = "30", min_order = "200" },
]
"""


@pytest.mark.parametrize(
    ("value", "currency", "offer"),
    [
        ("99.99", "USD", None),
        ("100", "USD", Offer(10, None, "USD", None)),
        ("300", "USD", Offer(15, None, "USD", None)),
        ("100", None, Offer(10, None, "USD", None)),  # no currency: the default tiers' one
        ("95", "EUR", Offer(10, None, "EUR", None)),
        ("230", "EUR", Offer(None, Decimal("30"), "EUR", Decimal("200"))),
        ("89", "EUR", None),
        ("100000", "JPY", None),  # no tiers are written in yen: no coupon, whatever the value
    ],
)
def test_each_currency_is_judged_by_its_own_tiers(
    value: str, currency: str | None, offer: Offer | None
) -> None:
    incentives = parse_policy(policy_with(EUR_AND_USD)).incentives
    assert incentives.offer_for(Decimal(value), currency) == offer


def test_tiers_without_a_currency_apply_to_every_currency_as_before() -> None:
    incentives = parse_policy(
        policy_with('[incentives]\ntiers = [{ min_value = "100", percent = 10 }]\n')
    ).incentives
    assert incentives.currency is None
    assert incentives.offer_for(Decimal("100"), "GBP") == Offer(10, None, "GBP", None)
    assert incentives.offer_for(Decimal("100"), None) == Offer(10, None, None, None)


@pytest.mark.parametrize(
    ("incentives", "error"),
    [
        ('[incentives]\ntiers = [{ min_value = "10", percent = 5, amount = "2" }]', "exactly one"),
        ('[incentives]\ntiers = [{ min_value = "10" }]', "exactly one"),
        ('[incentives]\ntiers = [{ min_value = "10", amount = "2" }]', "needs a currency"),
        ('[incentives]\ntiers = [{ min_value = "10", percent = 5, min_order = "5" }]', "currency"),
        (
            '[incentives]\ncurrency = "USD"\ntiers = [{ min_value = "10", percent = 5, '
            'min_order = "50" }]',
            "above min_value",
        ),
        ('[incentives]\ncurrency = "usd"', "ISO 4217"),
        ("[incentives.currencies.EURO]\ntiers = []", "ISO 4217"),
        ('[incentives]\ncurrency = "EUR"\n[incentives.currencies.EUR]\ntiers = []', "default"),
        ('[incentives]\ncurrency = "EUR"\ntiers = [{ min_value = "10", amount = "0" }]', "than 0"),
        ("[incentives.currencies.EUR]\nrate = 1", "rate"),
    ],
)
def test_a_tier_the_checkout_could_refuse_is_refused_at_load(incentives: str, error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        parse_policy(policy_with(incentives))


@given(
    tiers=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 99)), min_size=1, max_size=6),
    value=st.decimals(min_value=0, max_value=20_000, places=2),
)
def test_the_offer_is_the_highest_tier_the_value_reaches(
    tiers: list[tuple[int, int]], value: Decimal
) -> None:
    ordered = tuple(
        sorted((Tier(Decimal(m), p) for m, p in tiers), key=lambda t: t.min_value, reverse=True)
    )
    offer = Incentives(ordered, 1, "CP", "USD").offer_for(value, "USD")
    reached = [t for t in ordered if value >= t.min_value]
    assert offer == (Offer(reached[0].percent, None, "USD", None) if reached else None)


def journey(cart: dict[str, object]) -> Journey:
    return Journey(
        journey_id="jr-1", flow="cart", kind="cart", abandonment_id="ab-1", session_id="s1",
        store_id="default", started_ms=0, ends_ms=10, variant="control",
        checkout_started=False, cart=cart, viewed_products=[], steps=[],
    )  # fmt: skip


def test_an_amount_coupon_carries_its_currency_and_minimum_order() -> None:
    policy = parse_policy(policy_with(EUR_AND_USD))
    flow = policy.flows["cart"]
    index = next(i for i, s in enumerate(flow.steps) if s.incentive)
    coupon = coupon_for(
        policy, b"k", journey({"value": "240", "currency": "EUR"}), StepState(index, 0, 10)
    )
    assert coupon is not None
    assert set(coupon) == {"code", "amount", "currency", "min_order", "expires_at"}
    assert (coupon["amount"], coupon["currency"], coupon["min_order"]) == ("30", "EUR", "200")
    usd = coupon_for(
        policy, b"k", journey({"value": "240", "currency": "usd"}), StepState(index, 0, 10)
    )
    assert usd is not None and (usd["percent"], usd["currency"]) == (10, "USD")
    assert (
        coupon_for(
            policy, b"k", journey({"value": "900", "currency": "JPY"}), StepState(index, 0, 10)
        )
        is None
    )


def test_the_issued_record_is_the_commands_coupon() -> None:
    from tests.support.emails import sample_command

    command = sample_command("cart_email_2", "de")
    record = issued_coupon(command)
    assert record is not None
    coupon = command.variables["coupon"]
    assert (record.code, record.percent, record.currency) == (
        coupon["code"], coupon["percent"], coupon["currency"],
    )  # fmt: skip
    assert (record.status, record.single_use, record.issued_at) == (
        "issued", True, command.created_at,
    )  # fmt: skip
    assert record.to_dict()["expires_at"] == coupon["expires_at"]
