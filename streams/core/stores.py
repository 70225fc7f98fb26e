"""The policy's stores: what each store's messages say and who they come from (pure).

``[stores.<id>]`` tables of the flow policy (docs/semantics.md, Messages; docs/templates.md
lists every key). ``default`` is required: it is the store of records without a ``store_id``
and the zone of recipients whose own zone is unknown. Errors name the file, the line and the
field (``Reader.fail``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.contract.commands import LOCALE
from streams.core.policy_reader import Reader

KEYS: Final = frozenset(
    {"timezone", "brand", "soft_opt_in", "url", "postal_address", "support", "locale"}
    | {"templates", "logo_url", "accent_color", "short_link_base"}
    | {"sms_from", "sms_messaging_service_sid", "email_from", "email_reply_to", "sms_opt_out"}
    | {"low_stock_threshold", "coupon_provider"}
)
OptOutRule = Literal["every_message", "first_in_30_days"]
OPT_OUT_RULES: Final[tuple[OptOutRule, ...]] = ("every_message", "first_in_30_days")
# Who registers the store's coupon codes before a message may carry one (senders/coupons).
CouponProvider = Literal["topic", "webhook", "shopify"]
COUPON_PROVIDERS: Final[tuple[CouponProvider, ...]] = ("topic", "webhook", "shopify")
NOTICE_WINDOW_MS: Final = 30 * 86_400_000  # first_in_30_days: the notice is due again after
MAX_SHORT_LINK_BASE: Final = 30  # leaves 10 characters of id in a 40-character link
_E164: Final = re.compile(r"^\+[1-9]\d{7,14}$")
_ALPHANUMERIC_ID: Final = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")  # Twilio's rule
_MESSAGING_SERVICE: Final = re.compile(r"^MG[0-9a-fA-F]{32}$")
_SHORT_BASE: Final = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]*)*/$")


@dataclass(frozen=True, slots=True)
class Store:
    store_id: str
    timezone: str
    brand: str
    soft_opt_in: bool
    url: str | None = None
    postal_address: str | None = None  # every commercial email shows it (CAN-SPAM)
    support: str | None = None  # a contact shoppers can reach: email, phone or URL
    locale: str = "en"  # for shoppers whose own locale is unknown, and the templates' fallback
    templates: str | None = None  # the store's template folder (relative to the policy file)
    logo_url: str | None = None  # the logo at the top of every email
    accent_color: str | None = None  # "#rrggbb": the emails' button and rules
    short_link_base: str | None = None  # SMS links become <base><id>, served by the webhooks
    sms_from: str | None = None  # the store's own number or sender ID, else the settings'
    sms_messaging_service_sid: str | None = None
    email_from: str | None = None  # "Name <address>", else CARTPULSE_EMAIL_FROM
    email_reply_to: str | None = None
    # every_message: each SMS ends with the opt-out line; first_in_30_days: the first SMS to a
    # number in 30 days does (the journey engine decides, in event time)
    sms_opt_out: OptOutRule = "every_message"
    # a line whose inventory is at or under this is marked low_stock in messages
    low_stock_threshold: int = 5
    # topic: the coupons topic is the registration (the store's systems consume it);
    # webhook / shopify: cartpulse registers each code (docs/compliance.md, Coupons)
    coupon_provider: CouponProvider = "topic"


def parse_stores(r: Reader, data: Mapping[str, Any]) -> dict[str, Store]:
    """Every ``[stores.<id>]`` table; raises ``ConfigurationError`` naming line and field."""
    stores: dict[str, Store] = {}
    for store_id, raw in data.items():
        path = f"stores.{store_id}"
        if not isinstance(raw, dict):
            raise r.fail(path, "must be a table")
        r.known(raw, KEYS, path)
        zone = r.string(raw, "timezone", f"{path}.timezone", None)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise r.fail(f"{path}.timezone", f"{zone!r} is not an IANA time zone") from None
        soft = raw.get("soft_opt_in", False)
        if not isinstance(soft, bool):
            raise r.fail(f"{path}.soft_opt_in", "must be true or false")
        low_stock = raw.get("low_stock_threshold", 5)
        if not isinstance(low_stock, int) or isinstance(low_stock, bool) or low_stock < 0:
            raise r.fail(f"{path}.low_stock_threshold", f"{low_stock!r} must be an integer >= 0")
        url = raw.get("url")
        if url is not None and not (isinstance(url, str) and url.startswith("https://")):
            raise r.fail(f"{path}.url", "must be an https:// URL")
        locale = raw.get("locale", "en")
        if not isinstance(locale, str) or not LOCALE.match(locale):
            raise r.fail(f"{path}.locale", f"{locale!r} is not a locale like 'en' or 'de-AT'")
        stores[store_id] = Store(
            store_id=store_id,
            timezone=zone,
            brand=r.string(raw, "brand", f"{path}.brand", store_id),
            soft_opt_in=soft,
            url=url,
            postal_address=_text(r, raw, "postal_address", path),
            support=_text(r, raw, "support", path),
            locale=locale,
            templates=_text(r, raw, "templates", path),
            logo_url=r.https_url(raw, "logo_url", path),
            accent_color=r.color(raw, "accent_color", path),
            short_link_base=_short_link_base(r, raw, path),
            sms_from=_sms_from(r, raw, path),
            sms_messaging_service_sid=r.optional_string(
                raw,
                "sms_messaging_service_sid",
                path,
                _MESSAGING_SERVICE.match,
                "is not MG + 32 hex digits",
            ),
            email_from=_mailbox(r, raw, "email_from", path),
            email_reply_to=_mailbox(r, raw, "email_reply_to", path),
            sms_opt_out=_opt_out_rule(r, raw, path),
            low_stock_threshold=low_stock,
            coupon_provider=_coupon_provider(r, raw, path),
        )
    if "default" not in stores:
        raise r.fail(
            "stores.default",
            "is required: the time zone for recipients whose own zone is unknown",
        )
    return stores


def _text(r: Reader, raw: Mapping[str, Any], key: str, path: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise r.fail(f"{path}.{key}", "must be a non-empty string")
    return " ".join(value.split())


def _sms_from(r: Reader, raw: Mapping[str, Any], path: str) -> str | None:
    return r.optional_string(
        raw,
        "sms_from",
        path,
        lambda value: _E164.match(value) or _ALPHANUMERIC_ID.match(value),
        "is neither an E.164 number (+14155550100) nor an alphanumeric sender ID (1-11 letters, "
        "digits or spaces, at least one letter)",
    )


def _mailbox(r: Reader, raw: Mapping[str, Any], key: str, path: str) -> str | None:
    return r.optional_string(
        raw, key, path, _is_mailbox, "is not an address like 'Shop <shop@example.com>'"
    )


def _is_mailbox(value: str) -> bool:
    lines = "\n" in value or "\r" in value  # header injection
    return not lines and "@" in parseaddr(value)[1]


def _short_link_base(r: Reader, raw: Mapping[str, Any], path: str) -> str | None:
    value = r.optional_string(
        raw,
        "short_link_base",
        path,
        _SHORT_BASE.match,
        "is not an https:// URL ending in '/', like 'https://s.shop.example/c/'",
    )
    if value is not None and len(value) > MAX_SHORT_LINK_BASE:
        raise r.fail(
            f"{path}.short_link_base",
            f"is {len(value)} characters: at most {MAX_SHORT_LINK_BASE}, so a link stays within "
            "40 with its id",
        )
    return value


def _opt_out_rule(r: Reader, raw: Mapping[str, Any], path: str) -> OptOutRule:
    value = raw.get("sms_opt_out", "every_message")
    for rule in OPT_OUT_RULES:
        if value == rule:
            return rule
    raise r.fail(f"{path}.sms_opt_out", f"{value!r} must be one of {list(OPT_OUT_RULES)}")


def _coupon_provider(r: Reader, raw: Mapping[str, Any], path: str) -> CouponProvider:
    value = raw.get("coupon_provider", "topic")
    for provider in COUPON_PROVIDERS:
        if value == provider:
            return provider
    raise r.fail(f"{path}.coupon_provider", f"{value!r} must be one of {list(COUPON_PROVIDERS)}")
