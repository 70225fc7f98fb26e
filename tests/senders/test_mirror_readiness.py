"""A sender reads consents from the Redis mirror that ``cartpulse consents mirror`` keeps: while
no mirror has caught up under its key prefix the sender still works, but says so (``/readyz``
503, a log line, the age gauge at +Inf), and it is ready once a mirror runs."""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
import pytest
from redis.asyncio import Redis

from senders.runtime.app import run_mirror, run_sender
from streams.runtime.settings import Settings
from tests.senders.conftest import (
    command,
    ensure_topics,
    produce_commands,
    results,
    running,
    sender_settings,
)
from tests.support.net import free_port
from tests.twilio_server import TwilioTestServer

pytestmark = pytest.mark.integration

AGE = re.compile(r'^cartpulse_send_consent_mirror_age_seconds\{channel="sms"\} (\S+)$', re.M)


async def probe(base: str) -> tuple[int, float]:
    """``/readyz``'s status and the mirror age the sender exports (connection refused: 0)."""
    async with aiohttp.ClientSession() as http:
        try:
            status = (await http.get(f"{base}/readyz")).status
            text = await (await http.get(f"{base}/metrics")).text()
        except aiohttp.ClientConnectionError:
            return 0, float("nan")
    found = AGE.search(text)
    return status, float(found.group(1)) if found else float("nan")


async def until(base: str, status: int, within: float = 30.0) -> tuple[int, float]:
    deadline = asyncio.get_running_loop().time() + within
    seen = (0, float("nan"))
    while asyncio.get_running_loop().time() < deadline:
        seen = await probe(base)
        if seen[0] == status:
            return seen
        await asyncio.sleep(0.25)
    return seen


async def test_not_ready_without_a_mirror_and_ready_once_one_runs(
    settings: Settings,
    key_prefix: str,
    redis: Redis,
    twilio: TwilioTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    s = sender_settings(settings, key_prefix, twilio, sender_http_port=port)
    mirror_settings = s.model_copy(update={"sender_http_port": 0})
    base = f"http://127.0.0.1:{port}"
    await ensure_topics(s, "sms")
    caplog.set_level(logging.WARNING, logger="senders.adapters.heartbeat")
    async with running(lambda stop: run_sender(s, "sms", stop=stop, handle_signals=False)):
        # The sender works without a mirror: this command is taken, and ends no_consent.
        cmd = command()
        await produce_commands(s, [cmd])
        [result] = await results(s, 1)
        assert (result.status, result.error_code) == ("suppressed", "no_consent")
        status, age = await probe(base)
        assert (status, age) == (503, float("inf"))
        assert any("no consent mirror heartbeat" in r.getMessage() for r in caplog.records)

        async with running(
            lambda stop: run_mirror(mirror_settings, stop=stop, handle_signals=False)
        ):
            status, age = await until(base, 200)
    assert status == 200
    assert 0.0 <= age < s.sender_mirror_stale_after.total_seconds()
