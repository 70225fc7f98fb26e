"""What an erasure keeps of a customer's journey state: the addresses whose opt-out must
survive it (docs/compliance.md, Erasure). Pure: no Faust, Kafka or clock."""

from __future__ import annotations

from streams.core.journey_state import CustomerState
from streams.models.commands import CHANNELS, Channel


def opted_out_addresses(state: CustomerState) -> list[tuple[Channel, str]]:
    """Every address the state knows on each channel the customer had opted out of: the
    profile's phone or email, an address a send result called undeliverable, and (SMS) each
    number an opt-out notice went to. Sorted, each once; nothing for a channel without an
    opt-out (an erasure keeps only what honours a "no")."""
    kept: list[tuple[Channel, str]] = []
    for channel in CHANNELS:
        consent = state.consents.get(channel)
        if consent is None or consent[0] != "opted_out":
            continue
        addresses: set[str] = set()
        profile = state.profile
        if profile is not None:
            address = profile.phone if channel == "sms" else profile.email
            if address:
                addresses.add(address)
        if undeliverable := state.undeliverable.get(channel):
            addresses.add(undeliverable)
        if channel == "sms":
            addresses.update(state.notices)
        kept.extend((channel, address) for address in sorted(addresses))
    return kept
