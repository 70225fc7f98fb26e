"""The journey engine's inputs as one union: whose they are, when they happened, and dispatch.

The worker's journeys agent and ``cartpulse journeys`` both read every record with ``decode``
and route every input through ``apply``, so the two can't disagree on what an input is or does.
"""

from __future__ import annotations

from typing import Final

from streams.contract.commands import SendResult
from streams.contract.errors import InvalidRecord, UnknownEventType
from streams.contract.event_parse import parse_event
from streams.contract.events import MAX_RECORD_BYTES
from streams.contract.journey import (
    AbandonmentIn,
    ConsentChange,
    EngagementIn,
    OrderIn,
    Profile,
    parse_abandonment,
    parse_consent,
    parse_engagement,
    parse_profile,
)
from streams.contract.products import ProductVersion, parse_product
from streams.core.journey_state import CustomerState
from streams.core.journeys import JourneyEngine, Outputs

JourneyInput = (
    AbandonmentIn | OrderIn | Profile | ConsentChange | SendResult | EngagementIn | ProductVersion
)

# On equal times: catalogue changes first (the worker applies one when its clock reaches the
# change, before the inputs of that moment), then opt-outs (an opt-out wins a tie: no input at
# the same moment may fire a step due then before it), then what the customer is and allows,
# then orders (an order at the very moment of an abandonment's deadline still counts), then
# abandonments, then clicks, then send results.
_RANK: Final = {
    ProductVersion: -2, Profile: 0, ConsentChange: 1, OrderIn: 2, AbandonmentIn: 3,
    EngagementIn: 4, SendResult: 5,
}  # fmt: skip
_OPT_OUT_RANK: Final = -1


def decode(
    source: str, key: bytes | None, value: bytes | None, max_bytes: int = MAX_RECORD_BYTES
) -> JourneyInput | None:
    """One record of ``source`` (``abandonments``, ``orders``, ``customers``, ``consents``,
    ``send.results``, ``engagement``, ``products``) as the engine's input, or None for what the
    journeys ignore: other event types on ``orders``, a deleted profile or product, other
    engagement. Raises ``InvalidRecord`` with the reason."""
    if source == "abandonments":
        return parse_abandonment(value)
    if source == "orders":
        try:
            event = parse_event(value or b"", max_bytes)
        except UnknownEventType:
            return None
        return OrderIn.of(event) if event.type == "order_completed" else None
    if source == "customers":
        if value is None:
            return None  # a deleted profile: keep what we know until the state expires
        return parse_profile(key, value)
    if source == "consents":
        return parse_consent(key, value)
    if source == "send.results":
        return SendResult.from_json(value or b"")
    if source == "engagement":
        return parse_engagement(key, value)
    if source == "products":
        return parse_product(key, value)
    raise InvalidRecord(f"journeys got a record from an unknown source {source!r}")


def customer_of(item: JourneyInput) -> str | None:
    """Whose input it is; None for a catalogue change (it goes to every customer who saw the
    product: ``watchers``) and an anonymous abandonment."""
    if isinstance(item, ProductVersion):
        return None
    return item.customer_id


def watch(watchers: dict[str, set[str]], state: CustomerState) -> None:
    """Index ``state``'s customer under the products whose catalogue changes they must see
    (the products they saw); the worker's shell and ``cartpulse journeys`` keep one index
    each. A stale entry costs one lookup: ``on_product`` checks the sighting itself."""
    for product_id in state.seen:
        watchers.setdefault(product_id, set()).add(state.customer_id)


def time_of(item: JourneyInput) -> int:
    """The input's event time (ms); profiles carry none and sort first."""
    if isinstance(item, AbandonmentIn):
        return item.detected_ms
    if isinstance(item, OrderIn):
        return item.occurred_ms
    if isinstance(item, ConsentChange):
        return item.recorded_ms
    if isinstance(item, SendResult):
        return int(item.at.timestamp() * 1000)
    if isinstance(item, EngagementIn):
        return item.occurred_ms
    if isinstance(item, ProductVersion):
        return item.updated_ms
    return 0


OrderKey = tuple[int, int, str, int]


def order_key(item: JourneyInput, seq: int) -> OrderKey:
    """Where ``item`` goes among the inputs: event time, kind (see ``_RANK``), then the
    record's own identity, so inputs of one moment apply in the same order whatever order
    they arrived in (live) or were read in (offline); ``seq`` only breaks a tie of two
    records with the same identity."""
    opt_out = isinstance(item, ConsentChange) and item.status == "opted_out"
    return time_of(item), _OPT_OUT_RANK if opt_out else _RANK[type(item)], identity(item), seq


def identity(item: JourneyInput) -> str:
    """A stable name of the record among those of its kind and moment."""
    if isinstance(item, AbandonmentIn):
        return item.abandonment_id
    if isinstance(item, OrderIn | EngagementIn):
        return item.event_id if isinstance(item, OrderIn) else f"{item.kind}:{item.command_id}"
    if isinstance(item, ConsentChange):
        return f"{item.customer_id}:{item.channel}:{item.status}:{item.source}"
    if isinstance(item, SendResult):
        return f"{item.command_id}:{item.status}"
    if isinstance(item, ProductVersion):
        return item.product_id
    return item.customer_id


def apply(engine: JourneyEngine, state: CustomerState, item: JourneyInput, now: int) -> Outputs:
    """Hand one input to the engine method that handles its kind."""
    if isinstance(item, AbandonmentIn):
        return engine.on_abandonment(state, item, now)
    if isinstance(item, OrderIn):
        return engine.on_order(state, item, now)
    if isinstance(item, Profile):
        return engine.on_profile(state, item, now)
    if isinstance(item, ConsentChange):
        return engine.on_consent(state, item, now)
    if isinstance(item, EngagementIn):
        return engine.on_engagement(state, item, now)
    if isinstance(item, ProductVersion):
        return engine.on_product(state, item, now)
    return engine.on_result(state, item, now)
