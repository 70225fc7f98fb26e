"""Twilio's webhooks: inbound messages (keywords → the consent ledger) and status callbacks
(→ ``send.results``). Framework-free: the routes hand over the URL Twilio signed, the parsed
form and the headers, and send back the ``Reply``.

Order for both: the signature first (403 when it does not verify, before anything is read or
remembered), then de-duplication, then the work, which is durable before the reply: records
acknowledged by Kafka, the consent mirror updated in Redis so senders see an opt-out at once.
Kafka or Redis trouble propagates; the route answers 503 and Twilio retries.

De-duplication: Twilio retries a webhook that timed out or failed, with the same
``I-Twilio-Idempotency-Token``. The event itself is named by the message SID (inbound) or the
SID and the status (callbacks), which also catches a replay under another token or none, so
that is the fingerprint; the token is the fallback for a request without a SID.

An inbound keyword is also recognised by its sender and text (``normalise``d): a message
replayed under a new SID (re-split by a proxy, say) is a duplicate when the same text from the
same number was recorded within the window *and* the number's consent is still what that
record made it. Once the consent changed (START, or an opt-in by another way), the same STOP
is recorded again: a repeat is only ever skipped when it would change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from pydantic import ValidationError

from senders.adapters.consents import Consents, address_subject, record_consent
from senders.adapters.errors import INFRA_ERRORS
from senders.core.clock import Clock
from senders.core.keys import mask_address
from senders.webhooks.dedup import HANDLER_DEADLINE, PENDING_TTL, Deduplicator
from senders.webhooks.forms import Form, first
from senders.webhooks.keywords import Keyword, Keywords, normalise
from senders.webhooks.logs import bounded
from senders.webhooks.metrics import WebhookMetrics
from senders.webhooks.ports import Directory, Outbox
from senders.webhooks.replies import RETRY_LATER, HelpReplies, Reply, plain, twiml
from senders.webhooks.signature import signature_valid
from streams.contract.commands import ResultStatus, SendResult, is_undeliverable
from streams.contract.consent_history import ConsentEntry, ConsentStatus
from streams.contract.errors import InvalidRecord

log = logging.getLogger(__name__)

SOURCE_KEYWORD: Final = "sms_keyword"
MAX_PROOF_BODY: Final = 160  # characters of an inbound keyword message the history keeps
SCOPE_CONTENT: Final = "inbound_content"  # an inbound keyword by sender and text
DELIVERY_STATUSES: Final[dict[str, ResultStatus]] = {
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    auth_token: str
    keywords: Keywords
    help_reply: str | HelpReplies  # a text for every store, or each store's own
    opt_out_reply: str
    opt_in_reply: str
    handler_deadline: float = HANDLER_DEADLINE  # seconds the work of one webhook may take

    def __post_init__(self) -> None:
        # The ``pending`` marker must outlive the attempt that set it, or a retry would do
        # the work a second time while the first attempt is still at it.
        if not 0 < self.handler_deadline < PENDING_TTL:
            raise ValueError(
                f"handler_deadline must be above 0 and below the pending marker's "
                f"{PENDING_TTL} s, not {self.handler_deadline}"
            )


@dataclass(frozen=True, slots=True)
class TwilioRequest:
    url: str  # as Twilio requested it, query string included
    form: Form
    signature: str | None
    idempotency_token: str | None
    command_id: str | None = None  # from the status callback URL's query


class TwilioHooks:
    def __init__(
        self,
        config: TwilioConfig,
        outbox: Outbox,
        consents: Consents,
        directory: Directory,
        seen: Deduplicator,
        metrics: WebhookMetrics,
        clock: Clock,
    ) -> None:
        self._c = config
        self._outbox = outbox
        self._consents = consents
        self._directory = directory
        self._seen = seen
        self._metrics = metrics
        self._clock = clock

    async def inbound(self, request: TwilioRequest) -> Reply:
        """An inbound SMS: a keyword changes consent; the answer is TwiML."""
        if not signature_valid(request.url, request.form, self._c.auth_token, request.signature):
            return plain(403, "signature does not verify", "forbidden")
        sender = first(request.form, "From")
        if not sender:
            raise InvalidRecord("an inbound message needs From")
        keyword = self._c.keywords.classify(
            first(request.form, "Body"), first(request.form, "OptOutType")
        )
        reply = self._reply_to(keyword, request.form)
        if keyword is None or keyword.kind == "help":
            self._metrics.keywords.labels(keyword.kind if keyword else "none").inc()
            return reply
        sid = _message_sid(request.form)
        fingerprint = sid or request.idempotency_token
        if not fingerprint:
            raise InvalidRecord("an inbound message needs MessageSid")

        content = f"{sender}\n{normalise(first(request.form, 'Body'))}"

        async def record() -> bool:
            if await self._repeats_a_record(content, keyword, sender):
                return False
            try:
                await self._record_keyword(request, keyword, sender)
            except BaseException:
                with contextlib.suppress(*INFRA_ERRORS):
                    await self._seen.release(SCOPE_CONTENT, content)
                raise
            await self._seen.done(SCOPE_CONTENT, content)
            self._metrics.keywords.labels(keyword.kind).inc()
            return True

        return await self._once("inbound", fingerprint, record, reply)

    async def _repeats_a_record(self, content: str, keyword: Keyword, sender: str) -> bool:
        """True when ``content`` was recorded within the window and the number's consent is
        still what ``keyword`` would make it (see the module: nothing to change, nothing lost)."""
        if await self._seen.claim(SCOPE_CONTENT, content) != "done":
            return False
        consent, _ = await self._consents.standing(address_subject(sender), "sms", sender)
        wanted: ConsentStatus = "opted_out" if keyword.kind == "opt_out" else "opted_in"
        return consent is not None and consent.status == wanted

    async def status(self, request: TwilioRequest) -> Reply:
        """A status callback: final delivery states go to ``send.results``, once each."""
        if not signature_valid(request.url, request.form, self._c.auth_token, request.signature):
            return plain(403, "signature does not verify", "forbidden")
        raw_status = first(request.form, "MessageStatus") or first(request.form, "SmsStatus")
        status = DELIVERY_STATUSES.get(raw_status.lower())
        if status is None or not request.command_id:
            # queued / sent / read ... are not outcomes; a callback without our command_id
            # belongs to a message cartpulse did not send.
            return plain(200, "ignored", "ignored")
        sid = _message_sid(request.form)
        fingerprint = f"{sid}:{raw_status.lower()}" if sid else request.idempotency_token
        if not fingerprint:
            raise InvalidRecord("a status callback needs MessageSid")
        code = first(request.form, "ErrorCode")
        try:
            result = SendResult(
                command_id=request.command_id,
                status=status,
                provider_id=sid or None,
                error_code=code or None,
                attempts=0,
                at=datetime.fromtimestamp(self._clock.now(), tz=UTC),
                channel="sms",
            )
        except ValidationError:
            raise InvalidRecord("status callback does not make a valid send result") from None
        to = first(request.form, "To")

        async def record() -> bool:
            await self._outbox.result(result)
            if to and is_undeliverable("sms", code):
                await self._consents.mark_undeliverable("sms", to, code)
            self._metrics.delivery_reports.labels(status).inc()
            return True

        return await self._once("status", fingerprint, record, plain(200, "ok", "ok"))

    def _reply_to(self, keyword: Keyword | None, form: Form) -> Reply:
        if keyword is None:
            return twiml()
        helps = self._c.help_reply
        text = {
            "help": helps
            if isinstance(helps, str)
            else helps.for_message(first(form, "To"), first(form, "MessagingServiceSid")),
            "opt_out": self._c.opt_out_reply,
            "opt_in": self._c.opt_in_reply,
        }[keyword.kind]
        return twiml(text)

    async def _record_keyword(self, request: TwilioRequest, keyword: Keyword, sender: str) -> None:
        at_ms = int(self._clock.now() * 1000)
        status: ConsentStatus = "opted_out" if keyword.kind == "opt_out" else "opted_in"
        customers = await self._directory.customers(sender)
        if not customers:
            self._metrics.unresolved.inc()
        evidence = {
            "keyword": keyword.word,
            "url": request.url,
            "signature": request.signature,
            "idempotency_token": request.idempotency_token,
            "form": {name: list(values) for name, values in request.form.items()},
            "resolved_customers": customers,
        }
        # The history is kept for good: it holds the number only as address_hash, so not the
        # form (From is in it) nor the signature (which only the whole form verifies); the
        # customers resolved become their pseudonyms there, and an address in the body its hash.
        proof = {
            "keyword": keyword.word,
            "message_sid": _message_sid(request.form) or None,
            "body": first(request.form, "Body")[:MAX_PROOF_BODY],
            "to": first(request.form, "To") or None,  # the store's own number
            "account_sid": first(request.form, "AccountSid") or None,
            "messaging_service_sid": first(request.form, "MessagingServiceSid") or None,
            "opt_out_type": first(request.form, "OptOutType") or None,
            "idempotency_token": request.idempotency_token,
            "resolved_customers": customers,
        }
        # The number itself always, and every customer texted at it: the opt-out is never
        # lost, and journeys (which read consents by customer) stop scheduling at once.
        subjects = [address_subject(sender), *customers]
        for subject in subjects:
            entry = ConsentEntry(
                subject, "sms", status, SOURCE_KEYWORD, at_ms, evidence,
                address=sender, history_evidence=proof, customers=tuple(customers),
                free_text=("body",),
            )  # fmt: skip
            await record_consent(self._outbox.consent, self._consents, entry)
            self._metrics.consents.labels("sms", status).inc()
        log.info(
            "%s from %s recorded for %d customer(s)",
            bounded(keyword.word),
            bounded(mask_address(sender)),
            len(customers),
        )

    async def _once(
        self, scope: str, fingerprint: str, work: Callable[[], Awaitable[bool]], reply: Reply
    ) -> Reply:
        """``work`` once per ``fingerprint``; it returns False when it found the event already
        recorded under another name (the reply is then a ``duplicate``)."""
        state = await self._seen.claim(scope, fingerprint)
        if state == "done":
            return replace(reply, outcome="duplicate")
        if state == "pending":  # the first delivery is still being handled
            return plain(503, "being handled; retry later", "unavailable", RETRY_LATER)
        try:
            async with asyncio.timeout(self._c.handler_deadline):
                fresh = await work()
        except TimeoutError:
            with contextlib.suppress(*INFRA_ERRORS):
                await self._seen.release(scope, fingerprint)
            log.warning(
                "%s: not handled within %g s; asked to retry", scope, self._c.handler_deadline
            )
            return plain(503, "took too long; retry later", "unavailable", RETRY_LATER)
        except BaseException:
            with contextlib.suppress(*INFRA_ERRORS):
                await self._seen.release(scope, fingerprint)
            raise
        await self._seen.done(scope, fingerprint)
        return reply if fresh else replace(reply, outcome="duplicate")


def _message_sid(form: Form) -> str:
    """The message's SID (``SmsSid`` in Twilio's older field name), or ``""``."""
    return first(form, "MessageSid") or first(form, "SmsSid")
