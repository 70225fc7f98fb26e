"""Coupon tiers of the flow policy, per currency (docs/semantics.md, Incentives), pure.

``[incentives]`` holds the default ``tiers`` (in ``currency`` when it is set; in any currency
when it is not) and ``[incentives.currencies.<ISO 4217>]`` tables with tiers of their own. A
tier gives ``percent`` off or a fixed ``amount`` off (in its table's currency), optionally only
on orders of at least ``min_order``. ``Incentives.offer_for(value, currency)`` is the offer a
cart of that value and currency earns, or None: a cart in a currency no table covers gets no
coupon, since a threshold written in dollars means nothing in yen.

Errors name the file, the line and the field (``Reader.fail``), like the rest of the policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from streams.core.policy_reader import Reader

INCENTIVE_KEYS: Final = frozenset({"tiers", "valid_for", "code_prefix", "currency", "currencies"})
CURRENCY_KEYS: Final = frozenset({"tiers"})
TIER_KEYS: Final = frozenset({"min_value", "percent", "amount", "min_order"})
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class Tier:
    """From ``min_value`` on: ``percent`` off, or ``amount`` off (exactly one of them)."""

    min_value: Decimal
    percent: int | None = None
    amount: Decimal | None = None
    min_order: Decimal | None = None  # the order must reach this for the code to apply


@dataclass(frozen=True, slots=True)
class Offer:
    """What a cart earns: the store registers exactly this (senders/coupons)."""

    percent: int | None
    amount: Decimal | None
    currency: str | None  # None: tiers without a currency, and a cart without one
    min_order: Decimal | None


@dataclass(frozen=True, slots=True)
class Incentives:
    tiers: tuple[Tier, ...]  # the default tiers, by min_value, descending
    valid_for_ms: int
    code_prefix: str
    currency: str | None = None  # what the default tiers are in; None: any currency
    by_currency: Mapping[str, tuple[Tier, ...]] = field(default_factory=dict)

    def offer_for(self, value: Decimal | None, currency: str | None) -> Offer | None:
        """The highest tier ``value`` reaches among the tiers of ``currency`` (a cart whose
        currency is unknown is taken to be in the default tiers' currency); None below the
        lowest, without a value, or in a currency no tiers are written for."""
        if value is None:
            return None
        tiers, currency = self.tiers_for(currency)
        for tier in tiers:
            if value >= tier.min_value:
                return Offer(tier.percent, tier.amount, currency, tier.min_order)
        return None

    def tiers_for(self, currency: str | None) -> tuple[tuple[Tier, ...], str | None]:
        """The tiers a cart in ``currency`` is judged by, and the coupon's currency."""
        if currency is not None and currency in self.by_currency:
            return self.by_currency[currency], currency
        if currency is None or self.currency is None or currency == self.currency:
            return self.tiers, currency or self.currency
        return (), currency

    def percent_for(self, value: Decimal | None) -> int | None:
        """The default tiers' percent for ``value`` (None for an amount tier)."""
        offer = self.offer_for(value, None)
        return offer.percent if offer is not None else None


def parse_incentives(r: Reader, data: Mapping[str, Any]) -> Incentives:
    """The ``[incentives]`` table; raises ``ConfigurationError`` naming line and field."""
    r.known(data, INCENTIVE_KEYS, "incentives")
    currency = data.get("currency")
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.match(currency)):
        raise r.fail("incentives.currency", f"{currency!r} is not an ISO 4217 code like 'USD'")
    tiers = _tiers(r, data.get("tiers", []), "incentives.tiers", currency)
    by_currency: dict[str, tuple[Tier, ...]] = {}
    for code, table in r.table(data, "currencies", "incentives.currencies").items():
        path = f"incentives.currencies.{code}"
        if not _CURRENCY.match(code):
            raise r.fail(path, f"{code!r} is not an ISO 4217 code like 'EUR'")
        if not isinstance(table, dict):
            raise r.fail(path, "must be a table with its own tiers")
        r.known(table, CURRENCY_KEYS, path)
        if code == currency:
            raise r.fail(path, f"{code} is incentives.currency already: its tiers are the default")
        by_currency[code] = _tiers(r, table.get("tiers", []), f"{path}.tiers", code)
    prefix = data.get("code_prefix", "CP")
    if not isinstance(prefix, str) or not re.match(r"^[A-Z0-9]{0,8}$", prefix):
        raise r.fail("incentives.code_prefix", "up to 8 capital letters or digits")
    return Incentives(
        tiers,
        r.duration(data, "valid_for", "incentives.valid_for", "72h"),
        prefix,
        currency,
        by_currency,
    )


def _tiers(r: Reader, raw: object, path: str, currency: str | None) -> tuple[Tier, ...]:
    if not isinstance(raw, list):
        raise r.fail(path, "must be a list of {min_value, percent} or {min_value, amount}")
    tiers = [_tier(r, item, f"{path}[{i}]", currency) for i, item in enumerate(raw)]
    return tuple(sorted(tiers, key=lambda t: t.min_value, reverse=True))


def _tier(r: Reader, item: object, path: str, currency: str | None) -> Tier:
    if not isinstance(item, dict):
        raise r.fail(path, "must be {min_value = ..., percent = ...}")
    r.known(item, TIER_KEYS, path)
    minimum = _decimal(r, item.get("min_value"), f"{path}.min_value")
    if minimum is None:
        raise r.fail(f"{path}.min_value", "is required: the cart value the tier starts at")
    if ("percent" in item) == ("amount" in item):
        raise r.fail(path, "give exactly one of percent (off) and amount (off)")
    percent = item.get("percent")
    if percent is not None and (
        not isinstance(percent, int) or isinstance(percent, bool) or not 0 < percent < 100
    ):
        raise r.fail(f"{path}.percent", "must be an integer between 1 and 99")
    amount = _decimal(r, item.get("amount"), f"{path}.amount")
    if amount is not None and amount <= 0:
        raise r.fail(f"{path}.amount", "must be more than 0")
    min_order = _decimal(r, item.get("min_order"), f"{path}.min_order")
    for key, value in (("amount", amount), ("min_order", min_order)):
        if value is not None and currency is None:
            raise r.fail(
                f"{path}.{key}",
                f"{key} is money and needs a currency: set incentives.currency, or write the "
                "tier under [incentives.currencies.<code>]",
            )
    if min_order is not None and min_order > minimum:
        # The cart that earned the tier could not use its code: the checkout would refuse it.
        raise r.fail(f"{path}.min_order", f"is above min_value ({minimum})")
    return Tier(minimum, percent, amount, min_order)


def _decimal(r: Reader, value: object, path: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise r.fail(path, "must be a decimal amount")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise r.fail(path, "must be a decimal amount") from None
    if not number.is_finite() or number < 0:
        raise r.fail(path, "must be a decimal amount of 0 or more")
    return number
