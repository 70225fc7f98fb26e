"""Email over SMTP with aiosmtplib: a small pool of long-lived connections per replica.

Each connection does STARTTLS or implicit TLS and AUTH (from settings) once, then carries many
messages. A message goes out as ``MAIL``, ``RCPT`` and ``DATA`` step by step, so a failure is
classified by where it happened: any refusal (a reply code) means the message was not
accepted; losing the connection before ``DATA`` means it was not sent; losing it during
``DATA`` is ambiguous (``unknown``). A pooled connection found dead at ``MAIL`` is replaced
once, transparently.

Opening a connection (greeting, STARTTLS, AUTH) sends no message, and ``warm`` does it before
the sender marks a command ``sending``: a relay that refuses the login (535) or never answers
makes the channel ``unavailable`` (the command is held and retried), the whole opening is
bounded by ``CARTPULSE_SMTP_TIMEOUT``, and a shutdown may cancel it at any point.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr

import aiosmtplib

from senders.adapters.ratelimit import Limit
from senders.core.keys import Keys
from senders.core.outcomes import ProviderOutcome, smtp_outcome
from senders.messages.clicks import ClickLinks
from senders.messages.mime import build_email
from senders.messages.opens import OpenPixels
from senders.messages.packs import DEFAULT_STORE
from senders.messages.templates import Renderer
from senders.messages.unsubscribe import (
    UnsubscribeToken,
    make_token,
    unsubscribe_mailto,
    unsubscribe_url,
)
from streams.contract.commands import Channel, SendCommand
from streams.contract.errors import ConfigurationError
from streams.core.stores import Store
from streams.runtime.settings import Settings

_CONNECTION_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to: str
    message_id: str
    data: bytes

    @property
    def cost(self) -> int:
        return 1


class SmtpPool:
    """At most ``size`` connections; a connection serves one message at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Last in, first out: a connection that ``warm`` just opened is the next one used.
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP | None] = asyncio.LifoQueue()
        for _ in range(settings.smtp_pool_size):
            self._idle.put_nowait(None)
        self.opened = 0
        self._tls = self._tls_context()

    def _tls_context(self) -> ssl.SSLContext | None:
        if self._settings.smtp_security == "none":
            return None
        context = ssl.create_default_context()
        if self._settings.smtp_ca_file is not None:
            context.load_verify_locations(cafile=str(self._settings.smtp_ca_file))
        return context

    async def acquire(self) -> aiosmtplib.SMTP | None:
        return await self._idle.get()

    def release(self, client: aiosmtplib.SMTP | None) -> None:
        self._idle.put_nowait(client)

    async def connect(self) -> aiosmtplib.SMTP:
        """Open, secure and log in one connection, within one ``smtp_timeout`` in all.

        Raises what ``refused`` maps; a half-open connection is closed on any way out."""
        s = self._settings
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=password,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            tls_context=self._tls,
            timeout=s.smtp_timeout.total_seconds(),
        )
        try:
            async with asyncio.timeout(s.smtp_timeout.total_seconds()):
                await client.connect()
        except BaseException:
            client.close()
            raise
        self.opened += 1
        return client

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except _CONNECTION_ERRORS:
                    client.close()


def click_links(settings: Settings) -> ClickLinks | None:
    """The email's click tracking, when on; ``ConfigurationError`` if it cannot work."""
    if not settings.email_click_tracking:
        return None
    secret = settings.click_secret.get_secret_value()
    if not secret or settings.webhooks_public_url is None:
        raise ConfigurationError(
            "CARTPULSE_EMAIL_CLICK_TRACKING needs CARTPULSE_CLICK_SECRET (the webhooks service's "
            "key for click tokens) and CARTPULSE_WEBHOOKS_PUBLIC_URL (where clicks go)"
        )
    ttl_ms = int(settings.click_token_ttl.total_seconds() * 1000)
    hosts = settings.webhooks_redirect_hosts
    return ClickLinks(secret.encode(), settings.webhooks_public_url, hosts, ttl_ms)


def open_pixels(settings: Settings) -> OpenPixels | None:
    """The email's open pixel: on wherever click tracking is (``senders.messages.opens``), unless
    ``CARTPULSE_EMAIL_OPEN_TRACKING`` turns it off."""
    if not (settings.email_click_tracking and settings.email_open_tracking):
        return None
    ttl_ms = int(settings.click_token_ttl.total_seconds() * 1000)
    secret = settings.click_secret.get_secret_value().encode()
    return OpenPixels(secret, settings.webhooks_public_url or "", ttl_ms)


