"""What an erasure keeps of a customer's journey state: the addresses whose opt-out must
survive it (docs/compliance.md, Erasure). Pure: no Faust, Kafka or clock."""

from __future__ import annotations

from streams.contract.commands import CHANNELS, Channel
from streams.contract.errors import InvalidRecord
from streams.contract.journey import parse_consent
from streams.core.journey_state import CustomerState


def opted_out_addresses(state: CustomerState) -> list[tuple[Channel, str]]:
    """Every address the state knows on each channel the customer had opted out of: the
    profile's phone or email, an address a send result called undeliverable, and (SMS) each
    number an opt-out notice went to. Sorted, each once; nothing for a channel without an
    opt-out (an erasure keeps only what honours a "no")."""
    kept: list[tuple[Channel, str]] = []
    statements = _latest_consents(state)
    for channel in CHANNELS:
        if statements.get(channel, ("", 0))[0] != "opted_out":
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


def _latest_consents(state: CustomerState) -> dict[str, tuple[str, int]]:
    """Per channel, the customer's latest statement: those applied, and those the worker still
    holds until its clock reaches them (an opt-out recorded just before the erasure counts)."""
    latest = {channel: (status, at) for channel, (status, at, _) in state.consents.items()}
    for held in state.held:
        if held.source != "consents" or not held.key or not held.value:
            continue
        try:
            change = parse_consent(held.key.encode(), held.value.encode())
        except InvalidRecord:
            continue
        if change.status is None:
            continue
        current = latest.get(change.channel)
        newer = current is None or change.recorded_ms > current[1]
        tie_out = current is not None and change.recorded_ms == current[1]
        if newer or (tie_out and change.status == "opted_out"):
            latest[change.channel] = (change.status, change.recorded_ms)
    return latest
