"""Everything a test's Redis key prefix holds, as text to search (erasure tests)."""

from __future__ import annotations

from redis.asyncio import Redis


async def redis_text(redis: Redis, key_prefix: str) -> str:
    """Every key under the prefix with what it holds, as one text to search."""
    parts: list[str] = []
    async for raw in redis.scan_iter(match=f"{key_prefix}*", count=1000):
        key = raw.decode()
        kind = (await redis.type(key)).decode()
        if kind == "string":
            value: object = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)  # type: ignore[misc]  # redis-py's async stubs
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)  # type: ignore[misc]  # redis-py's async stubs
        else:
            value = kind
        parts.append(f"{key} {value!r}")
    return "\n".join(parts)
