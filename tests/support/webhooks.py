"""In-memory stand-ins for the webhooks' ports, and an app built on them (unit tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import test_utils
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from twilio.request_validator import RequestValidator

from senders.core.clock import FakeClock
from senders.messages.short_links import LinkRecord
from senders.webhooks.dedup import HANDLER_DEADLINE, Seen
from senders.webhooks.keywords import Keywords
from senders.webhooks.links import LinkConfig, LinkHooks
from senders.webhooks.metrics import WebhookMetrics
from senders.webhooks.replies import HelpReplies
from senders.webhooks.routes import HttpLimits, make_app, make_metrics_app
from senders.webhooks.twilio import TwilioConfig, TwilioHooks
from streams.contract.commands import SendResult
from streams.contract.consent_history import ConsentEntry, consents_record, history_record
from streams.contract.privacy import Pseudonyms
from tests.support.fakes import MemoryConsents

AUTH_TOKEN = "twilio-test-token"
ACCOUNT_SID = "AC" + "1234abcd" * 4  # the Twilio test server's account (AUTH_TOKEN its token)
PUBLIC_URL = "https://hooks.example.com"
UNSUBSCRIBE_SECRET = b"unsubscribe-test-secret"
CLICK_SECRET = b"click-test-secret"
HELP_REPLY = "Cartpulse Shop: cart reminders. Reply STOP to opt out."
REDIRECT_HOSTS = {"store-1": ("shop.example.com",), "*": ("cdn.example.com",)}
MAX_BODY = 4096
NAMES = Pseudonyms(b"address-hash-test-key")  # the history's pseudonyms


@dataclass
class MemoryOutbox:
    """``consents`` and ``history`` hold the records the consent ledger would write, decoded."""

    consents: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    history: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    results: list[SendResult] = field(default_factory=list)
    clicks: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    down: bool = False
    stall: float = 0.0  # seconds each consent write takes (a slow broker)

    def _check(self) -> None:
        if self.down:
            raise KafkaConnectionError("broker down (test)")

    async def consent(self, entry: ConsentEntry) -> None:
        self._check()
        await asyncio.sleep(self.stall)
        key, value = history_record(entry, NAMES, 0)
        self.history.append((key, orjson.loads(value)))
        key, value = consents_record(entry)
        self.consents.append((key, orjson.loads(value)))

    async def result(self, result: SendResult) -> None:
        self._check()
        self.results.append(result)

    async def engagement(self, key: bytes, value: bytes) -> None:
        self._check()
        self.clicks.append((key, orjson.loads(value)))


@dataclass
class MemoryDirectory:
    numbers: dict[str, list[str]] = field(default_factory=dict)

    async def customers(self, address: str) -> list[str]:
        return list(self.numbers.get(address, []))


@dataclass
class MemoryDeduplicator:
    seen: dict[tuple[str, str], str] = field(default_factory=dict)

    async def claim(self, scope: str, fingerprint: str) -> Seen:
        state = self.seen.get((scope, fingerprint))
        if state is None:
            self.seen[(scope, fingerprint)] = "pending"
            return "new"
        return "done" if state == "done" else "pending"

    async def done(self, scope: str, fingerprint: str) -> None:
        self.seen[(scope, fingerprint)] = "done"

    async def release(self, scope: str, fingerprint: str) -> None:
        if self.seen.get((scope, fingerprint)) == "pending":
            del self.seen[(scope, fingerprint)]


@dataclass
class MemoryShortLinks:
    records: dict[str, LinkRecord] = field(default_factory=dict)
    down: bool = False

    async def resolve(self, link_id: str) -> LinkRecord | None:
        if self.down:
            raise RedisConnectionError("redis down (test)")
        return self.records.get(link_id)


@dataclass
class World:
    client: test_utils.TestClient[Any, Any]
    outbox: MemoryOutbox
    consents: MemoryConsents
    directory: MemoryDirectory
    seen: MemoryDeduplicator
    clock: FakeClock
    registry: CollectorRegistry
    scraper: test_utils.TestClient[Any, Any]  # the private metrics app
    short_links: MemoryShortLinks

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0


@contextlib.asynccontextmanager
async def world(
    extra_opt_outs: tuple[str, ...] = (),
    handler_deadline: float = HANDLER_DEADLINE,
    public_url: str = PUBLIC_URL,
    max_body: int = MAX_BODY,
    help_reply: str | HelpReplies = HELP_REPLY,
) -> AsyncIterator[World]:
    outbox, consents = MemoryOutbox(), MemoryConsents()
    directory, seen = MemoryDirectory(), MemoryDeduplicator()
    clock = FakeClock()
    registry = CollectorRegistry()
    metrics = WebhookMetrics.create(registry)
    twilio = TwilioHooks(
        TwilioConfig(
            AUTH_TOKEN,
            Keywords.with_extra_opt_outs(extra_opt_outs),
            help_reply,
            "",
            "Welcome back",
            handler_deadline,
        ),
        outbox,
        consents,
        directory,
        seen,
        metrics,
        clock,
    )
    short_links = MemoryShortLinks()
    links = LinkHooks(
        LinkConfig(UNSUBSCRIBE_SECRET, CLICK_SECRET, REDIRECT_HOSTS),
        outbox,
        consents,
        metrics,
        clock,
        short_links,
    )

    async def ready() -> bool:
        return True

    app = make_app(twilio, links, metrics, ready, HttpLimits(max_body), public_url)
    server = test_utils.TestServer(app)
    # as served in production: no access log (URLs carry tokens, forms phone numbers)
    await server.start_server(access_log=None)
    client = test_utils.TestClient(server)
    scraper = test_utils.TestClient(test_utils.TestServer(make_metrics_app(registry, ready)))
    await client.start_server()
    await scraper.start_server()
    try:
        yield World(
            client, outbox, consents, directory, seen, clock, registry, scraper, short_links
        )
    finally:
        await client.close()
        await scraper.close()


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """The signature Twilio would send, computed by Twilio's own library."""
    return str(RequestValidator(token).compute_signature(url, form))


def inbound_form(
    body: str, sender: str = "+14155550100", sid: str = "SM" + "a" * 32
) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }


async def post_signed(
    w: World,
    path: str,
    form: dict[str, str],
    *,
    signed_url: str | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    url = signed_url or f"{PUBLIC_URL}{path}"
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    all_headers["X-Twilio-Signature"] = signature if signature is not None else sign(url, form)
    return await w.client.post(path, data=urlencode(form), headers=all_headers)
