"""Provider faults in ``SendService`` (fakes, a fake clock): refused credentials, a provider
that is down, and a login that never answers. What must hold: nothing is failed for good
because of our credentials or the provider's outage; a command is retried until it is sent or
``expires_at`` passes (then ``expired``); while the fault lasts the service says so (health,
metrics); and a command whose request never went out is never ``unknown``."""

from __future__ import annotations

import asyncio
from typing import Any

from senders.adapters.ledger import Claimed
from senders.core.dispositions import Defer, Done, Work
from senders.core.outcomes import ProviderOutcome
from tests.senders.test_service import SENT, World, cmd, world

AUTH = ProviderOutcome("unavailable", "auth", error_code="20003")
DOWN = ProviderOutcome("unknown", "server_error", error_code="20500")
LOGIN_REFUSED = ProviderOutcome("unavailable", "auth", error_code="535 5.7.8")
SLOW = {"sender_backoff_base": "PT10S", "sender_backoff_max": "PT60S"}


def metric(w: World, name: str, **labels: str) -> float:
    value = w.registry.get_sample_value(name, {"channel": "sms", **labels})
    return value or 0.0


async def test_refused_credentials_are_retried_until_sent_never_failed() -> None:
    w = world([AUTH, AUTH, SENT])
    assert await w.service.handle(cmd(w), Work("a")) == Done("sent")
    assert [(r.status, r.attempts) for r in w.emitter.results] == [("sent", 3)]
    assert metric(w, "cartpulse_send_provider_faults_total", reason="auth") == 2
    assert not w.service.health.down  # the 201 proved the credentials good again
    assert metric(w, "cartpulse_send_provider_unavailable", reason="auth") == 0


async def test_refused_credentials_until_the_deadline_end_expired_not_failed() -> None:
    w = world([AUTH] * 100)
    assert await w.service.handle(cmd(w, expires_in=5.0), Work("a")) == Done("expired")
    assert [(r.status, r.error_code) for r in w.emitter.results] == [("expired", "20003")]
    assert len(w.provider.calls) >= 2  # retried, with back-off, until the deadline
    assert w.service.health.down
    assert metric(w, "cartpulse_send_provider_unavailable", reason="auth") == 1


async def test_while_credentials_are_refused_other_commands_wait_without_a_request() -> None:
    w = world([AUTH], **SLOW)
    first, second = cmd(w), cmd(w)
    deferred = await w.service.handle(first, Work("a"))
    assert isinstance(deferred, Defer) and deferred.reason == "provider_backoff"
    held = await w.service.handle(second, Work("b"))
    assert isinstance(held, Defer) and held.reason == "provider_backoff"
    assert len(w.provider.calls) == 1 and w.emitter.results == []
    assert isinstance(await w.ledger.claim(second.command_id, "next"), Claimed)  # released


async def test_a_provider_answering_5xx_ends_that_command_unknown_and_holds_the_rest() -> None:
    w = world([DOWN, SENT], **SLOW)
    first, second = cmd(w), cmd(w)
    assert await w.service.handle(first, Work("a")) == Done("unknown")  # the request was out
    held = await w.service.handle(second, Work("b"))
    assert isinstance(held, Defer) and held.reason == "provider_backoff"
    assert len(w.provider.calls) == 1  # no second request into the outage
    assert w.service.health.down and w.service.health.reason == "server_error"
    w.clock.advance(held.not_before - w.clock.now())
    assert await w.service.handle(second, Work("c")) == Done("sent")
    assert not w.service.health.down


async def test_a_refused_login_sends_nothing_and_is_retried() -> None:
    w = world([SENT])
    w.provider.warms = [LOGIN_REFUSED, LOGIN_REFUSED]
    assert await w.service.handle(cmd(w), Work("a")) == Done("sent")
    assert len(w.provider.calls) == 1  # no message went out before the login worked
    assert w.emitter.results[0].attempts == 3
    assert metric(w, "cartpulse_send_provider_faults_total", reason="auth") == 2


async def test_a_login_that_never_answers_is_cancelled_and_frees_the_command() -> None:
    w = world([SENT])
    w.provider.warm_gate = asyncio.Event()  # never set: the relay never answers
    work = Work("a")
    c = cmd(w)
    task: asyncio.Task[Any] = asyncio.create_task(w.service.handle(c, work))
    await asyncio.sleep(0.05)
    assert not work.critical  # nothing can have gone out: shutdown may cancel it
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert isinstance(await w.ledger.claim(c.command_id, "next"), Claimed)
    assert w.emitter.results == [] and w.provider.calls == []
