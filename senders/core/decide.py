"""What a sender does next with one command (pure): the decisions of the send loop.

``decide(command, fact, now, rules)`` takes the newest fact the shell (``service.py``) has
read about a command and returns one ``Action``. The facts come one step at a time, in the
loop's order, because each read depends on the answer to the one before (no consent read for
a command the ledger already finished, no request without a rate slot):

1. ``Claim``: the ledger's answer to a claim (``Claimed``, ``Busy``, ``Sending``, ``Finished``);
   for ``Claimed`` also the command's own times (expired, ``not_before``).
2. ``Standing``: its consent standing and whether the address is known to be undeliverable.
3. ``CouponGate``: the coupon gate's verdict (``senders/coupons/gate.py``), for a coupon.
4. ``RateAnswer``: the rate limiter's answer (``ratelimit.Grant``).
5. ``Answer``: the provider's answer to the request (``outcomes.ProviderOutcome``).
6. ``Backoff``: a wait before the next attempt (a provider fault, a retriable answer).

No I/O, no clock (``now`` is an argument), no randomness (``retry_delay`` takes its jitter).
The shell performs each action: ``Wait`` holds the command in place that long and then reads
the step's fact again, ``Postpone`` hands it to the retry topic, ``Finish`` records an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from senders.core.ledger_states import Busy, Claimed, ClaimState, Finished, Sending
from senders.core.outcomes import ProviderOutcome, backoff
from senders.coupons.gate import UNAVAILABLE, Verdict
from streams.contract.commands import Channel, ResultStatus, SendCommand
from streams.contract.erasure import ERASURE_SOURCE
from streams.runtime.settings import Settings

if TYPE_CHECKING:  # their modules hold the Redis sides too; decide only reads these values
    from senders.adapters.consents import Consent
    from senders.adapters.ratelimit import Grant

DeferReason = Literal[
    "not_before", "rate_limit", "claimed", "in_flight", "provider_backoff", "coupon_pending"
]
COUPON_POLL = 0.2  # seconds between looks at a coupon's registration while held in place
CLAIM_MARGIN = 0.05  # seconds past another owner's claim or request before looking again


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings the decisions read, in seconds."""

    inline: float  # the longest wait held in place (``sender_inline_wait``)
    hold: float  # the longest hold for another owner or a rate slot (``sender_hold_limit``)
    sending_grace: float  # a ``sending`` entry older than this had its request end for sure
    retry_unknown: bool  # ``sender_retry_unknown``: an unknown outcome is tried again
    opt_in_channels: frozenset[Channel]  # channels sent to only with a recorded opt-in
    coupon_recheck: float  # a deferred coupon's next look, at the latest
    backoff_base: float
    backoff_max: float

    @classmethod
    def of(cls, settings: Settings, sending_grace: float) -> Rules:
        inline = settings.sender_inline_wait.total_seconds()
        return cls(
            inline=inline,
            hold=max(settings.sender_hold_limit.total_seconds(), inline),
            sending_grace=sending_grace,
            retry_unknown=settings.sender_retry_unknown,
            # prior express consent for texts (docs/compliance.md); email needs no opt-in
            opt_in_channels=frozenset({"sms"}) if settings.sms_require_opt_in else frozenset(),
            coupon_recheck=settings.coupon_recheck.total_seconds(),
            backoff_base=settings.sender_backoff_base.total_seconds(),
            backoff_max=settings.sender_backoff_max.total_seconds(),
        )


# Facts: what the shell read.


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    held: float = 0.0  # how long this task has waited for another owner so far


@dataclass(frozen=True, slots=True)
class Standing:
    consent: Consent | None  # the statement that decides (none recorded: None)
    undeliverable: bool  # the address is known not to receive


@dataclass(frozen=True, slots=True)
class CouponGate:
    verdict: Verdict
    held: float = 0.0  # how long this task has held the command for its coupon so far


@dataclass(frozen=True, slots=True)
class RateAnswer:
    grant: Grant


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: ProviderOutcome


@dataclass(frozen=True, slots=True)
class Backoff:
    delay: float  # seconds before the next attempt may go out
    error_code: str | None  # what the result says if the command expires meanwhile


Fact = Claim | Standing | CouponGate | RateAnswer | Answer | Backoff


# Actions: what the shell does.


