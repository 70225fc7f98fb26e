"""Provider outages on the real stack: Twilio refusing our credentials, then failing, then
recovering; an SMTP relay that tarpits, goes silent at AUTH, refuses our login, then works.

What must hold (docs/operations.md, "Faults"):

* Refused credentials (Twilio 401 / 20003, SMTP 535) and a provider that cannot be reached
  fail nothing: the commands are held and all sent, once each, after the provider recovers.
* While the fault lasts ``/readyz`` answers 503 and ``cartpulse_send_provider_unavailable``
  names the reason; afterwards ``/readyz`` is 200 again.
* A 500 is answered after the request went out, so by the project's rule its command ends
  ``unknown`` (error code 20500) and is not retried, although this test server answers 500
  *before* creating a message: the recipient got nothing. The other commands wait out the
  outage instead of running into it.
* SIGTERM during a login that never answers ends the sender promptly, and the commands it
  held are not ``unknown`` (nothing went out): they are sent by the next run.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from senders.runtime.app import run_sender
from streams.contract.commands import FINAL_SEND_STATUSES, SendResult
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.senders.conftest import (
    command,
    ensure_topics,
    final_results,
    fresh_mirror,
    produce_commands,
    running,
    sender_settings,
)
from tests.smtp_server import SmtpTestServer
from tests.support.cli import start_cli, terminate
from tests.support.net import free_port
from tests.support.webhooks import ACCOUNT_SID, AUTH_TOKEN
from tests.twilio_server import TwilioTestServer

pytestmark = pytest.mark.integration


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.1)


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def readiness(port: int, wanted: int, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            status, _ = await get(port, "/readyz")
        except aiohttp.ClientConnectionError:
            status = 0
        if status == wanted:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz answered {status}, not {wanted}, within {within} s")
        await asyncio.sleep(0.2)


async def exported(port: int, sample: str, within: float) -> None:
    """Until ``/metrics`` shows ``sample`` (a whole exposition line)."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, metrics = await get(port, "/metrics")
        except aiohttp.ClientConnectionError:
            metrics = ""
        if sample in metrics.splitlines():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"/metrics did not show {sample!r} within {within} s")
        await asyncio.sleep(0.2)


def final(found: list[SendResult]) -> list[SendResult]:
    return [r for r in found if r.status in FINAL_SEND_STATUSES]


async def test_twilio_refusing_credentials_then_failing_then_recovering(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    twilio = TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN)
    await twilio.start()
    port = free_port()
    s = sender_settings(
        settings,
        key_prefix,
        twilio,
        sms_require_opt_in=False,
        sender_http_port=port,
        sender_backoff_max=timedelta(seconds=1),
    )
    await ensure_topics(s, "sms")
    registry = CollectorRegistry()
    commands = [command(to=f"+1415558{n:04d}", expires_in=120) for n in range(4)]
    ids = {c.command_id for c in commands}

    def unavailable(reason: str) -> float | None:
        labels = {"channel": "sms", "reason": reason}
        return registry.get_sample_value("cartpulse_send_provider_unavailable", labels)

    twilio.outage = "401"
    try:
        async with (
            fresh_mirror(s),
            running(
                lambda stop: run_sender(
                    s, "sms", stop=stop, registry=registry, handle_signals=False
                )
            ),
        ):
            await produce_commands(s, commands)
            await until(lambda: twilio.answered(401) >= 3, 20, "three refused requests")
            await readiness(port, 503, within=5)
            assert unavailable("auth") == 1
            early = await consume_all(s, f"{s.topic_prefix}send.results", 0, within=1)
            assert early == []  # nothing failed (or anything else) for our credentials

            twilio.outage = "500"
            await until(lambda: twilio.answered(500) >= 1, 20, "a request answered 500")
            await readiness(port, 503, within=5)
            assert unavailable("server_error") == 1 and unavailable("auth") == 0

            twilio.outage = None
            found = final(await final_results(s, ids, within=30))
            await readiness(port, 200, within=5)
            assert unavailable("server_error") == 0
    finally:
        await twilio.stop()

    assert Counter(r.command_id for r in found) == Counter(ids)  # one final result each
    unknown = [r for r in found if r.status == "unknown"]
    sent = [r for r in found if r.status == "sent"]
    assert len(unknown) + len(sent) == len(commands)  # nothing failed, nothing expired
    # Each 500 ended its command unknown (not retried), and nothing else did.
    assert len(unknown) == twilio.answered(500) >= 1
    assert {r.error_code for r in unknown} == {"20500"}
    created = Counter(r.form["To"] for r in twilio.created)
    by_id = {c.command_id: c for c in commands}
    assert created == Counter(by_id[r.command_id].to for r in sent)  # once each, and only those
    assert twilio.answered(401) >= 3


def text(log: Path) -> str:
    return log.read_text(errors="replace")


async def test_an_smtp_relay_that_tarpits_stalls_at_auth_then_refuses_our_login(
    settings: Settings, key_prefix: str, redis: Redis, smtp: SmtpTestServer, tmp_path: Path
) -> None:
    port = free_port()
    s = sender_settings(
        settings,
        key_prefix,
        smtp=smtp,
        sender_http_port=port,
        smtp_timeout=timedelta(seconds=2),
        sender_backoff_max=timedelta(seconds=1),
    )
    await ensure_topics(s, "email")
    log = tmp_path / "email-sender.log"
    commands = [
        command(channel="email", to=f"ann{n}@example.com", expires_in=120) for n in range(3)
    ]
    password = smtp.password

    async with fresh_mirror(s):  # a caught-up mirror: readiness is the relay's alone
        # A tarpit: connections accepted, never a word. Not ready once the first opening timed out.
        smtp.stall = "greeting"
        sender = start_cli(s, log, "send", "email")
        await produce_commands(s, commands)
        # /readyz is 503 from the moment the port opens (nothing started yet): wait for the
        # fault itself, then check that it keeps the sender not ready.
        timed_out = 'cartpulse_send_provider_unavailable{channel="email",reason="timeout"} 1.0'
        await exported(port, timed_out, within=20)
        await readiness(port, 503, within=1)

        # Silent at AUTH; SIGTERM while logins hang ends it at once, nothing recorded.
        smtp.drop_connections()
        smtp.stall = "auth"
        stalled = smtp.stalled
        await until(lambda: smtp.stalled > stalled, 10, "a login stalled at AUTH")
        assert await terminate(sender, 5.0, log) < 5.0
        results = f"{s.topic_prefix}send.results"
        assert await consume_all(s, results, 0, within=1) == []  # no unknown, no failed

        # Our login refused (535): not ready, one log line, nothing failed; then fixed.
        smtp.end_stall()
        smtp.password = "rotated-elsewhere"
        sender = start_cli(s, log, "send", "email")
        try:
            await until(lambda: smtp.refused_logins >= 2, 20, "refused logins")
            await readiness(port, 503, within=10)
            assert await consume_all(s, results, 0, within=1) == []
            smtp.password = password
            found = final(await final_results(s, {c.command_id for c in commands}, within=30))
            await readiness(port, 200, within=5)
        finally:
            await terminate(sender, 10.0, log)
    assert sorted((r.command_id, r.status) for r in found) == sorted(
        (c.command_id, "sent") for c in commands
    )
    assert Counter(m.rcpt_tos[0] for m in smtp.messages) == Counter(c.to for c in commands)
    lines = text(log)
    assert lines.count("email provider unavailable (auth") == 1  # once a minute at most
    assert "email provider unavailable (timeout" in lines
    assert "available again" in lines