class SmtpEmail:
    """The email provider adapter."""

    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        keys: Keys,
        stores: Mapping[str, Store] | None = None,
    ) -> None:
        """``stores`` (the policy's) give a store's own From and Reply-To; the envelope
        sender stays ``CARTPULSE_EMAIL_FROM``'s address, the relay's account."""
        if not settings.unsubscribe_secret.get_secret_value():
            raise ConfigurationError(
                "the email sender needs CARTPULSE_UNSUBSCRIBE_SECRET (signs unsubscribe links)"
            )
        _, address = parseaddr(settings.email_from)
        if "@" not in address:
            raise ConfigurationError("CARTPULSE_EMAIL_FROM must hold an address: Shop <a@b.c>")
        self._settings = settings
        self._renderer = renderer
        self._keys = keys
        self._sender = address
        self._domain = address.rpartition("@")[2]
        self._secret = settings.unsubscribe_secret.get_secret_value().encode()
        self._clicks = click_links(settings)  # refuses settings click tracking cannot work with
        self._opens = open_pixels(settings)
        self._stores = dict(stores or {})
        self.pool = SmtpPool(settings)

    @property
    def channel(self) -> Channel:
        return "email"

    @property
    def request_timeout(self) -> float:
        # a stale pooled connection is replaced once within a send: two timeouts at most
        return 2 * self._settings.smtp_timeout.total_seconds()

    def segments(self, message: EmailMessage, outcome: ProviderOutcome) -> int | None:
        return None  # an email is one message, whatever its size

    def limits(self, command: SendCommand) -> list[Limit]:
        """Per relay and account: every store's email goes through the one relay."""
        s = self._settings
        account = s.smtp_username or s.smtp_host
        scale = 1.0 - s.sender_rate_margin
        relay = f"{s.smtp_host}:{s.smtp_port}"
        return [
            Limit(
                self._keys.limiter("email", account, "relay", relay),
                s.email_rate * scale,
                s.email_burst,
            ),
            Limit(
                self._keys.limiter("email", account, "account", "all"),
                s.email_account_rate * scale,
                s.email_account_burst,
            ),
        ]

    def prepare(self, command: SendCommand, now: float) -> EmailMessage:
        s = self._settings
        expires_ms = int((now + s.unsubscribe_token_ttl.total_seconds()) * 1000)
        token = make_token(
            self._secret,
            UnsubscribeToken(command.customer_id, "email", command.store_id, expires_ms),
        )
        https = unsubscribe_url(s.email_unsubscribe_url, token)
        variables = (
            self._clicks.rewrite(command.variables, command, int(now * 1000))
            if self._clicks is not None
            else dict(command.variables)
        )  # a copy either way
        variables["unsubscribe_url"] = https  # after the rewrite: the link we sign, not tracked
        clicks, opens = self._clicks, self._opens
        if opens is not None and clicks is not None and clicks.tracks(command.store_id):
            variables["open_pixel_url"] = opens.url(command, int(now * 1000))  # where clicks are
        rendered = self._renderer.render_email(
            command.template, command.locale, variables, command.store_id
        )
        store = self._stores.get(command.store_id) or self._stores.get(DEFAULT_STORE)
        message = build_email(
            command,
            rendered,
            sender=(store.email_from if store else None) or s.email_from,
            reply_to=store.email_reply_to if store else None,
            domain=self._domain,
            unsubscribe_https=https,
            unsubscribe_mailto=unsubscribe_mailto(s.email_unsubscribe_mailto, token),
            now=datetime.fromtimestamp(now, tz=UTC),
        )
        return EmailMessage(command.to, str(message["Message-ID"]), message.as_bytes())

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.pool.close()

    async def stage(self, message: EmailMessage, command: SendCommand, now: float) -> None:
        return None  # an email's links are signed tokens: nothing to store before sending

    async def warm(self) -> ProviderOutcome | None:
        """Have a logged-in connection ready in the pool (see the module docstring)."""
        client = await self.pool.acquire()
        try:
            if client is not None and client.is_connected:
                return None
            if client is not None:
                client.close()
            client = None
            try:
                client = await self.pool.connect()
            except _CONNECTION_ERRORS as exc:
                return refused(exc)
            return None
        finally:
            self.pool.release(client)

    async def send(
        self, message: EmailMessage, command: SendCommand, now: float
    ) -> ProviderOutcome:
        client = await self.pool.acquire()
        keep = False
        try:
            if client is not None and client.is_connected:
                outcome, keep = await self._transaction(client, message)
                if outcome.reason != "connection":
                    return outcome
                # The pooled connection went stale before MAIL: nothing was sent. Once, afresh.
                client.close()
            client = None
            try:
                client = await self.pool.connect()
            except _CONNECTION_ERRORS as exc:
                return refused(exc)
            outcome, keep = await self._transaction(client, message)
            return outcome
        finally:
            if not keep and client is not None:
                client.close()
                client = None
            self.pool.release(client)

    async def _transaction(
        self, client: aiosmtplib.SMTP, message: EmailMessage
    ) -> tuple[ProviderOutcome, bool]:
        """One MAIL/RCPT/DATA; returns the outcome and whether the connection is reusable."""
        try:
            await client.mail(self._sender)
            await client.rcpt(message.to)
        except aiosmtplib.SMTPResponseException as exc:
            try:
                await client.rset()
            except _CONNECTION_ERRORS:
                return smtp_outcome(exc.code, exc.message), False
            return smtp_outcome(exc.code, exc.message), True
        except _CONNECTION_ERRORS as exc:
            return ProviderOutcome("retry", "connection", error_code=type(exc).__name__), False
        try:
            await client.data(message.data)
        except aiosmtplib.SMTPResponseException as exc:
            # A reply to DATA or to the content: the server answered, and did not accept it.
            return smtp_outcome(exc.code, exc.message), client.is_connected
        except aiosmtplib.SMTPTimeoutError:
            return ProviderOutcome("unknown", "timeout", error_code="timeout"), False
        except _CONNECTION_ERRORS as exc:
            return ProviderOutcome("unknown", "disconnected", error_code=type(exc).__name__), False
        return ProviderOutcome("sent", "ok", provider_id=message.message_id), True


def refused(exc: BaseException) -> ProviderOutcome:
    """What a failure to open a connection means: the relay is ``unavailable`` (no message was
    sent); ``auth`` when it refused the login, ``timeout`` when it did not answer."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        outcome = smtp_outcome(exc.code, exc.message)  # 535 → auth
        if outcome.kind == "unavailable":
            return outcome
        return ProviderOutcome("unavailable", "connection", error_code=outcome.error_code)
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
        return ProviderOutcome("unavailable", "timeout", error_code="connect_timeout")
    return ProviderOutcome("unavailable", "connection", error_code=type(exc).__name__)
