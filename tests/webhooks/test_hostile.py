"""The webhooks service against hostile and broken clients, over real sockets on the real stack:
idle and trickling connections are closed, the connection limit holds, the logs stay short,
and metrics live on their own (private) address."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from senders.webhooks.service import run_webhooks
from streams.runtime.settings import Settings
from tests.senders.conftest import running
from tests.support.cli import run_cli
from tests.support.net import free_port
from tests.webhooks.test_stack import webhook_settings

pytestmark = pytest.mark.integration

LIMITS: dict[str, Any] = {
    "webhooks_keepalive_timeout": timedelta(seconds=0.4),
    "webhooks_header_timeout": timedelta(seconds=0.4),
    "webhooks_body_timeout": timedelta(seconds=0.4),
    "webhooks_max_connections": 8,
}
# A keep-alive long enough that only the limit under test closes the connection.
LONG_KEEPALIVE: dict[str, Any] = {**LIMITS, "webhooks_keepalive_timeout": timedelta(seconds=30)}


@contextlib.asynccontextmanager
async def serving(s: Settings) -> AsyncIterator[None]:
    started = asyncio.Event()
    service = lambda stop: run_webhooks(s, stop=stop, handle_signals=False, started=started)  # noqa: E731
    async with running(service):
        await asyncio.wait_for(started.wait(), 30)
        yield


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before it closed the connection; fails past ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            return await reader.read()
    except ConnectionResetError:
        return b""
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as answer,
    ):
        return answer.status, await answer.text()


async def scrape(s: Settings) -> str:
    """The service's ``/metrics``, from its private address."""
    _, metrics = await get(s.webhooks_metrics_port, "/metrics")
    return metrics


