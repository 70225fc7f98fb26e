"""``cartpulse coupons``: the coupon registrar (docs/compliance.md, Coupons)."""

from __future__ import annotations

import argparse
from typing import Any

from streams.runtime.settings import Settings


def add_parsers(commands: Any, kafka: argparse.ArgumentParser) -> None:
    coupons = commands.add_parser(
        "coupons",
        help="register issued coupon codes with each store; mark redemptions and reuses",
        description="Reads the coupons topic (codes the journeys issued) and registers each "
        "with its store's coupon_provider (topic, webhook or shopify), writing the outcome "
        "back to coupons and to Redis, where the senders look before sending a message with "
        "a code; reads orders and marks each code redeemed by the first order that used it, "
        "reporting any later use (coupon_reused). Any number of replicas.",
        parents=[kafka],
    )
    coupons.set_defaults(run=_run_coupons)


def _run_coupons(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from senders.coupons.service import run_coupons
    from streams.cli.senders import configure_logging, require_redis

    configure_logging()
    asyncio.run(require_redis(settings))
    asyncio.run(run_coupons(settings))
    return 0
