"""The journeys agent on the real stack: abandonments, profiles, consents and orders in,
send commands, decisions and recoveries out, in event mode; the same input twice gives
byte-identical commands, and they equal ``cartpulse journeys`` offline."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.support.cli import run_cli
from tests.support.net import free_port
from tests.support.ops import ALERTS, DASHBOARD, METRIC_NAME
from tests.support.workers import COUPON_SECRET, journeys_worker, wait_for_count

pytestmark = pytest.mark.integration

H = 3_600_000
T0 = "2026-06-10T14:00:00.000Z"  # 10:00 in New York: no quiet hours in the way
T0_MS = 1_781_100_000_000


def _iso(ms: int) -> str:
    from streams.contract.events import format_ms

    return format_ms(ms)


def _abandonment(
    customer: str, kind: str, last_ms: int, value: str = "150.00"
) -> dict[str, object]:
    return {
        "abandonment_id": f"ab-{customer}-{kind}",
        "kind": kind,
        "session_id": f"s-{customer}",
        "customer_id": customer,
        "store_id": "default",
        "last_activity_at": _iso(last_ms),
        "detected_at": _iso(last_ms + 30 * 60_000),
        "checkout_started": kind == "cart",
        "cart": {
            "items": [{"product_id": "p1", "quantity": 1, "price": value, "name": "Lamp"}],
            "value": value,
            "currency": "USD",
            "url": "https://shop.example.com/cart/1",
        }
        if kind == "cart"
        else {"items": [], "value": None, "currency": None, "url": None},
        "viewed_products": [{"product_id": "p9", "views": 3, "name": "Chair", "price": "80.00"}],
    }


def _inputs() -> dict[str, list[tuple[bytes, bytes]]]:
    """Records per topic: three customers with consent; c2 orders before its SMS is due."""
    customers, consents = [], []
    for n in (1, 2, 3):
        cid = f"c{n}"
        profile = {
            "customer_id": cid,
            "phone": f"+1415555010{n}",
            "email": f"shopper{n}@example.com",
            "first_name": f"Shopper{n}",
            "timezone": "America/New_York",
        }
        customers.append((cid.encode(), orjson.dumps(profile)))
        for channel in ("sms", "email"):
            consent = {
                "customer_id": cid,
                "channel": channel,
                "status": "opted_in",
                "source": "checkout",
                "recorded_at": "2026-01-01T00:00:00.000Z",
                "evidence": {"form": "checkout"},
            }
            consents.append((f"{cid}:{channel}".encode(), orjson.dumps(consent)))
    order = {
        "event_id": "ev-order-c2",
        "type": "order_completed",
        "occurred_at": _iso(T0_MS + 40 * 60_000),
        "session_id": "s-c2-later",
        "customer_id": "c2",
        "order": {"id": "o-1", "value": "150.00", "currency": "USD"},
    }
    late_order = {  # c1 buys 21 h later: after the first email, a recovery
        "event_id": "ev-order-c1",
        "type": "order_completed",
        "occurred_at": _iso(T0_MS + 21 * H),
        "session_id": "s-c1-later",
        "customer_id": "c1",
        "order": {"id": "o-2", "value": "150.00", "currency": "USD"},
    }
    abandonments = [
        _abandonment("c1", "cart", T0_MS),
        _abandonment("c2", "cart", T0_MS),
        _abandonment("c3", "browse", T0_MS),
    ]
    return {
        "customers": customers,
        "consents": consents,
        "orders": [(b"c2", orjson.dumps(order)), (b"c1", orjson.dumps(late_order))],
        "abandonments": [(str(a["customer_id"]).encode(), orjson.dumps(a)) for a in abandonments],
    }


Run = tuple[list[bytes], list[dict[str, Any]], list[dict[str, Any]]]


async def _run_once(settings: Settings, tmp_path: Path) -> Run:
    created = run_cli(settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        inputs = _inputs()
        for topic in ("customers", "consents", "orders"):
            for key, value in inputs[topic]:
                await producer.send_and_wait(f"{settings.topic_prefix}{topic}", value, key=key)
        with journeys_worker(settings, tmp_path):
            # Consents reach the journeys re-keyed by customer; let them land first, as they
            # would have long before a shopper abandons a cart.
            rekeyed = f"{settings.topic_prefix}journey.inputs"
            assert await wait_for_count(settings, rekeyed, 6, within=90) == 6
            for key, value in inputs["abandonments"]:
                await producer.send_and_wait(f"{settings.topic_prefix}abandonments", value, key=key)
            # All inputs are in. The journeys hold each input until their event clock passes
            # it, so nothing is decided yet: the watermark below moves the clock past every
            # step and conversion window.
            decisions = f"{settings.topic_prefix}journey.decisions"
            assert await wait_for_count(settings, decisions, 1, within=5) == 0

            # The journeys fire only on watermarks in event mode; the command waits until they
            # have read every input, so c1's order is known before its steps are due.
            marked = await asyncio.to_thread(
                run_cli, settings, "watermark", str(T0_MS + 30 * 24 * H)
            )
            assert marked.returncode == 0, marked.stderr
            sms = await _settle(settings, "send.sms", 1)
            email = await _settle(settings, "send.email", 2)
            recoveries = await _settle(settings, "recoveries", 1)
            # every journey ends: c1 and c2 converted, c3 completed after its window
            decided = await _settle(settings, "journey.decisions", 1, until_ended=3)
    finally:
        await producer.stop()
    commands = sorted(r.value for r in [*sms, *email])
    return (
        commands,
        [orjson.loads(r.value) for r in decided],
        [orjson.loads(r.value) for r in recoveries],
    )


async def _settle(
    settings: Settings, topic: str, at_least: int, until_ended: int = 0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The topic's records once it holds ``at_least`` and, of them, ``until_ended`` decisions
    that end a journey; fails the test when either is not there within 60 s."""
    name = f"{settings.topic_prefix}{topic}"
    assert await wait_for_count(settings, name, at_least, within=60) >= at_least
    deadline = time.monotonic() + 60
    while True:
        await asyncio.sleep(1.0)  # let stragglers land: the test compares exact sets
        records = await consume_all(settings, name, at_least)
        ended = sum(orjson.loads(r.value).get("action") == "ended" for r in records)
        if ended >= until_ended:
            return records
        assert time.monotonic() < deadline, f"{ended} of {until_ended} journeys ended in 60 s"


