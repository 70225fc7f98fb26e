"""The journeys with a catalogue and clicks on the real stack, in event mode: price drops and
restocks start journeys, a step whose ``when`` reads ``engagement.clicked`` is skipped for a
customer who clicked, out-of-stock cart lines are left out, and every command and decision
equals ``cartpulse journeys --products … --engagement …`` offline, byte for byte."""

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
from aiokafka import AIOKafkaProducer

from streams.contract.events import format_ms
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.support.cli import run_cli
from tests.support.workers import COUPON_SECRET, journeys_worker, wait_for_count

pytestmark = pytest.mark.integration

H = 3_600_000
D = 24 * H
T0_MS = 1_781_100_000_000  # 2026-06-10T14:00:00Z, 10:00 in New York: no quiet hours in the way

# Customers of the shipped policy, none in a holdout: each is there for one rule.
PRICE_DROP, RESTOCK = "shopper-pd", "shopper-bis"  # browsed a lamp / a chair that was sold out
CLICKED, NOT_CLICKED = "shopper-click", "shopper-noclick"  # carts; the first clicks before 48 h
PART_GONE, ALL_GONE = "shopper-oos1", "shopper-oos2"  # carts with a vase that sells out
CUSTOMERS = (PRICE_DROP, RESTOCK, CLICKED, NOT_CLICKED, PART_GONE, ALL_GONE)


def _product(
    product_id: str, at: int, price: str, in_stock: bool = True, inventory: int | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "product_id": product_id,
        "name": product_id.title(),
        "url": f"https://shop.example.com/p/{product_id}",
        "price": price,
        "currency": "USD",
        "in_stock": in_stock,
        "updated_at": format_ms(at),
    }
    if inventory is not None:
        record["inventory"] = inventory
    return record


def _products() -> list[dict[str, Any]]:
    """Each product's versions in the order of their ``updated_at``, as the topic wants them."""
    before = T0_MS - 10 * D
    return [
        _product("lamp", before, "100.00", inventory=40),
        _product("lamp", T0_MS + D, "80.00", inventory=40),  # 20 % less: a price drop
        _product("chair", before, "60.00", in_stock=False, inventory=0),
        _product("chair", T0_MS + D, "60.00", inventory=12),  # back in stock
        _product("kettle", before, "30.00", inventory=3),  # low stock: shown as such
        _product("mug", before, "20.00", inventory=50),
        _product("vase", before, "45.00", inventory=1),
        _product("vase", T0_MS + 45 * 60_000, "45.00", in_stock=False, inventory=0),  # sold out
    ]


def _line(product_id: str, price: str) -> dict[str, Any]:
    return {"product_id": product_id, "quantity": 1, "price": price, "name": product_id.title()}


