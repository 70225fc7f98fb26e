"""The ``topic`` provider: the ``coupons`` topic itself is the registration.

The store's own systems consume ``coupons`` (compacted, keyed by code) and create each code.
Without acks (the default) a code counts as registered once its ``issued`` record is on the
topic; with ``CARTPULSE_COUPON_TOPIC_ACK`` only once the store writes the code back with
status ``registered`` (``pending`` until then), so nothing is sent before the store has it.
"""

from __future__ import annotations

from datetime import datetime

from senders.coupons.ports import Registration
from streams.contract.coupons import CouponRecord


class TopicProvider:
    name = "topic"

    def __init__(self, ack: bool) -> None:
        self._ack = ack

    async def register(self, coupon: CouponRecord, now: datetime) -> Registration:
        if self._ack:
            return Registration("pending")
        return Registration("registered", "on the coupons topic")

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
