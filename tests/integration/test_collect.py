"""``cartpulse collect`` against the real local Kafka: auth, CORS, a batch with bad events, and
a broker of the test's own stopped under it (docs/collector.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
import orjson
import pytest

from streams.collector.auth import sign
from streams.collector.service import run_collector
from streams.runtime.kafka import ORIGINAL_TOPIC_HEADER, REASON_HEADER, SOURCE_HEADER
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.support.events import CART_ITEM_ADDED
from tests.support.net import free_port
from tests.support.own_stack import OwnStack, own_stack

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"
SECRET = "s3cret-store-1"
TOKEN = {"Authorization": f"Bearer {SECRET}"}


def collector_settings(settings: Settings, **changes: object) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "collect_port": free_port(),
            "collect_metrics_port": free_port(),
            "collect_tokens": {"store-1": SECRET, "store-2": "s3cret-store-2"},
            "collect_pixel_keys": {"store-1": "pk_store_1"},
            "collect_allowed_origins": (SHOP,),
            **changes,
        }
    )


@asynccontextmanager
async def collector(settings: Settings) -> AsyncIterator[str]:
    """A collector serving in this loop; yields its base URL."""
    settings = collector_settings(settings) if not settings.collect_tokens else settings
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_collector(settings, stop, handle_signals=False, started=started))
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # it failed to start: say why
    assert started.is_set(), "the collector did not start"
    try:
        yield f"http://127.0.0.1:{settings.collect_port}"
    finally:
        stop.set()
        await task


def events(prefix: str, n: int, session: str = "s1") -> list[dict[str, object]]:
    return [
        {**CART_ITEM_ADDED, "event_id": f"{prefix}{i}", "session_id": session} for i in range(n)
    ]


async def test_a_batch_lands_keyed_by_session_and_its_bad_events_in_the_dlq(
    settings: Settings,
) -> None:
    settings = collector_settings(settings)
    batch = [
        {**CART_ITEM_ADDED, "event_id": "g1", "session_id": "sA"},
        {"event_id": "broken"},
        {**CART_ITEM_ADDED, "event_id": "g2", "type": "product_viewed", "session_id": "sB"},
        {**CART_ITEM_ADDED, "event_id": "b2", "store_id": "store-2"},
        {**CART_ITEM_ADDED, "event_id": "b3", "type": "cart_emptied"},
    ]
    async with collector(settings) as url, aiohttp.ClientSession() as http:
        response = await http.post(f"{url}/v1/events", data=orjson.dumps(batch), headers=TOKEN)
        answer = await response.json()
        metrics = await (await http.get(metrics_url(settings))).text()

    assert response.status == 200, answer
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["accepted", "rejected", "accepted", "rejected", "rejected"]
    assert "type is required" in answer["results"][1]["reason"]
    assert "not the authenticated store" in answer["results"][3]["reason"]
    prefix = settings.topic_prefix
    cart = await consume_all(settings, f"{prefix}cart", 1)
    clickstream = await consume_all(settings, f"{prefix}clickstream", 1)
    assert [(r.key, orjson.loads(r.value)["event_id"]) for r in cart] == [(b"sA", "g1")]
    assert [(r.key, orjson.loads(r.value)["event_id"]) for r in clickstream] == [(b"sB", "g2")]
    assert orjson.loads(cart[0].value)["store_id"] == "store-1"
    cart_dlq = await consume_all(settings, f"{prefix}cart.dlq", 1)
    click_dlq = await consume_all(settings, f"{prefix}clickstream.dlq", 2)
    letters = {orjson.loads(r.value)["event_id"]: dict(r.headers) for r in cart_dlq + click_dlq}
    assert set(letters) == {"broken", "b2", "b3"}
    assert b"not the authenticated store" in letters["b2"][REASON_HEADER]
    assert letters["b2"][ORIGINAL_TOPIC_HEADER] == f"{prefix}cart".encode()
    assert letters["b3"][REASON_HEADER] == b"unknown type 'cart_emptied'"
    source = letters["b3"][SOURCE_HEADER].decode()
    assert source == f"collect:store-1:{answer['request_id']}#4"
    assert 'cartpulse_collect_events_total{outcome="accepted",reason="none"} 2.0' in metrics
    assert 'cartpulse_collect_events_total{outcome="rejected",reason="wrong_store"} 1.0' in metrics


def metrics_url(settings: Settings, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{settings.collect_metrics_port}{path}"


async def test_auth_and_cors(settings: Settings) -> None:
    settings = collector_settings(settings)
    body = orjson.dumps(CART_ITEM_ADDED)

    def signed_as(store: str) -> dict[str, str]:
        """``body`` signed with store-1's secret, sent as ``store``'s."""
        return {"X-Cartpulse-Store": store, "X-Cartpulse-Signature": sign(SECRET.encode(), body)}

    async with collector(settings) as url, aiohttp.ClientSession() as http:
        post = http.post
        wrong_token = await post(
            f"{url}/v1/events", data=body, headers={"Authorization": "Bearer x"}
        )
        other_store = await post(f"{url}/v1/events", data=body, headers=signed_as("store-2"))
        signed = await post(f"{url}/v1/events", data=body, headers=signed_as("store-1"))
        preflight = await http.options(
            f"{url}/v1/events",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        stranger = await http.options(
            f"{url}/v1/events",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        beacon = await post(
            f"{url}/v1/events?store=store-1&key=pk_store_1",
            data=body,
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SHOP},
        )
        copied_pixel = await post(
            f"{url}/v1/events?store=store-1&key=pk_store_1",
            data=body,
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        ready = await http.get(metrics_url(settings, "/readyz"))

    assert wrong_token.status == 401
    assert other_store.status == 401
    assert signed.status == 200
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == SHOP
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert stranger.status == 403
    assert "Access-Control-Allow-Origin" not in stranger.headers
    assert beacon.status == 200
    assert beacon.headers["Access-Control-Allow-Origin"] == SHOP
    assert copied_pixel.status == 401
    assert "Access-Control-Allow-Origin" not in copied_pixel.headers
    assert ready.status == 200
    cart = await consume_all(settings, f"{settings.topic_prefix}cart", 2)
    assert len(cart) == 2  # the signed one and the beacon; nothing refused landed


# --- a broker of this module's own, stopped and started under the collector --------------


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """A stack of this module's own (``tests/support/own_stack.py``); the shared broker is never
    touched."""
    with own_stack(tmp_path_factory.mktemp("collect-stack")) as stack:
        yield stack


@pytest.mark.expect_errors  # aiokafka logs the broker it cannot reach while it is down
async def test_kafka_down_is_a_503_and_nothing_is_lost_once_it_is_back(
    own_broker: OwnStack,
) -> None:
    settings = collector_settings(
        own_broker.settings(), collect_produce_timeout=timedelta(seconds=2)
    )
    before, during = events("before-", 3), events("during-", 3, session="s2")
    async with collector(settings) as url, aiohttp.ClientSession() as http:

        async def post(batch: list[dict[str, object]]) -> aiohttp.ClientResponse:
            return await http.post(f"{url}/v1/events", data=orjson.dumps(batch), headers=TOKEN)

        assert (await post(before)).status == 200
        await asyncio.to_thread(own_broker.run, "down")
        refused = await post(during)
        refused_body = await refused.json()
        not_ready = await http.get(metrics_url(settings, "/readyz"))
        await asyncio.to_thread(own_broker.run, "up")
        # The client's side of the contract: a 503 is sent again after Retry-After.
        for _ in range(30):
            again = await post(during)
            if again.status == 200:
                break
            await asyncio.sleep(float(again.headers["Retry-After"]))

    assert refused.status == 503, refused_body
    assert int(refused.headers["Retry-After"]) >= 1
    assert not_ready.status == 503
    assert again.status == 200
    assert {r["status"] for r in (await again.json())["results"]} == {"accepted"}
    records = await consume_all(settings, f"{settings.topic_prefix}cart", 6, within=30)
    ids = [orjson.loads(r.value)["event_id"] for r in records]
    # Every accepted event is there; one sent during the outage may be there twice (the
    # producer delivered it late, then the client sent it again): the detector drops repeats.
    assert set(ids) == {e["event_id"] for e in before + during}
    assert sorted(ids[:3]) == ["before-0", "before-1", "before-2"]
