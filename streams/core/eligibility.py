"""Eligibility , pure: consent, reachability, quiet hours, frequency caps, experiments.

Every function takes the moment it decides for (epoch ms) and returns either "allowed", the
earliest later moment at which it would be, or a reason. Time-zone math uses ``zoneinfo``:
quiet hours are wall-clock times in the recipient's zone and stay right across DST changes (a
window edge that does not exist that day, e.g. 02:30 on a spring-forward night, maps to the
first instant after the gap).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.contract.commands import E164, EMAIL, Channel
from streams.core.policy import ChannelRules, Experiment, QuietHours

DAY_MS: Final = 86_400_000
HOLDOUT: Final = "holdout"


@lru_cache(maxsize=512)
def zone_of(name: str | None) -> ZoneInfo | None:
    """The IANA zone, or None when the name is missing or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def resolve_zone(customer_zone: str | None, store_zone: str) -> ZoneInfo:
    """The recipient's zone, falling back to the store's (never silently to UTC)."""
    zone = zone_of(customer_zone) or zone_of(store_zone)
    if zone is None:  # the policy validates store zones; this is a programming error
        raise ValueError(f"store time zone {store_zone!r} is not an IANA zone")
    return zone


def _in_quiet(local: datetime, quiet: QuietHours) -> bool:
    now = local.time()
    if quiet.start < quiet.end:
        return quiet.start <= now < quiet.end
    return now >= quiet.start or now < quiet.end


def next_allowed(at_ms: int, zone: ZoneInfo, quiet: QuietHours | None) -> int:
    """``at_ms`` if it is outside the quiet window in ``zone``, else the window's end (ms)."""
    if quiet is None:
        return at_ms
    local = datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(zone)
    if not _in_quiet(local, quiet):
        return at_ms
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # the window crosses midnight: it ends tomorrow
    end = datetime.combine(day, quiet.end, tzinfo=zone)
    # Round-trip through UTC: a wall time inside a DST gap becomes the first real instant.
    end_ms = int(end.astimezone(UTC).timestamp() * 1000)
    return max(end_ms, at_ms)


def cap_free_at(
    sends: Sequence[tuple[str, int]],
    channel: Channel,
    at_ms: int,
    rules: ChannelRules,
    max_per_day: int,
) -> tuple[int, str | None]:
    """The earliest moment ≥ ``at_ms`` the frequency caps allow, and which cap held it back.

    ``sends`` are (channel, epoch ms) of messages already sent to the customer, any flow.
    """
    free, reason = at_ms, None
    same = [t for ch, t in sends if ch == channel and t > at_ms - rules.min_interval_ms]
    if same:
        free, reason = max(same) + rules.min_interval_ms, f"{channel}_cap"
    recent = sorted(t for _, t in sends if t > at_ms - DAY_MS)
    if len(recent) >= max_per_day:
        # The window frees once enough of the oldest sends have aged out of it.
        daily = recent[len(recent) - max_per_day] + DAY_MS
        if daily > free:
            free, reason = daily, "daily_cap"
    return free, reason


def address_for(channel: Channel, phone: str | None, email: str | None) -> str | None:
    """The customer's usable address on ``channel``, or None."""
    if channel == "sms":
        return phone if phone and E164.match(phone) else None
    return email if email and EMAIL.match(email) else None


def consent_reason(
    channel: Channel,
    status: str | None,
    rules: ChannelRules,
    soft_opt_in_allowed: bool,
    existing_customer: bool,
) -> str | None:
    """None when the channel may be used; else why not (a decision reason)."""
    if status == "opted_out":
        return "opted_out"
    if status == "opted_in":
        return None
    if (
        channel == "email"
        and rules.consent == "opt_in_or_soft"
        and soft_opt_in_allowed
        and existing_customer
    ):
        return None
    return "no_consent"


def unit_hash(*parts: str) -> float:
    """A stable number in [0, 1) from ``parts``."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_variant(experiment: Experiment | None, customer_id: str) -> str:
    """Sticky assignment of a customer: ``holdout`` or a variant name, by weight."""
    if experiment is None:
        return "control"
    u = unit_hash(experiment.name, customer_id)
    if u < experiment.holdout:
        return HOLDOUT
    u = (u - experiment.holdout) / (1 - experiment.holdout)
    total = sum(v.weight for v in experiment.variants)
    point = u * total
    for variant in experiment.variants:
        point -= variant.weight
        if point < 0:
            return variant.name
    return experiment.variants[-1].name


def coupon_code(secret: bytes, journey_id: str, prefix: str) -> str:
    """A unique, single-use code for one journey: HMAC of the journey id, 12 base32 chars."""
    digest = hmac.new(secret, journey_id.encode(), hashlib.sha256).digest()
    body = base64.b32encode(digest).decode().rstrip("=")[:12]
    return f"{prefix}-{body}" if prefix else body
