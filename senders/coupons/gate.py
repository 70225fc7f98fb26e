"""Whether a command's coupon may go out now (pure): the senders' side of "registered first".

A message with a coupon is sent only while the store honours exactly that code: registered,
with the same offer the message states, not expired and not used yet. Until it is registered
the command waits, at most ``wait`` seconds after it was created and never past the coupon's
or the command's expiry; then it is not sent (``coupon_unavailable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from streams.contract.commands import SendCommand
from streams.contract.coupons import CouponRecord, normal_code
from streams.contract.errors import InvalidRecord
from streams.contract.events import parse_time

UNAVAILABLE = "coupon_unavailable"  # the send result's error_code, the journeys' skip reason


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["send", "wait", "unavailable"]
    until: float | None = None  # wait: the last moment worth waiting for (epoch seconds)
    reason: str | None = None  # unavailable: why, for the logs


def coupon_of(command: SendCommand) -> Mapping[str, Any] | None:
    coupon = command.variables.get("coupon")
    return coupon if isinstance(coupon, dict) and coupon.get("code") else None


def verdict(
    coupon: Mapping[str, Any],
    state: CouponRecord | None,
    command: SendCommand,
    now: float,
    wait: float,
) -> Verdict:
    """What to do with ``command`` whose coupon is ``coupon``, the store's view being ``state``."""
    try:
        expires = parse_time(coupon.get("expires_at"), "coupon.expires_at") / 1000
    except InvalidRecord:
        return Verdict("unavailable", reason="the command's coupon has no valid expires_at")
    if now >= expires:
        return Verdict("unavailable", reason="expired")
    if state is None or state.status == "issued":
        deadline = min(
            command.created_at.timestamp() + wait, expires, command.expires_at.timestamp()
        )
        if now >= deadline:
            return Verdict("unavailable", reason="not registered in time")
        return Verdict("wait", until=deadline)
    if state.status == "unavailable":
        return Verdict("unavailable", reason=state.reason or "refused by the store")
    if state.status != "registered":
        return Verdict("unavailable", reason=f"already {state.status}")
    if normal_code(state.code) != normal_code(str(coupon["code"])) or not same_offer(coupon, state):
        # Another step of the journey offered the same code on other terms: the store
        # honours the first, so this message would promise what the checkout won't give.
        return Verdict("unavailable", reason="registered with another offer")
    return Verdict("send")


def same_offer(coupon: Mapping[str, Any], state: CouponRecord) -> bool:
    """Whether the command's coupon states what the store registered."""
    return (
        coupon.get("percent") == state.percent
        and _amount(coupon.get("amount")) == state.amount
        and coupon.get("currency") == state.currency
        and _amount(coupon.get("min_order")) == state.min_order
    )


def _amount(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal("NaN")
