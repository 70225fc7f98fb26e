"""Unsubscribe tokens and the email built from a command (pure)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

import pytest

from senders.messages.mime import build_email, message_id
from senders.messages.templates import RenderedEmail
from senders.messages.unsubscribe import (
    UnsubscribeToken,
    make_token,
    read_token,
    unsubscribe_mailto,
    unsubscribe_url,
)
from streams.contract.errors import InvalidRecord
from tests.senders.conftest import command

SECRET = b"secret"


def test_tokens_round_trip_and_resist_tampering() -> None:
    token = make_token(SECRET, UnsubscribeToken("cust:1", "email", "store-1", 2_000))
    assert read_token(SECRET, token, 1_000) == UnsubscribeToken("cust:1", "email", "store-1", 2_000)
    with pytest.raises(InvalidRecord, match="expired"):
        read_token(SECRET, token, 2_000)
    with pytest.raises(InvalidRecord, match="signature"):
        read_token(b"other", token, 1_000)
    mac = token.split(".")[1]
    forged = make_token(SECRET, UnsubscribeToken("cust:2", "email", "store-1", 2_000)).split(".")[0]
    with pytest.raises(InvalidRecord, match="signature"):
        read_token(SECRET, f"{forged}.{mac}", 1_000)
    with pytest.raises(InvalidRecord):
        read_token(SECRET, "not a token", 1_000)
    with pytest.raises(InvalidRecord, match="malformed"):  # no key, no valid token
        read_token(b"", make_token(b"", UnsubscribeToken("cust:1", "email", "store-1", 2_000)), 0)


def test_unsubscribe_links() -> None:
    assert unsubscribe_url("https://x.example/u", "T") == "https://x.example/u?token=T"
    assert unsubscribe_url("https://x.example/u?s=1", "T") == "https://x.example/u?s=1&token=T"
    assert (
        unsubscribe_mailto("u@x.example", "T.1") == "mailto:u@x.example?subject=unsubscribe%20T.1"
    )


def test_the_message_has_both_parts_and_rfc_8058_headers() -> None:
    cmd = command(channel="email", to="ann@example.com")
    https = "https://shop.example.com/unsubscribe?token=" + "a" * 150  # long: must not fold
    built = build_email(
        cmd,
        RenderedEmail("Your cart", "Hi Ann\n", "<p>Hi Ann</p>\n"),
        sender="Shop <shop@shop.example>",
        domain="shop.example",
        unsubscribe_https=https,
        unsubscribe_mailto="mailto:u@shop.example?subject=unsubscribe%20x",
        now=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )
    parsed = email.message_from_bytes(built.as_bytes(), policy=email.policy.default)
    assert (
        parsed["List-Unsubscribe"] == f"<{https}>, <mailto:u@shop.example?subject=unsubscribe%20x>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"] == message_id(cmd.command_id, "shop.example")
    assert re.fullmatch(r"<[A-Za-z0-9._-]+@shop\.example>", parsed["Message-ID"])
    assert parsed["Date"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html = parsed.get_body(("html",))
    assert html is not None and html.get_content().strip() == "<p>Hi Ann</p>"


def test_message_ids_are_stable_per_command() -> None:
    assert message_id("c1", "d.example") == message_id("c1", "d.example")
    assert message_id("c1", "d.example") != message_id("c2", "d.example")
    assert message_id("a/b c", "d.example").startswith("<a_b_c.")


def test_a_store_sends_under_its_own_from_and_reply_to() -> None:
    from pydantic import SecretStr

    from senders.adapters.providers import provider_for
    from streams.core.policy import parse_policy
    from streams.runtime.policy_file import default_policy_text
    from streams.runtime.settings import Settings

    policy = parse_policy(
        default_policy_text()
        + '\n[stores.mugs]\ntimezone = "Europe/London"\npostal_address = "1 Clay Lane, Stoke"\n'
        'email_from = "Mugs & Co <hello@mugs.example>"\nemail_reply_to = "help@mugs.example"\n'
    )
    settings = Settings(
        unsubscribe_secret=SecretStr("u"), email_from="Cartpulse <shop@cartpulse.example>"
    )
    provider = provider_for(settings, "email", policy)
    mugs = provider.prepare(command("email", to="ann@example.com", store_id="mugs"), 0.0)
    parsed = email.message_from_bytes(mugs.data, policy=email.policy.default)
    assert parsed["From"] == "Mugs & Co <hello@mugs.example>"
    assert parsed["Reply-To"] == "help@mugs.example"
    assert mugs.message_id.endswith("@cartpulse.example>")  # the relay's domain
    other = provider.prepare(command("email", to="bo@example.com"), 0.0)  # not in the policy
    parsed = email.message_from_bytes(other.data, policy=email.policy.default)
    assert parsed["From"] == "Cartpulse <shop@cartpulse.example>" and parsed["Reply-To"] is None
