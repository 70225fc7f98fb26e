"""``cartpulse collect``: the HTTP collector for storefronts that cannot produce to Kafka
(hosted platforms, browser pixels); docs/collector.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from streams.runtime.settings import Settings


def add_parsers(commands: Any) -> None:
    collect = commands.add_parser(
        "collect",
        help="serve POST /v1/events: storefront events over HTTP onto the input topics",
        description="Validates each event as `cartpulse import` does, produces the valid ones "
        "keyed by session_id and dead-letters the rest, answering once Kafka acknowledged "
        "them; listens on CARTPULSE_COLLECT_HOST:CARTPULSE_COLLECT_PORT, metrics on "
        "CARTPULSE_COLLECT_METRICS_HOST:_PORT (docs/collector.md).",
    )
    collect.add_argument("--loglevel", default="info", choices=["debug", "info", "warn", "error"])
    collect.set_defaults(run=run_collect)


def run_collect(args: argparse.Namespace, settings: Settings) -> int:
    from streams.collector.service import run_collector

    logging.basicConfig(
        level=args.loglevel.upper().replace("WARN", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run_collector(settings))
    return 0
