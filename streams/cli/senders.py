"""Entry points behind ``cartpulse send sms|email`` and ``cartpulse consents mirror``."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from streams.contract.commands import Channel
from streams.runtime.settings import Settings
from streams.runtime.worker_logging import JsonFormatter

REDIS_STARTUP_SECONDS = 5.0


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


async def require_redis(settings: Settings, within: float = REDIS_STARTUP_SECONDS) -> None:
    """Raise ``Unreachable`` unless Redis answers a PING within ``within`` seconds.

    Checked once at startup, so that a wrong CARTPULSE_REDIS_URL ends the process with one line
    (``streams.cli.errors``); once running, the services ride out a Redis outage instead.
    """
    from redis.exceptions import RedisError

    from senders.runtime.app import make_redis
    from streams.cli.errors import redis_unreachable

    redis = make_redis(settings)
    try:
        await asyncio.wait_for(redis.ping(), within)
    except (RedisError, OSError, TimeoutError):
        raise redis_unreachable(settings.redis_url.get_secret_value()) from None
    finally:
        await redis.aclose()


def run_send(settings: Settings, channel: Channel) -> int:
    from senders.runtime.app import run_sender

    configure_logging()
    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's way, so that full collections stay short and sends leave on their slot.
    gc.collect()
    gc.freeze()
    asyncio.run(require_redis(settings))
    asyncio.run(run_sender(settings, channel))
    return 0


def run_consent_mirror(settings: Settings) -> int:
    from senders.runtime.app import run_mirror

    configure_logging()
    asyncio.run(require_redis(settings))
    asyncio.run(run_mirror(settings))
    return 0


def run_webhooks_service(settings: Settings) -> int:
    from senders.webhooks.logs import MaskingFilter
    from senders.webhooks.service import run_webhooks

    configure_logging()
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskingFilter())
    asyncio.run(require_redis(settings))
    asyncio.run(run_webhooks(settings))
    return 0
