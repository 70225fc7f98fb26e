"""Live equals offline with conditions and a catalogue (hypothesis).

The worker's journeys shell (event clock, fed record by record with the watermark moving
along, the catalogue reader ahead of it) and ``cartpulse journeys`` (``run_journeys`` over the
same inputs in event-time order) give the same commands and decisions, byte for byte, on
random histories of several customers with price changes, stock changes, clicks, checkouts
and high-value carts.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.agents.journeys import JourneyShell
from streams.contract.journey import AbandonmentIn, EngagementIn, OrderIn
from streams.contract.products import ProductVersion
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.catalogue import Catalogue
from streams.core.journey_inputs import JourneyInput, order_key
from streams.core.journeys import REASONS, JourneyEngine, Outputs
from streams.core.policy import parse_policy
from streams.core.watermarks import tick_value
from streams.offline.journeys import run_journeys
from streams.runtime.metrics import JourneyMetrics
from tests.support.journeys import POLICY, SECRET
from tests.unit.test_flows import FLOWS

H = 3_600_000
T0 = 1_781_100_000_000  # 2026-06-10T14:00:00Z
CUSTOMERS = ("c1", "c2", "c3")
PRODUCTS = ("p1", "p2", "p3")
TEXT = (
    POLICY.replace(
        'template = "cart_email_2"\nincentive = true',
        'template = "cart_email_2"\nincentive = true\nwhen = "!engagement.clicked"',
    )
    + FLOWS
)
TOPICS = TopicCatalogue()

times = st.integers(0, 120).map(lambda m: T0 + m * 30 * 60_000)


@st.composite
def abandonment(draw: Any, n: int) -> AbandonmentIn:
    at = draw(times)
    kind = draw(st.sampled_from(["cart", "browse"]))
    picked = draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=2, unique=True))
    prices = {p: draw(st.sampled_from(["40.00", "90.00", "160.00"])) for p in picked}
    lines = [{"product_id": p, "quantity": 1, "price": prices[p], "name": p} for p in picked]
    value = str(sum(Decimal(prices[p]) for p in picked))
    cart = {"items": lines, "value": value, "currency": "USD"} if kind == "cart" else {}
    viewed = [{"product_id": p, "views": 1, "price": prices[p], "name": p} for p in picked]
    return AbandonmentIn(
        f"ab-{n}", kind, f"s-{n}", draw(st.sampled_from(CUSTOMERS)), "default", at,
        at + 30 * 60_000, kind == "cart" and draw(st.booleans()), cart, viewed,
    )  # fmt: skip


versions = st.builds(
    lambda p, at, price, stock, inventory: ProductVersion(
        product_id=p,
        store_id=None,
        name=p,
        url=f"https://shop.example.com/{p}",
        image_url=None,
        price=Decimal(price),
        currency="USD",
        in_stock=stock,
        inventory=inventory,
        updated_ms=at,
    ),
    st.sampled_from(PRODUCTS),
    times,
    st.sampled_from(["30.00", "40.00", "80.00", "90.00", "160.00"]),
    st.booleans(),
    st.sampled_from([None, 2, 40]),
)
clicks = st.builds(
    lambda c, at: EngagementIn(c, "link_clicked", "cmd-x", at),
    st.sampled_from(CUSTOMERS),
    times,
)
orders = st.builds(
    lambda c, at: OrderIn(f"o-{c}-{at}", c, "s-o", at, "order", Decimal("50"), "USD", None),
    st.sampled_from(CUSTOMERS),
    times,
)


@st.composite
def histories(draw: Any) -> list[JourneyInput]:
    count = draw(st.integers(1, 6))
    items: list[JourneyInput] = [draw(abandonment(n)) for n in range(count)]
    items += draw(st.lists(versions, max_size=8))
    items += draw(st.lists(clicks, max_size=3))
    items += draw(st.lists(orders, max_size=2))
    return items


def _engine(catalogue: Catalogue) -> JourneyEngine:
    return JourneyEngine(parse_policy(TEXT), SECRET, catalogue=catalogue)


def _profiles() -> list[tuple[str, bytes, bytes]]:
    import orjson

    return [
        (
            TOPICS.name(Topic.CUSTOMERS),
            c.encode(),
            orjson.dumps(
                {
                    "email": f"{c}@example.com",
                    "phone": "+14155550123",
                    "timezone": "America/New_York",
                    "orders_count": 1,
                }
            ),
        )
        for c in CUSTOMERS
    ]


def _offline(items: list[JourneyInput]) -> list[bytes]:
    from streams.contract.journey import Profile

    out: list[bytes] = []

    def write(outputs: Outputs) -> None:
        out.extend(c.to_json() for c in outputs.commands)
        out.extend(d.to_json() for d in outputs.decisions)

    profiles: list[JourneyInput] = [
        Profile(
            c, "+14155550123", f"{c}@example.com", None, None, "America/New_York", None, True, 1
        )
        for c in CUSTOMERS
    ]
    ordered = sorted(
        ((order_key(item, i), item) for i, item in enumerate(profiles + items)),
        key=lambda pair: pair[0],
    )
    run_journeys([item for _, item in ordered], _engine(Catalogue()), write, until=T0 + 400 * H)
    return sorted(out)


def _record(item: JourneyInput) -> tuple[str, bytes, bytes]:
    import orjson

    from streams.contract.events import format_ms

    if isinstance(item, AbandonmentIn):
        data = {
            "abandonment_id": item.abandonment_id, "kind": item.kind,
            "session_id": item.session_id, "customer_id": item.customer_id,
            "store_id": item.store_id, "last_activity_at": format_ms(item.last_activity_ms),
            "detected_at": format_ms(item.detected_ms),
            "checkout_started": item.checkout_started, "cart": item.cart,
            "viewed_products": item.viewed_products,
        }  # fmt: skip
        return (
            TOPICS.name(Topic.ABANDONMENTS),
            (item.customer_id or "").encode(),
            orjson.dumps(data),
        )
    if isinstance(item, EngagementIn):
        data = {"event_id": f"e-{item.occurred_ms}", "type": item.kind,
                "customer_id": item.customer_id, "command_id": item.command_id,
                "occurred_at": format_ms(item.occurred_ms)}  # fmt: skip
        return TOPICS.name(Topic.ENGAGEMENT), item.customer_id.encode(), orjson.dumps(data)
    assert isinstance(item, OrderIn)
    data = {"event_id": item.event_id, "type": "order_completed", "session_id": item.session_id,
            "customer_id": item.customer_id, "occurred_at": format_ms(item.occurred_ms),
            "order": {"id": item.order_id, "value": "50", "currency": "USD"}}  # fmt: skip
    return TOPICS.name(Topic.ORDERS), (item.customer_id or "").encode(), orjson.dumps(data)


def _live(items: list[JourneyInput]) -> list[bytes]:
    catalogue = Catalogue()
    sent: list[tuple[str, bytes | None]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> None:
        sent.append((topic, value))

    shell = JourneyShell(
        engine=_engine(catalogue), topics=TOPICS, live=False, table={}, send=send,
        metrics=JourneyMetrics.create(CollectorRegistry()), max_record_bytes=65_536,
    )  # fmt: skip
    ticks = TOPICS.name(Topic.JOURNEY_TICKS)

    async def run() -> None:
        partition = 0  # one partition: every customer's inputs in one clock
        for topic, key, value in _profiles():
            await shell.on_record(topic, partition, key, value, None)
        # The catalogue reader is ahead of the watermark: it has read every version.
        for item in items:
            if isinstance(item, ProductVersion) and catalogue.add(item):
                shell.on_version(item)
        ordered = sorted((order_key(item, i), item) for i, item in enumerate(items))
        for (at, *_), item in ordered:
            await shell.on_record(ticks, partition, None, tick_value(at, at), None)
            if not isinstance(item, ProductVersion):
                await shell.on_record(*_route(item), None)
        await shell.on_record(ticks, partition, None, tick_value(T0, T0 + 400 * H), None)

    def _route(item: JourneyInput) -> tuple[str, int, bytes, bytes]:
        topic, key, value = _record(item)
        return topic, 0, key, value

    # A loop of its own, never installed as the thread's: asyncio.run would replace (and leak)
    # the loop an earlier pytest-asyncio test left installed.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    wanted = {TOPICS.name(Topic.SEND_SMS), TOPICS.name(Topic.SEND_EMAIL),
              TOPICS.name(Topic.DECISIONS)}  # fmt: skip
    return sorted(value for topic, value in sent if topic in wanted and value is not None)


@settings(max_examples=400, deadline=None)
@given(histories())
def test_the_worker_shell_decides_as_offline_with_conditions_and_a_catalogue(
    items: list[JourneyInput],
) -> None:
    offline = _offline(items)
    assert _live(items) == offline
    reasons = {
        d.split(b'"reason":"')[1].split(b'"')[0].decode() for d in offline if b'"action"' in d
    }
    assert {r.partition(":")[0] for r in reasons} <= REASONS
