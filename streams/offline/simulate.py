"""``cartpulse simulate``: realistic storefront traffic, deterministic for a seed.

Shoppers (some anonymous, some returning for several sessions) arrive as a Poisson process at the
rate that gives ``rate`` events per second; each session browses products, adds some to the
cart, sometimes removes one, and may check out and order. Pauses between events are
exponential with an occasional long break, so sessions have several activity periods. The
defaults model real time (20 s pauses, 31-120 minute breaks against a 30-minute gap); the demo
compresses them (``mean_pause_s``, ``break_minutes``) to see journeys fire within minutes. Events
come out in event-time order, as JSON-ready dicts in the contract's shape.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.contract.events import format_ms
from streams.offline.audience import customer_id

CATALOGUE_SIZE = 5_000


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    events: int = 100_000
    rate: float = 1_000.0  # events per second of event time
    shoppers: int = 20_000
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    seed: int = 1
    anonymous_share: float = 0.3
    mean_pause_s: float = 20.0
    break_probability: float = 0.03  # a pause longer than the usual 30-minute gap
    break_minutes: tuple[float, float] = (31.0, 120.0)  # a long break's length, uniform
    store_id: str = "demo-store"

    def __post_init__(self) -> None:
        low, high = self.break_minutes
        if not 0 < low <= high:
            raise ValueError("break_minutes must be (low, high) with 0 < low <= high")
        if not self.mean_pause_s > 0 or not 0 <= self.break_probability <= 1:
            raise ValueError("mean_pause_s must be > 0 and break_probability within [0, 1]")


def _product(rng: random.Random, index: int) -> dict[str, Any]:
    price = round(rng.lognormvariate(3.3, 0.9), 2)
    return {
        "id": f"sku-{index}",
        "name": f"Product {index}",
        "price": f"{price:.2f}",
        "currency": "USD",
        "url": f"https://shop.example/p/sku-{index}",
        "image_url": f"https://shop.example/img/sku-{index}.jpg",
        "category": f"category-{index % 40}",
    }


def _session(
    rng: random.Random, config: SimulationConfig, sid: str, customer: str | None, start_ms: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """One session's events as (time, event-without-id) in time order."""
    t = start_ms
    cart: list[str] = []
    views = max(1, int(rng.expovariate(1 / 6)))
    popular = int(rng.paretovariate(1.2)) % CATALOGUE_SIZE

    def event(kind: str, **extra: Any) -> tuple[int, dict[str, Any]]:
        record: dict[str, Any] = {
            "type": kind,
            "occurred_at": format_ms(t),
            "session_id": sid,
            "store_id": config.store_id,
            **extra,
        }
        if customer is not None:
            record["customer_id"] = customer
        return t, record

    yield event("page_viewed")
    for _ in range(views):
        t += _pause(rng, config)
        index = (popular + int(rng.expovariate(1 / 30))) % CATALOGUE_SIZE
        product = _product(random.Random(index), index)
        yield event("product_viewed", product=product)
        if rng.random() < 0.25:
            t += _pause(rng, config)
            cart.append(product["id"])
            yield event(
                "cart_item_added",
                product=product,
                quantity=1 + int(rng.random() < 0.1),
                cart={"id": f"cart-{sid}", "url": f"https://shop.example/cart/{sid}"},
            )
        if cart and rng.random() < 0.05:
            t += _pause(rng, config)
            removed = cart.pop(rng.randrange(len(cart)))
            yield event("cart_item_removed", product={"id": removed}, quantity=1)
    if cart and rng.random() < 0.45:
        t += _pause(rng, config)
        yield event("checkout_started", cart={"id": f"cart-{sid}"})
        if rng.random() < 0.6:
            t += _pause(rng, config)
            value = round(rng.uniform(20, 400), 2)
            yield event(
                "order_completed",
                order={"id": f"order-{sid}", "value": f"{value:.2f}", "currency": "USD"},
            )


def _pause(rng: random.Random, config: SimulationConfig) -> int:
    if rng.random() < config.break_probability:
        return int(rng.uniform(*config.break_minutes) * 60_000)
    return max(1, int(rng.expovariate(1 / config.mean_pause_s) * 1000))


def simulate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """``config.events`` events in event-time order, with stable ``event_id``s."""
    rng = random.Random(config.seed)
    events_per_session = 9.0  # measured mean of ``_session`` with these probabilities
    session_rate_ms = config.rate / events_per_session / 1000
    arrivals = config.start_ms
    heap: list[tuple[int, int, dict[str, Any], Iterator[tuple[int, dict[str, Any]]]]] = []
    serial = 0
    emitted = 0

    def open_session() -> None:
        nonlocal arrivals, serial
        arrivals += max(1, int(rng.expovariate(session_rate_ms)))
        shopper = rng.randrange(config.shoppers)
        customer = None if rng.random() < config.anonymous_share else customer_id(shopper)
        serial += 1
        session = _session(
            random.Random(rng.random()), config, f"sess-{serial}", customer, arrivals
        )
        first = next(session)
        heapq.heappush(heap, (first[0], serial, first[1], session))

    open_session()
    while emitted < config.events:
        while not heap or arrivals <= heap[0][0]:
            open_session()
        _, key, record, session = heapq.heappop(heap)
        emitted += 1
        yield {"event_id": f"sim-{config.seed}-{emitted}", **record}
        following = next(session, None)
        if following is not None:
            heapq.heappush(heap, (following[0], key, following[1], session))


def events_within(config: SimulationConfig, seconds: float) -> int:
    """How many events ``simulate(config)`` makes in its first ``seconds`` of event time (at
    least 1; ``config.events`` when the stream ends sooner).

    Sessions start at the configured rate but last a while, so the event rate ramps up: a
    count of events is not a duration. The stream is deterministic and only shifts with its
    start, so the count is what ``cartpulse simulate`` makes with the same shape.
    """
    end = format_ms(config.start_ms + int(seconds * 1000))
    for n, record in enumerate(simulate(config)):
        if record["occurred_at"] >= end:  # same format and length: compares as time
            return max(1, n)
    return config.events