def _abandonment(customer: str, kind: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    value = f"{sum(float(line['price']) for line in lines):.2f}"
    viewed = [{"product_id": line["product_id"], "views": 2, "price": line["price"],
               "name": line["name"]} for line in lines]  # fmt: skip
    cart = {"items": lines, "value": value, "currency": "USD",
            "url": "https://shop.example.com/cart"}  # fmt: skip
    return {
        "abandonment_id": f"ab-{customer}",
        "kind": kind,
        "session_id": f"s-{customer}",
        "customer_id": customer,
        "store_id": "default",
        "last_activity_at": format_ms(T0_MS),
        "detected_at": format_ms(T0_MS + 30 * 60_000),
        "checkout_started": False,
        "cart": cart if kind == "cart" else {"items": [], "value": None, "currency": None},
        "viewed_products": viewed,
    }


def _click(customer: str, at: int) -> dict[str, Any]:
    return {
        "event_id": f"ev-click-{customer}-{at}",
        "type": "link_clicked",
        "customer_id": customer,
        "store_id": "default",
        "command_id": f"cmd-{customer}",
        "channel": "sms",
        "url": "https://shop.example.com/cart",
        "occurred_at": format_ms(at),
    }


def _inputs() -> dict[str, list[tuple[bytes, bytes]]]:
    """Records per topic, keyed as the topics are."""
    customers, consents = [], []
    for n, cid in enumerate(CUSTOMERS):
        profile = {"customer_id": cid, "phone": f"+1415555020{n}", "first_name": f"Shopper{n}",
                   "email": f"{cid}@example.com", "timezone": "America/New_York"}  # fmt: skip
        customers.append((cid.encode(), orjson.dumps(profile)))
        for channel in ("sms", "email"):
            consent = {"customer_id": cid, "channel": channel, "status": "opted_in",
                       "source": "checkout", "recorded_at": "2026-01-01T00:00:00.000Z"}  # fmt: skip
            consents.append((f"{cid}:{channel}".encode(), orjson.dumps(consent)))
    abandonments = [
        _abandonment(PRICE_DROP, "browse", [_line("lamp", "100.00")]),
        _abandonment(RESTOCK, "browse", [_line("chair", "60.00")]),
        _abandonment(CLICKED, "cart", [_line("kettle", "30.00")]),
        _abandonment(NOT_CLICKED, "cart", [_line("kettle", "30.00")]),
        _abandonment(PART_GONE, "cart", [_line("mug", "20.00"), _line("vase", "45.00")]),
        _abandonment(ALL_GONE, "cart", [_line("vase", "45.00")]),
    ]
    clicks = [
        _click(CLICKED, T0_MS + 21 * H),  # after the first email, before the 48 h one
        _click(NOT_CLICKED, T0_MS - H),  # before the journey started: it does not count
    ]
    return {
        "products": [(p["product_id"].encode(), orjson.dumps(p)) for p in _products()],
        "customers": customers,
        "consents": consents,
        "abandonments": [(a["customer_id"].encode(), orjson.dumps(a)) for a in abandonments],
        "engagement": [(c["customer_id"].encode(), orjson.dumps(c)) for c in clicks],
    }


def _offline(tmp_path: Path) -> tuple[list[bytes], list[bytes]]:
    """Commands and decisions of ``cartpulse journeys`` on the same inputs, each sorted."""
    files = {}
    for name, records in _inputs().items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(value + b"\n" for _, value in records))
        files[name] = path
    out, decided = tmp_path / "commands.jsonl", tmp_path / "decisions.jsonl"
    result = subprocess.run(
        [
            sys.executable, "-m", "streams.cli", "journeys",
            *(arg for name, path in files.items() for arg in (f"--{name}", str(path))),
            "--output", str(out), "--decisions", str(decided),
        ],
        capture_output=True,
        env={**os.environ, "CARTPULSE_COUPON_SECRET": COUPON_SECRET},
        check=False,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sorted(out.read_bytes().splitlines()), sorted(decided.read_bytes().splitlines())


async def _produce(settings: Settings, producer: AIOKafkaProducer, topic: str) -> None:
    for key, value in _inputs()[topic]:
        await producer.send_and_wait(f"{settings.topic_prefix}{topic}", value, key=key)


async def _settle(settings: Settings, topic: str, until: int) -> list[bytes]:
    """The topic's values once it holds ``until`` and nothing more came for 2 s; fails the
    test when that does not happen within 90 s."""
    name = f"{settings.topic_prefix}{topic}"
    assert await wait_for_count(settings, name, until, within=90) >= until, f"{topic}: < {until}"
    deadline, count = time.monotonic() + 90, -1
    while True:
        await asyncio.sleep(2.0)  # let stragglers land: the test compares exact sets
        records = await consume_all(settings, name, until)
        if len(records) == count:
            return sorted(r.value for r in records)
        count = len(records)
        assert time.monotonic() < deadline, f"{topic} still growing after 90 s"


async def _worker_run(
    settings: Settings, tmp_path: Path, expected: dict[str, int]
) -> tuple[list[bytes], list[bytes]]:
    """Commands and decisions of a worker in event mode, each sorted: the catalogue first (as a
    store's would be), the worker started, then the customers' inputs, then ``watermark end``.
    ``expected``: how many records each output topic should get (the offline run's)."""
    created = run_cli(settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        for topic in ("products", "customers", "consents"):
            await _produce(settings, producer, topic)
        with journeys_worker(settings, tmp_path):
            # Consents reach the journeys re-keyed by customer; let them land first, as they
            # would have long before a shopper abandons a cart.
            rekeyed = f"{settings.topic_prefix}journey.inputs"
            consents = len(_inputs()["consents"])
            assert await wait_for_count(settings, rekeyed, consents, within=90) == consents
            for topic in ("abandonments", "engagement"):
                await _produce(settings, producer, topic)
            # Waits until the journeys have read every input (clicks included), then moves
            # their clock past every step and conversion window.
            marked = await asyncio.to_thread(run_cli, settings, "watermark", "end")
            assert marked.returncode == 0, marked.stderr
            outputs = {topic: await _settle(settings, topic, n) for topic, n in expected.items()}
    finally:
        await producer.stop()
    commands = sorted(outputs["send.sms"] + outputs["send.email"])
    return commands, outputs["journey.decisions"]


def _parsed(records: list[bytes], customer: str) -> list[dict[str, Any]]:
    return [d for d in map(orjson.loads, records) if d["customer_id"] == customer]


async def test_catalogue_triggers_send_time_checks_and_clicks_in_event_mode_equal_offline(
    settings: Settings, tmp_path: Path
) -> None:
    offline_commands, offline_decisions = _offline(tmp_path)
    channels = [orjson.loads(c)["channel"] for c in offline_commands]
    expected = {
        "send.sms": channels.count("sms"),
        "send.email": channels.count("email"),
        "journey.decisions": len(offline_decisions),
    }
    commands, decisions = await _worker_run(settings, tmp_path, expected)

    def sent(customer: str) -> list[tuple[str, str]]:
        return sorted((c["template"], c["not_before"]) for c in _parsed(commands, customer))

    def skipped(customer: str) -> list[tuple[str | None, int | None, str]]:
        return sorted(
            (d["flow"], d.get("step"), d["reason"])
            for d in _parsed(decisions, customer)
            if d["action"] == "skipped"
        )

    # (a) the lamp costs 20 % less a day later: a price-drop journey, its email an hour after,
    # showing the price now and the price the shopper saw.
    assert sent(PRICE_DROP) == [
        ("browse_email_1", format_ms(T0_MS + 2 * H)),
        ("price_drop_email_1", format_ms(T0_MS + D + H)),
    ]
    (drop,) = [c for c in _parsed(commands, PRICE_DROP) if c["template"] == "price_drop_email_1"]
    product = drop["variables"]["product"]
    assert (product["product_id"], product["price"], product["was_price"]) == (
        "lamp",
        "80.00",
        "100.00",
    )
    # (b) the chair was sold out when seen (its browse email is skipped) and is back a day later
    assert sent(RESTOCK) == [("back_in_stock_email_1", format_ms(T0_MS + D + 30 * 60_000))]
    assert skipped(RESTOCK) == [("browse", 0, "out_of_stock")]
    (restock,) = _parsed(commands, RESTOCK)
    assert restock["variables"]["product"]["product_id"] == "chair"
    started = {(d["customer_id"], d["flow"]) for d in map(orjson.loads, decisions)
               if d["action"] == "started"}  # fmt: skip
    assert {(PRICE_DROP, "price_drop"), (RESTOCK, "back_in_stock")} <= started
    # (c) `when = "!engagement.clicked"`: the customer who clicked before the 48 h email does
    # not get it; a click before the journey started does not count.
    cart_emails = [("cart_email_1", format_ms(T0_MS + 20 * H)),
                   ("cart_email_2", format_ms(T0_MS + 48 * H)),
                   ("cart_sms_1", format_ms(T0_MS + H))]  # fmt: skip
    assert sent(NOT_CLICKED) == cart_emails
    assert sent(CLICKED) == [cart_emails[0], cart_emails[2]]
    assert skipped(CLICKED) == [("cart", 2, "condition:cart_email_2")]
    # (d) the vase sold out 45 min after the shopper left: left out of every message, and the
    # cart's value is what is left; a cart of nothing but the vase sends nothing.
    assert sent(PART_GONE) == cart_emails
    for command in _parsed(commands, PART_GONE):
        items = command["variables"]["cart_items"]
        assert [i["product_id"] for i in items] == ["mug"]
        assert command["variables"]["cart_value"] == "20.00"
    assert sent(ALL_GONE) == []
    assert skipped(ALL_GONE) == [("cart", n, "out_of_stock") for n in range(3)]
    # the kettle has 3 left: shown as low stock
    (kettle,) = _parsed(commands, NOT_CLICKED)[:1]
    assert kettle["variables"]["cart_items"][0]["low_stock"] is True

    # (e) the worker and `cartpulse journeys` on the same inputs: byte for byte.
    assert commands == offline_commands
    assert decisions == offline_decisions
