"""The SMTP adapter against a relay that refuses our login (535) or never answers (a tarpit,
or silence at AUTH). What must hold: such a relay is ``unavailable`` (held and retried, never
``failed`` and never ``unknown``: no message went out), the answer comes within
``CARTPULSE_SMTP_TIMEOUT``, and a login that hangs can be cancelled at once, leaving the
connection pool whole."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from pydantic import SecretStr

from senders.adapters.smtp_email import SmtpEmail
from senders.core.keys import Keys
from senders.messages.templates import Renderer
from streams.runtime.settings import Settings
from tests.senders.conftest import command, sender_settings
from tests.smtp_server import SmtpTestServer


def adapter(smtp: SmtpTestServer, **overrides: object) -> SmtpEmail:
    settings = sender_settings(Settings(), "t:", smtp=smtp, **overrides)
    return SmtpEmail(settings, Renderer(), Keys("t:"))


async def test_a_refused_login_is_unavailable_and_sends_nothing(smtp: SmtpTestServer) -> None:
    email = adapter(smtp, smtp_password=SecretStr("not-the-password"))
    try:
        refused = await email.warm()
        assert refused is not None
        assert (refused.kind, refused.reason) == ("unavailable", "auth")
        assert refused.error_code is not None and refused.error_code.startswith("535")
        cmd = command(channel="email", to="ann@example.com")
        sent = await email.send(email.prepare(cmd, time.time()), cmd, time.time())
        assert (sent.kind, sent.reason) == ("unavailable", "auth")
    finally:
        await email.close()
    assert smtp.messages == [] and smtp.refused_logins >= 2  # each mechanism aiosmtplib tried
    assert smtp.total_connections == 2  # one login each: refused is final for the attempt


@pytest.mark.parametrize("stall", ["greeting", "auth"])
async def test_a_relay_that_never_answers_is_unavailable_within_the_timeout(
    smtp: SmtpTestServer, stall: str
) -> None:
    smtp.stall = stall  # type: ignore[assignment]
    email = adapter(smtp, smtp_timeout=timedelta(seconds=1))
    started = time.monotonic()
    try:
        refused = await email.warm()
    finally:
        await email.close()
    assert refused is not None and (refused.kind, refused.reason) == ("unavailable", "timeout")
    assert time.monotonic() - started < 3.0  # one SMTP timeout, not one per step
    assert smtp.stalled == 1 and smtp.messages == []


async def test_a_login_that_hangs_is_cancelled_at_once_and_the_pool_stays_whole(
    smtp: SmtpTestServer,
) -> None:
    smtp.stall = "auth"
    email = adapter(smtp, smtp_timeout=timedelta(seconds=30), smtp_pool_size=2)
    try:
        stuck = [asyncio.create_task(email.warm()) for _ in range(3)]  # two log in, one waits
        await asyncio.sleep(0.5)
        assert smtp.stalled == 2
        started = time.monotonic()
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        assert all(task.cancelled() for task in stuck)
        assert time.monotonic() - started < 0.5
        smtp.end_stall()
        assert await asyncio.wait_for(asyncio.gather(email.warm(), email.warm()), 10) == [
            None,
            None,
        ]  # both slots came back, and log in now
        cmd = command(channel="email", to="ann@example.com")
        sent = await email.send(email.prepare(cmd, time.time()), cmd, time.time())
        assert sent.kind == "sent"
    finally:
        await email.close()
    assert len(smtp.messages) == 1
