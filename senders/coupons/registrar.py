"""What a ``coupons`` or an ``orders`` record does to the coupons (``cartpulse coupons``).

``Registrar`` talks only to its ports: the providers, the states (Redis), ``emit`` (the
``coupons`` topic) and a clock. Every step is idempotent, so a redelivered record is harmless:

* An ``issued`` record is kept in the states; when the kept state is still ``issued``, the
  store's provider registers the code. ``registered`` / ``refused`` become the ``registered`` /
  ``unavailable`` record (kept, then emitted); ``retry`` hands back the seconds to wait (the
  shell pauses the partition, nothing sleeps long); a code still not registered when no
  sender waits for it any more becomes ``unavailable`` (``gave_up``). An ``issued`` record of
  a code already further along (a replay) re-emits the kept state, so the topic's latest
  record stays the truth.
* Any other record (ours coming back, or a store's ack) is kept unless a later state is.
* A completed order's discount codes: the first order to use a code redeems it (``redeemed``,
  with the order); another order using it again is a reuse (``reused``, listed in the record,
  counted, logged as ``coupon_reused``). Codes cartpulse never issued are counted, not kept.
* A state naming a customer whose id an erasure retired is kept and emitted again without
  them (``forgetting.py``; checked after each emit, or after keeping a record it does not
  emit); such a code still ``issued`` is not registered: it becomes ``unavailable`` (no
  message of an erased customer is sent).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from senders.core.outcomes import backoff
from senders.coupons.forgetting import keep_without
from senders.coupons.ports import CouponProvider, CouponStates, Registration
from senders.runtime.metrics import CouponMetrics
from streams.contract.coupons import MAX_REUSES, CouponRecord, Reuse, normal_code
from streams.core.policy import Policy

log = logging.getLogger(__name__)

Emit = Callable[[CouponRecord], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OrderUse:
    """The discount codes of one completed order."""

    order_id: str
    customer_id: str | None
    codes: tuple[str, ...]
    at: datetime


class Registrar:
    def __init__(
        self,
        policy: Policy,
        providers: Mapping[str, CouponProvider],
        states: CouponStates,
        emit: Emit,
        metrics: CouponMetrics,
        *,
        wait: timedelta,
        retry_base: float = 0.5,
        retry_max: float = 60.0,
    ) -> None:
        self._policy = policy
        self._providers = providers
        self._states = states
        self._emit = emit
        self._metrics = metrics
        self._wait = wait
        self._retry_base = retry_base
        self._retry_max = retry_max

    def provider_for(self, store_id: str) -> CouponProvider:
        return self._providers[self._policy.store(store_id).coupon_provider]

    async def on_coupon(self, record: CouponRecord, attempts: int, now: datetime) -> float | None:
        """Handle one ``coupons`` record; None when done, else seconds until it is tried again
        (``attempts``: how often it was tried already)."""
        kept = await self._states.put(record)
        if record.status != "issued":
            outcome = "mirrored" if kept.rank == record.rank else "stale"
        else:
            outcome = "issued"
        self._metrics.records.labels(outcome).inc()
        if (clean := await self._without_erased(kept, record)) is not None:
            if clean.status == "issued":  # never sent: the senders refuse an erased customer
                await self._move(clean, "unavailable", now, reason="the customer was erased")
            else:
                await self._emit(clean)
            return None
        if record.status != "issued":
            return None
        if kept.status != "issued":
            if kept != record:  # the topic said issued again: say where the code really is
                await self._emit(kept)
            return None
        provider = self.provider_for(record.store_id)
        if now >= record.expires_at:
            await self._move(record, "unavailable", now, reason="expired before it was registered")
            return None
        answer = await provider.register(record, now)
        self._metrics.registrations.labels(provider.name, answer.kind).inc()
        if answer.kind == "registered":
            await self._move(record, "registered", now, provider=provider.name)
        elif answer.kind == "refused":
            log.warning("coupon %s refused by %s: %s", record.code, provider.name, answer.detail)
            await self._move(
                record, "unavailable", now, provider=provider.name, reason=answer.detail
            )
        elif answer.kind == "retry":
            return await self._retry(record, provider, answer, attempts, now)
        return None

    async def _retry(
        self,
        record: CouponRecord,
        provider: CouponProvider,
        answer: Registration,
        attempts: int,
        now: datetime,
    ) -> float | None:
        # Past this no sender holds a message for the code: registering it would serve nobody.
        give_up = min(record.issued_at + self._wait, record.expires_at)
        delay = max(
            answer.retry_after or 0.0, backoff(attempts + 1, self._retry_base, self._retry_max)
        )
        if now + timedelta(seconds=delay) >= give_up:
            self._metrics.registrations.labels(provider.name, "gave_up").inc()
            reason = f"{provider.name} unreachable: {answer.detail}"
            log.warning("coupon %s: %s; giving up", record.code, reason)
            await self._move(record, "unavailable", now, provider=provider.name, reason=reason)
            return None
        log.info("coupon %s: %s; again in %.1f s", record.code, answer.detail, delay)
        return delay

    async def _move(
        self, record: CouponRecord, status: str, now: datetime, **fields: object
    ) -> None:
        if status == "registered":
            fields["registered_at"] = now
        moved = record.moved(status, now, **fields)  # type: ignore[arg-type]  # a CouponStatus
        await self._keep(moved)

    async def _keep(self, record: CouponRecord) -> None:
        """Keep ``record`` and emit the state kept; then, if it names a customer an erasure
        retired meanwhile, the state without them (``forgetting.py`` says why in this order)."""
        kept = await self._states.put(record)
        await self._emit(kept)
        if (clean := await self._without_erased(kept, record)) is not None:
            await self._emit(clean)

    async def _without_erased(
        self, kept: CouponRecord, record: CouponRecord
    ) -> CouponRecord | None:
        """When ``kept`` or ``record`` names a customer whose id is retired: the state kept
        without them; else None."""
        erased = await self._states.erased(kept.customers | record.customers)
        if not erased:
            return None
        self._metrics.records.labels("erased").inc()
        return await keep_without(self._states, kept, erased)

    async def on_order(self, order: OrderUse) -> None:
        """Redeem the order's codes, or report their reuse."""
        for raw in dict.fromkeys(normal_code(c) for c in order.codes):
            outcome = await self._states.redeem(raw, order.order_id)
            if outcome == "unknown":
                self._metrics.redemptions.labels("foreign").inc()
                continue
            kept = await self._states.get(raw)
            if kept is None:  # expired from Redis between the two calls
                continue
            if outcome in ("first", "same"):
                if kept.status in ("redeemed", "reused"):
                    self._metrics.redemptions.labels("repeat").inc()
                    continue
                moved = kept.moved(
                    "redeemed", datetime.now(UTC), redeemed_order_id=order.order_id,
                    redeemed_by=order.customer_id, redeemed_at=order.at,
                )  # fmt: skip
                self._metrics.redemptions.labels("redeemed").inc()
            else:  # reuse, or a reuse seen again whose record may not have been written
                if any(r.order_id == order.order_id for r in kept.reuses) or (
                    outcome == "repeat" and len(kept.reuses) >= MAX_REUSES
                ):
                    self._metrics.redemptions.labels("repeat").inc()
                    continue
                reuse = Reuse(order_id=order.order_id, customer_id=order.customer_id, at=order.at)
                moved = kept.moved(
                    "reused", datetime.now(UTC), reuses=(*kept.reuses, reuse)[-MAX_REUSES:]
                )
                self._metrics.redemptions.labels("reused").inc()
                log.warning(
                    "coupon_reused: code %s, redeemed by order %s, used again by order %s",
                    raw, kept.redeemed_order_id, order.order_id,
                )  # fmt: skip
            await self._keep(moved)
