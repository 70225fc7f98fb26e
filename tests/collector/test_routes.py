"""The collector's HTTP surface on an in-memory producer: statuses, limits, CORS, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from aiohttp import test_utils, web
from prometheus_client import CollectorRegistry

from streams.collector.auth import Credentials, sign
from streams.collector.metrics import CollectorMetrics
from streams.collector.outbox import Outbox
from streams.collector.routes import Limits, make_app
from streams.contract.topics import TopicCatalogue
from streams.runtime.kafka import REASON_HEADER
from tests.support.events import CART_ITEM_ADDED
from tests.support.producers import FakeProducer

SHOP = "https://shop.example"
TOKEN = {"Authorization": "Bearer secret-one"}
LIMITS = Limits(max_body_bytes=4096, max_events=3, max_record_bytes=1024)


@dataclass
class World:
    client: test_utils.TestClient[web.Request, web.Application]
    producer: FakeProducer
    registry: CollectorRegistry

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def world(down: bool = False) -> AsyncIterator[World]:
    producer = FakeProducer(down=down)
    registry = CollectorRegistry()
    outbox = Outbox(producer, TopicCatalogue("t."), timeout=0.2, retry_after=3.0)
    credentials = Credentials(
        secrets={"store-1": b"secret-one"},
        pixel_keys={"store-1": b"pk_one"},
        allowed_origins=frozenset({SHOP}),
    )

    async def ready() -> bool:
        return not down

    app = make_app(credentials, outbox, CollectorMetrics.create(registry), ready, LIMITS)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        yield World(client, producer, registry)


async def test_a_batch_is_answered_per_event_once_produced() -> None:
    batch = [CART_ITEM_ADDED, {**CART_ITEM_ADDED, "type": "cart_emptied"}]
    async with world() as w:
        response = await w.client.post("/v1/events", data=orjson.dumps(batch), headers=TOKEN)
        answer = await response.json()

        assert response.status == 200
        assert answer["results"] == [
            {"index": 0, "status": "accepted"},
            {"index": 1, "status": "rejected", "reason": "unknown type 'cart_emptied'"},
        ]
        (topic, key, value, _), (dlq, _, _, headers) = w.producer.sent
        assert (topic, key) == ("t.cart", b"s1")
        assert orjson.loads(value or b"")["store_id"] == "store-1"
        assert dlq == "t.clickstream.dlq"
        assert headers[REASON_HEADER] == b"unknown type 'cart_emptied'"
        assert w.count("cartpulse_collect_events_total", outcome="accepted", reason="none") == 1
        assert w.count("cartpulse_collect_events_total", outcome="rejected", reason="unknown_type")
        assert w.count("cartpulse_collect_requests_total", status="200") == 1
        assert w.count("cartpulse_collect_produce_seconds_count") == 1


async def test_a_signed_request_and_a_beacon_are_taken() -> None:
    body = orjson.dumps(CART_ITEM_ADDED)
    async with world() as w:
        signed = await w.client.post(
            "/v1/events",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Cartpulse-Store": "store-1",
                "X-Cartpulse-Signature": sign(b"secret-one", body),
            },
        )
        beacon = await w.client.post(
            "/v1/events?store=store-1&key=pk_one",
            data=body,
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SHOP},
        )

        assert signed.status == 200, await signed.text()
        assert beacon.status == 200, await beacon.text()
        assert beacon.headers["Access-Control-Allow-Origin"] == SHOP
        assert len(w.producer.sent) == 2


async def test_requests_that_cannot_be_taken_say_why_in_json() -> None:
    async with world() as w:
        post = w.client.post
        cases = {
            "no credentials": (await post("/v1/events", data=b"{}"), 401),
            "wrong token": (
                await post("/v1/events", data=b"{}", headers={"Authorization": "Bearer x"}),
                401,
            ),
            "not JSON": (await post("/v1/events", data=b"{", headers=TOKEN), 400),
            "too many events": (
                await post("/v1/events", data=b"[{},{},{},{}]", headers=TOKEN),
                413,
            ),
            "too large": (await post("/v1/events", data=b" " * 5000, headers=TOKEN), 413),
            "a form": (
                await post("/v1/events", data={"a": "b"}, headers=TOKEN),
                415,
            ),
        }
        for name, (response, status) in cases.items():
            assert response.status == status, name
            assert (await response.json())["error"], name
        assert w.producer.sent == []
        assert w.count("cartpulse_collect_requests_total", status="413") == 2
        assert w.count("cartpulse_collect_requests_total", status="401") == 2


async def test_kafka_not_acknowledging_is_a_503_with_retry_after() -> None:
    async with world(down=True) as w:
        response = await w.client.post(
            "/v1/events", data=orjson.dumps([CART_ITEM_ADDED]), headers=TOKEN
        )

        assert response.status == 503
        assert response.headers["Retry-After"] == "3"
        assert "send the request again" in (await response.json())["error"]
        assert w.count("cartpulse_collect_events_total", outcome="accepted", reason="none") == 0
        assert (await w.client.get("/readyz")).status == 503


async def test_preflight_answers_listed_origins_only() -> None:
    async with world() as w:
        listed = await w.client.options(
            "/v1/events",
            headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"},
        )
        other = await w.client.options(
            "/v1/events",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )

        assert listed.status == 204
        assert listed.headers["Access-Control-Allow-Origin"] == SHOP
        assert "POST" in listed.headers["Access-Control-Allow-Methods"]
        assert other.status == 403
        assert "Access-Control-Allow-Origin" not in other.headers
