"""The ``journeys``, ``report`` and ``replay`` subcommands of ``cartpulse`` (``streams.cli``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import orjson

from streams.errors import ConfigurationError
from streams.journeys_offline import (
    JourneyFiles,
    JourneySummary,
    OutputWriter,
    lines,
    read_inputs,
    run_journeys,
)
from streams.output import open_output, stderr_rejects, time_argument
from streams.policy_file import journey_engine
from streams.report import RecordKind, Report, Row, report_from_topics
from streams.settings import Settings

COLUMNS = (
    "flow", "variant", "abandonments", "journeys", "messages (sms/email)", "conversions",
    "recovered",
    "recovery rate", "revenue", "rev/message", "lift (95% CI)",
)  # fmt: skip


def add_parsers(commands: Any) -> None:
    jour = commands.add_parser(
        "journeys",
        help="run the journey engine over files, offline, in event-time order",
        description="Merges abandonments, customers, consents and orders by event time and "
        "writes the send commands (and the decisions and recoveries) the worker would.",
    )
    jour.add_argument("--abandonments", required=True, type=Path, metavar="FILE")
    jour.add_argument("--customers", type=Path, metavar="FILE", help="profiles, JSONL")
    jour.add_argument("--consents", type=Path, metavar="FILE", help="consent records, JSONL")
    jour.add_argument("--orders", type=Path, metavar="FILE", help="events; orders are taken")
    jour.add_argument("--results", type=Path, metavar="FILE", help="send results, JSONL")
    jour.add_argument("--policy", type=Path, metavar="FILE", help="default: the shipped policy")
    jour.add_argument("--dry-run", action="store_true", help="mark every command dry_run")
    jour.add_argument("--output", required=True, metavar="FILE|-", help="send commands")
    jour.add_argument("--decisions", type=Path, metavar="FILE", help="default: beside --output")
    jour.add_argument("--recoveries", type=Path, metavar="FILE", help="default: beside --output")
    jour.set_defaults(run=run_journeys_command)

    rep = commands.add_parser(
        "report",
        help="per flow and variant: journeys, messages, recoveries, revenue, lift",
        description="From the journey.decisions and recoveries topics, or from the files "
        "`cartpulse journeys` wrote.",
    )
    rep.add_argument("--decisions", type=Path, metavar="FILE")
    rep.add_argument("--recoveries", type=Path, metavar="FILE")
    rep.add_argument("--json", action="store_true", help="print the rows as JSON")
    rep.set_defaults(run=run_report_command)

    rp = commands.add_parser(
        "replay",
        help="rerun a time range of the input topics in event mode, into a namespace",
        description="Copies the range (and all profiles and consents) into topics prefixed "
        "with the namespace, runs a worker over them in event mode, and reports what every flow "
        "would have sent, deferred or skipped, and why. Live senders never read a namespace.",
    )
    rp.add_argument("--from", dest="start", required=True, help="RFC 3339 or epoch ms")
    rp.add_argument("--to", dest="end", required=True, help="RFC 3339 or epoch ms (exclusive)")
    rp.add_argument("--namespace", help="default: replay-<from>-<to>")
    rp.add_argument("--dry-run", action="store_true", help="mark every command dry_run")
    rp.add_argument("--timeout", type=float, default=900.0, help="seconds to wait (900)")
    rp.add_argument("--json", action="store_true", help="print the summary as JSON")
    rp.set_defaults(run=run_replay_command)


def run_journeys_command(args: argparse.Namespace, settings: Settings) -> int:
    files = JourneyFiles(
        args.abandonments, args.customers, args.consents, args.orders, args.results
    )
    for path in (files.abandonments, files.customers, files.consents, files.orders, files.results):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{path}: no such file")
    from senders.packs import require_policy_templates

    require_policy_templates(settings, args.policy)
    engine = journey_engine(settings, args.policy, args.dry_run)
    summary = JourneySummary()
    inputs = read_inputs(files, summary, stderr_rejects())
    beside = None if args.output == "-" else Path(args.output)
    decisions = args.decisions or (beside and beside.with_suffix(".decisions.jsonl"))
    recoveries = args.recoveries or (beside and beside.with_suffix(".recoveries.jsonl"))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open_output(args.output))
        dec = stack.enter_context(open_output(str(decisions))) if decisions else None
        rec = stack.enter_context(open_output(str(recoveries))) if recoveries else None
        run_journeys(inputs, engine, OutputWriter(out, dec, rec, summary))
    commands = ", ".join(f"{ch} {n:,}" for ch, n in sorted(summary.commands.items())) or "none"
    read = ", ".join(f"{k} {n:,}" for k, n in sorted(summary.inputs.items()))
    print(
        f"inputs: {read}; {summary.invalid:,} invalid; commands: {commands}; "
        f"recoveries: {summary.recoveries:,}",
        file=sys.stderr,
    )
    for label, count in sorted(summary.decisions.items()):
        print(f"  {label:40} {count:>8,}", file=sys.stderr)
    return 0


def run_report_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.decisions or args.recoveries:
        report = Report()
        files: tuple[tuple[Path | None, RecordKind], ...] = (
            (args.decisions, "decision"),
            (args.recoveries, "recovery"),
        )
        for path, kind in files:
            if path is None:
                continue
            if not path.is_file():
                raise ConfigurationError(f"{path}: no such file")
            for _, line in lines(path):
                report.add_raw(kind, line)
    else:
        report = asyncio.run(report_from_topics(settings))
    if report.unreadable:
        print(f"{report.unreadable:,} records were not JSON objects: skipped", file=sys.stderr)
    rows = report.rows()
    if args.json:
        sys.stdout.write(orjson.dumps([row.to_dict() for row in rows]).decode() + "\n")
    else:
        print_report(rows)
    return 0


def print_report(rows: list[Row], file: IO[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="cartpulse journeys")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("flow", "variant") else "right")
    for row in rows:
        d = row.to_dict()
        lift = "-"
        if d["lift"] is not None:
            low, high = d["lift_ci95"]
            lift = f"{d['lift']:+.1%} ({low:+.1%}, {high:+.1%})"
        table.add_row(
            d["flow"], d["variant"], f"{d['abandonments']:,}", f"{d['journeys']:,}",
            f"{d['messages']:,} ({d['sms']:,}/{d['email']:,})", f"{d['conversions']:,}",
            f"{d['orders_recovered']:,}",
            f"{d['recovery_rate']:.1%}", d["revenue"], d["revenue_per_message"], lift,
        )  # fmt: skip
    Console(file=file or sys.stdout, width=160).print(table)


def run_replay_command(args: argparse.Namespace, settings: Settings) -> int:
    from streams.replay import (
        ReplaySummary,
        collect,
        copy_topics,
        finish,
        namespace_worker,
        namespaced,
        wait_for_audience,
    )
    from streams.watermark import AUDIENCE, DETECTOR_INPUTS

    start, end = time_argument(args.start, "--from"), time_argument(args.end, "--to")
    if end <= start:
        raise ConfigurationError("--to must come after --from")
    journey_engine(settings)  # a bad policy or coupon secret fails here, before any copying
    namespace = args.namespace or f"replay-{start}-{end}"
    target = namespaced(settings, namespace)
    summary = ReplaySummary()
    asyncio.run(copy_topics(settings, target, AUDIENCE, None, summary))
    with tempfile.TemporaryDirectory(prefix=f"cartpulse-replay-{namespace}-") as tmp:
        state = Path(tmp)
        with namespace_worker(target, state, args.dry_run):
            asyncio.run(wait_for_audience(target, args.timeout))
        asyncio.run(copy_topics(settings, target, DETECTOR_INPUTS, (start, end), summary))
        print(
            f"copied {sum(summary.copied.values()):,} records into {target.topic_prefix}* "
            f"({', '.join(f'{k} {n:,}' for k, n in sorted(summary.copied.items()))}); "
            f"{summary.outside:,} outside the range",
            file=sys.stderr,
        )
        with namespace_worker(target, state, args.dry_run) as log:
            finish(target, log, args.timeout)
    asyncio.run(collect(target, summary))
    if args.json:
        out = {
            "namespace": target.topic_prefix,
            "copied": dict(summary.copied),
            "commands": dict(summary.commands),
            "decisions": [
                {"flow": f, "action": a, "reason": r, "count": n}
                for (f, a, r), n in sorted(summary.report.reasons.items())
            ],
            "report": [row.to_dict() for row in summary.report.rows()],
        }
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return 0
    mode = "dry run: nothing is delivered" if args.dry_run else "namespaced: nothing is delivered"
    print(f"replay {namespace} ({mode})")
    print(f"commands: {', '.join(f'{k} {n:,}' for k, n in sorted(summary.commands.items()))}")
    for (flow, action, reason), count in sorted(summary.report.reasons.items()):
        print(f"  {flow:10} {action:10} {reason:28} {count:>8,}")
    print_report(summary.report.rows())
    return 0