async def test_an_idle_connection_is_closed_after_the_keepalive_timeout(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = webhook_settings(settings, key_prefix, **LIMITS)
    async with serving(s):
        reader, writer = await connect(s.webhooks_port)
        started = time.perf_counter()
        assert await closed_within(reader, 3.0) == b""
        assert 0.3 < time.perf_counter() - started < 3.0
        writer.close()
        # after a request too: a kept-alive connection is closed once it idles
        reader, writer = await connect(s.webhooks_port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await closed_within(reader, 3.0)
        assert answer.startswith(b"HTTP/1.1 200")
        writer.close()
        metrics = await scrape(s)
    assert 'cartpulse_webhook_connections_closed_total{reason="idle"} 2.0' in metrics


async def test_a_slowloris_trickling_headers_is_cut_off(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = webhook_settings(settings, key_prefix, **LONG_KEEPALIVE)
    async with serving(s):
        reader, writer = await connect(s.webhooks_port)
        started = time.perf_counter()
        writer.write(b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for i in range(100):
                    writer.write(f"X-{i}: y\r\n".encode())
                    await writer.drain()
                    await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        await closed_within(reader, 3.0)
        assert time.perf_counter() - started < 3.0  # not the 30 s keep-alive
        trickling.cancel()
        writer.close()
        metrics = await scrape(s)
    assert 'cartpulse_webhook_connections_closed_total{reason="slow_headers"} 1.0' in metrics


async def test_a_body_that_never_comes_gets_408(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = webhook_settings(settings, key_prefix, **LONG_KEEPALIVE)
    async with serving(s):
        reader, writer = await connect(s.webhooks_port)
        writer.write(
            b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nBody="
        )
        answer = await closed_within(reader, 3.0)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        metrics = await scrape(s)
    assert 'cartpulse_webhook_requests_total{outcome="timeout",route="sms_inbound"} 1.0' in metrics


async def test_beyond_the_connection_limit_new_connections_are_refused_and_logs_stay_short(
    settings: Settings, key_prefix: str, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    s = webhook_settings(settings, key_prefix, **LONG_KEEPALIVE)
    caplog.set_level(logging.DEBUG)
    async with serving(s):
        held = [await connect(s.webhooks_port) for _ in range(8)]
        await asyncio.sleep(0.1)
        caplog.clear()
        refused = 0
        for _ in range(200):
            reader, writer = await connect(s.webhooks_port)
            answer = await closed_within(reader, 1.0)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer
            refused += 1
            writer.close()
        lines = [r for r in caplog.records if r.levelno >= logging.INFO]
        # one line for the first refusal; the rest within the minute are only counted
        assert len(lines) <= 2, [r.getMessage() for r in lines]
        assert any("connection limit" in r.getMessage() for r in lines)
        assert sum(len(r.getMessage()) for r in caplog.records) < 20_000
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.2)
        assert await get(s.webhooks_port, "/healthz") == (200, "ok\n")  # load gone: answered
        metrics = await scrape(s)
    assert refused == 200
    assert 'cartpulse_webhook_connections_closed_total{reason="over_limit"} 200.0' in metrics


async def test_metrics_are_served_on_their_own_address_not_the_public_port(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = webhook_settings(settings, key_prefix)
    assert Settings().webhooks_metrics_host == "127.0.0.1"  # private unless told otherwise
    async with serving(s):
        assert (await get(s.webhooks_port, "/metrics"))[0] == 404
        assert await get(s.webhooks_port, "/healthz") == (200, "ok\n")
        assert await get(s.webhooks_port, "/readyz") == (200, "ready\n")
        status, metrics = await get(s.webhooks_metrics_port, "/metrics")
        assert status == 200 and "cartpulse_webhook_requests_total" in metrics
        assert await get(s.webhooks_metrics_port, "/healthz") == (200, "ok\n")


def test_binding_a_port_in_use_or_a_bad_host_exits_2_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        base = {
            "CARTPULSE_TWILIO_AUTH_TOKEN": "t",
            "CARTPULSE_UNSUBSCRIBE_SECRET": "u",
            "CARTPULSE_CLICK_SECRET": "c",
            "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
            "CARTPULSE_WEBHOOKS_HOST": "127.0.0.1",
            "CARTPULSE_WEBHOOKS_METRICS_PORT": str(free_port()),
        }
        cases = {
            "public port in use": {**base, "CARTPULSE_WEBHOOKS_PORT": str(port)},
            "metrics port in use": {
                **base,
                "CARTPULSE_WEBHOOKS_PORT": str(free_port()),
                "CARTPULSE_WEBHOOKS_METRICS_PORT": str(port),
            },
            "bad host": {
                **base,
                "CARTPULSE_WEBHOOKS_HOST": "no-such-host.invalid",
                "CARTPULSE_WEBHOOKS_PORT": str(free_port()),
            },
        }
        named = {
            "public port in use": f"127.0.0.1:{port}",
            "metrics port in use": f"127.0.0.1:{port}",
            "bad host": "no-such-host.invalid",
        }
        for name, env in cases.items():
            done = run_cli(Settings(), "webhooks", env=env, timeout=30)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2, (name, done.stderr)
            assert len(lines) == 1 and lines[0].startswith("cartpulse: "), (name, done.stderr)
            assert named[name] in lines[0], (name, lines[0])


async def test_a_client_that_hangs_up_mid_request_is_one_quiet_line(
    settings: Settings, key_prefix: str, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    s = webhook_settings(settings, key_prefix)
    caplog.set_level(logging.DEBUG)
    async with serving(s):
        caplog.clear()
        for path in ("/twilio/sms", "/unsubscribe?token=x"):
            _, writer = await connect(s.webhooks_port)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n\r\nBody=ST".encode()
            )
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.transport.abort()  # gone, mid-body
        await asyncio.sleep(0.3)
        assert await get(s.webhooks_port, "/healthz") == (200, "ok\n")
        records = list(caplog.records)
    noisy = [r for r in records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == [], [(r.levelname, r.getMessage()) for r in noisy]
    hung_up = [r for r in records if "hung up" in r.getMessage()]
    assert len(hung_up) == 2, [r.getMessage() for r in records]
    assert all(r.levelno <= logging.INFO and "\n" not in r.getMessage() for r in hung_up)
