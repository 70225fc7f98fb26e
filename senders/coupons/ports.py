"""The ports of the coupon registrar and the senders' coupon gate."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from streams.contract.coupons import CouponRecord

RegistrationKind = Literal["registered", "refused", "retry", "pending"]
Redemption = Literal["unknown", "first", "same", "reuse", "repeat"]


@dataclass(frozen=True, slots=True)
class Registration:
    """What a provider said about one code.

    ``registered``: the store honours it (``detail``: the store's id for it); ``refused``: it
    never will (``detail``: why; the coupon becomes unavailable); ``retry``: ask again later,
    after ``retry_after`` seconds when the provider said so; ``pending``: the store will say
    itself (the topic provider with acks)."""

    kind: RegistrationKind
    detail: str | None = None
    retry_after: float | None = None


class CouponProvider(Protocol):
    """One way of telling a store about its codes. ``register`` never raises for provider
    trouble (it maps it to ``retry`` or ``refused``) and is idempotent by code."""

    @property
    def name(self) -> str: ...

    async def register(self, coupon: CouponRecord, now: datetime) -> Registration: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class CouponStates(Protocol):
    """Each code's state (the newest record of the highest rank), shared by every process."""

    async def get(self, code: str) -> CouponRecord | None:
        """The code's state, or None when nobody issued it (or it was forgotten)."""
        ...

    async def put(self, record: CouponRecord) -> CouponRecord:
        """Keep ``record`` unless a record of a higher rank is kept; returns the kept one.
        Before it, the code is noted under each customer the record names (their pseudonym),
        where an erasure finds it (``ErasableCoupons``)."""
        ...

    async def erased(self, customers: Collection[str]) -> dict[str, str]:
        """Those of ``customers`` whose id an erasure retired, each with their pseudonym."""
        ...

    async def unindex(self, code: str, subjects: Collection[str]) -> None:
        """Forget that ``code`` names the customers of these pseudonyms (it no longer does)."""
        ...

    async def redeem(self, code: str, order_id: str) -> Redemption:
        """Record that ``order_id`` used ``code``: the first order to use it, the same order
        again, another order (a reuse), that other order again, or a code nobody issued."""
        ...


class ErasableCoupons(CouponStates, Protocol):
    """The states, and the codes noted under each customer's pseudonym (``put``)."""

    async def codes_of(self, subject: str) -> dict[str, int]:
        """The codes whose records named the customer ``subject``, each with its expiry (ms)."""
        ...

    async def drop_index(self, subject: str) -> None:
        """Forget the codes noted under ``subject`` (an erasure rewrote them)."""
        ...
