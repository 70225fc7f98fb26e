"""Which exceptions mean "Kafka or Redis is not answering" to the senders and their webhooks.

A step that raises one of these did not happen and may be tried again: the send loop retries
it (``service.py``), the webhooks answer 503 with ``Retry-After`` (``webhooks/``), the consent
mirror and the erasures wait and retry (``mirror.py``, ``erasure.py``). Their own module, so
that a reader of them needs no part of the send loop.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

INFRA_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    KafkaError,
)
# Kafka or Redis down, or too slow to wait for (an ``asyncio.timeout`` around the call).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *INFRA_ERRORS)
