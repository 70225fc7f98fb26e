"""In-memory stand-ins for ports the senders and the webhooks share (unit tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from senders.consents import Consent, ConsentUpdate, address_subject, newest
from streams.models.commands import Channel


@dataclass
class MemoryConsents:
    """``Consents`` in memory: consents by (customer id or address subject, channel), and the
    undeliverable marks by (channel, address) with the provider's code, as ``ConsentStore``
    keys them."""

    consents: dict[tuple[str, str], Consent] = field(default_factory=dict)
    undeliverable: dict[tuple[str, str], str] = field(default_factory=dict)

    async def standing(
        self, customer_id: str, channel: Channel, address: str
    ) -> tuple[Consent | None, bool]:
        consent = self.consents.get((customer_id, channel))
        if channel == "sms":
            consent = newest(consent, self.consents.get((address_subject(address), channel)))
        return consent, (channel, address) in self.undeliverable

    async def apply(self, update: ConsentUpdate, tombstone_at_ms: int | None = None) -> bool:
        if update.consent is None:
            return self.consents.pop((update.customer_id, update.channel), None) is not None
        self.consents[(update.customer_id, update.channel)] = update.consent
        return True

    async def mark_undeliverable(self, channel: Channel, address: str, code: str) -> None:
        self.undeliverable[(channel, address)] = code
