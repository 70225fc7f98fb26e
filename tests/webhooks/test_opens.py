"""Email open tracking: which emails carry the pixel, its token, and the ``/o/`` route on
in-memory ports (the real stack's test is in ``test_stack.py``)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta

import orjson
import pytest

from senders.adapters.smtp_email import SmtpEmail, open_pixels
from senders.core.keys import Keys
from senders.messages.templates import Renderer
from senders.messages.tokens import (
    ClickToken,
    ExpiredToken,
    OpenToken,
    make_click_token,
    make_open_token,
    read_click_token,
    read_open_token,
)
from senders.webhooks.replies import PIXEL
from streams.contract.errors import InvalidRecord
from streams.contract.journey import EngagementIn, parse_engagement
from streams.runtime.settings import Settings, load_settings
from tests.senders.conftest import command
from tests.support.webhooks import CLICK_SECRET, PUBLIC_URL, world

NOW_MS = 1_800_000_000_000
FUTURE_MS = 1_900_000_000_000
PIXEL_URL = re.compile(rf'<img [^>]*src="{re.escape(PUBLIC_URL)}/o/([^"]+)"[^>]*>')


def email_settings(**changes: object) -> Settings:
    base: dict[str, object] = {
        "unsubscribe_secret": "unsubscribe-secret",
        "email_from": "Shop <shop@shop.example.com>",
        "email_click_tracking": True,
        "click_secret": CLICK_SECRET.decode(),
        "webhooks_public_url": PUBLIC_URL,
        "webhooks_redirect_hosts": {"store-1": ("shop.example.com",)},
        "click_token_ttl": timedelta(days=30),
    }
    return load_settings(**{**base, **changes})


def html_and_text(settings: Settings, store_id: str = "store-1") -> tuple[str, str]:
    cmd = command(channel="email", to="ann@example.com", store_id=store_id, command_id="cmd-7")
    built = SmtpEmail(settings, Renderer(), Keys("t:")).prepare(cmd, NOW_MS / 1000)
    message = email.message_from_bytes(built.data, policy=email.policy.default)
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


# -- which emails carry the pixel -------------------------------------------------------------


def test_an_email_with_tracked_clicks_carries_a_signed_open_pixel() -> None:
    html, text = html_and_text(email_settings())
    [image] = PIXEL_URL.finditer(html)
    assert read_open_token(CLICK_SECRET, image.group(1), NOW_MS) == OpenToken(
        "c-cmd-7", "store-1", "cmd-7", NOW_MS + 30 * 86_400_000
    )
    for attribute in ('alt=""', 'aria-hidden="true"', 'width="1"', 'height="1"'):
        assert attribute in image.group(0)  # decorative and invisible
    assert "/o/" not in text  # the text part loads nothing


@pytest.mark.parametrize(
    ("changes", "store_id"),
    [
        ({}, "store-2"),  # a store whose links are not tracked (no redirect hosts)
        ({"email_open_tracking": False}, "store-1"),  # clicks only
        ({"email_click_tracking": False}, "store-1"),  # no click tracking: no opens either
    ],
)
def test_no_pixel_where_clicks_are_not_tracked_or_opens_are_off(
    changes: dict[str, object], store_id: str
) -> None:
    html, _ = html_and_text(email_settings(**changes), store_id)
    assert "/o/" not in html and 'width="1" height="1"' not in html


def test_opens_are_on_by_default_only_with_click_tracking() -> None:
    assert Settings.model_fields["email_open_tracking"].default is True
    assert Settings.model_fields["email_click_tracking"].default is False
    assert open_pixels(email_settings(email_click_tracking=False)) is None
    assert open_pixels(email_settings()) is not None


# -- the token (pure) -------------------------------------------------------------------------


def test_open_and_click_tokens_never_pass_for_each_other() -> None:
    opened = make_open_token(CLICK_SECRET, OpenToken("c-1", "store-1", "cmd-1", FUTURE_MS))
    clicked = make_click_token(
        CLICK_SECRET, ClickToken("c-1", "store-1", "cmd-1", "https://shop.example.com/", FUTURE_MS)
    )
    with pytest.raises(InvalidRecord, match="open token"):
        read_open_token(CLICK_SECRET, clicked, NOW_MS)
    with pytest.raises(InvalidRecord, match="click token"):
        read_click_token(CLICK_SECRET, opened, NOW_MS)
    with pytest.raises(InvalidRecord, match="signature"):
        read_open_token(b"another-key", opened, NOW_MS)
    with pytest.raises(ExpiredToken):
        read_open_token(CLICK_SECRET, opened, FUTURE_MS)


# -- the route, on in-memory ports -------------------------------------------------------------


def open_path(customer: str = "cust-1", expires_ms: int = FUTURE_MS) -> str:
    return (
        f"/o/{make_open_token(CLICK_SECRET, OpenToken(customer, 'store-1', 'cmd-1', expires_ms))}"
    )


async def test_an_open_is_recorded_on_engagement_and_answered_with_the_pixel() -> None:
    async with world() as w:
        answer = await w.client.get(open_path(), headers={"User-Agent": "Mail/1.0 " + "x" * 400})
        assert answer.status == 200 and answer.content_type == "image/gif"
        assert await answer.read() == PIXEL
        assert "no-store" in answer.headers["Cache-Control"]
        [(key, event)] = w.outbox.clicks  # every engagement record the service wrote
        assert key == b"cust-1"
        assert set(event) == {
            "event_id", "type", "customer_id", "store_id", "command_id", "channel",
            "occurred_at", "user_agent",
        }  # fmt: skip
        assert (event["type"], event["channel"], event["store_id"], event["command_id"]) == (
            "email_opened",
            "email",
            "store-1",
            "cmd-1",
        )
        assert event["occurred_at"] == "2023-11-14T22:13:20.000Z"  # the service's clock
        # what the journeys read as engagement.opened
        assert parse_engagement(key, orjson.dumps(event)) == EngagementIn(
            "cust-1", "email_opened", "cmd-1", 1_700_000_000_000
        )
        assert event["user_agent"].startswith("Mail/1.0") and len(event["user_agent"]) == 256
        assert w.metric("cartpulse_webhook_opens_total", {"outcome": "recorded"}) == 1
        assert w.metric("cartpulse_webhook_requests_total", {"route": "open", "outcome": "ok"}) == 1


async def test_a_bad_or_expired_pixel_is_still_an_image_and_is_counted() -> None:
    async with world() as w:
        forged = make_open_token(b"wrong", OpenToken("cust-1", "store-1", "cmd-1", FUTURE_MS))
        click = make_click_token(
            CLICK_SECRET, ClickToken("c", "store-1", "cmd-1", "https://shop.example.com/", 1)
        )
        cases = {
            "expired": (open_path(expires_ms=1), "expired"),
            "forged": (f"/o/{forged}", "invalid"),
            "a click token": (f"/o/{click}", "invalid"),
            "garbage": ("/o/not%20a%20token", "invalid"),
        }
        for name, (path, _) in cases.items():
            answer = await w.client.get(path)
            assert answer.status == 200, name
            assert answer.content_type == "image/gif", name
            assert await answer.read() == PIXEL, name
        assert w.outbox.clicks == []
        assert w.metric("cartpulse_webhook_opens_total", {"outcome": "expired"}) == 1
        assert w.metric("cartpulse_webhook_opens_total", {"outcome": "invalid"}) == 3
        assert (
            w.metric("cartpulse_webhook_requests_total", {"route": "open", "outcome": "invalid"})
            == 3
        )


async def test_kafka_trouble_still_shows_the_pixel_and_counts_the_open_lost() -> None:
    async with world() as w:
        w.outbox.down = True
        answer = await w.client.get(open_path())
        assert answer.status == 200 and await answer.read() == PIXEL
        assert w.metric("cartpulse_webhook_opens_total", {"outcome": "lost"}) == 1
        scraped = await (await w.scraper.get("/metrics")).text()
        assert 'cartpulse_webhook_opens_total{outcome="recorded"} 0.0' in scraped
