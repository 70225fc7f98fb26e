"""In-memory stand-ins for ports the senders and the webhooks share (unit tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from senders.adapters.consents import (
    Consent,
    ConsentUpdate,
    address_subject,
    deciding,
    erased_subject,
    suppressed_subject,
)
from streams.contract.commands import Channel
from streams.contract.privacy import Pseudonyms


@dataclass
class MemoryConsents:
    """``Consents`` in memory: consents by (customer id or address subject, channel), and the
    undeliverable marks by (channel, address) with the provider's code, as ``ConsentStore``
    keys them."""

    consents: dict[tuple[str, str], Consent] = field(default_factory=dict)
    undeliverable: dict[tuple[str, str], str] = field(default_factory=dict)
    pseudonyms: Pseudonyms = field(default_factory=Pseudonyms)

    async def standing(
        self, customer_id: str, channel: Channel, address: str
    ) -> tuple[Consent | None, bool]:
        names, held = self.pseudonyms, self.consents
        number = held.get((address_subject(address), channel)) if channel == "sms" else None
        consent = deciding(
            held.get((customer_id, channel)),
            number,
            held.get((suppressed_subject(names, address), channel)),
            held.get((erased_subject(names, customer_id), channel)),
        )
        return consent, (channel, address) in self.undeliverable

    async def apply(self, update: ConsentUpdate, tombstone_at_ms: int | None = None) -> bool:
        if update.consent is None:
            return self.consents.pop((update.customer_id, update.channel), None) is not None
        self.consents[(update.customer_id, update.channel)] = update.consent
        return True

    async def mark_undeliverable(self, channel: Channel, address: str, code: str) -> None:
        self.undeliverable[(channel, address)] = code
