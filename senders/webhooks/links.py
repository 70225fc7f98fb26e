"""Links people click: one-click unsubscribe (RFC 8058), click-tracking redirects, and the
open pixel an email's HTML loads.

Unsubscribe tokens are exactly those the email sender puts in ``List-Unsubscribe``
(``senders.messages.unsubscribe``). ``GET`` only shows a page that asks to confirm (mail scanners
and
link previews fetch URLs; they must not unsubscribe anyone); ``POST``, from a mail client's
one-click button (body ``List-Unsubscribe=One-Click``) or from that page, records the opt-out
in ``consents`` and in the Redis mirror before answering. Repeating it only repeats the record.

A click is redirected (302) only to a URL on the store's allowed hosts; the engagement record
is written first, but a Kafka failure does not keep the shopper from the shop (it is logged and
counted as ``lost``). A short SMS link (``/c/<id>``, ``senders.messages.short_links``) is looked up
in
Redis: only an id the SMS sender registered redirects, to the URL it registered; an unknown id
is a 404 page, an expired one a 410 page, and Redis out of reach a 503 page.

An open pixel (``/o/<token>``, ``senders.messages.opens``) puts ``email_opened`` on ``engagement``
and
answers a transparent 1x1 GIF that is never cached. Every request gets the image, a bad or
expired token and a Kafka failure included (a mail app must never show a broken picture);
what became of the open is counted (``cartpulse_webhook_opens_total``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

import orjson

from senders.adapters.consents import Consents, record_consent
from senders.adapters.errors import UNAVAILABLE_ERRORS
from senders.adapters.short_link_store import LinkBook
from senders.core.clock import Clock
from senders.messages.short_links import is_short_id
from senders.messages.tokens import (
    ExpiredToken,
    allowed_hosts,
    checked_url,
    read_click_token,
    read_open_token,
    redirect_target,
)
from senders.messages.unsubscribe import UnsubscribeToken, read_token, token_id
from senders.webhooks.logs import bounded
from senders.webhooks.metrics import WebhookMetrics
from senders.webhooks.ports import Outbox
from senders.webhooks.replies import NO_STORE, RETRY_LATER, Reply, page, pixel
from streams.contract.commands import CHANNELS, Channel
from streams.contract.consent_history import ConsentEntry
from streams.contract.errors import InvalidRecord
from streams.contract.events import format_ms

log = logging.getLogger(__name__)

SOURCE_ONE_CLICK: Final = "email_one_click"
SOURCE_PAGE: Final = "unsubscribe_page"
ENGAGEMENT_TIMEOUT: Final = 2.0  # seconds a shopper waits for a click or open record at most
MAX_USER_AGENT: Final = 256


@dataclass(frozen=True, slots=True)
class LinkConfig:
    unsubscribe_secret: bytes
    click_secret: bytes
    redirect_hosts: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    token: str
    path: str  # where the confirmation page posts back to, as the browser sees it
    one_click: bool  # the body was List-Unsubscribe=One-Click
    user_agent: str = ""


class LinkHooks:
    def __init__(
        self,
        config: LinkConfig,
        outbox: Outbox,
        consents: Consents,
        metrics: WebhookMetrics,
        clock: Clock,
        short_links: LinkBook | None = None,
    ) -> None:
        self._c = config
        self._outbox = outbox
        self._consents = consents
        self._metrics = metrics
        self._clock = clock
        self._short_links = short_links

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    def _token(self, text: str, now_ms: int) -> tuple[UnsubscribeToken, Channel] | None:
        """The token and its channel when it can be honoured, else None. ``GET`` and ``POST``
        both judge by this, so the page never offers a button the ``POST`` would refuse."""
        try:
            token = read_token(self._c.unsubscribe_secret, text, now_ms)
        except InvalidRecord:
            return None
        if not token.customer_id.strip() or token.channel not in CHANNELS:
            return None  # nobody, or no channel, to record the opt-out for
        return token, ("sms" if token.channel == "sms" else "email")

    def confirm_page(self, request: UnsubscribeRequest) -> Reply:
        """``GET``: check the token and ask to confirm; records nothing."""
        found = self._token(request.token, self._now_ms())
        if found is None:
            return _bad_link()
        what = "text messages" if found[1] == "sms" else "emails"
        action = f"{request.path}?token={request.token}"
        return page(200, "Unsubscribe", f"Stop receiving these {what}?", form_action=action)

    async def unsubscribe(self, request: UnsubscribeRequest) -> Reply:
        """``POST``: record the opt-out (Kafka, then Redis) and confirm it."""
        at_ms = self._now_ms()
        found = self._token(request.token, at_ms)
        if found is None:
            return _bad_link()
        token, channel = found
        source = SOURCE_ONE_CLICK if request.one_click else SOURCE_PAGE
        evidence = {
            "token": request.token,  # signed: an audit can verify it with the key
            "token_id": token_id(request.token),
            "store_id": token.store_id,
            "one_click": request.one_click,
            "user_agent": request.user_agent[:MAX_USER_AGENT],
        }
        # The history is kept for good and names nobody in clear: not the token (its payload
        # is the customer id), but its id and what rebuilds it with the secret to check it.
        proof = {
            "token_id": evidence["token_id"],
            "token_expires_at": format_ms(token.expires_ms),
            **{k: evidence[k] for k in ("store_id", "one_click", "user_agent")},
        }
        entry = ConsentEntry(
            token.customer_id, channel, "opted_out", source, at_ms, evidence,
            history_evidence=proof, free_text=("user_agent",),
        )  # fmt: skip
        await record_consent(self._outbox.consent, self._consents, entry)
        self._metrics.consents.labels(channel, "opted_out").inc()
        return page(200, "Unsubscribed", "You will not receive these messages any more.")

    async def click(self, token_text: str, user_agent: str = "") -> Reply:
        """Record the click on ``engagement`` and redirect, or refuse the link."""
        now_ms = self._now_ms()
        if self._short_links is not None and is_short_id(token_text):
            return await self._short_click(self._short_links, token_text, user_agent, now_ms)
        try:
            token = read_click_token(self._c.click_secret, token_text, now_ms)
            target = redirect_target(
                token.url, allowed_hosts(self._c.redirect_hosts, token.store_id)
            )
        except ExpiredToken:
            return replace(_bad_link(410), outcome="expired")
        except InvalidRecord:
            return _bad_link()
        click = Click(token.customer_id, token.store_id, token.command_id, "email", target)
        return await self._redirect(click, user_agent, now_ms)

    async def _short_click(
        self, book: LinkBook, link_id: str, user_agent: str, now_ms: int
    ) -> Reply:
        try:
            async with asyncio.timeout(ENGAGEMENT_TIMEOUT):
                record = await book.resolve(link_id)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("short link not resolved: Redis unavailable (%s)", bounded(repr(exc)))
            return replace(
                page(503, "Try again in a moment", "This link cannot be opened right now."),
                headers={**NO_STORE, **RETRY_LATER},
                outcome="unavailable",
            )
        except InvalidRecord:
            record = None
        if record is None:
            return _bad_link(404)
        if record.expires_ms <= now_ms:
            return replace(_bad_link(410), outcome="expired")
        try:
            target = checked_url(record.url)
        except InvalidRecord:
            return _bad_link(404)
        click = Click(record.customer_id, record.store_id, record.command_id, "sms", target)
        return await self._redirect(click, user_agent, now_ms)

    async def _redirect(self, click: Click, user_agent: str, now_ms: int) -> Reply:
        """Put ``link_clicked`` on ``engagement`` (within ``ENGAGEMENT_TIMEOUT``), then 302."""
        event = {
            "event_id": uuid.uuid4().hex,
            "type": "link_clicked",
            "customer_id": click.customer_id,
            "store_id": click.store_id,
            "command_id": click.command_id,
            "channel": click.channel,
            "url": click.url,
            "occurred_at": format_ms(now_ms),
            "user_agent": user_agent[:MAX_USER_AGENT],
        }
        recorded = await self._engagement(click.customer_id, click.command_id, event)
        self._metrics.clicks.labels("redirected" if recorded else "lost").inc()
        return Reply(302, "", "text/plain", {"Location": click.url, **NO_STORE})

    async def open(self, token_text: str, user_agent: str = "") -> Reply:
        """Record ``email_opened`` for a genuine, unexpired token; the pixel in every case."""
        now_ms = self._now_ms()
        try:
            token = read_open_token(self._c.click_secret, token_text, now_ms)
        except ExpiredToken:
            self._metrics.opens.labels("expired").inc()
            return pixel("expired")
        except InvalidRecord:
            self._metrics.opens.labels("invalid").inc()
            return pixel("invalid")
        event = {
            "event_id": uuid.uuid4().hex,
            "type": "email_opened",
            "customer_id": token.customer_id,
            "store_id": token.store_id,
            "command_id": token.command_id,
            "channel": "email",
            "occurred_at": format_ms(now_ms),
            "user_agent": user_agent[:MAX_USER_AGENT],
        }
        recorded = await self._engagement(token.customer_id, token.command_id, event)
        self._metrics.opens.labels("recorded" if recorded else "lost").inc()
        return pixel()

    async def _engagement(self, customer_id: str, command_id: str, event: dict[str, str]) -> bool:
        """Put ``event`` on ``engagement`` keyed by the customer, within
        ``ENGAGEMENT_TIMEOUT``; False (logged) when Kafka did not take it."""
        try:
            async with asyncio.timeout(ENGAGEMENT_TIMEOUT):
                await self._outbox.engagement(customer_id.encode(), orjson.dumps(event))
        except UNAVAILABLE_ERRORS as exc:
            log.warning(
                "%s on command %s not recorded: %s",
                event["type"],
                bounded(command_id),
                bounded(repr(exc)),
            )
            return False
        return True


@dataclass(frozen=True, slots=True)
class Click:
    customer_id: str
    store_id: str
    command_id: str
    channel: Channel
    url: str


def _bad_link(status: int = 400) -> Reply:
    return page(
        status,
        "This link does not work",
        "It is invalid or has expired. Use the link in a recent message, or contact the store.",
    )
