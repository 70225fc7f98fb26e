"""``SendService`` decisions with fakes (memory ledger and limiter, a scripted provider, a fake
clock): the paths the end-to-end tests cannot provoke on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from senders.adapters.consents import Consent, ConsentUpdate, address_subject, newest
from senders.adapters.ledger import Finished, MemoryLedger, Sending
from senders.adapters.ratelimit import Limit, MemoryLimiter
from senders.core.clock import FakeClock
from senders.core.dispositions import Defer, Done, Reject, Work
from senders.core.outcomes import ProviderOutcome
from senders.runtime.metrics import Metrics
from senders.runtime.service import SendService
from streams.contract.commands import Channel, SendCommand, SendResult
from streams.contract.consent_history import ConsentEntry, consents_record
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.runtime.settings import Settings
from tests.senders.conftest import command
from tests.support.fakes import MemoryConsents

SENT = ProviderOutcome("sent", "ok", provider_id="SM1")
THROTTLED = ProviderOutcome("retry", "rate_limited", error_code="20429")
TIMED_OUT = ProviderOutcome("unknown", "timeout", error_code="timeout")


@dataclass(frozen=True)
class Message:
    cost: int = 1


@dataclass
class ScriptedProvider:
    outcomes: list[ProviderOutcome]
    rate: float = 10.0
    burst: int = 1
    calls: list[float] = field(default_factory=list)
    clock: FakeClock | None = None
    warms: list[ProviderOutcome | None] = field(default_factory=list)  # then None: ready
    warm_gate: asyncio.Event | None = None  # when set, ``warm`` waits for it (a stuck login)
    staged: list[str] = field(default_factory=list)  # command ids, in order
    stage_failures: list[Exception] = field(default_factory=list)  # raised first, in order
    phones: MemoryPhoneIndex | None = None  # noted in ``stage``, as the SMS adapter does

    @property
    def channel(self) -> Channel:
        return "sms"

    @property
    def request_timeout(self) -> float:
        return 2.0

    def segments(self, message: Message, outcome: ProviderOutcome) -> int | None:
        return outcome.segments or message.cost

    def limits(self, command: SendCommand) -> list[Limit]:
        return [Limit("sender", self.rate, self.burst)]

    def prepare(self, command: SendCommand, now: float) -> Message:
        return Message()

    async def stage(self, message: Message, command: SendCommand, now: float) -> None:
        if self.stage_failures:
            raise self.stage_failures.pop(0)
        self.staged.append(command.command_id)
        if self.phones is not None:
            await self.phones.remember(command.to, command.customer_id, int(now * 1000))

    async def warm(self) -> ProviderOutcome | None:
        if self.warm_gate is not None:
            await self.warm_gate.wait()
        return self.warms.pop(0) if self.warms else None

    async def send(self, message: Message, command: SendCommand, now: float) -> ProviderOutcome:
        self.calls.append(now)
        return self.outcomes.pop(0)

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Emitter:
    results: list[SendResult] = field(default_factory=list)
    consents: list[tuple[bytes, bytes]] = field(default_factory=list)
    entries: list[ConsentEntry] = field(default_factory=list)
    failures: int = 0

    async def result(self, result: SendResult) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker away")
        self.results.append(result)

    async def consent(self, entry: ConsentEntry) -> None:
        self.entries.append(entry)
        self.consents.append(consents_record(entry))


@dataclass
class World:
    service: SendService[Any]
    ledger: MemoryLedger
    limiter: MemoryLimiter
    provider: ScriptedProvider
    consents: MemoryConsents
    emitter: Emitter
    clock: FakeClock
    phones: MemoryPhoneIndex
    registry: CollectorRegistry


@dataclass
class MemoryPhoneIndex:
    remembered: list[tuple[str, str, int]] = field(default_factory=list)

    async def remember(self, address: str, customer_id: str, at_ms: int) -> None:
        self.remembered.append((address, customer_id, at_ms))


def world(outcomes: list[ProviderOutcome], **overrides: Any) -> World:
    values: dict[str, Any] = {
        "sms_require_opt_in": False,
        "sender_inline_wait": timedelta(seconds=2),
        "sender_hold_limit": timedelta(seconds=10),
        "sender_backoff_base": timedelta(milliseconds=100),
        "sender_backoff_max": timedelta(seconds=1),
        "twilio_timeout": timedelta(seconds=2),
    }
    settings = Settings(**(values | overrides))
    clock = FakeClock(start=1_900_000_000.0)
    ledger = MemoryLedger(clock, claim_ttl=30.0, ledger_ttl=3600.0)
    limiter = MemoryLimiter(clock)
    phones = MemoryPhoneIndex()
    provider = ScriptedProvider(list(outcomes), clock=clock, phones=phones)
    consents = MemoryConsents()
    emitter = Emitter()
    registry = CollectorRegistry()
    service: SendService[Any] = SendService(
        settings,
        provider,
        ledger,
        limiter,
        consents,
        emitter,
        Metrics.create(registry),
        clock,
    )
    return World(service, ledger, limiter, provider, consents, emitter, clock, phones, registry)


def cmd(w: World, expires_in: float = 3600.0, **fields: Any) -> SendCommand:
    made = command(**fields)
    expires = w.clock.now() + expires_in
    return made.model_copy(
        update={"expires_at": made.expires_at.fromtimestamp(expires, tz=made.expires_at.tzinfo)}
    )


async def test_sent_once_then_duplicate_for_every_redelivery() -> None:
    w = world([SENT])
    c = cmd(w)
    assert await w.service.handle(c, Work("a")) == Done("sent")
    assert await w.service.handle(c, Work("b")) == Done("duplicate")
    assert [(r.status, r.provider_id, r.attempts) for r in w.emitter.results] == [
        ("sent", "SM1", 1),
        ("duplicate", "SM1", 1),
    ]
    assert len(w.provider.calls) == 1


async def test_an_unpublished_result_is_republished_not_resent() -> None:
    w = world([])
    c = cmd(w)
    result = SendResult.from_json(
        SendResult(
            command_id=c.command_id, status="sent", provider_id="SM9", at=c.created_at
        ).to_json()
    )
    await w.ledger.claim(c.command_id, "dead")
    await w.ledger.mark_sending(c.command_id, "dead")
    await w.ledger.finish(c.command_id, "dead", result.to_json())  # then it died
    assert await w.service.handle(c, Work("b")) == Done("sent")
    # the ledger keeps no customer id (docs/compliance.md, Erasure): the command gives it back
    republished = result.model_copy(update={"customer_id": c.customer_id})
    assert w.emitter.results == [republished] and w.provider.calls == []
    assert await w.ledger.claim(c.command_id, "c") == Finished(result.to_json(), True)


async def test_the_ledger_keeps_results_without_the_customer_id() -> None:
    w = world([SENT])
    c = cmd(w)
    assert await w.service.handle(c, Work("a")) == Done("sent")
    state = await w.ledger.claim(c.command_id, "b")
    assert isinstance(state, Finished)
    assert SendResult.from_json(state.result).customer_id is None
    assert c.customer_id.encode() not in state.result
    assert [r.customer_id for r in w.emitter.results] == [c.customer_id]


async def test_a_request_cut_off_by_a_crash_ends_unknown_never_resent() -> None:
    w = world([SENT])
    c = cmd(w)
    await w.ledger.claim(c.command_id, "dead")
    await w.ledger.mark_sending(c.command_id, "dead")  # it may have reached Twilio
    assert await w.service.handle(c, Work("b")) == Done("unknown")  # polls past the grace
    assert w.clock.slept and sum(w.clock.slept) >= w.service.sending_grace
    assert [(r.status, r.error_code) for r in w.emitter.results] == [("unknown", "interrupted")]
    assert w.provider.calls == []


async def test_a_live_claim_elsewhere_is_waited_for_then_handed_over() -> None:
    w = world([])
    c = cmd(w)
    await w.ledger.claim(c.command_id, "other")
    started = w.clock.now()
    outcome = await w.service.handle(c, Work("b"))
    assert isinstance(outcome, Defer) and outcome.reason == "claimed"
    assert w.clock.now() - started >= 10  # held up to the hold limit, in short steps
    assert max(w.clock.slept) <= 0.5
    assert w.provider.calls == [] and w.emitter.results == []


async def test_throttled_requests_back_off_and_retry() -> None:
    w = world([THROTTLED, THROTTLED, SENT])
    assert await w.service.handle(cmd(w), Work("a")) == Done("sent")
    assert w.emitter.results[0].attempts == 3
    gaps = [b - a for a, b in zip(w.provider.calls, w.provider.calls[1:], strict=False)]
    assert all(gap >= 0.05 for gap in gaps)  # backed off between attempts


async def test_a_long_provider_back_off_goes_to_the_retry_topic() -> None:
    w = world([ProviderOutcome("retry", "rate_limited", error_code="20429", retry_after=30.0)])
    c = cmd(w)
    outcome = await w.service.handle(c, Work("a"))
    assert isinstance(outcome, Defer)
    assert (outcome.reason, outcome.attempts) == ("provider_backoff", 1)
    assert outcome.not_before == pytest.approx(w.clock.now() + 30.0)
    assert w.emitter.results == []
    assert (await w.ledger.claim(c.command_id, "next")).__class__.__name__ == "Claimed"  # released


async def test_backing_off_past_the_deadline_expires() -> None:
    w = world([ProviderOutcome("retry", "connection", error_code="ClientConnectorError")])
    assert await w.service.handle(cmd(w, expires_in=0.01), Work("a")) == Done("expired")
    assert w.emitter.results[0].error_code == "ClientConnectorError"


async def test_unknown_is_final_unless_configured_otherwise() -> None:
    w = world([TIMED_OUT, SENT])
    assert await w.service.handle(cmd(w), Work("a")) == Done("unknown")
    brave = world([TIMED_OUT, SENT], sender_retry_unknown=True)
    assert await brave.service.handle(cmd(brave), Work("a")) == Done("sent")
    assert brave.emitter.results[0].attempts == 2


async def test_rate_slots_short_waits_are_held_long_ones_deferred() -> None:
    w = world([SENT] * 6)
    w.provider.rate = 0.5  # one slot every 2 s
    for n in range(6):  # slots at 0 .. 10 s: reserved (≤ 2 s away) or held (≤ 10 s away)
        assert await w.service.handle(cmd(w), Work(f"t{n}")) == Done("sent")
        w.clock.advance(-w.clock.now() + 1_900_000_000.0)  # every command asks at t=0
    assert [round(t - 1_900_000_000.0, 3) for t in w.provider.calls] == [0, 2, 4, 6, 8, 10]
    deferred = await w.service.handle(cmd(w), Work("late"))  # 12 s away: the retry topic
    assert isinstance(deferred, Defer) and deferred.reason == "rate_limit"
    assert deferred.not_before == pytest.approx(1_900_000_000.0 + 12.0)


async def test_no_rate_slot_before_the_deadline_expires_at_once() -> None:
    w = world([SENT, SENT])
    w.provider.rate = 0.1  # one slot every 10 s
    assert await w.service.handle(cmd(w), Work("a")) == Done("sent")
    assert await w.service.handle(cmd(w, expires_in=5.0), Work("b")) == Done("expired")
    assert w.emitter.results[-1].error_code == "rate_limit"
    assert len(w.provider.calls) == 1


async def test_consent_and_reachability_are_checked_at_send_time() -> None:
    w = world([ProviderOutcome("opted_out", "opted_out", error_code="21610")])
    c = cmd(w)
    assert await w.service.handle(c, Work("a")) == Done("suppressed")
    assert w.consents.consents[(c.customer_id, "sms")].status == "opted_out"
    assert w.emitter.consents and b'"status":"opted_out"' in w.emitter.consents[0][1]
    # the history keeps the number the provider refused, as its hash only
    [entry] = w.emitter.entries
    assert (entry.source, entry.address) == ("provider:21610", c.to)
    again = cmd(w, customer_id=c.customer_id)
    assert await w.service.handle(again, Work("b")) == Done("suppressed")
    assert w.emitter.results[-1].error_code == "opted_out"
    strict = world([], sms_require_opt_in=True)
    assert await strict.service.handle(cmd(strict), Work("a")) == Done("suppressed")
    assert strict.emitter.results[0].error_code == "no_consent"


async def test_an_opt_out_of_the_number_itself_counts_and_the_newest_statement_wins() -> None:
    w = world([SENT, SENT], sms_require_opt_in=True)
    c = cmd(w)
    at = int(w.clock.now() * 1000)
    number = address_subject(c.to)
    await w.consents.apply(ConsentUpdate(c.customer_id, "sms", Consent("opted_in", at - 10)))
    await w.consents.apply(ConsentUpdate(number, "sms", Consent("opted_out", at - 5)))
    assert await w.service.handle(c, Work("a")) == Done("suppressed")
    assert w.emitter.results[-1].error_code == "opted_out"
    # opted in again later (checkout): the customer's newer statement wins
    await w.consents.apply(ConsentUpdate(c.customer_id, "sms", Consent("opted_in", at - 1)))
    again = cmd(w, customer_id=c.customer_id, to=c.to)
    assert await w.service.handle(again, Work("b")) == Done("sent")
    # a number that texted START, with no customer record: allowed
    await w.consents.apply(
        ConsentUpdate(address_subject("+14155550999"), "sms", Consent("opted_in", at))
    )
    assert await w.service.handle(cmd(w, to="+14155550999"), Work("c")) == Done("sent")
    assert newest(Consent("opted_in", 5), Consent("opted_out", 5)) == Consent("opted_out", 5)
    assert newest(None, Consent("opted_in", 1)) == Consent("opted_in", 1)


async def test_live_sms_remember_who_was_texted_at_a_number() -> None:
    w = world([SENT])
    live, dry = cmd(w, to="+14155550111"), cmd(w, to="+14155550112", mode="dry_run")
    assert await w.service.handle(live, Work("a")) == Done("sent")
    assert await w.service.handle(dry, Work("b")) == Done("suppressed")
    assert w.phones.remembered == [("+14155550111", live.customer_id, int(w.clock.now() * 1000))]


async def test_a_message_is_staged_before_it_is_sent_and_never_sent_unstaged() -> None:
    w = world([SENT])
    c, dry = cmd(w), cmd(w, mode="dry_run")
    w.provider.stage_failures = [RedisConnectionError("redis away")]
    with pytest.raises(RedisConnectionError):  # the consumer retries the whole command
        await w.service.handle(c, Work("a"))
    assert w.provider.calls == [] and w.emitter.results == []
    assert await w.service.handle(c, Work("a")) == Done("sent")
    assert await w.service.handle(dry, Work("b")) == Done("suppressed")
    assert w.provider.staged == [c.command_id] and len(w.provider.calls) == 1


async def test_a_message_that_cannot_be_staged_fails_and_is_dead_lettered() -> None:
    w = world([SENT])
    c = cmd(w)
    w.provider.stage_failures = [InvalidRecord("short link id X already holds another link")]
    outcome = await w.service.handle(c, Work("a"))
    assert outcome == Reject("short link id X already holds another link")
    assert [(r.status, r.error_code) for r in w.emitter.results] == [("failed", "invalid_message")]
    assert w.provider.calls == []


async def test_recording_after_a_send_survives_a_broker_outage() -> None:
    w = world([SENT])
    w.emitter.failures = 2
    assert await w.service.handle(cmd(w), Work("a")) == Done("sent")
    assert [r.status for r in w.emitter.results] == ["sent"]


async def test_an_opt_out_is_produced_once_when_only_redis_fails() -> None:
    w = world([ProviderOutcome("opted_out", "opted_out", error_code="21610")])
    apply, failures = w.consents.apply, [RedisConnectionError("redis away")]

    async def flaky(update: ConsentUpdate, tombstone_at_ms: int | None = None) -> bool:
        if failures:
            raise failures.pop()
        return await apply(update, tombstone_at_ms)

    w.consents.apply = flaky  # type: ignore[method-assign]
    c = cmd(w)
    assert await w.service.handle(c, Work("a")) == Done("suppressed")
    assert w.consents.consents[(c.customer_id, "sms")].status == "opted_out"
    assert len(w.emitter.consents) == 1  # the Redis step was retried alone


def test_a_claim_must_outlive_the_waits_it_covers() -> None:
    with pytest.raises(ConfigurationError, match="CLAIM_TTL"):
        world([], sender_claim_ttl=timedelta(seconds=4))


async def test_cancelled_before_sending_frees_the_command() -> None:
    w = world([SENT])
    w.provider.rate = 1.0
    w.clock.sleep = asyncio.sleep  # type: ignore[method-assign]  # really wait, to cancel
    first, second = cmd(w), cmd(w)
    assert await w.service.handle(first, Work("a")) == Done("sent")
    task = asyncio.create_task(w.service.handle(second, Work("b")))  # waits for its slot
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    state = await w.ledger.claim(second.command_id, "c")
    assert not isinstance(state, Sending | Finished)  # claimable at once by the next owner
    assert len(w.provider.calls) == 1
