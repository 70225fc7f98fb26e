"""What every key of the flow policy means: the tables docs/policy.md is generated from.

The key sets come from where the parser declares them (``TOP_KEYS`` … in
streams/core/policy.py, ``KEYS`` in streams/core/stores.py); each ``Section`` adds what a
reader needs: each key's type, default, an example and what it does. streams/tools/policy_reference.py
renders them and refuses a key the parser takes but no entry describes (or the reverse).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Final

from streams.core import incentives, policy, stores


@dataclass(frozen=True, slots=True)
class Key:
    """One key. ``default`` is Markdown (a TOML value in backticks is checked: the parser reads
    it as it reads the key's absence); ``example`` is a TOML value, a table's is its header."""

    type: str
    default: str
    example: str
    meaning: str


@dataclass(frozen=True, slots=True)
class Section:
    path: str  # as errors name it: flows.<name>.steps[]
    keys: Set[str]  # from the parser
    entries: dict[str, Key]
    about: str


REQUIRED: Final = "required"
_DURATION: Final = "duration"

SECTIONS: Final = (
    Section(
        "(top level)",
        policy.TOP_KEYS,
        {
            "mode": Key(
                "`live` \\| `dry_run`",
                '`"live"`',
                '"dry_run"',
                "`dry_run` marks every send command `dry_run`: the senders record it and deliver nothing",
            ),
            "eligibility": Key(
                "table", "`{}`", "[eligibility]", "caps and per-channel consent rules"
            ),
            "attribution": Key(
                "table",
                "`{}`",
                "[attribution]",
                "how long after a message an order counts as recovered",
            ),
            "incentives": Key(
                "table", "`{}`", "[incentives]", "coupon tiers for steps with `incentive = true`"
            ),
            "stores": Key(
                "table",
                REQUIRED,
                "[stores.default]",
                "one table per store; `default` is required (records without `store_id`)",
            ),
            "flows": Key(
                "table",
                "`{}`",
                "[flows.cart]",
                "one table per flow, named freely; flows may share a trigger (`priority` and `when` choose)",
            ),
        },
        "The document itself.",
    ),
    Section(
        "eligibility",
        policy.ELIGIBILITY_KEYS,
        {
            "max_per_day": Key(
                "integer ≥ 1",
                "`3`",
                "2",
                "messages per customer in any rolling 24 h, across all flows and channels",
            ),
            "reentry_cooldown": Key(
                _DURATION,
                '`"24h"`',
                '"48h"',
                "a customer enters the same flow at most once per this; a flow's own `reentry_cooldown` wins",
            ),
            "sms": Key("table", "`{}`", "[eligibility.sms]", "the SMS channel's rules (below)"),
            "email": Key(
                "table", "`{}`", "[eligibility.email]", "the email channel's rules (below)"
            ),
        },
        "Who may get a message, and how often.",
    ),
    Section(
        "eligibility.<channel>",
        policy.CHANNEL_KEYS,
        {
            "consent": Key(
                "`opt_in` \\| `opt_in_or_soft`",
                '`"opt_in"`',
                '"opt_in_or_soft"',
                "`opt_in_or_soft` also takes the existing-customer soft opt-in where the store allows it (`soft_opt_in`); SMS must be `opt_in`",
            ),
            "min_interval": Key(
                _DURATION,
                '`"24h"` (sms), `"16h"` (email)',
                '"12h"',
                "at least this long between two messages on the channel to one customer",
            ),
            "quiet_hours": Key(
                '`"HH:MM-HH:MM"` or `""`',
                '`"20:00-08:00"` (sms), `""` (email)',
                '"21:00-09:00"',
                'the recipient\'s local time; a step due inside is deferred to the end, not dropped; `""`: none',
            ),
        },
        "`[eligibility.sms]` and `[eligibility.email]`.",
    ),
    Section(
        "attribution",
        policy.ATTRIBUTION_KEYS,
        {
            "sms": Key(
                _DURATION, '`"1d"`', '"2d"', "an order this long after a sent SMS is a recovery"
            ),
            "email": Key(
                _DURATION,
                '`"5d"`',
                '"7d"',
                "an order this long after a sent email is a recovery; the longest window is how long a journey watches for an order",
            ),
        },
        "Which orders count as recovered by a message.",
    ),
    Section(
        "incentives",
        policy.INCENTIVE_KEYS,
        {
            "tiers": Key(
                "array of tables",
                "`[]`",
                "[[incentives.tiers]]",
                "coupon percent by cart value; the highest tier the cart reaches applies, none below the lowest",
            ),
            "valid_for": Key(
                _DURATION, '`"72h"`', '"48h"', "how long a coupon code is valid after it is issued"
            ),
            "code_prefix": Key(
                "string, up to 8 `A-Z0-9`",
                '`"CP"`',
                '"SHOP"',
                "the start of every coupon code (HMAC-signed with `CARTPULSE_COUPON_SECRET`)",
            ),
            "currency": Key(
                "ISO 4217 code",
                "unset (any currency)",
                '"USD"',
                "the currency `tiers` are written in: a cart in another currency gets the tiers of its own `[incentives.currencies.<code>]` table, or no coupon; a cart without a currency is taken to be in this one",
            ),
            "currencies": Key(
                "table",
                "`{}`",
                "[incentives.currencies.EUR]",
                "one table of `tiers` per other currency, e.g. `[incentives.currencies.EUR]`",
            ),
        },
        "Coupons offered by steps with `incentive = true`.",
    ),
    Section(
        "incentives.tiers[]",
        policy.TIER_KEYS,
        {
            "min_value": Key(
                "decimal (string or number)",
                REQUIRED,
                '"100"',
                "the cart value from which this tier applies, in the cart's currency",
            ),
            "percent": Key(
                "integer 1 to 99", "unset", "10", "the discount in percent (or give `amount`)"
            ),
            "amount": Key(
                "decimal (string or number)",
                "unset",
                '"5"',
                "a fixed discount in the table's currency (or give `percent`; exactly one)",
            ),
            "min_order": Key(
                "decimal (string or number)",
                "unset (any order)",
                '"50"',
                "the code applies only to orders of at least this (registered with the store; at most `min_value`)",
            ),
        },
        '`tiers = [{ min_value = "100", percent = 10 }, …]` or `[[incentives.tiers]]` tables.',
    ),
    Section(
        "incentives.currencies.<code>",
        incentives.CURRENCY_KEYS,
        {
            "tiers": Key(
                "array of tables",
                "`[]`",
                "[[incentives.currencies.EUR.tiers]]",
                "the tiers of carts in this currency, keys as in `incentives.tiers[]`; amounts are in this currency",
            ),
        },
        "Tiers of carts in another currency than `incentives.currency`.",
    ),
    Section(
        "stores.<id>",
        stores.KEYS,
        {
            "timezone": Key(
                "IANA time zone",
                REQUIRED,
                '"Europe/Berlin"',
                "for quiet hours and dates of shoppers without a valid zone of their own",
            ),
            "brand": Key(
                "string",
                "the store id",
                '"Kaffee & Co"',
                "the store's name in every message (`store_name`)",
            ),
            "soft_opt_in": Key(
                "boolean",
                "`false`",
                "true",
                "existing customers may get email without an explicit opt-in (`opt_in_or_soft`)",
            ),
            "url": Key(
                "`https://` URL",
                "unset",
                '"https://kaffee.example"',
                "`store_url`; the cart link when a cart has none",
            ),
            "postal_address": Key(
                "string",
                "unset",
                '"Kaffee & Co, Hauptstr. 1, 10115 Berlin"',
                "shown in every email (CAN-SPAM); `policy check` warns without it",
            ),
            "support": Key(
                "string",
                "unset",
                '"hilfe@kaffee.example"',
                "an email address, phone number or URL shoppers can reach, in every email",
            ),
            "locale": Key(
                "locale",
                '`"en"`',
                '"de-AT"',
                "the language of shoppers without one, and the templates' fallback",
            ),
            "templates": Key(
                "folder",
                "unset",
                '"templates/kaffee"',
                "the store's own template folder, relative to the policy file, searched first",
            ),
            "logo_url": Key(
                "`https://` URL",
                "unset",
                '"https://kaffee.example/logo.png"',
                "the logo at the top of every email, shown 180 px wide (give it 360 px for sharp "
                "screens); without it, the store's name",
            ),
            "accent_color": Key(
                "`#rrggbb`",
                "unset (`#0f766e`)",
                '"#7c2d12"',
                "the emails' button, rules and coupon border",
            ),
            "short_link_base": Key(
                "`https://` URL ending in `/`, ≤ 30 chars",
                "unset",
                '"https://s.kaffee.example/c/"',
                "SMS links become `<base><id>`, served by `cartpulse webhooks`; without it SMS carry the full URL",
            ),
            "sms_from": Key(
                "E.164 number or sender ID",
                "unset (`CARTPULSE_TWILIO_FROM`)",
                '"+4915155550100"',
                "the store's own number or alphanumeric sender ID (1 to 11 characters)",
            ),
            "sms_messaging_service_sid": Key(
                "`MG` + 32 hex digits",
                "unset",
                '"MG0123456789abcdef0123456789abcdef"',
                "a Twilio Messaging Service; wins over `sms_from`",
            ),
            "email_from": Key(
                "mailbox",
                "unset (`CARTPULSE_EMAIL_FROM`)",
                '"Kaffee & Co <hallo@kaffee.example>"',
                "the From of the store's emails",
            ),
            "email_reply_to": Key(
                "mailbox", "unset", '"hilfe@kaffee.example"', "the Reply-To of the store's emails"
            ),
            "low_stock_threshold": Key(
                "integer ≥ 0",
                "`5`",
                "3",
                "a product with this many or fewer in stock is shown as `low_stock` in messages",
            ),
            "coupon_provider": Key(
                "`topic` \\| `webhook` \\| `shopify`",
                '`"topic"`',
                '"shopify"',
                "who registers the store's coupon codes before a message carries one: the store's systems reading the `coupons` topic, its webhook, or its Shopify Admin API ([compliance.md](compliance.md#coupons))",
            ),
            "sms_opt_out": Key(
                "`every_message` \\| `first_in_30_days`",
                '`"every_message"`',
                '"first_in_30_days"',
                "which SMS end with the opt-out line: every one, or the first to a number in 30 days",
            ),
        },
        "What a store's messages say and who they come from; see [templates.md](templates.md#store-settings).",
    ),
    Section(
        "flows.<name>",
        policy.FLOW_KEYS,
        {
            "trigger": Key(
                "`cart` \\| `browse` \\| `checkout` \\| `price_drop` \\| `back_in_stock`",
                REQUIRED,
                '"cart"',
                "what starts this flow: a cart or browse abandonment; `checkout`: a cart abandonment that reached checkout (its checkout flows are tried before its cart flows); `price_drop`, `back_in_stock`: a product the shopper saw got cheaper or is back in stock",
            ),
            "steps": Key(
                "array of tables",
                REQUIRED,
                "[[flows.cart.steps]]",
                "the messages, in order of `after`; at least one",
            ),
            "priority": Key(
                "integer",
                "`0`",
                "10",
                "among the flows of a trigger, the highest whose `when` holds is entered; equal priorities go by name",
            ),
            "when": Key(
                "[condition](#conditions)",
                "unset (always)",
                '"cart.value >= 150.0"',
                "the abandonment enters this flow only when it holds, else the next flow of its trigger is tried",
            ),
            "lookback": Key(
                _DURATION,
                '`"14d"`',
                '"7d"',
                "`price_drop` and `back_in_stock` flows only: how long after the shopper saw a product its change still starts the flow",
            ),
            "min_drop": Key(
                'percent (`10` or `"10%"`)',
                "`10`",
                '"15%"',
                "`price_drop` flows only: the smallest drop from the price the shopper saw that starts the flow",
            ),
            "reentry_cooldown": Key(
                _DURATION,
                "the `[eligibility]` one",
                '"7d"',
                "a customer enters this flow at most once per this",
            ),
            "experiment": Key(
                "table",
                "unset (everyone gets the steps)",
                "[flows.cart.experiment]",
                "a holdout and variants for this flow",
            ),
        },
        "A journey: what an abandonment of one kind leads to. Of the flows of a trigger, an abandonment enters the first, highest `priority` first, whose `when` holds.",
    ),
    Section(
        "flows.<name>.steps[]",
        policy.STEP_KEYS,
        {
            "after": Key(_DURATION, REQUIRED, '"1h"', "delay from the shopper's last activity"),
            "channel": Key("`sms` \\| `email`", REQUIRED, '"sms"', "how the message goes"),
            "template": Key(
                "template name `[a-z0-9_-]`",
                REQUIRED,
                '"cart_sms_1"',
                "the template ([templates.md](templates.md#names)); `policy check` finds it for every store",
            ),
            "expires_after": Key(
                _DURATION,
                '`"48h"`',
                '"72h"',
                "from the last activity: a step not sent by then is dropped; longer than `after`",
            ),
            "incentive": Key("boolean", "`false`", "true", "offer a coupon from `[incentives]`"),
            "enabled": Key(
                "boolean",
                "`true`",
                "false",
                "a disabled step is never scheduled but keeps its place (ids stay stable)",
            ),
            "when": Key(
                "[condition](#conditions)",
                "unset (always sent)",
                '"!engagement.clicked"',
                "judged when the step is due: when it does not hold, the step is skipped",
            ),
        },
        "One message of a flow.",
    ),
    Section(
        "flows.<name>.experiment",
        policy.EXPERIMENT_KEYS,
        {
            "name": Key(
                "string", "the flow's name", '"cart-2024-q3"', "the experiment's name in reports"
            ),
            "holdout": Key(
                "share in [0, 1)",
                "`0.0`",
                "0.1",
                "this share of customers gets nothing: the group that measures lift",
            ),
            "variants": Key(
                "array of tables",
                '`[{ name = "control", weight = 1 }]`',
                "[[flows.cart.experiment.variants]]",
                "the groups the others are split into, by weight",
            ),
        },
        "Holdout and variants; a customer's group is stable.",
    ),
    Section(
        "flows.<name>.experiment.variants[]",
        policy.VARIANT_KEYS,
        {
            "name": Key(
                "string, not `holdout`", REQUIRED, '"short-copy"', "unique within the experiment"
            ),
            "weight": Key("number > 0", "`1`", "2", "relative share of the non-holdout customers"),
            "templates": Key(
                "table: step template → template",
                "`{}`",
                '{ cart_sms_1 = "cart_sms_1_short" }',
                "templates this variant sends instead",
            ),
            "delay": Key(_DURATION, '`"0s"`', '"30m"', "added to every step's `after`"),
            "incentive": Key("boolean", "`true`", "false", "false: this variant offers no coupon"),
        },
        "One group of an experiment.",
    ),
)
