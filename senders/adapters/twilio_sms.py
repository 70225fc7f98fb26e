"""SMS through Twilio's Messages API, with plain aiohttp (no library-level retries).

``POST {TWILIO_API_BASE}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with basic auth and
the form fields ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback`` and
``ValidityPeriod``. One request per call; what its answer means is ``outcomes.twilio_outcome``.
Transport failures are split by whether the request can have reached Twilio: a failed connect
(refused, DNS, connect timeout) certainly did not, anything after that might have.

Links: for a store with a ``short_link_base`` in the flow policy, ``prepare`` (pure) rewrites
every URL of the body to a short link (``senders.messages.short_links``) before the segments are
counted, and ``stage`` registers the links in Redis before the request can go out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

import aiohttp

from senders.adapters.phonebook import PhoneIndex
from senders.adapters.ratelimit import Limit
from senders.adapters.short_link_store import LinkRegistry
from senders.core.keys import Keys
from senders.core.outcomes import ProviderOutcome, twilio_outcome
from senders.messages.short_links import LinkRecord, Shortener, ShortLink
from senders.messages.templates import Renderer, SmsBody, compose_sms
from streams.contract.commands import Channel, SendCommand
from streams.contract.errors import ConfigurationError
from streams.core.policy import Policy
from streams.runtime.settings import Settings

MAX_VALIDITY: Final = 36_000  # seconds; Twilio's range is 1..36000 (error 90007)


@dataclass(frozen=True, slots=True)
class SmsMessage:
    to: str
    body: SmsBody
    links: tuple[ShortLink, ...] = ()  # the short links in ``body``, to register before sending

    @property
    def cost(self) -> int:
        return self.body.segments


class TwilioSms:
    """The SMS provider adapter; ``start`` opens the HTTP session, ``close`` ends it.

    ``policy`` gives each store's ``short_link_base`` (none: links stay as written); ``links``
    is where ``stage`` registers them, ``phones`` where it notes who is texted at a number
    (both None where nothing is sent, as in the preview).
    """

    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        keys: Keys,
        policy: Policy | None = None,
        links: LinkRegistry | None = None,
        phones: PhoneIndex | None = None,
    ) -> None:
        if not settings.twilio_account_sid or not settings.twilio_auth_token.get_secret_value():
            raise ConfigurationError(
                "the SMS sender needs CARTPULSE_TWILIO_ACCOUNT_SID and CARTPULSE_TWILIO_AUTH_TOKEN"
            )
        if not (settings.twilio_from or settings.twilio_messaging_service_sid):
            raise ConfigurationError(
                "set CARTPULSE_TWILIO_FROM or CARTPULSE_TWILIO_MESSAGING_SERVICE_SID"
            )
        validity = settings.twilio_validity_period
        if validity is not None and not 1 <= validity.total_seconds() <= MAX_VALIDITY:
            raise ConfigurationError("CARTPULSE_TWILIO_VALIDITY_PERIOD must be 1 s .. 10 h")
        self._settings = settings
        self._renderer = renderer
        self._keys = keys
        self._policy = policy
        self._links = links
        self._phones = phones
        self._shorteners = shorteners(settings, policy)
        self._session: aiohttp.ClientSession | None = None
        sid = settings.twilio_account_sid
        self._url = (
            f"{settings.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        )

    @property
    def channel(self) -> Channel:
        return "sms"

    @property
    def request_timeout(self) -> float:
        return self._settings.twilio_timeout.total_seconds()  # the session's total timeout

    def segments(self, message: SmsMessage, outcome: ProviderOutcome) -> int | None:
        """As Twilio billed them, else as counted (``cost``)."""
        return outcome.segments or message.cost

    def sender(self, store_id: str) -> tuple[str, str]:
        """``("MessagingServiceSid" | "From", value)`` a store's SMS go out under: its own
        Messaging Service or number (policy ``[stores.<id>]``), else the settings'."""
        s = self._settings
        store = self._policy.store(store_id) if self._policy is not None else None
        if store is not None and store.sms_messaging_service_sid:
            return "MessagingServiceSid", store.sms_messaging_service_sid
        if store is not None and store.sms_from:
            return "From", store.sms_from
        if s.twilio_messaging_service_sid:
            return "MessagingServiceSid", s.twilio_messaging_service_sid
        return "From", s.twilio_from or ""

    def limits(self, command: SendCommand) -> list[Limit]:
        """Per sender identity (each number or Messaging Service has its own throughput)
        and per account."""
        s = self._settings
        account = s.twilio_account_sid
        identity = self.sender(command.store_id)[1]
        scale = 1.0 - s.sender_rate_margin
        return [
            Limit(
                self._keys.limiter("sms", account, "sender", identity),
                s.sms_rate * scale,
                s.sms_burst,
            ),
            Limit(
                self._keys.limiter("sms", account, "account", "all"),
                s.sms_account_rate * scale,
                s.sms_account_burst,
            ),
        ]

    def prepare(self, command: SendCommand, now: float) -> SmsMessage:
        """The message as it will be sent, short links included; counts its segments only
        after the rewrite (a long store URL alone can double the cost)."""
        s = self._settings
        text, line = self._renderer.sms_parts(
            command.template, command.locale, command.variables, command.store_id
        )
        links: tuple[ShortLink, ...] = ()
        shortener = self._shortener(command.store_id)
        if shortener is not None:
            text, links = shortener.shorten(text, command.command_id)
        notice = command.variables.get("sms_opt_out_notice") is not False
        body = compose_sms(text, line, s.sms_smart_encoding, s.sms_max_segments, notice)
        return SmsMessage(command.to, body, links)

    def _shortener(self, store_id: str) -> Shortener | None:
        if self._policy is None:
            return None
        return self._shorteners.get(self._policy.store(store_id).store_id)

    async def stage(self, message: SmsMessage, command: SendCommand, now: float) -> None:
        """Register the message's short links (idempotent), each living
        ``CARTPULSE_CLICK_TOKEN_TTL`` from now; then note the customer under the number, so
        that a STOP in reply finds them (``phonebook.py``)."""
        await self._stage_links(message, command, now)
        if self._phones is not None:
            await self._phones.remember(command.to, command.customer_id, int(now * 1000))

    async def _stage_links(self, message: SmsMessage, command: SendCommand, now: float) -> None:
        if not message.links:
            return
        if self._links is None:
            raise RuntimeError("TwilioSms.stage with short links but no link registry")
        expires_ms = int((now + self._settings.click_token_ttl.total_seconds()) * 1000)
        await self._links.register(
            [
                (
                    link.link_id,
                    LinkRecord(
                        link.url,
                        command.customer_id,
                        command.store_id,
                        command.command_id,
                        "sms",
                        expires_ms,
                    ),
                )
                for link in message.links
            ]
        )

    def form(self, message: SmsMessage, command: SendCommand, now: float) -> dict[str, str]:
        """The request's form fields (public for tests)."""
        s = self._settings
        field, sender = self.sender(command.store_id)
        form = {"To": message.to, "Body": message.body.text, field: sender}
        if s.twilio_status_callback:
            joiner = "&" if "?" in s.twilio_status_callback else "?"
            form["StatusCallback"] = (
                f"{s.twilio_status_callback}{joiner}command_id={quote(command.command_id)}"
            )
        # Twilio drops a message still queued after ValidityPeriod: never past expires_at.
        remaining = math.floor(command.expires_at.timestamp() - now)
        configured = s.twilio_validity_period
        limit = int(configured.total_seconds()) if configured is not None else MAX_VALIDITY
        form["ValidityPeriod"] = str(max(1, min(remaining, limit, MAX_VALIDITY)))
        return form

    async def start(self) -> None:
        s = self._settings
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=s.twilio_timeout.total_seconds(),
                sock_connect=s.twilio_connect_timeout.total_seconds(),
            ),
            connector=aiohttp.TCPConnector(limit=s.sender_concurrency, ttl_dns_cache=300),
            headers={
                "Accept": "application/json",
                "User-Agent": "cartpulse-sender/0.1",
                "Authorization": aiohttp.encode_basic_auth(
                    s.twilio_account_sid, s.twilio_auth_token.get_secret_value()
                ),
            },
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def warm(self) -> ProviderOutcome | None:
        return None  # no session to open: each request carries the credentials

    async def send(self, message: SmsMessage, command: SendCommand, now: float) -> ProviderOutcome:
        if self._session is None:
            raise RuntimeError("TwilioSms.send before start()")
        form = self.form(message, command, now)
        try:
            async with self._session.post(self._url, data=form) as response:
                try:
                    body = await response.json(content_type=None)
                except (TimeoutError, ValueError, aiohttp.ClientPayloadError):
                    body = None
                return twilio_outcome(
                    response.status,
                    body if isinstance(body, dict) else None,
                    response.headers.get("Retry-After"),
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The TCP (or TLS) connection never came up: Twilio has not seen this request.
            return ProviderOutcome("unavailable", "connection", error_code=type(exc).__name__)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return ProviderOutcome("unknown", "timeout", error_code="timeout")
        except (aiohttp.ClientError, OSError) as exc:
            return ProviderOutcome("unknown", "disconnected", error_code=type(exc).__name__)


def shorteners(settings: Settings, policy: Policy | None) -> dict[str, Shortener]:
    """The link shortener of each store with a ``short_link_base``; ``ConfigurationError``
    when there is one and no ``CARTPULSE_CLICK_SECRET`` (the ids' key), or a base too long."""
    bases = {
        store.store_id: store.short_link_base
        for store in (policy.stores.values() if policy is not None else ())
        if store.short_link_base
    }
    secret = settings.click_secret.get_secret_value().encode()
    if bases and not secret:
        raise ConfigurationError(
            f"stores {', '.join(sorted(bases))} shorten SMS links (short_link_base): the SMS "
            "sender needs CARTPULSE_CLICK_SECRET"
        )
    return {store_id: Shortener(base, secret) for store_id, base in bases.items()}
