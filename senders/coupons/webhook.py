"""The ``webhook`` provider: POST each coupon to the store, signed, idempotent by code.

The body is the coupon's ``issued`` record, the JSON the ``coupons`` topic holds. Headers:

* ``X-Cartpulse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
  (``sign``; the store checks it and refuses old timestamps, so a captured request cannot be
  replayed later);
* ``Idempotency-Key: <code>``: the same code is POSTed again after a timeout or a restart,
  and must create it once;
* ``X-Cartpulse-Event: coupon.issued``.

The store answers 2xx (created, or already there) or 409 (already there): registered. 408,
425, 429 and 5xx, a timeout or a refused connection: retried with back-off (``Retry-After``
honoured). Any other 4xx: the store refuses the code, which becomes unavailable.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import aiohttp

from senders.core.outcomes import retry_after_seconds
from senders.coupons.ports import Registration
from streams.contract.coupons import CouponRecord
from streams.contract.errors import ConfigurationError
from streams.runtime.settings import Settings

RETRY_STATUSES = frozenset({408, 425, 429})
SIGNATURE_HEADER = "X-Cartpulse-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (Stripe's scheme)."""
    mac = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookProvider:
    name = "webhook"

    def __init__(self, settings: Settings) -> None:
        if not settings.coupon_webhook_url or not settings.coupon_webhook_secret.get_secret_value():
            raise ConfigurationError(
                "a store's coupon_provider is webhook: set CARTPULSE_COUPON_WEBHOOK_URL and "
                "CARTPULSE_COUPON_WEBHOOK_SECRET"
            )
        self._url = settings.coupon_webhook_url
        self._secret = settings.coupon_webhook_secret.get_secret_value().encode()
        self._timeout = aiohttp.ClientTimeout(total=settings.coupon_webhook_timeout.total_seconds())
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def register(self, coupon: CouponRecord, now: datetime) -> Registration:
        assert self._session is not None, "start() first"  # noqa: S101 - a wiring error
        body = coupon.to_json()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, int(now.timestamp()), body),
            "Idempotency-Key": coupon.code,
            "X-Cartpulse-Event": "coupon.issued",
        }
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                status = response.status
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                text = (await response.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Registration("retry", f"webhook unreachable: {type(exc).__name__}")
        if 200 <= status < 300 or status == 409:
            return Registration("registered", f"webhook {status}")
        if status in RETRY_STATUSES or status >= 500:
            return Registration("retry", f"webhook {status}", wait)
        return Registration("refused", f"webhook {status}: {text}".strip())
