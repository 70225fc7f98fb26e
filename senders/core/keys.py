"""Every Redis key the senders and the consent mirror use, in one place.

Keys a single Lua script touches together share a Redis Cluster hash tag (the part in ``{}``),
so the script runs on one shard: the rate limiter keys of one channel and account. Every other
script touches one key. Addresses (phone numbers, emails) are hashed before they become part of
a key: key names show up in monitoring tools and must not leak PII.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from streams.contract.errors import ConfigurationError


def _tag_safe(value: str) -> str:
    return value.replace("{", "(").replace("}", ")")


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "cartpulse:"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError(
                "CARTPULSE_REDIS_KEY_PREFIX may not contain braces: they are Redis Cluster "
                "hash tags"
            )

    def ledger(self, command_id: str) -> str:
        return f"{self.prefix}ledger:{_tag_safe(command_id)}"

    def limiter(self, channel: str, account: str, scope: str, identity: str) -> str:
        """One GCRA state; every limiter key of (channel, account) is in one hash slot."""
        tag = _tag_safe(f"rl:{channel}:{account}")
        return f"{self.prefix}{{{tag}}}:{scope}:{_tag_safe(identity)}"

    def consent(self, customer_id: str, channel: str) -> str:
        return f"{self.prefix}consent:{_tag_safe(customer_id)}:{channel}"

    def consent_history(self, customer_id: str, channel: str) -> str:
        """The store-written consents records of a key the mirror appended to the history (a
        hash: ``recorded_at:status`` → history id; ``senders.runtime.mirror_history``)."""
        return f"{self.prefix}consent-history:{_tag_safe(customer_id)}:{channel}"

    def erasable(self, subject: str) -> str:
        """Every key the senders wrote that names a customer, by the customer's pseudonym
        (a set: phone-index and short-link keys), so an erasure finds them
        (senders/runtime/erasure.py)."""
        return f"{self.prefix}erasable:{_tag_safe(subject)}"

    def coupons_of(self, subject: str) -> str:
        """The codes whose coupon records name a customer, by the customer's pseudonym (a hash:
        code → the coupon's expiry, epoch ms; no expiry of its own, as the ``coupons`` topic
        keeps a code's record for good), so an erasure rewrites each
        (senders/runtime/erasure.py)."""
        return f"{self.prefix}coupons-of:{_tag_safe(subject)}"

    def undeliverable(self, channel: str, address: str) -> str:
        return f"{self.prefix}undeliverable:{channel}:{address_hash(address)}"

    def phone(self, address: str) -> str:
        """The customers the SMS sender texted at ``address`` (a sorted set, newest last)."""
        return f"{self.prefix}phone:{address_hash(address)}"

    def short_link(self, link_id: str) -> str:
        """What a short SMS link resolves to (``senders.messages.short_links``; ids are base62)."""
        return f"{self.prefix}short:{_tag_safe(link_id)}"

    def mirror_heartbeat(self) -> str:
        """When the consent mirror was last caught up, per partition (a hash; ``heartbeat.py``)."""
        return f"{self.prefix}mirror:heartbeat"

    def webhook_seen(self, scope: str, fingerprint: str) -> str:
        """A provider callback already handled (Twilio retries its webhooks)."""
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
        return f"{self.prefix}webhook:{scope}:{digest}"


def address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def mask_address(address: str) -> str:
    """``+14155550123`` → ``+1415*****23``; ``ann@example.com`` → ``a**@example.com``."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}{'*' * max(len(local) - 1, 2)}@{domain}"
    keep = 5 if len(address) > 9 else 2
    return f"{address[:keep]}{'*' * max(len(address) - keep - 2, 1)}{address[-2:]}"
