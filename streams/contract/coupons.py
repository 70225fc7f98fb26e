"""The ``coupons`` topic's records: one coupon's whole state, keyed by its code (compacted).

A coupon is ``issued`` by the journeys (with the command that carries it), ``registered`` with
the store by ``cartpulse coupons`` (or ``unavailable`` when the store refused it), then
``redeemed`` by the first order that used it and ``reused`` when another order used it again
(docs/compliance.md, Coupons). Each record carries everything known so far, so the topic's
latest record of a code is its state; ``rank`` orders the states, so a late or replayed record
never moves a coupon back.

A record names its customer (``customer_id``), and may name others (the customer of the order
that redeemed it, of each reuse). Once a customer is erased, every record naming them is
written again ``without`` them: the code, store, offer, status, times and orders stay (what
the store needs to honour or refuse the code); its own customer's id becomes their pseudonym
(``subject``) and the journey and command ids (which lead back to the customer) are left out;
an order's customer who was erased is left out (the order id stays).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.contract.commands import Id, SendCommand, UtcTime, format_time
from streams.contract.errors import InvalidRecord
from streams.contract.json_record import json_object

CouponStatus = Literal["issued", "registered", "unavailable", "redeemed", "reused"]
RANKS: Final[dict[str, int]] = {
    "issued": 0,
    "unavailable": 1,
    "registered": 2,
    "redeemed": 3,
    "reused": 4,
}
MAX_REUSES: Final = 32  # reuses kept in a record (all are counted and reported)
CODE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def normal_code(code: str) -> str:
    """Codes are case-insensitive at checkout (Shopify's are): compare them upper-cased."""
    return code.strip().upper()


class Reuse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: str
    customer_id: str | None = None  # the order's customer (left out once erased)
    at: UtcTime


class CouponRecord(BaseModel):
    """One coupon, as far as it has come. Validates itself; ``percent`` xor ``amount``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str
    customer_id: Id | None = None  # left out once the customer is erased: ``subject`` then
    subject: str | None = None  # the erased customer's pseudonym (``Pseudonyms.customer``)
    journey_id: Id | None = None  # left out once the customer is erased
    store_id: Id
    command_id: str | None = None
    percent: int | None = Field(None, ge=1, le=99)
    amount: Decimal | None = Field(None, gt=0)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    min_order: Decimal | None = Field(None, ge=0)
    single_use: bool = True
    expires_at: UtcTime
    issued_at: UtcTime
    status: CouponStatus = "issued"
    provider: str | None = None  # who registered it: topic, webhook, shopify, store
    registered_at: UtcTime | None = None
    reason: str | None = Field(None, max_length=500)  # why it is unavailable
    redeemed_order_id: str | None = None
    redeemed_by: str | None = None  # the customer of that order (left out once erased)
    redeemed_at: UtcTime | None = None
    reuses: tuple[Reuse, ...] = ()
    updated_at: UtcTime | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not CODE.match(value):
            raise ValueError("a coupon code is 1 to 64 of A-Z, a-z, 0-9, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _offer(self) -> CouponRecord:
        if self.customer_id is None and self.subject is None:
            raise ValueError("a coupon names its customer_id (or, once erased, its subject)")
        if (self.percent is None) == (self.amount is None):
            raise ValueError("a coupon takes off a percent or an amount: exactly one")
        if self.amount is not None and self.currency is None:
            raise ValueError("an amount coupon needs its currency")
        return self

    @property
    def rank(self) -> int:
        """Later states rank higher; among reused records, the one with more reuses."""
        return RANKS[self.status] * 1000 + min(len(self.reuses), 999)

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="python", exclude_none=True)
        for key in ("expires_at", "issued_at", "registered_at", "redeemed_at", "updated_at"):
            if key in data:
                data[key] = format_time(data[key])
        for key in ("amount", "min_order"):
            if key in data:
                data[key] = str(data[key])
        data["reuses"] = [
            {**r.model_dump(exclude_none=True), "at": format_time(r.at)} for r in self.reuses
        ]
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def moved(self, status: CouponStatus, at: datetime, **fields: Any) -> CouponRecord:
        """This coupon in ``status`` from ``at`` on (validated again)."""
        return CouponRecord.model_validate(
            {**self.model_dump(), **fields, "status": status, "updated_at": at}
        )

    @property
    def customers(self) -> frozenset[str]:
        """Every customer id the record names: its own, the redeeming order's, the reuses'."""
        named = {self.customer_id, self.redeemed_by, *(r.customer_id for r in self.reuses)}
        return frozenset(c for c in named if c)

    def without(self, erased: Mapping[str, str]) -> CouponRecord:
        """This record naming none of ``erased`` (customer id → pseudonym): the record's own
        customer becomes its ``subject`` (their pseudonym), without the journey and command
        ids; an order's customer is left out. Everything else (code, store, offer, status,
        times, order ids) stays as it is."""
        if not self.customers & erased.keys():
            return self
        fields: dict[str, Any] = {}
        if self.customer_id is not None and self.customer_id in erased:
            fields |= {
                "customer_id": None, "subject": erased[self.customer_id],
                "journey_id": None, "command_id": None,
            }  # fmt: skip
        if self.redeemed_by in erased:
            fields["redeemed_by"] = None
        fields["reuses"] = tuple(
            r.model_copy(update={"customer_id": None}) if r.customer_id in erased else r
            for r in self.reuses
        )
        return CouponRecord.model_validate({**self.model_dump(), **fields})


def parse_coupon(raw: bytes | None) -> CouponRecord:
    """A ``coupons`` record; raises ``InvalidRecord`` with the reason."""
    if raw is None:
        raise InvalidRecord("a coupon record needs a value (tombstones are not coupons)")
    data = json_object(raw, "coupon", "a coupon")
    try:
        return CouponRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "coupon"
        raise InvalidRecord(f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from None


def issued_coupon(command: SendCommand) -> CouponRecord | None:
    """The coupon a command carries, as the journeys issue it (None: it carries none).

    Its times are the command's (event times), so a replay issues the same record."""
    coupon = command.variables.get("coupon")
    if not isinstance(coupon, dict) or not coupon.get("code"):
        return None
    try:
        return CouponRecord.model_validate(
            {
                **{k: coupon.get(k) for k in ("code", "percent", "amount", "currency")},
                "min_order": coupon.get("min_order"),
                "customer_id": command.customer_id,
                "journey_id": command.journey_id,
                "store_id": command.store_id,
                "command_id": command.command_id,
                "expires_at": coupon.get("expires_at") or command.expires_at,
                "issued_at": command.created_at,
            }
        )
    except ValidationError as exc:
        raise InvalidRecord(f"the command's coupon is not one: {exc.errors()[0]['msg']}") from None
