"""Per-customer journey state and its serialisation (one table value per customer).

A customer holds their profile, consent ledger view, recent sends (for the caps), recent
touches (for attribution), last entry per flow (for the re-entry cooldown) and at most one
journey per flow. A journey is *active* while it has pending steps and is then *tracked* until
its conversion window ends, so an order can still end it as converted (and holdout journeys,
which never send, still measure conversion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson

from streams.contract.commands import Channel
from streams.contract.errors import InvalidRecord
from streams.contract.journey import Profile

STATE_VERSION = 1
StepStatus = Literal["pending", "emitted", "skipped"]


@dataclass(slots=True)
class StepState:
    index: int
    due_ms: int
    expires_ms: int
    status: StepStatus = "pending"
    deferrals: int = 0
    command_id: str | None = None


@dataclass(slots=True)
class Journey:
    journey_id: str
    flow: str
    kind: str
    abandonment_id: str
    session_id: str
    store_id: str
    started_ms: int  # the abandonment's last activity: delays count from here
    ends_ms: int  # end of the conversion window
    variant: str
    checkout_started: bool
    cart: dict[str, Any]
    viewed_products: list[Any]
    steps: list[StepState]
    converted: bool = False

    @property
    def active(self) -> bool:
        return not self.converted and any(s.status == "pending" for s in self.steps)

    def next_due(self) -> int | None:
        if self.converted:
            return None
        pending = [s.due_ms for s in self.steps if s.status == "pending"]
        return min(pending) if pending else self.ends_ms


class KnownOrder(NamedTuple):
    occurred_ms: int
    event_id: str
    order_id: str | None
    value: str | None
    currency: str | None
    credited: bool
    coupon_codes: tuple[str, ...] = ()  # the order's discount codes (a list once stored)


class Held(NamedTuple):
    """An input record the worker holds until its clock reaches the record's event time."""

    at_ms: int
    rank: int
    identity: str
    source: str  # the topic kind decode() takes: abandonments, orders, consents, …
    key: str | None
    value: str

    @property
    def order(self) -> tuple[int, int, str]:
        return self.at_ms, self.rank, self.identity


class Seen(NamedTuple):
    """A product as the customer saw it: when, at what price, whether it was in stock."""

    at_ms: int
    price: str | None
    in_stock: bool
    store_id: str
    item: dict[str, Any]  # the line as the abandonment carried it (name, url, image_url, …)


@dataclass(slots=True)
class Touch:
    channel: Channel
    at_ms: int
    journey_id: str
    command_id: str


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    profile: Profile | None = None
    consents: dict[str, tuple[str, int, str]] = field(
        default_factory=dict
    )  # ch → (status, at, src)
    undeliverable: dict[str, str] = field(default_factory=dict)  # ch → address
    ordered: bool = False
    entries: dict[str, int] = field(default_factory=dict)  # flow → last entry (event time)
    sends: list[tuple[str, int]] = field(default_factory=list)  # (channel, ms)
    touches: list[Touch] = field(default_factory=list)
    # phone → (event time, command id) of the last SMS that carried the opt-out line, for
    # stores whose rule is first_in_30_days
    notices: dict[str, tuple[int, str]] = field(default_factory=dict)
    journeys: list[Journey] = field(default_factory=list)
    # Recent orders, oldest first: (occurred ms, event id, order id, value, currency,
    # credited). Kept for a conversion window, so a journey that starts after an order was
    # seen (inputs arrive out of order in a replay) still ends the same way.
    orders: list[KnownOrder] = field(default_factory=list)
    # Products the customer saw in an abandonment, for the catalogue triggers: product id →
    # what they saw (docs/semantics.md, Catalogue triggers). The newest MAX_SEEN are kept.
    seen: dict[str, Seen] = field(default_factory=dict)
    # Clicks and opens, (kind, event time), for ``engagement.*`` in conditions.
    engaged: list[tuple[str, int]] = field(default_factory=list)
    # Inputs held until the journeys' clock passes their event time (the worker only; see
    # streams/agents/journeys.py): (event time, rank, identity, source, key, value), in the
    # order they will be applied.
    held: list[Held] = field(default_factory=list)

    def next_due(self) -> int | None:
        dues = [d for j in self.journeys if (d := j.next_due()) is not None]
        return min(dues) if dues else None

    # -- serialisation -----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": STATE_VERSION,
                "id": self.customer_id,
                "profile": self.profile.to_dict() if self.profile else None,
                "consents": self.consents,
                "undeliverable": self.undeliverable,
                "ordered": self.ordered,
                "entries": self.entries,
                "sends": self.sends,
                "touches": [[t.channel, t.at_ms, t.journey_id, t.command_id] for t in self.touches],
                "notices": self.notices,
                "journeys": [_journey_dict(j) for j in self.journeys],
                "orders": [list(o) for o in self.orders],
                "seen": {k: list(v) for k, v in self.seen.items()},
                "engaged": self.engaged,
                "held": [list(h) for h in self.held],
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CustomerState:
        try:
            data = orjson.loads(raw)
            if data.get("v") != STATE_VERSION:
                raise InvalidRecord(f"journey state version {data.get('v')!r} is not supported")
            profile = data["profile"]
            return cls(
                customer_id=data["id"],
                profile=Profile.from_dict(profile) if profile else None,
                consents={k: (v[0], v[1], v[2]) for k, v in data["consents"].items()},
                undeliverable=data["undeliverable"],
                ordered=data["ordered"],
                entries=data["entries"],
                sends=[(ch, at) for ch, at in data["sends"]],
                touches=[Touch(*t) for t in data["touches"]],
                notices={k: (v[0], v[1]) for k, v in data.get("notices", {}).items()},
                journeys=[_journey_of(j) for j in data["journeys"]],
                orders=[KnownOrder(*o) for o in data["orders"]],
                seen={k: Seen(*v) for k, v in data.get("seen", {}).items()},
                engaged=[(kind, at) for kind, at in data.get("engaged", [])],
                held=[Held(*h) for h in data.get("held", [])],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRecord(f"unreadable journey state: {exc!r}") from None


def _journey_dict(journey: Journey) -> dict[str, Any]:
    return {
        "id": journey.journey_id,
        "flow": journey.flow,
        "kind": journey.kind,
        "ab": journey.abandonment_id,
        "session": journey.session_id,
        "store": journey.store_id,
        "started": journey.started_ms,
        "ends": journey.ends_ms,
        "variant": journey.variant,
        "checkout": journey.checkout_started,
        "cart": journey.cart,
        "viewed": journey.viewed_products,
        "converted": journey.converted,
        "steps": [
            [s.index, s.due_ms, s.expires_ms, s.status, s.deferrals, s.command_id]
            for s in journey.steps
        ],
    }


def _journey_of(data: dict[str, Any]) -> Journey:
    return Journey(
        journey_id=data["id"],
        flow=data["flow"],
        kind=data["kind"],
        abandonment_id=data["ab"],
        session_id=data["session"],
        store_id=data["store"],
        started_ms=data["started"],
        ends_ms=data["ends"],
        variant=data["variant"],
        checkout_started=data["checkout"],
        cart=data["cart"],
        viewed_products=data["viewed"],
        converted=data["converted"],
        steps=[StepState(*s) for s in data["steps"]],
    )
