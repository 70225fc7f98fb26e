"""The ``cartpulse`` command: one entry point, a subcommand per tool.

Exit codes: 0 done, 1 done but some input was rejected (``import``), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import orjson

from streams.cli.collect import add_parsers as add_collect_parsers
from streams.cli.common import CommandParser, activity, kafka_flags
from streams.cli.consents import add_consent_parsers, import_consents_command
from streams.cli.coupons import add_parsers as add_coupon_parsers
from streams.cli.errors import explain, quiet_bootstrap_failures
from streams.cli.forget import add_parsers as add_forget_parsers
from streams.cli.journeys import add_parsers as add_journey_parsers
from streams.cli.policy import add_parsers as add_policy_parsers
from streams.cli.preview import add_parsers as add_preview_parsers
from streams.cli.products import FORMAT as FORMAT_PRODUCTS
from streams.cli.products import check_products_import, import_products_command
from streams.cli.stream import add_parsers as add_stream_parsers
from streams.contract.durations import DURATIONS
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.topics import TopicCatalogue
from streams.core.pacing import Pacer
from streams.offline.output import MAX_REPORTED_REJECTS, open_output, stderr_rejects
from streams.offline.sources import (
    Format,
    SourceRecord,
    detect_format,
    is_plain_file,
    read_events,
    require_input,
)
from streams.runtime.binding import check_bindable
from streams.runtime.gctune import tune_gc
from streams.runtime.settings import Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    overrides = {
        name: value
        for name, value in (
            ("kafka_bootstrap_servers", getattr(args, "kafka_servers", None)),
            ("topic_prefix", getattr(args, "kafka_prefix", None)),
        )
        if value is not None
    }
    settings: Settings | None = None
    if not args.debug:
        quiet_bootstrap_failures()
    try:
        settings = load_settings(**overrides)
        return cast(int, args.run(args, settings))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cartpulse detect --output - | head`: the reader is done
        sys.stderr.close()
        return 0
    except Exception as exc:
        explained = explain(exc, *_addresses(settings, overrides))
        if explained is None:
            raise  # a bug: its traceback is the report
        message, code = explained
        if args.debug:
            traceback.print_exc()
        print(f"cartpulse: {message}", file=sys.stderr)
        return code


def _addresses(settings: Settings | None, overrides: dict[str, str]) -> tuple[str, str]:
    """Where Kafka and Redis are said to be, for a message (settings may not have loaded)."""
    if settings is not None:
        return settings.kafka_bootstrap_servers, settings.redis_url.get_secret_value()
    return (
        overrides.get("kafka_bootstrap_servers")
        or os.environ.get("CARTPULSE_KAFKA_BOOTSTRAP_SERVERS", "?"),
        os.environ.get("CARTPULSE_REDIS_URL", "?"),
    )


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="cartpulse",
        description="Abandoned-cart and browse-abandonment recovery on Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"cartpulse {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    kafka = kafka_flags()

    imp = commands.add_parser(
        "import",
        help="produce storefront event files to the clickstream and cart topics, "
        "catalogues to products",
        description="Produce events keyed by session_id; invalid lines go to the DLQ "
        "(or --rejects FILE) with their reason and never stop the import. A FILE may be - "
        "(standard input) or gzipped (.gz). --format products: FILEs are the product "
        "catalogue, produced to products keyed by product_id: JSONL product records, or a "
        "REES46 .csv whose catalogue is derived (a version of a product each time its price "
        "changes, as of that event). --format consents: FILEs are consent records (JSONL), "
        "each written to consents.history and then consents.",
        parents=[kafka],
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSONL or CSV, - or .gz")
    imp.add_argument(
        "--format",
        choices=["jsonl", "rees46", "products", "consents"],
        help="input format (default: rees46 for .csv and .csv.gz files, jsonl otherwise); "
        "products: a product catalogue; consents: consent records",
    )
    pace = imp.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    pace.add_argument(
        "--speedup", type=float, help="replay the events' original spacing X times faster"
    )
    imp.add_argument(
        "--rejects", type=Path, help="write invalid lines to this JSONL file instead of the DLQ"
    )
    imp.add_argument("--no-create-topics", action="store_true", help="do not create topics first")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(run=_run_import)

    det = commands.add_parser(
        "detect",
        help="run abandonment detection over a file, offline, in event mode",
        description="The detector's core over one file in input order (as one partition): "
        "writes abandonments as JSON lines, the same records the worker puts on the topic.",
    )
    det.add_argument(
        "--input", required=True, type=Path, metavar="FILE|-", help="events; - or .gz too"
    )
    det.add_argument(
        "--format", choices=["jsonl", "rees46"], help="input format (default: by file extension)"
    )
    det.add_argument("--gap", default="30m", help=f"inactivity that ends a period; {DURATIONS}")
    det.add_argument(
        "--min-product-views", type=int, default=1, metavar="N", help="views a browse needs"
    )
    det.add_argument("--lateness", default="0s", help="allowed lateness of events")
    det.add_argument(
        "--flush", action="store_true", help="close every open period at the end of the input"
    )
    det.add_argument("--output", required=True, metavar="FILE|-", help="abandonments, JSONL")
    det.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    det.set_defaults(run=_run_detect)

    work = commands.add_parser(
        "worker",
        help="run the detector worker (Faust): inputs → abandonments and orders",
        description="Settings come from CARTPULSE_* variables; these flags override them.",
        parents=[kafka],
    )
    work.add_argument("--clock", choices=["live", "event"], help="default: CARTPULSE_CLOCK")
    work.add_argument(
        "--gap", help=f"inactivity that ends a period (default: CARTPULSE_GAP); {DURATIONS}"
    )
    work.add_argument(
        "--min-product-views", type=int, metavar="N", help="default: CARTPULSE_MIN_PRODUCT_VIEWS"
    )
    work.add_argument("--lateness", help="allowed lateness (default: CARTPULSE_LATENESS)")
    work.add_argument(
        "--loglevel", default="info", choices=["debug", "info", "warn", "error"], help="log level"
    )
    work.set_defaults(run=_run_worker)

    add_stream_parsers(commands, kafka)

    topics = commands.add_parser("topics", help="the topic catalogue")
    topics_cmd = topics.add_subparsers(title="actions", metavar="ACTION")
    create = topics_cmd.add_parser(
        "create", help="create every topic (idempotent)", parents=[kafka]
    )
    create.set_defaults(run=_run_topics_create)
    listing = topics_cmd.add_parser(
        "list", help="print the catalogue: name, key, configs", parents=[kafka]
    )
    listing.set_defaults(run=_run_topics_list)
    counting = topics_cmd.add_parser(
        "counts", help="records held by each topic of the catalogue", parents=[kafka]
    )
    counting.add_argument("--json", action="store_true", help="print the counts as JSON")
    counting.set_defaults(run=_run_topics_counts)
    deleting = topics_cmd.add_parser(
        "delete",
        help="delete every topic under a prefix (a replay's namespace, a demo's run)",
        parents=[kafka_flags(prefix=False)],
    )
    deleting.add_argument("--prefix", required=True, help="e.g. replay-2026-01-01.")
    deleting.add_argument("--yes", action="store_true", help="delete; without it, only list")
    deleting.set_defaults(run=_run_topics_delete)

    send = commands.add_parser("send", help="run a sender service (any number of replicas)")
    send_cmd = send.add_subparsers(title="channels", metavar="CHANNEL")
    for channel, provider in (("sms", "Twilio"), ("email", "SMTP")):
        sender = send_cmd.add_parser(
            channel, help=f"consume send.{channel}, send via {provider}", parents=[kafka]
        )
        sender.set_defaults(run=_run_send, channel=channel)
    consents = commands.add_parser(
        "consents", help="the consent mirror in Redis, the consent history for audits"
    )
    consents_cmd = consents.add_subparsers(title="actions", metavar="ACTION")
    mirror = consents_cmd.add_parser(
        "mirror", help="keep Redis in step with the consents topic", parents=[kafka]
    )
    mirror.set_defaults(run=_run_consent_mirror)
    add_consent_parsers(consents_cmd, kafka)
    webhooks = commands.add_parser(
        "webhooks",
        help="serve Twilio webhooks, one-click unsubscribe and click redirects",
        description="Inbound STOP/START/HELP and delivery callbacks from Twilio, RFC 8058 "
        "unsubscribe and click-tracking redirects, on CARTPULSE_WEBHOOKS_PORT.",
        parents=[kafka],
    )
    webhooks.set_defaults(run=_run_webhooks)
    add_journey_parsers(commands, kafka)
    add_policy_parsers(commands)
    add_preview_parsers(commands)
    add_collect_parsers(commands)
    add_coupon_parsers(commands, kafka)
    add_forget_parsers(commands, kafka)
    return parser


def _run_send(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli.senders import run_send

    return run_send(settings, args.channel)


def _run_consent_mirror(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli.senders import run_consent_mirror

    return run_consent_mirror(settings)


def _run_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli.senders import run_webhooks_service

    return run_webhooks_service(settings)


def _run_topics_list(args: argparse.Namespace, settings: Settings) -> int:
    for spec in TopicCatalogue.of(settings).specs():
        configs = ",".join(f"{k}={v}" for k, v in sorted(spec.configs.items())) or "-"
        print(f"{spec.name:32} key={spec.key:28} {configs}")
    return 0


def _run_topics_counts(args: argparse.Namespace, settings: Settings) -> int:
    from streams.runtime.kafka import topic_counts

    names = [spec.name for spec in TopicCatalogue.of(settings).specs()]
    counts = asyncio.run(topic_counts(settings, names))
    if args.json:
        sys.stdout.write(orjson.dumps(counts).decode() + "\n")
        return 0
    for name, count in counts.items():
        print(f"{name:32} {count:>10,}")
    return 0


def _run_topics_delete(args: argparse.Namespace, settings: Settings) -> int:
    from streams.runtime.kafka import delete_topics

    if not args.prefix.strip():
        raise ConfigurationError("--prefix must not be empty: it would name every topic")
    names = asyncio.run(delete_topics(settings, args.prefix, dry_run=not args.yes))
    for name in names:
        print(f"{'deleted' if args.yes else 'would delete'}  {name}")
    if not names:
        print(f"no topic starts with {args.prefix!r}")
    elif not args.yes:
        print(f"{len(names)} topics; run again with --yes to delete them", file=sys.stderr)
        return 1
    return 0


def _run_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.runtime.kafka import create_topics

    report = asyncio.run(create_topics(settings, TopicCatalogue.of(settings).specs()))
    for name in report.created:
        print(f"created  {name}")
    for name in report.existing:
        if name not in report.created:
            print(f"exists   {name}")
    for name in report.mismatched:
        print(
            f"warning: {name} does not have {settings.topic_partitions} partitions; "
            "it was left as it is",
            file=sys.stderr,
        )
    return 0


def _run_import(args: argparse.Namespace, settings: Settings) -> int:
    for path in args.files:
        require_input(path)
    if args.format == "consents":
        return asyncio.run(import_consents_command(args, settings))
    if args.format == FORMAT_PRODUCTS:
        check_products_import(args)
        return asyncio.run(import_products_command(args, settings))
    pacer = Pacer(rate=args.rate, speedup=args.speedup)
    return asyncio.run(_import(args, settings, pacer))


async def _import(args: argparse.Namespace, settings: Settings, pacer: Pacer) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from streams.offline.importer import import_records, open_rejects, total_bytes
    from streams.runtime.kafka import create_topics, producer

    topics = TopicCatalogue.of(settings)
    if not args.no_create_topics:
        await create_topics(settings, topics.specs())
    kafka = producer(settings)
    await kafka.start()
    reported = 0

    def report(record: SourceRecord) -> None:
        nonlocal reported
        progress.advance(task, len(record.line) + 1)
        if record.reason is not None:
            reported += 1
            if reported <= MAX_REPORTED_REJECTS:
                progress.console.print(
                    f"[yellow]{record.source}[/]: {record.reason}", markup=True, soft_wrap=True
                )
            elif reported == MAX_REPORTED_REJECTS + 1:
                progress.console.print("… further rejected lines are counted, not printed")

    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        disable=args.quiet or not sys.stderr.isatty(),
        transient=True,
    )
    progress.console.file = sys.stderr
    # bytes read is the measure of a plain file; a stream's or a gzip's total is unknown
    plain = all(is_plain_file(path) for path in args.files)
    task = progress.add_task("import", total=total_bytes(args.files) if plain else None)
    try:
        with contextlib.ExitStack() as stack:
            rejects = open_rejects(args.rejects, stack, kafka, topics)
            stack.enter_context(progress)
            summary = await import_records(
                _records(args.files, args.format), kafka, topics, rejects, pacer, report
            )
    finally:
        await kafka.stop()

    if args.json:
        sys.stdout.write(orjson.dumps(summary.to_dict()).decode() + "\n")
    else:
        rate = summary.imported / summary.seconds if summary.seconds else 0.0
        print(
            f"imported {summary.imported:,} events, invalid {summary.invalid:,} "
            f"in {summary.seconds:.1f}s ({rate:,.0f} events/s)"
        )
        for etype, count in sorted(summary.by_type.items()):
            print(f"  {etype:20} {count:>10,}")
        for topic, count in sorted(summary.by_topic.items()):
            print(f"  → {topic:18} {count:>10,}")
        for reason, count in summary.reasons.most_common():
            print(f"  invalid: {reason:40} {count:>6,}")
        if summary.invalid:
            where = args.rejects or f"{topics.prefix}*.dlq"
            print(f"  rejected lines were written to {where}")
        if summary.failed:
            print(f"  {summary.failed:,} valid events were NOT imported (Kafka did not take them;")
            print("  their lines are in the log above: import those again)")
        if summary.dlq_failed:
            print(
                f"  {summary.dlq_failed:,} rejected lines were NOT written to the DLQ "
                "(Kafka did not take them; see the log above)"
            )
    return 1 if summary.invalid or summary.failed or summary.dlq_failed else 0


def _run_detect(args: argparse.Namespace, settings: Settings) -> int:
    from streams.contract.durations import parse_duration_ms
    from streams.core.detection import DetectorConfig
    from streams.offline.detect import DetectSummary, detect_file

    require_input(args.input)
    try:
        config = DetectorConfig(
            gap_ms=parse_duration_ms(args.gap),
            min_product_views=args.min_product_views,
            lateness_ms=parse_duration_ms(args.lateness),
            default_store_id=settings.default_store_id,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    summary = DetectSummary()
    reject = stderr_rejects()

    fmt = args.format or detect_format(args.input)
    tune_gc()
    with open_output(args.output) as out, activity("detecting"):
        try:
            detect_file(args.input, fmt, config, out, summary, reject, args.flush)
        except InvalidRecord as exc:  # a file that cannot be read at all
            raise ConfigurationError(exc.reason) from None
    unknown = sum(summary.unknown_types.values())
    if args.json:
        sys.stdout.write(
            orjson.dumps(
                {
                    "events": summary.events,
                    "invalid": summary.invalid,
                    "unknown_types": dict(summary.unknown_types),
                    "abandonments": dict(summary.abandonments),
                }
            ).decode()
            + "\n"
        )
    else:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(summary.abandonments.items())) or "none"
        print(
            f"{summary.events:,} events, {summary.invalid:,} invalid, "
            f"{unknown:,} of unknown types; abandonments: {kinds}",
            file=sys.stderr,
        )
    if summary.unknown_types:
        print(f"unknown types: {_counts(summary.unknown_types)}", file=sys.stderr)
    if summary.events == 0 and (summary.invalid or unknown):
        print(
            f"cartpulse: no line of {args.input} was a valid event: check --format "
            f"({fmt}) and the file",
            file=sys.stderr,
        )
        return 1
    return 0


def _counts(counts: Counter[str]) -> str:
    """``add_to_cart 1,204, page_view 31``: most frequent first."""
    return ", ".join(f"{name} {n:,}" for name, n in counts.most_common())


def _run_worker(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    import faust

    from streams.agents.app import create_app
    from streams.contract.durations import parse_duration_ms
    from streams.runtime.worker_logging import logging_config

    overrides: dict[str, object] = {}
    if args.clock:
        overrides["clock"] = args.clock
    if args.gap:
        overrides["gap"] = timedelta(milliseconds=parse_duration_ms(args.gap))
    if args.lateness:
        overrides["lateness"] = timedelta(milliseconds=parse_duration_ms(args.lateness))
    if args.min_product_views is not None:
        overrides["min_product_views"] = args.min_product_views
    settings = load_settings(**{**settings.model_dump(), **overrides})
    if settings.web_port:
        check_bindable(settings.web_host, settings.web_port, "CARTPULSE_WEB_HOST/_WEB_PORT")
    if settings.journeys_enabled:
        from senders.messages.packs import checked_policy

        for warning in checked_policy(settings)[1]:
            print(f"cartpulse: warning: {warning}", file=sys.stderr)
    asyncio.run(_prepare_worker(settings))
    app, _ = create_app(settings)
    # JSON lines on stderr, like every other cartpulse process (streams/runtime/worker_logging.py)
    worker = faust.Worker(
        app, loglevel=args.loglevel, quiet=True, logging_config=logging_config(args.loglevel)
    )
    # At WARN and above Faust's terminal spinner sets the root logger to DEBUG so that every
    # record spins it: each debug line of aiokafka and Faust (several per message produced)
    # is then built and dropped, ~8 % of the detector's time. No spinner, no such cost.
    worker.spinner = None
    tune_gc()
    worker.execute_from_commandline()  # returns only at shutdown (SIGTERM/SIGINT)
    return 0


async def _prepare_worker(settings: Settings) -> None:
    """The topics the worker needs, then its announcement of what it runs."""
    from streams.agents.roster import announce
    from streams.runtime.kafka import create_topics

    await create_topics(settings, TopicCatalogue.of(settings).specs())
    await announce(settings)


def _records(files: Sequence[Path], fmt: Format | None) -> Iterator[SourceRecord]:
    for path in files:
        try:
            yield from read_events(path, fmt or detect_format(path))
        except InvalidRecord as exc:  # a whole file that cannot be read: say so, go on
            raise ConfigurationError(exc.reason) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cartpulse")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"