@dataclass(frozen=True, slots=True)
class Go:
    """Go on to the next step."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Hold the command in place ``seconds``, then read this step's fact again (after a
    ``Claimed`` command's ``not_before``: go on)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Postpone:
    """Hand the command to the retry topic, due at ``until`` (epoch seconds); its claim, if
    this task holds it, is released first."""

    until: float
    reason: DeferReason


@dataclass(frozen=True, slots=True)
class Finish:
    """Record the outcome ``status``; ``then`` is what the provider's answer says about the
    address, recorded before the outcome."""

    status: ResultStatus
    error_code: str | None = None
    provider_id: str | None = None
    then: Literal["record_opt_out", "mark_undeliverable"] | None = None


@dataclass(frozen=True, slots=True)
class TakeOver:
    """A request another owner started has certainly ended without a recorded outcome:
    finish the command ``unknown`` (``interrupted``) in its place; it is never sent again."""


@dataclass(frozen=True, slots=True)
class Redeliver:
    """The command was decided before: republish its result if unpublished, else say
    ``duplicate``."""

    state: Finished


@dataclass(frozen=True, slots=True)
class SendAt:
    """A rate slot is reserved at ``slot`` (epoch seconds): send then."""

    slot: float


@dataclass(frozen=True, slots=True)
class Retry:
    """Nothing was sent (a retriable answer): back off (``retry_delay``), then ``Backoff``."""

    outcome: ProviderOutcome


Action = Go | Wait | Postpone | Finish | TakeOver | Redeliver | SendAt | Retry


def decide(command: SendCommand, fact: Fact, now: float, rules: Rules) -> Action:
    """The next action for ``command`` given the newest ``fact`` (see the module docstring)."""
    expires = command.expires_at.timestamp()
    match fact:
        case Claim(state, held):
            return _claim(command, state, held, now, rules)
        case Standing():
            blocked = blocked_by(command.channel, fact, rules)
            return Go() if blocked is None else Finish("suppressed", blocked)
        case CouponGate(verdict, held):
            return _coupon(verdict, held, now, rules)
        case RateAnswer(grant):
            return _rate(grant, expires, now, rules)
        case Answer(outcome):
            return _answer(outcome, rules)
        case Backoff(delay, error_code):
            if now + delay >= expires:
                return Finish("expired", error_code)
            if delay > rules.inline:
                return Postpone(now + delay, "provider_backoff")
            return Wait(delay)


def blocked_by(channel: Channel, standing: Standing, rules: Rules) -> str | None:
    """Why a command may not be sent now (its ``suppressed`` error code), or None."""
    consent = standing.consent
    if consent is not None and consent.status == "opted_out":
        return "erased" if consent.source == ERASURE_SOURCE else "opted_out"
    if consent is None and channel in rules.opt_in_channels:
        return "no_consent"
    if standing.undeliverable:
        return "undeliverable"
    return None


def retry_delay(
    attempts: int, retry_after: float | None, health_wait: float, rules: Rules, jitter: float
) -> float:
    """How long to back off after ``attempts`` attempts that sent nothing: the provider's
    hint, the provider's health (a fault being probed) or the jittered back-off, the longest.
    ``jitter`` in ``[0, 1)``."""
    return max(
        retry_after or 0.0,
        health_wait,
        backoff(attempts, rules.backoff_base, rules.backoff_max, jitter),
    )


def _claim(
    command: SendCommand, state: ClaimState, held: float, now: float, rules: Rules
) -> Action:
    reason: DeferReason
    match state:
        case Finished():
            return Redeliver(state)
        case Claimed():
            if now >= command.expires_at.timestamp():
                return Finish("expired")
            if command.not_before is not None and command.not_before.timestamp() > now:
                wait = command.not_before.timestamp() - now
                if wait > rules.inline:
                    return Postpone(command.not_before.timestamp(), "not_before")
                return Wait(wait)
            return Go()
        case Busy(retry_in):
            # Another task holds it: a live one finishes soon, a dead one's claim expires.
            wait, reason = retry_in + CLAIM_MARGIN, "claimed"
        case Sending(age):
            if age >= rules.sending_grace:
                return TakeOver()
            wait, reason = rules.sending_grace - age + CLAIM_MARGIN, "in_flight"
    if held >= rules.hold:
        return Postpone(now + wait, reason)
    # Look again shortly, in steps short enough to notice the claim end.
    return Wait(min(wait, max(rules.inline / 4, 0.05)))


def _coupon(verdict: Verdict, held: float, now: float, rules: Rules) -> Action:
    if verdict.action == "send":
        return Go()
    if verdict.action == "unavailable":
        return Finish("suppressed", UNAVAILABLE)
    if held >= rules.inline:
        until = verdict.until if verdict.until is not None else now
        return Postpone(min(now + rules.coupon_recheck, until), "coupon_pending")
    return Wait(COUPON_POLL)


def _rate(grant: Grant, expires: float, now: float, rules: Rules) -> Action:
    if now + grant.wait >= expires:  # no slot before the deadline
        return Finish("expired", "rate_limit")
    if grant.granted:
        return SendAt(now + grant.wait)
    if grant.wait > rules.hold:
        return Postpone(now + grant.wait, "rate_limit")
    # Hold the command (and so this replica's intake): ask again when the slot could be
    # reserved. A short wait, repeated, never a long sleep.
    return Wait(min(grant.wait - rules.inline + 0.01, rules.inline))


def _answer(outcome: ProviderOutcome, rules: Rules) -> Action:
    code = outcome.error_code
    match outcome.kind:
        case "sent":
            return Finish("sent", provider_id=outcome.provider_id)
        case "unknown" if not rules.retry_unknown:
            return Finish("unknown", code)
        case "opted_out":
            return Finish("suppressed", code, then="record_opt_out")
        case "undeliverable":
            return Finish("failed", code, then="mark_undeliverable")
        case "failed":
            return Finish("failed", code)
        case _:  # retry, unavailable (or unknown with retry_unknown): not sent, or a risk taken
            return Retry(outcome)
