"""The ``simulate`` and ``watermark`` subcommands of ``cartpulse`` (see ``streams.cli``)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from streams.cli.common import CommandParser, activity
from streams.contract.durations import DURATIONS
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.pacing import Pacer
from streams.offline.output import duration_seconds, open_output, time_argument
from streams.runtime.settings import Settings
from streams.tools.watermark import send_watermark

if TYPE_CHECKING:
    from streams.offline.audience import AudienceRecord
    from streams.runtime.kafka import Producer


def add_parsers(commands: Any, kafka: CommandParser) -> None:
    sim = commands.add_parser(
        "simulate",
        help="generate realistic storefront traffic (JSONL, or live into Kafka)",
        description="Sessions that browse, add, remove, check out and order; returning "
        "shoppers; deterministic for a seed.",
        parents=[kafka],
    )
    sim.add_argument("--events", type=int, default=100_000, help="events to generate")
    sim.add_argument("--rate", type=float, default=1_000.0, help="events per second")
    sim.add_argument("--shoppers", type=int, default=20_000, help="distinct shoppers")
    sim.add_argument("--seed", type=int, default=1, help="the same seed, the same traffic")
    sim.add_argument("--start", help="event time of the first event (default: now)")
    sim.add_argument(
        "--mean-pause", type=float, metavar="S", help="seconds between events (default: 20)"
    )
    sim.add_argument(
        "--break-probability", type=float, metavar="P", help="a pause is a break (default: 0.03)"
    )
    sim.add_argument(
        "--break-minutes",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="length of a break (default: 31 120)",
    )
    sim.add_argument(
        "--audience",
        action="store_true",
        help="with --kafka: first a profile and SMS and email consents per known shopper",
    )
    sim.add_argument(
        "--sms-opt-in", type=float, metavar="SHARE", help="of the audience (default: 0.7)"
    )
    sim.add_argument(
        "--email-opt-in", type=float, metavar="SHARE", help="of the audience (default: 0.85)"
    )
    target = sim.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", metavar="FILE|-", help="write JSONL")
    target.add_argument(
        "--kafka", action="store_true", help="produce to the input topics in real time"
    )
    sim.set_defaults(run=_run_simulate)

    mark = commands.add_parser(
        "watermark",
        help="advance the event-time watermark of the detector and the journeys",
        description="Tells the detector that no event older than TIME will come (e.g. at the "
        "end of a replay); 'end' closes every open period.",
        parents=[kafka],
    )
    mark.add_argument("time", metavar="TIME|end", help="RFC 3339 time, epoch ms, or 'end'")
    mark.add_argument(
        "--no-wait",
        action="store_true",
        help="send at once, without waiting for the detector to have read its inputs",
    )
    mark.add_argument(
        "--timeout", type=duration_seconds, default="300", help=f"how long to wait; {DURATIONS}"
    )
    mark.set_defaults(run=_run_watermark)


def _run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from streams.contract.events import parse_time
    from streams.offline.audience import AudienceConfig
    from streams.offline.simulate import SimulationConfig, simulate

    try:
        start = parse_time(args.start, "--start") if args.start else int(time.time() * 1000)
    except InvalidRecord as exc:
        raise ConfigurationError(exc.reason) from None
    if args.events < 1 or args.rate <= 0 or args.shoppers < 1:
        raise ConfigurationError("--events, --rate and --shoppers must be positive")
    if args.audience and not args.kafka:
        raise ConfigurationError("--audience produces to Kafka: give --kafka")
    shape = {"mean_pause_s": args.mean_pause, "break_probability": args.break_probability,
             "break_minutes": args.break_minutes and tuple(args.break_minutes)}  # fmt: skip
    shares = {"sms_opt_in": args.sms_opt_in, "email_opt_in": args.email_opt_in}
    try:
        config = SimulationConfig(
            events=args.events, rate=args.rate, shoppers=args.shoppers, start_ms=start,
            seed=args.seed, **{k: v for k, v in shape.items() if v is not None},
        )  # fmt: skip
        # Consents are given a day before the traffic: shoppers opted in before shopping.
        audience = AudienceConfig(
            args.shoppers, start - 86_400_000, args.seed,
            **{k: v for k, v in shares.items() if v is not None},
        ) if args.audience else None  # fmt: skip
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if args.output is not None:
        with open_output(args.output) as out:
            for record in simulate(config):
                out.write(orjson.dumps(record) + b"\n")
        return 0
    return asyncio.run(_simulate_live(settings, config, audience))


async def _simulate_live(settings: Settings, config: object, audience: object = None) -> int:
    from streams.contract.event_parse import event_from_dict
    from streams.offline.audience import AudienceConfig
    from streams.offline.audience import audience as audience_records
    from streams.offline.importer import DlqRejects, import_records
    from streams.offline.simulate import SimulationConfig, simulate
    from streams.offline.sources import SourceRecord
    from streams.runtime.kafka import create_topics, producer

    assert isinstance(config, SimulationConfig)  # noqa: S101 - built by _run_simulate
    topics = TopicCatalogue.of(settings)
    await create_topics(settings, topics.specs())
    kafka = producer(settings)
    await kafka.start()
    try:
        if isinstance(audience, AudienceConfig):  # acknowledged before the first event
            await _produce_audience(settings, kafka, audience_records(audience))
        records = (
            SourceRecord("simulate", b"", event_from_dict(r), orjson.dumps(r), None)
            for r in simulate(config)
        )
        summary = await import_records(
            records, kafka, topics, DlqRejects(kafka, topics), Pacer(speedup=1.0)
        )
    finally:
        await kafka.stop()
    print(f"produced {summary.imported:,} events in {summary.seconds:.1f}s")
    return 0


async def _produce_audience(
    settings: Settings, kafka: Producer, records: Iterable[AudienceRecord]
) -> None:
    """Profiles to ``customers``; consents the one way cartpulse writes them (the consent
    ledger: ``consents.history`` with source ``simulated``, then ``consents``)."""
    from streams.contract.consent_history import SOURCE_SIMULATED, ConsentEntry, store_entry
    from streams.runtime.consent_ledger import ConsentLedger

    topics = TopicCatalogue.of(settings)
    profiles: list[asyncio.Future[object]] = []
    consents: list[ConsentEntry] = []
    for r in records:
        value, key = orjson.dumps(r.value), r.key.encode()
        if r.topic is Topic.CONSENTS:
            consents.append(store_entry(key, value, "simulate", SOURCE_SIMULATED))
        else:
            profiles.append(await kafka.send(topics.name(r.topic), value=value, key=key))
    await asyncio.gather(*profiles)
    ledger = ConsentLedger.of(settings, kafka)
    for start in range(0, len(consents), 2_000):
        errors = await ledger.record_all(consents[start : start + 2_000])
        if failed := next((e for e in errors if e is not None), None):
            raise failed
    print(f"produced {len(profiles):,} profiles and {len(consents):,} consents")


def _run_watermark(args: argparse.Namespace, settings: Settings) -> int:
    from streams.contract.events import MAX_EVENT_MS

    watermark = MAX_EVENT_MS if args.time == "end" else time_argument(args.time, "TIME")
    with activity("waiting for the worker to read its inputs" if not args.no_wait else "sending"):
        asyncio.run(send_watermark(settings, watermark, not args.no_wait, args.timeout))
    print(f"watermark {watermark} sent to {settings.topic_partitions} partitions")
    return 0