def _offline(tmp_path: Path) -> list[bytes]:
    inputs = _inputs()
    files = {}
    for name in ("customers", "consents", "orders", "abandonments"):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(value + b"\n" for _, value in inputs[name]))
        files[name] = path
    out = tmp_path / "commands.jsonl"
    result = subprocess.run(
        [
            sys.executable, "-m", "streams.cli", "journeys",
            "--abandonments", str(files["abandonments"]),
            "--customers", str(files["customers"]),
            "--consents", str(files["consents"]),
            "--orders", str(files["orders"]),
            "--output", str(out),
        ],
        capture_output=True,
        env={**os.environ, "CARTPULSE_COUPON_SECRET": COUPON_SECRET},
        check=False,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sorted(out.read_bytes().splitlines())


async def test_journeys_in_event_mode_emit_commands_at_their_times(
    settings: Settings, tmp_path: Path
) -> None:
    commands, decisions, recoveries = await _run_once(settings, tmp_path)
    parsed = [orjson.loads(c) for c in commands]
    by_customer = {
        c: sorted((p["channel"], p["not_before"]) for p in parsed if p["customer_id"] == c)
        for c in ("c1", "c2", "c3")
    }
    # c1's cart reached checkout (the shipped checkout flow): email at +45 min, SMS at +2 h;
    # it ordered at +21 h, so the +48 h email never goes.
    assert by_customer["c1"] == [
        ("email", _iso(T0_MS + 45 * 60_000)),
        ("sms", _iso(T0_MS + 2 * H)),
    ]
    assert by_customer["c2"] == []  # ordered 40 min after, before the first email was due
    assert by_customer["c3"] == [("email", _iso(T0_MS + 2 * H))]  # browse: one email at +2 h
    ended = {(d["customer_id"], d["reason"]) for d in decisions if d["action"] == "ended"}
    assert ended == {("c1", "converted"), ("c2", "converted"), ("c3", "completed")}
    assert [(r["customer_id"], r["channel"], r["revenue"]) for r in recoveries] == [
        ("c1", "sms", "150.00")  # the last message before the order, within SMS's 1 d
    ]
    # Commands are keyed by recipient and validate as the senders' contract.
    from streams.contract.commands import parse_command

    assert all(parse_command(c).mode == "live" for c in commands)
    # The same input, offline, gives byte-identical commands.
    assert commands == _offline(tmp_path)


async def test_the_same_input_replayed_gives_byte_identical_commands(
    settings: Settings, tmp_path: Path
) -> None:
    first, _, _ = await _run_once(settings, tmp_path / "first")
    replay = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}again."})
    second, _, _ = await _run_once(replay, tmp_path / "second")
    assert first == second
    assert len(first) == 3


async def test_every_worker_metric_the_alerts_and_dashboard_name_is_served(
    settings: Settings, tmp_path: Path
) -> None:
    import re

    import aiohttp

    named = {
        name
        for name in METRIC_NAME.findall(_monitoring())
        if name.startswith(("cartpulse_detector_", "cartpulse_journeys_", "cartpulse_catalogue_"))
    }
    assert len(named) > 10
    port = free_port()
    assert run_cli(settings, "topics", "create").returncode == 0
    with journeys_worker(settings, tmp_path, web_port=port):
        base = f"http://127.0.0.1:{port}"
        text = ready = ""
        async with aiohttp.ClientSession() as http:
            for _ in range(120):
                try:
                    async with http.get(f"{base}/readyz") as response:
                        ready = await response.text()
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                text = await response.text()
    assert '"ready":true' in ready.replace(" ", "")
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    missing = {
        name
        for name in named
        if name not in served and re.sub(r"_(bucket|sum|count)$", "", name) not in served
    }
    assert not missing, f"named by the alerts or the dashboard, not served: {sorted(missing)}"


def _monitoring() -> str:
    """The alert rules and the dashboard, as text."""
    return ALERTS.read_text() + DASHBOARD.read_text()
