"""Short SMS links on the real Redis: registration is idempotent, a collision is refused, the
key lives until the link expires plus the grace period."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from senders.adapters.short_link_store import RedisShortLinks
from senders.core.keys import Keys
from senders.messages.short_links import LinkRecord
from streams.contract.errors import InvalidRecord

pytestmark = pytest.mark.integration


def record(url: str, command_id: str = "cmd-1", expires_in_ms: int = 3_600_000) -> LinkRecord:
    expires_ms = int(time.time() * 1000) + expires_in_ms
    return LinkRecord(url, "cust-1", "store-1", command_id, "sms", expires_ms)


async def test_register_is_idempotent_and_resolves(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    links = RedisShortLinks(redis, keys, grace=timedelta(hours=1))
    first = record("https://shop.example.com/cart/1")
    await links.register([("AbCdEfGh12", first), ("ZyXwVuT987", record("https://x.example/"))])
    assert await links.resolve("AbCdEfGh12") == first
    # A redelivered command registers again, later: the first record (and expiry) stays.
    await links.register([("AbCdEfGh12", record("https://shop.example.com/cart/1", "cmd-1", 9))])
    assert await links.resolve("AbCdEfGh12") == first
    ttl_ms = await redis.pttl(keys.short_link("AbCdEfGh12"))
    assert 2 * 3_600_000 - 60_000 < ttl_ms <= 2 * 3_600_000  # expiry + grace
    assert await links.resolve("0000000000") is None
    await links.register([])


async def test_an_id_holding_another_link_is_never_overwritten(
    redis: Redis, key_prefix: str
) -> None:
    links = RedisShortLinks(redis, Keys(key_prefix))
    first = record("https://shop.example.com/cart/1")
    await links.register([("AbCdEfGh12", first)])
    with pytest.raises(InvalidRecord, match="already holds another link"):
        await links.register([("AbCdEfGh12", record("https://evil.example/", "cmd-2"))])
    assert await links.resolve("AbCdEfGh12") == first
