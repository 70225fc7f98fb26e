"""One command's way through a sender: claim → check → render → limit → send → record.

``SendService`` is the async shell around ``decide.py``: it reads one fact at a time (the
ledger, the consents, the coupon's state, the rate limiter, the provider's answer), asks
``decide`` what that means, and performs the action (sleep in place, release and defer,
record an outcome). Every decision is ``decide``'s; the shell is the same for SMS and email
(what differs is the provider adapter's, ``provider.py``).

``handle`` returns what the consumer must do with the record: nothing more (``Done``: the
outcome is on ``send.results``), move it to the retry topic (``Defer``: a wait too long to
hold), or dead-letter it (``Reject``). Redis and Kafka failures before a request went out
propagate (the consumer retries the whole command: nothing was sent); after a request went
out they are retried in place until the outcome is recorded.

Ordering that makes it exactly-once: the ledger claim comes first (a redelivery is answered
from the ledger, whatever its age), the ledger says ``sending`` before the request, and the
offset is committed only after the result is on ``send.results`` (see ``consumer.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime
from typing import Generic

from senders.adapters.consents import Consents
from senders.adapters.errors import INFRA_ERRORS
from senders.adapters.ledger import Ledger
from senders.adapters.provider import P, Provider
from senders.adapters.ratelimit import Limiter
from senders.core.clock import Clock
from senders.core.decide import (
    Action,
    Answer,
    Backoff,
    Claim,
    CouponGate,
    Finish,
    Go,
    Postpone,
    RateAnswer,
    Redeliver,
    Retry,
    Rules,
    SendAt,
    Standing,
    TakeOver,
    Wait,
    decide,
    retry_delay,
)
from senders.core.dispositions import Defer, Disposition, Done, Reject, Work
from senders.core.health import ProviderHealth
from senders.core.ledger_states import Claimed
from senders.core.outcomes import ProviderOutcome, error_label
from senders.coupons.gate import coupon_of
from senders.coupons.gate import verdict as coupon_verdict
from senders.coupons.ports import CouponStates
from senders.runtime.metrics import Metrics
from senders.runtime.recorder import Emitter, Recorder
from streams.contract.commands import SendCommand
from streams.contract.coupons import CouponRecord
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

# ``handle``'s answers are importable from here, beside it (their home: ``dispositions.py``).
__all__ = ["SendService"]

SENDING_LEAD = 0.01  # seconds before its rate slot that a command is marked `sending`
# Why a provider counts as unavailable (``health.py``): the label set of its metrics.
FAULT_REASONS: tuple[str, ...] = ("auth", "connection", "timeout", "server_error")


class SendService(Generic[P]):
    """The shell around ``decide``: reads each fact, asks ``decide``, performs the action.

    Nothing in it depends on the channel: what does (the request's timeout, what a message
    needs staged before it is sent, its segments) is the provider adapter's (``provider.py``).
    """

    def __init__(
        self,
        settings: Settings,
        provider: Provider[P],
        ledger: Ledger,
        limiter: Limiter,
        consents: Consents,
        emitter: Emitter,
        metrics: Metrics,
        clock: Clock,
        coupons: CouponStates | None = None,
    ) -> None:
        self._s = settings
        self._coupons = coupons  # None: coupons are not checked (tests of other parts)
        self._provider = provider
        self._ledger = ledger
        self._limiter = limiter
        self._consents = consents
        self._metrics = metrics
        self._clock = clock
        self.channel = provider.channel
        self._record = Recorder(self.channel, ledger, consents, emitter, metrics, clock)
        inline = settings.sender_inline_wait.total_seconds()
        if settings.sender_claim_ttl.total_seconds() <= 2 * inline:
            # A claim is refreshed between waits; two in a row (not_before, then a rate
            # slot) must not outlast it, or another replica could take a live command.
            raise ConfigurationError(
                "CARTPULSE_SENDER_CLAIM_TTL must be more than twice CARTPULSE_SENDER_INLINE_WAIT"
            )
        self.inline_wait = inline
        self.request_deadline = provider.request_timeout + 1.0
        # A `sending` entry older than this belongs to a request that has ended for sure.
        self.sending_grace = self.request_deadline + 5.0
        self.rules = Rules.of(settings, self.sending_grace)
        self.health = ProviderHealth(
            settings.sender_backoff_base.total_seconds(),
            settings.sender_backoff_max.total_seconds(),
            probe_hold=self.request_deadline,
        )
        for reason in FAULT_REASONS:
            metrics.provider_unavailable.labels(self.channel, reason).set(0)

    async def handle(self, command: SendCommand, work: Work) -> Disposition:
        """Decide and act on one command (see the module docstring for what it returns)."""
        try:
            return await self._handle(command, work)
        except asyncio.CancelledError:
            if not work.critical:  # nothing went out: free the command for its next owner
                with contextlib.suppress(*INFRA_ERRORS):
                    await asyncio.shield(self._ledger.release(command.command_id, work.owner))
            raise

    def _decide(self, command: SendCommand, fact: Claim | Standing | CouponGate) -> Action:
        return decide(command, fact, self._clock.now(), self.rules)

    async def _handle(self, command: SendCommand, work: Work) -> Disposition:
        if (ended := await self._claim(command, work)) is not None:
            return ended
        standing, coupon_state = await self._standing(command)
        if not isinstance(action := self._decide(command, standing), Go):
            return await self._end(command, work, action)
        try:
            message = self._provider.prepare(command, self._clock.now())
        except InvalidRecord as exc:
            await self._record.finish(command, work, "failed", error_code="invalid_message")
            return Reject(exc.reason)
        if command.mode == "dry_run":
            return await self._record.finish(command, work, "suppressed", error_code="dry_run")
        if (gated := await self._coupon_gate(command, work, coupon_state)) is not None:
            return gated
        try:
            # Before the request: what the message relies on once delivered (its short
            # links; for SMS, the number's customer that a STOP in reply must find).
            await self._provider.stage(message, command, self._clock.now())
        except InvalidRecord as exc:
            await self._record.finish(command, work, "failed", error_code="invalid_message")
            return Reject(exc.reason)
        return await self._send(command, message, work)

    async def _claim(self, command: SendCommand, work: Work) -> Disposition | None:
        """Claim the command in the ledger, waiting a while for another owner; None once this
        task owns it and it is due, else how it ended here."""
        cid = command.command_id
        held = 0.0  # how long this task has waited for another owner so far
        while True:
            state = await self._ledger.claim(cid, work.owner)
            match self._decide(command, Claim(state, held)):
                case Go():
                    return None
                case Wait(seconds) if isinstance(state, Claimed):  # its not_before
                    await self._clock.sleep(seconds)
                    return None
                case Wait(seconds):
                    await self._clock.sleep(seconds)
                    held += seconds
                case TakeOver():
                    taken = await self._record.take_over(command, work, self.sending_grace)
                    if taken is not None:
                        return taken
                case action:  # another owner's claim (Busy, Sending) is not ours to release
                    return await self._end(command, work, action, owned=isinstance(state, Claimed))

    async def _coupon_gate(
        self, command: SendCommand, work: Work, first: CouponRecord | BaseException | None
    ) -> Disposition | None:
        """None when the command carries no coupon or the store honours it (registered, the
        same offer, unused); else hold it a moment in place, then on the retry topic, until
        the registration wait runs out: not sent, ``coupon_unavailable`` (senders/coupons).
        ``first`` is the store's state read with the consents (``_standing``), or what reading
        it raised; the gate reads again only after a wait."""
        coupon = coupon_of(command)
        if coupon is None or self._coupons is None:
            return None
        code, wait = str(coupon["code"]), self._s.coupon_registration_wait.total_seconds()
        held, state = 0.0, first
        while True:
            if isinstance(state, BaseException):
                raise state
            now = self._clock.now()
            said = coupon_verdict(coupon, state, command, now, wait)
            match self._decide(command, CouponGate(said, held)):
                case Go():
                    if held and not isinstance(
                        await self._ledger.claim(command.command_id, work.owner), Claimed
                    ):
                        return Done(None)  # the claim lapsed and another task took the command
                    return None
                case Wait(seconds):
                    await self._clock.sleep(seconds)
                    held += seconds
                    state = await self._coupons.get(code)
                case action:
                    if said.action == "unavailable":
                        log.info(
                            "command %s: coupon unavailable (%s)", command.command_id, said.reason
                        )
                    return await self._end(command, work, action)

    async def _standing(
        self, command: SendCommand
    ) -> tuple[Standing, CouponRecord | BaseException | None]:
        """The command's consent standing, and for a command with a coupon the store's state
        of it (for ``_coupon_gate``), read at once: one round trip, not two. A failed coupon
        read is returned, not raised: it matters only if the command gets as far as the gate."""
        read = self._consents.standing(command.customer_id, command.channel, command.to)
        coupon = coupon_of(command)
        if coupon is None or self._coupons is None:
            return Standing(*await read), None
        standing, state = await asyncio.gather(
            read, self._coupons.get(str(coupon["code"])), return_exceptions=True
        )
        if isinstance(standing, BaseException):
            raise standing
        return Standing(*standing), state

    async def _send(self, command: SendCommand, message: P, work: Work) -> Disposition:
        cid = command.command_id
        limits = self._provider.limits(command)
        while True:
            if (wait := self.health.admit(self._clock.now())) > 0:
                # The provider is unavailable: wait for a probe's answer, don't add to it.
                if (done := await self._backoff(command, work, wait, self.health.code)) is not None:
                    return done
                continue
            if (refused := await self._provider.warm()) is not None:
                work.attempts += 1  # a login refused before anything was sent
                self._observe(refused)
                if (done := await self._not_sent(command, work, refused)) is not None:
                    return done
                continue
            grant = await self._limiter.acquire(limits, message.cost, self.inline_wait)
            now = self._clock.now()
            if grant.granted:
                self._metrics.limiter_wait.labels(self.channel).observe(grant.wait)
            match decide(command, RateAnswer(grant), now, self.rules):
                case SendAt(slot):
                    pass
                case Wait(seconds):
                    await self._clock.sleep(seconds)
                    if not isinstance(await self._ledger.claim(cid, work.owner), Claimed):
                        return Done(None)
                    continue
                case action:
                    return await self._end(command, work, action)
            # Mark the ledger just before the slot rather than after it, so that the Redis
            # round trip does not delay the request past its slot (late requests bunch up
            # with the next ones at the provider). A crash in this short gap ends "unknown".
            await self._clock.sleep(slot - self._clock.now() - SENDING_LEAD)
            if not await self._ledger.mark_sending(cid, work.owner):
                log.warning("command %s: claim lost before sending; its new owner goes on", cid)
                return Done(None)
            work.critical = True
            await self._clock.sleep(slot - self._clock.now())
            work.attempts += 1
            outcome = await self._request(command, message)
            if outcome.error_code is not None:
                self._metrics.provider_errors.labels(
                    self.channel, error_label(outcome.error_code)
                ).inc()
            self._observe(outcome)
            action = decide(command, Answer(outcome), self._clock.now(), self.rules)
            if not isinstance(action, Retry):
                segments = self._provider.segments(message, outcome)
                return await self._end(command, work, action, segments=segments)
            await self._record.durable(lambda: self._ledger.unsend(cid, work.owner))
            work.critical = False
            if (done := await self._not_sent(command, work, outcome)) is not None:
                return done

    async def _not_sent(
        self, command: SendCommand, work: Work, outcome: ProviderOutcome
    ) -> Disposition | None:
        """Back off after a request that sent nothing; a disposition when it ends here."""
        self._metrics.retries.labels(self.channel, outcome.reason).inc()
        health_wait = self.health.wait(self._clock.now())
        jitter = random.random()  # noqa: S311 - back-off jitter, not a secret
        delay = retry_delay(work.attempts, outcome.retry_after, health_wait, self.rules, jitter)
        return await self._backoff(command, work, delay, outcome.error_code)

    async def _backoff(
        self, command: SendCommand, work: Work, delay: float, error_code: str | None
    ) -> Disposition | None:
        """Wait ``delay`` before the next attempt: in place when short, else on the retry
        topic; ``expired`` when the deadline comes first. None: try again now."""
        match decide(command, Backoff(delay, error_code), self._clock.now(), self.rules):
            case Wait(seconds):
                await self._clock.sleep(seconds)
                if not isinstance(
                    await self._ledger.claim(command.command_id, work.owner), Claimed
                ):
                    return Done(None)  # the claim lapsed and another task took the command
                return None
            case action:
                return await self._end(command, work, action)

    async def _end(
        self,
        command: SendCommand,
        work: Work,
        action: Action,
        *,
        owned: bool = True,
        segments: int | None = None,
    ) -> Disposition:
        """Perform an action that ends this task's work on the command: record its outcome
        (``Finish``, with ``segments`` when it was sent), answer from the ledger (``Redeliver``)
        or hand it to the retry topic (``Postpone``, releasing the claim when ``owned``)."""
        match action:
            case Finish(status, error_code, provider_id, then):
                if then == "record_opt_out":
                    await self._record.record_opt_out(command, error_code)
                elif then == "mark_undeliverable":
                    await self._record.mark_undeliverable(command, error_code or "undeliverable")
                return await self._record.finish(
                    command, work, status, provider_id=provider_id, error_code=error_code,
                    segments=segments if status == "sent" else None,
                )  # fmt: skip
            case Redeliver(state):
                return await self._record.redelivered(command, state)
            case Postpone(until, reason):
                if owned:
                    await self._ledger.release(command.command_id, work.owner)
                return Defer(until, reason, work.attempts)
        raise RuntimeError(f"command {command.command_id}: {action!r} does not end its work")

    def _observe(self, outcome: ProviderOutcome) -> None:
        """Keep ``health`` (and its metrics and log lines) in step with the provider's answers."""
        now = self._clock.now()
        if outcome.kind == "unavailable" or outcome.reason == "server_error":
            self._metrics.provider_faults.labels(self.channel, outcome.reason).inc()
            report = self.health.fault(outcome.reason, outcome.error_code, now)
            if report is not None:
                log.warning(
                    "%s provider unavailable (%s, code %s): %d requests refused since %s; "
                    "commands are held and retried until they expire",
                    self.channel, report.reason, report.code, report.count,
                    datetime.fromtimestamp(report.since, tz=UTC).isoformat(timespec="seconds"),
                )  # fmt: skip
        elif outcome.kind in ("sent", "retry", "failed", "undeliverable", "opted_out"):
            report = self.health.recovered(now)
            if report is not None:
                log.warning(
                    "%s provider available again after %d faults (%s) in %.0f s",
                    self.channel, report.count, report.reason, now - report.since,
                )  # fmt: skip
        for reason in FAULT_REASONS:
            self._metrics.provider_unavailable.labels(self.channel, reason).set(
                1 if self.health.reason == reason else 0
            )

    async def _request(self, command: SendCommand, message: P) -> ProviderOutcome:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.request_deadline):
                return await self._provider.send(message, command, self._clock.now())
        except TimeoutError:
            return ProviderOutcome("unknown", "timeout", error_code="timeout")
        finally:
            self._metrics.latency.labels(self.channel).observe(time.perf_counter() - started)
