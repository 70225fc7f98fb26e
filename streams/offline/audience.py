"""The simulated shoppers' profiles and consents: who the journeys can message, and how.

``cartpulse simulate`` puts known shoppers on its events as ``cust-0`` … ``cust-<shoppers-1>``
(``customer_id``); ``audience`` gives each of them a profile for the ``customers`` topic and a
consent record per channel for ``consents`` (docs/semantics.md), in the topics' shapes. Pure
and deterministic: a shopper's record depends on the seed and its index only, never on how many
shoppers there are, so a bigger audience keeps the smaller one's shoppers as they were.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from streams.contract.commands import CHANNELS, Channel
from streams.contract.events import format_ms
from streams.contract.topics import Topic

# Numbers are +1 415 555 0000 on: E.164 with ten national digits up to this many shoppers.
MAX_SHOPPERS: Final = 1_000_000
FIRST_NAMES: Final = (
    "Ada", "Ben", "Chloe", "Diego", "Emma", "Farah", "Grace", "Hiro", "Ines", "Jack",
    "Kemi", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara",
)  # fmt: skip
SHOP_URL: Final = "https://shop.example.com"

AudienceTopic = Literal[Topic.CUSTOMERS, Topic.CONSENTS]


def customer_id(index: int) -> str:
    """The id ``cartpulse simulate`` gives shopper ``index``."""
    return f"cust-{index}"


def phone_of(index: int) -> str:
    return f"+1{4_155_550_000 + index}"


def email_of(index: int) -> str:
    return f"shopper{index}@example.com"


@dataclass(frozen=True, slots=True)
class AudienceConfig:
    shoppers: int
    recorded_at_ms: int  # when the consents were given (``recorded_at``)
    seed: int = 1
    sms_opt_in: float = 0.7  # share of shoppers opted in to SMS; the others opted out
    email_opt_in: float = 0.85
    locale: str = "en"
    timezone: str = "America/New_York"

    def __post_init__(self) -> None:
        if not 1 <= self.shoppers <= MAX_SHOPPERS:
            raise ValueError(f"shoppers must be between 1 and {MAX_SHOPPERS:,}")
        if not (0 <= self.sms_opt_in <= 1 and 0 <= self.email_opt_in <= 1):
            raise ValueError("opt-in shares must be within [0, 1]")

    def opt_in_share(self, channel: Channel) -> float:
        return self.sms_opt_in if channel == "sms" else self.email_opt_in


@dataclass(frozen=True, slots=True)
class AudienceRecord:
    """One record to produce: its topic, its key and its JSON-ready value."""

    topic: AudienceTopic
    key: str
    value: dict[str, Any]


def audience(config: AudienceConfig) -> Iterator[AudienceRecord]:
    """Per shopper in index order: the profile, then the SMS and the email consent."""
    for index in range(config.shoppers):
        # A string seed is hashed with SHA-512: the same in every process and Python run.
        rng = random.Random(f"audience:{config.seed}:{index}")  # noqa: S311 - not a secret
        cid = customer_id(index)
        yield AudienceRecord(Topic.CUSTOMERS, cid, _profile(config, index, rng))
        for channel in CHANNELS:
            opted_in = rng.random() < config.opt_in_share(channel)
            yield AudienceRecord(
                Topic.CONSENTS, f"{cid}:{channel}", _consent(config, cid, channel, opted_in)
            )


def _profile(config: AudienceConfig, index: int, rng: random.Random) -> dict[str, Any]:
    return {
        "customer_id": customer_id(index),
        "phone": phone_of(index),
        "email": email_of(index),
        "first_name": rng.choice(FIRST_NAMES),
        "locale": config.locale,
        "timezone": config.timezone,
        "country": "US",
    }


def _consent(config: AudienceConfig, cid: str, channel: Channel, opted_in: bool) -> dict[str, Any]:
    # The ledger keeps how each consent was given (TCPA asks for its source and time).
    if opted_in:
        source = "checkout_sms_checkbox" if channel == "sms" else "account_signup"
        evidence: dict[str, Any] = {"form": f"{SHOP_URL}/checkout", "checkbox": "checked"}
    else:
        source = "preference_center"
        evidence = {"form": f"{SHOP_URL}/account/preferences", "checkbox": "unchecked"}
    return {
        "customer_id": cid,
        "channel": channel,
        "status": "opted_in" if opted_in else "opted_out",
        "source": source,
        "recorded_at": format_ms(config.recorded_at_ms),
        "evidence": {**evidence, "simulated": True},
    }
