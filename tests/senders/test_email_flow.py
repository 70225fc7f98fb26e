"""The email sender end to end: Kafka, Redis and an aiosmtpd server that requires STARTTLS and
AUTH, with one sender replica (and its connection pool) running in this process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from senders.messages.mime import message_id
from senders.messages.unsubscribe import read_token
from senders.runtime.app import run_sender
from streams.runtime.settings import Settings
from tests.senders.conftest import (
    command,
    ensure_topics,
    produce_commands,
    results,
    running,
    sender_settings,
)
from tests.smtp_server import SmtpTestServer

pytestmark = pytest.mark.integration


async def test_email_parts_headers_and_pool(
    settings: Settings, key_prefix: str, redis: Redis, smtp: SmtpTestServer
) -> None:
    s = sender_settings(settings, key_prefix, smtp=smtp, smtp_pool_size=2, sender_concurrency=8)
    await ensure_topics(s, "email")
    normal = [command("email", to=f"shopper{i}@example.com") for i in range(24)]
    browse = command("email", to="browser@example.com", template="browse_email_1")
    browse.variables["viewed_products"] = [
        {"product_id": "p9", "name": "Teapot", "url": "https://shop.example.com/p9"}
    ]
    greylisted = command("email", to="greylisted@example.com")
    unknown_user = command("email", to="nobody@example.com")
    spam = command("email", to="strict@example.com")
    smtp.refuse(greylisted.to, "451 4.7.1 Greylisted, try again later", stage="rcpt", times=2)
    smtp.refuse(unknown_user.to, "550 5.1.1 No such user", stage="rcpt")
    smtp.refuse(spam.to, "554 5.7.1 Message rejected as spam", stage="data")
    again_unknown = command("email", to=unknown_user.to)
    batch = [*normal, browse, greylisted, unknown_user, spam]

    async with running(lambda stop: run_sender(s, "email", stop=stop, handle_signals=False)):
        await produce_commands(s, batch)
        first = await results(s, len(batch))
        await produce_commands(s, [again_unknown])
        found = {r.command_id: r for r in await results(s, len(batch) + 1)}

    assert len(first) == len(batch)
    assert {found[c.command_id].status for c in [*normal, browse]} == {"sent"}
    assert (found[greylisted.command_id].status, found[greylisted.command_id].attempts) == (
        "sent",
        3,
    )
    assert (found[unknown_user.command_id].status, found[unknown_user.command_id].error_code) == (
        "failed",
        "550 5.1.1",
    )
    assert (found[spam.command_id].status, found[spam.command_id].error_code) == (
        "failed",
        "554 5.7.1",
    )
    assert (found[again_unknown.command_id].status, found[again_unknown.command_id].error_code) == (
        "suppressed",
        "undeliverable",
    )

    # Exactly one message per sent command, parsed on the server side.
    received = {m.message["X-Cartpulse-Command"]: m for m in smtp.messages}
    assert len(smtp.messages) == len(normal) + 2 == len(received)
    secret = s.unsubscribe_secret.get_secret_value().encode()
    for cmd in [*normal, browse]:
        mail = received[cmd.command_id]
        message = mail.message
        assert mail.rcpt_tos == [cmd.to] and mail.mail_from == "shop@cartpulse.example"
        assert message["Message-ID"] == message_id(cmd.command_id, "cartpulse.example")
        assert found[cmd.command_id].provider_id == message["Message-ID"]
        assert message.get_content_type() == "multipart/alternative"
        text, html = message.get_body(("plain",)), message.get_body(("html",))
        assert text is not None and html is not None
        # each email's heading (cart or browse) greets the shopper, in both parts
        heading = text.get_content().splitlines()[0]
        assert "Ann" in heading and f">{heading}</div>" in html.get_content()
        https, mailto = [
            part.strip().strip("<>") for part in message["List-Unsubscribe"].split(",")
        ]
        assert https.startswith("https://shop.example.com/unsubscribe?token=")
        assert mailto.startswith("mailto:unsubscribe@cartpulse.example?subject=unsubscribe%20")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = read_token(secret, https.split("token=", 1)[1], int(time.time() * 1000))
        assert (token.customer_id, token.channel) == (cmd.customer_id, "email")
        assert https in html.get_content()  # the footer link is the same signed link
    assert "Teapot" in received[browse.command_id].message.get_body(("html",)).get_content()  # type: ignore[union-attr]

    # A small pool of long-lived connections: never more than two at once, and reused.
    assert smtp.max_connections == 2, (smtp.max_connections, smtp.total_connections)
    assert smtp.total_connections <= 3  # two, plus at most one replaced after a refusal
    assert smtp.refused_logins == 0


async def test_implicit_tls_and_connections_dropped_by_the_relay(
    settings: Settings, key_prefix: str, redis: Redis, certificate: tuple[Path, Path]
) -> None:
    smtp = SmtpTestServer(*certificate, implicit_tls=True)
    await smtp.start()
    s = sender_settings(settings, key_prefix, smtp=smtp, smtp_security="tls", smtp_pool_size=2)
    await ensure_topics(s, "email")
    first = [command("email", to=f"a{i}@example.com") for i in range(4)]
    second = [command("email", to=f"b{i}@example.com") for i in range(4)]
    try:
        async with running(lambda stop: run_sender(s, "email", stop=stop, handle_signals=False)):
            await produce_commands(s, first)
            await results(s, len(first))
            opened = smtp.total_connections
            smtp.drop_connections()  # the relay closes idle connections
            await asyncio.sleep(0.2)
            await produce_commands(s, second)
            found = await results(s, len(first) + len(second))
    finally:
        await smtp.stop()
    assert {(r.status, r.attempts) for r in found} == {("sent", 1)}  # stale ones replaced
    assert len(smtp.messages) == 8
    assert opened <= 2 and opened < smtp.total_connections <= 4 and smtp.max_connections <= 2
