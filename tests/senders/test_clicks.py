"""Click tracking of email links (pure): what is rewritten, what is left, and that the webhooks'
redirect reads every rewritten link back to where the shopper was going."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta

import pytest

from senders.adapters.smtp_email import SmtpEmail, click_links
from senders.core.keys import Keys
from senders.messages.clicks import ClickLinks
from senders.messages.templates import Renderer
from senders.messages.tokens import ClickToken, read_click_token
from streams.contract.errors import ConfigurationError
from streams.runtime.settings import Settings, load_settings
from tests.senders.conftest import command

SECRET = b"click-secret"
PUBLIC = "https://hooks.example.com"
HOSTS = {"store-1": ("shop.example.com",)}
NOW_MS = 1_800_000_000_000
TTL_MS = 3_600_000
TRACKED = re.compile(r"https://hooks\.example\.com/c/([A-Za-z0-9_.\-=]+)")


def target(link: str) -> ClickToken:
    match = TRACKED.fullmatch(link)
    assert match is not None, link
    return read_click_token(SECRET, match.group(1), NOW_MS)


def test_followable_links_are_tracked_and_read_back_to_their_target() -> None:
    cmd = command(channel="email", to="ann@example.com")
    variables = {
        **cmd.variables,
        "product_url": "https://shop.example.com/p/1",
        "cart_items": [
            {
                "product_id": "p1",
                "url": "https://shop.example.com/p/1",
                "image_url": "https://shop.example.com/i.png",
            }
        ],
        "viewed_products": [{"product_id": "p2", "url": "https://shop.example.com/p/2"}],
    }
    out = ClickLinks(SECRET, PUBLIC, HOSTS, TTL_MS).rewrite(variables, cmd, NOW_MS)

    assert target(out["cart_url"]) == ClickToken(
        cmd.customer_id, "store-1", cmd.command_id, cmd.variables["cart_url"], NOW_MS + TTL_MS
    )
    assert target(out["product_url"]).url == "https://shop.example.com/p/1"
    assert target(out["cart_items"][0]["url"]).url == "https://shop.example.com/p/1"
    assert target(out["viewed_products"][0]["url"]).url == "https://shop.example.com/p/2"
    assert out["cart_items"][0]["image_url"] == "https://shop.example.com/i.png"  # not a link
    assert variables["cart_url"] == cmd.variables["cart_url"]  # the input is left alone


@pytest.mark.parametrize(
    "url",
    [
        "https://elsewhere.example.com/cart",  # not one of the store's hosts
        "/cart/relative",
        "javascript:alert(1)",
        "https://user@shop.example.com/cart",
        7,
    ],
)
def test_links_the_redirect_would_refuse_stay_direct(url: object) -> None:
    cmd = command(channel="email", to="ann@example.com")
    out = ClickLinks(SECRET, PUBLIC, HOSTS, TTL_MS).rewrite({"cart_url": url}, cmd, NOW_MS)
    assert out == {"cart_url": url}


def email_settings(**changes: object) -> Settings:
    base: dict[str, object] = {
        "unsubscribe_secret": "unsubscribe-secret",
        "email_from": "Shop <shop@shop.example.com>",
    }
    return load_settings(**{**base, **changes})


def test_tracking_is_off_by_default_and_refused_without_its_key_and_url() -> None:
    assert click_links(email_settings()) is None
    with pytest.raises(ConfigurationError, match="CARTPULSE_CLICK_SECRET"):
        click_links(email_settings(email_click_tracking=True, webhooks_public_url=PUBLIC))
    with pytest.raises(ConfigurationError, match="CARTPULSE_WEBHOOKS_PUBLIC_URL"):
        click_links(email_settings(email_click_tracking=True, click_secret="k"))


def test_the_email_carries_tracked_links_in_both_parts() -> None:
    settings = email_settings(
        email_click_tracking=True,
        click_secret=SECRET.decode(),
        webhooks_public_url=PUBLIC,
        webhooks_redirect_hosts=HOSTS,
        click_token_ttl=timedelta(hours=1),
    )
    cmd = command(channel="email", to="ann@example.com")
    built = SmtpEmail(settings, Renderer(), Keys("t:")).prepare(cmd, NOW_MS / 1000)
    message = email.message_from_bytes(built.data, policy=email.policy.default)
    parts = [part.get_content() for part in message.walk() if not part.is_multipart()]
    assert len(parts) == 2
    for body in parts:
        assert cmd.variables["cart_url"] not in body
        links = {target(m.group(0)).url for m in TRACKED.finditer(body)}
        assert links == {cmd.variables["cart_url"]}
