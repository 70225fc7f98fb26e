"""Coupons that name an erased customer, written again without them (docs/compliance.md,
Erasure).

Two sides, one rule (``CouponRecord.without``: the customer becomes their pseudonym, the code,
offer, status and times stay):

* ``CouponErasure`` is the senders' part (senders/runtime/erasure.py): for an open erasure it
rewrites
  every code noted under the customer's pseudonym (``ErasableCoupons.codes_of``), in Redis
  and on ``coupons`` (same key, so compaction keeps only the rewritten record), then drops the
  index. A code Redis no longer holds and whose coupon expired more than ``retention`` ago is
  deleted from ``coupons`` (a tombstone: nothing is left to honour); one not yet kept (the
  registrar has not read it yet) is left to the registrar.
* The registrar (``registrar.py``) checks each state it keeps after it emitted it: one naming
  a customer whose id is retired is kept and emitted again without them.

Why nothing is missed: the erasure retires the id in Redis (``erased:<pseudonym>``) before it
reads the index, and the registrar notes a code in the index before it keeps its state and
checks after it emitted it. So a state the registrar kept before the id was retired is in the
index the erasure reads, and its record on ``coupons`` is older than the erasure's; one kept
after is rewritten by the registrar itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from senders.coupons.ports import CouponStates, ErasableCoupons
from streams.contract.coupons import CouponRecord

log = logging.getLogger(__name__)

MAX_REWRITES = 8  # a state that keeps moving on is rewritten again, this often at most

# the code's record on ``coupons`` (None: a tombstone); returns once Kafka acknowledged it
EmitCode = Callable[[str, bytes | None], Awaitable[object]]


async def keep_without(
    states: CouponStates, record: CouponRecord, erased: Mapping[str, str]
) -> CouponRecord:
    """Keep ``record`` without the customers of ``erased`` (id → pseudonym) and return the
    state kept. A later state kept meanwhile (it outranks the rewrite) is rewritten in turn,
    so the state returned names none of them."""
    kept = record
    for _ in range(MAX_REWRITES):
        clean = kept.without(erased)
        kept = await states.put(clean)
        if not kept.customers & erased.keys():
            break
    await states.unindex(record.code, erased.values())
    return kept


class CouponErasure:
    """The coupons of one erased customer (see the module docstring)."""

    def __init__(self, states: ErasableCoupons, emit: EmitCode, retention: timedelta) -> None:
        self._states = states
        self._emit = emit
        self._retention_ms = int(retention.total_seconds() * 1000)

    async def forget(self, customer_id: str, subject: str, now_ms: int) -> dict[str, int]:
        """Rewrite every code noted under ``subject`` without ``customer_id``; the customer's
        id must already be retired in Redis. Returns how many codes were rewritten and
        deleted. Raises what Redis or Kafka raise (the caller repeats the whole erasure)."""
        erased = {customer_id: subject}
        rewritten = deleted = 0
        for code, expires_ms in sorted((await self._states.codes_of(subject)).items()):
            state = await self._states.get(code)
            if state is not None:
                kept = await keep_without(self._states, state, erased)
                await self._emit(kept.code, kept.to_json())
                rewritten += 1
            elif expires_ms + self._retention_ms < now_ms:
                await self._emit(code, None)
                deleted += 1
            else:  # noted, not kept yet: the registrar rewrites it when it keeps it
                log.info("coupon %s: not kept yet; the registrar rewrites it", code)
        await self._states.drop_index(subject)
        return {"coupons": rewritten, "coupons_deleted": deleted}
