"""One contract suite for the rate limiter, the ledger and the consent store's reads, run
against the in-memory fakes (on a fake clock) and against the real Redis (Lua scripts on
Redis's clock).

Times on Redis are real, so waits are compared with a tolerance; the fakes are exact.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from senders.adapters.consents import (
    Consent,
    Consents,
    ConsentStore,
    ConsentUpdate,
    address_subject,
)
from senders.adapters.ledger import (
    Busy,
    Claimed,
    Finished,
    Ledger,
    MemoryLedger,
    RedisLedger,
    Sending,
)
from senders.adapters.ratelimit import Limit, Limiter, MemoryLimiter, RedisLimiter
from senders.core.clock import FakeClock
from senders.core.keys import Keys
from tests.conftest import REDIS_PORT
from tests.support.fakes import MemoryConsents

pytestmark = pytest.mark.integration

CLAIM_TTL = 0.4
LEDGER_TTL = 60.0


@dataclass
class Backend:
    name: str
    limiter: Limiter
    ledger: Ledger
    keys: Keys
    clock: FakeClock | None
    tolerance: float

    async def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def backend(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Backend]:
    keys = Keys(key_prefix)
    if request.param == "memory":
        clock = FakeClock()
        yield Backend(
            "memory",
            MemoryLimiter(clock),
            MemoryLedger(clock, CLAIM_TTL, LEDGER_TTL),
            keys,
            clock,
            1e-6,
        )
        return
    request.getfixturevalue("stack")  # the real Redis of the local stack
    redis = Redis(host="127.0.0.1", port=REDIS_PORT)
    try:
        yield Backend(
            "redis",
            RedisLimiter(redis),
            RedisLedger(redis, keys, CLAIM_TTL, LEDGER_TTL),
            keys,
            None,
            0.03,
        )
    finally:
        stale = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
        if stale:
            await redis.delete(*stale)
        await redis.aclose()


def limit(backend: Backend, rate: float, burst: int, name: str = "sender") -> Limit:
    return Limit(backend.keys.limiter("sms", "AC1", name, "x"), rate, burst)


# ---- rate limiter ---------------------------------------------------------------------------


async def test_burst_is_free_then_the_rate_applies(backend: Backend) -> None:
    limits = [limit(backend, 10, 3)]
    for _ in range(3):
        grant = await backend.limiter.acquire(limits, 1, 0.0)
        assert grant.granted and grant.wait == pytest.approx(0, abs=backend.tolerance)
    refused = await backend.limiter.acquire(limits, 1, 0.0)
    assert not refused.granted
    assert refused.wait == pytest.approx(0.1, abs=backend.tolerance)


async def test_a_refusal_reserves_nothing(backend: Backend) -> None:
    limits = [limit(backend, 10, 1)]
    assert (await backend.limiter.acquire(limits, 1, 0.0)).granted
    first = await backend.limiter.acquire(limits, 1, 0.0)
    second = await backend.limiter.acquire(limits, 1, 0.0)
    assert not first.granted and not second.granted
    assert second.wait == pytest.approx(first.wait, abs=backend.tolerance)


async def test_slots_are_reserved_in_order_within_max_wait(backend: Backend) -> None:
    limits = [limit(backend, 20, 1)]
    waits = [(await backend.limiter.acquire(limits, 1, 0.5)).wait for _ in range(5)]
    for k, wait in enumerate(waits):
        assert wait == pytest.approx(k * 0.05, abs=backend.tolerance)
    beyond = [await backend.limiter.acquire(limits, 1, 0.2) for _ in range(2)]
    assert not beyond[0].granted and beyond[0].wait == pytest.approx(0.25, abs=backend.tolerance)


async def test_cost_is_segments(backend: Backend) -> None:
    limits = [limit(backend, 10, 3)]
    assert (await backend.limiter.acquire(limits, 3, 0.0)).granted  # the whole burst at once
    after = await backend.limiter.acquire(limits, 2, 10.0)
    assert after.wait == pytest.approx(0.2, abs=backend.tolerance)
    big = [limit(backend, 10, 1, "other")]
    assert (await backend.limiter.acquire(big, 4, 0.0)).granted  # bigger than the burst: alone
    assert (await backend.limiter.acquire(big, 1, 10.0)).wait == pytest.approx(
        0.4, abs=backend.tolerance
    )


async def test_every_limit_is_charged_and_the_strictest_governs(backend: Backend) -> None:
    sender_a = limit(backend, 5, 1, "sender-a")
    sender_b = limit(backend, 5, 1, "sender-b")
    account = limit(backend, 20, 1, "account")
    assert (await backend.limiter.acquire([sender_a, account], 1, 1.0)).granted
    again = await backend.limiter.acquire([sender_a, account], 1, 1.0)
    assert again.wait == pytest.approx(0.2, abs=backend.tolerance)  # sender a: 5/s
    other = await backend.limiter.acquire([sender_b, account], 1, 1.0)
    assert other.wait == pytest.approx(0.25, abs=backend.tolerance)  # account, after a's 0.2


async def test_limits_recover_while_idle(backend: Backend) -> None:
    limits = [limit(backend, 10, 2)]
    for _ in range(2):
        assert (await backend.limiter.acquire(limits, 1, 0.0)).granted
    assert not (await backend.limiter.acquire(limits, 1, 0.0)).granted
    await backend.advance(0.25)
    for _ in range(2):
        assert (await backend.limiter.acquire(limits, 1, 0.0)).granted


# ---- ledger ---------------------------------------------------------------------------------


def cid() -> str:
    return uuid.uuid4().hex


async def test_a_claim_is_exclusive_and_expires(backend: Backend) -> None:
    command = cid()
    assert isinstance(await backend.ledger.claim(command, "a"), Claimed)
    assert isinstance(await backend.ledger.claim(command, "a"), Claimed)  # refreshed
    busy = await backend.ledger.claim(command, "b")
    assert isinstance(busy, Busy) and 0 < busy.retry_in <= CLAIM_TTL + backend.tolerance
    assert not await backend.ledger.mark_sending(command, "b")
    await backend.advance(CLAIM_TTL + 0.1)  # a died
    assert isinstance(await backend.ledger.claim(command, "b"), Claimed)
    assert not await backend.ledger.mark_sending(command, "a")


async def test_sending_survives_the_claim_ttl_and_blocks_everyone(backend: Backend) -> None:
    command = cid()
    await backend.ledger.claim(command, "a")
    assert await backend.ledger.mark_sending(command, "a")
    await backend.advance(CLAIM_TTL + 0.1)
    state = await backend.ledger.claim(command, "b")
    assert isinstance(state, Sending) and state.owner == "a"
    assert state.age >= CLAIM_TTL
    assert not await backend.ledger.mark_sending(command, "b")
    assert await backend.ledger.finish(command, "b", b"{}") == "lost"
    assert not await backend.ledger.release(command, "a")  # not a claim any more


async def test_finish_then_every_redelivery_sees_the_result(backend: Backend) -> None:
    command = cid()
    await backend.ledger.claim(command, "a")
    await backend.ledger.mark_sending(command, "a")
    assert await backend.ledger.finish(command, "a", b'{"status":"sent"}') == "ok"
    assert await backend.ledger.claim(command, "b") == Finished(b'{"status":"sent"}', False)
    await backend.ledger.mark_published(command)
    assert await backend.ledger.claim(command, "c") == Finished(b'{"status":"sent"}', True)
    assert await backend.ledger.finish(command, "c", b"other") == Finished(
        b'{"status":"sent"}', True
    )
    await backend.advance(CLAIM_TTL + 0.1)
    assert isinstance(await backend.ledger.claim(command, "d"), Finished)


async def test_unsend_and_release_hand_the_command_back(backend: Backend) -> None:
    command = cid()
    await backend.ledger.claim(command, "a")
    await backend.ledger.mark_sending(command, "a")
    assert await backend.ledger.unsend(command, "a")  # e.g. a 429: certainly not sent
    assert isinstance(await backend.ledger.claim(command, "b"), Busy)
    assert await backend.ledger.release(command, "a")
    assert isinstance(await backend.ledger.claim(command, "b"), Claimed)
    assert not await backend.ledger.unsend(command, "b")  # b never sent


async def test_take_over_only_an_old_sending(backend: Backend) -> None:
    command = cid()
    await backend.ledger.claim(command, "a")
    await backend.ledger.mark_sending(command, "a")
    assert not await backend.ledger.take_over(command, "b", 0.3, b"unknown")
    await backend.advance(0.35)
    assert await backend.ledger.take_over(command, "b", 0.3, b"unknown")
    assert await backend.ledger.claim(command, "c") == Finished(b"unknown", False)
    assert await backend.ledger.finish(command, "a", b"sent") == Finished(b"unknown", False)


async def test_finish_without_a_claim_is_allowed_once(backend: Backend) -> None:
    command = cid()
    assert await backend.ledger.finish(command, "a", b"expired") == "ok"
    assert await backend.ledger.finish(command, "b", b"sent") == Finished(b"expired", False)


# ---- consent mirror store --------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def consents(request: pytest.FixtureRequest, key_prefix: str) -> Consents:
    if request.param == "memory":
        return MemoryConsents()
    redis: Redis = request.getfixturevalue("redis")  # the local Redis, cleaned up after
    return ConsentStore(redis, Keys(key_prefix))


async def test_a_customers_and_a_numbers_consent_are_read_together(consents: Consents) -> None:
    number = address_subject("+14155550100")
    mine = Consent("opted_in", 1_000, "checkout")
    numbers = Consent("opted_out", 2_000, "sms_keyword")
    assert await consents.apply(ConsentUpdate("c1", "sms", mine))
    assert await consents.apply(ConsentUpdate(number, "sms", numbers))
    address = "+14155550100"
    # Both read: the number's later STOP outweighs the customer's opt-in, and it stands for a
    # customer with no statement of their own.
    assert await consents.standing("c1", "sms", address) == (numbers, False)
    assert await consents.standing("c2", "sms", address) == (numbers, False)
    later = Consent("opted_in", 3_000, "checkout")
    assert await consents.apply(ConsentUpdate("c1", "sms", later))
    assert await consents.standing("c1", "sms", address) == (later, False)
    # Email reads the customer's email consent alone (the number's is an SMS statement).
    assert await consents.standing("c1", "email", address) == (None, False)
    await consents.mark_undeliverable("sms", address, "21211")
    assert await consents.standing("c1", "sms", address) == (later, True)
    assert await consents.standing("c2", "sms", address) == (numbers, True)


async def test_consents_never_move_backwards(redis: Redis, key_prefix: str) -> None:
    """Redis only: ``ConsentStore`` refuses an older update; the fake keeps the last one."""
    store = ConsentStore(redis, Keys(key_prefix))
    newer = ConsentUpdate("c1", "sms", Consent("opted_out", 2_000, "stop"))
    older = ConsentUpdate("c1", "sms", Consent("opted_in", 1_000, "checkout"))
    assert await store.apply(newer)
    assert not await store.apply(older)
    assert await store.get("c1", "sms") == Consent("opted_out", 2_000, "stop")
    assert await store.get("c1", "email") is None
    assert await store.apply(ConsentUpdate("c1", "sms", None))
    assert await store.get("c1", "sms") is None
    assert await store.standing("c1", "sms", "+14155550100") == (None, False)
    await store.mark_undeliverable("sms", "+14155550100", "21211")
    assert await store.standing("c1", "sms", "+14155550100") == (None, True)
    assert await store.standing("c1", "email", "+14155550100") == (None, False)
