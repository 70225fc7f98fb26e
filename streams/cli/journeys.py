"""The ``journeys``, ``report`` and ``replay`` subcommands of ``cartpulse`` (``streams.cli``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import orjson

from streams.cli.common import CommandParser, activity, terminal_width
from streams.contract.durations import DURATIONS
from streams.contract.errors import ConfigurationError
from streams.offline.journeys import (
    JourneyFiles,
    JourneySummary,
    OutputWriter,
    read_inputs,
    run_journeys,
)
from streams.offline.output import duration_seconds, open_output, stderr_rejects, time_argument
from streams.offline.sources import STDIN, read_lines, require_input
from streams.runtime.journey_engine import journey_engine
from streams.runtime.settings import Settings
from streams.tools.report import RecordKind, Report, Row, report_from_topics

COLUMNS = (
    "flow", "variant", "abandonments", "journeys", "messages (sms/email)", "clicked",
    "conversions", "recovered",
    "recovery rate", "revenue", "rev/message", "lift (95% CI)",
)  # fmt: skip


def add_parsers(commands: Any, kafka: CommandParser) -> None:
    jour = commands.add_parser(
        "journeys",
        help="run the journey engine over files, offline, in event-time order",
        description="Merges abandonments, customers, consents and orders by event time and "
        "writes the send commands (and the decisions and recoveries) the worker would. "
        "Every input FILE may be - (standard input) or gzipped (.gz).",
    )
    jour.add_argument(
        "--abandonments", required=True, type=Path, metavar="FILE", help="abandonments, JSONL"
    )
    jour.add_argument("--customers", type=Path, metavar="FILE", help="profiles, JSONL")
    jour.add_argument(
        "--consents",
        type=Path,
        metavar="FILE",
        help="consent records, JSONL; without them no SMS or email step is sent",
    )
    jour.add_argument(
        "--orders",
        type=Path,
        metavar="FILE",
        help="events (JSONL, or a REES46 / Open CDP .csv export as detect reads them); "
        "their orders are taken",
    )
    jour.add_argument("--results", type=Path, metavar="FILE", help="send results, JSONL")
    jour.add_argument(
        "--products",
        type=Path,
        metavar="FILE",
        help="the product catalogue: product records, JSONL (the products topic's shape)",
    )
    jour.add_argument(
        "--engagement",
        type=Path,
        metavar="FILE",
        help="clicks and opens (link_clicked, email_opened), JSONL (the engagement topic's shape)",
    )
    jour.add_argument("--policy", type=Path, metavar="FILE", help="default: the shipped policy")
    jour.add_argument("--dry-run", action="store_true", help="mark every command dry_run")
    jour.add_argument("--output", required=True, metavar="FILE|-", help="send commands")
    jour.add_argument("--decisions", type=Path, metavar="FILE", help="default: beside --output")
    jour.add_argument("--recoveries", type=Path, metavar="FILE", help="default: beside --output")
    jour.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    jour.set_defaults(run=run_journeys_command)

    rep = commands.add_parser(
        "report",
        help="per flow and variant: journeys, messages, clicks, recoveries, revenue, lift",
        description="From the journey.decisions, recoveries and engagement topics, or from "
        "files: the ones `cartpulse journeys` wrote and the engagement records (- or .gz too). "
        "--html also draws it, per flow, branch and step, as one page that needs no network.",
        parents=[kafka],
    )
    rep.add_argument(
        "--decisions", type=Path, metavar="FILE", help="default: the journey.decisions topic"
    )
    rep.add_argument(
        "--recoveries", type=Path, metavar="FILE", help="default: the recoveries topic"
    )
    rep.add_argument(
        "--engagement",
        type=Path,
        metavar="FILE",
        help="engagement records (link_clicked counts), JSONL; default: the engagement topic",
    )
    rep.add_argument("--json", action="store_true", help="print the rows as JSON")
    rep.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write the report with its charts as one HTML file (opens with no network)",
    )
    rep.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="for --html: the flows' triggers and the stores' names; default: the settings'",
    )
    rep.set_defaults(run=run_report_command)

    rp = commands.add_parser(
        "replay",
        help="rerun a time range of the input topics in event mode, into a namespace",
        description="Copies the range of events and clicks (and all profiles, consents and "
        "products) into topics prefixed with the namespace, runs a worker over them in event "
        "mode, and reports what every flow would have sent, deferred or skipped, and why. Live "
        "senders never read a namespace.",
        parents=[kafka],
    )
    rp.add_argument("--from", dest="start", required=True, help="RFC 3339 or epoch ms")
    rp.add_argument("--to", dest="end", required=True, help="RFC 3339 or epoch ms (exclusive)")
    rp.add_argument("--namespace", help="default: replay-<from>-<to>")
    rp.add_argument("--dry-run", action="store_true", help="mark every command dry_run")
    rp.add_argument(
        "--timeout", type=duration_seconds, default="900", help=f"how long to wait; {DURATIONS}"
    )
    rp.add_argument("--json", action="store_true", help="print the summary as JSON")
    rp.set_defaults(run=run_replay_command)


def run_journeys_command(args: argparse.Namespace, settings: Settings) -> int:
    files = JourneyFiles(
        args.abandonments,
        args.customers,
        args.consents,
        args.orders,
        args.results,
        products=args.products,
        engagement=args.engagement,
    )
    given = [
        files.abandonments,
        files.customers,
        files.consents,
        files.orders,
        files.results,
        files.products,
        files.engagement,
    ]
    for path in given:
        if path is not None:
            require_input(path)
    if sum(path == STDIN for path in given) > 1:
        raise ConfigurationError("only one input can be - (standard input)")
    from senders.messages.packs import checked_policy

    checked_policy(settings, args.policy)
    engine = journey_engine(settings, args.policy, args.dry_run)
    summary = JourneySummary()
    with activity("reading inputs"):
        inputs = read_inputs(files, summary, stderr_rejects())
    beside = None if args.output == "-" else Path(args.output)
    decisions = args.decisions or (beside and beside.with_suffix(".decisions.jsonl"))
    recoveries = args.recoveries or (beside and beside.with_suffix(".recoveries.jsonl"))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open_output(args.output))
        dec = stack.enter_context(open_output(str(decisions))) if decisions else None
        rec = stack.enter_context(open_output(str(recoveries))) if recoveries else None
        with activity("running journeys"):
            run_journeys(inputs, engine, OutputWriter(out, dec, rec, summary))
    if args.json:
        sys.stdout.write(orjson.dumps(_journeys_dict(summary)).decode() + "\n")
    else:
        commands = ", ".join(f"{ch} {n:,}" for ch, n in sorted(summary.commands.items()))
        read = ", ".join(f"{k} {n:,}" for k, n in sorted(summary.inputs.items()))
        print(
            f"inputs: {read or 'none'}; {summary.invalid:,} invalid; "
            f"commands: {commands or 'none'}; recoveries: {summary.recoveries:,}",
            file=sys.stderr,
        )
        for label, count in sorted(summary.decisions.items()):
            print(f"  {label:40} {count:>8,}", file=sys.stderr)
    for warning in journey_warnings(files, summary):
        print(f"cartpulse: warning: {warning}", file=sys.stderr)
    if not summary.inputs and summary.invalid:
        print("cartpulse: no input line was valid: check the files", file=sys.stderr)
        return 1
    return 0


def journey_warnings(files: JourneyFiles, summary: JourneySummary) -> list[str]:
    """What a run's summary says about its inputs that the user should fix."""
    found: list[str] = []
    if files.consents is None:
        found.append("no --consents: every SMS/email step needs consent: pass --consents FILE")
    elif not summary.inputs["consents"]:
        found.append(
            f"no consent was read from {files.consents}: every SMS/email step needs consent"
        )
    no_consent = sum(n for label, n in summary.decisions.items() if "no_consent" in label)
    if not summary.commands and no_consent:
        found.append(
            f"no command was written; {no_consent:,} steps were skipped for no_consent: "
            "check that --consents holds opted-in records for these customers"
        )
    return found


def _journeys_dict(summary: JourneySummary) -> dict[str, object]:
    return {
        "inputs": dict(summary.inputs),
        "invalid": summary.invalid,
        "commands": dict(summary.commands),
        "decisions": dict(summary.decisions),
        "recoveries": summary.recoveries,
    }


def run_report_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.html is not None and args.html.is_dir():
        raise ConfigurationError(f"--html {args.html} is a folder: name the file to write")
    if args.decisions or args.recoveries or args.engagement:
        report = Report()
        # Decisions first: a click or a recovery finds its step through them.
        files: tuple[tuple[Path | None, RecordKind], ...] = (
            (args.decisions, "decision"),
            (args.recoveries, "recovery"),
            (args.engagement, "engagement"),
        )
        for path, kind in files:
            if path is None:
                continue
            require_input(path)
            for _, line in read_lines(path):
                report.add_raw(kind, line)
    else:
        report = asyncio.run(report_from_topics(settings))
    if report.unreadable:
        print(f"{report.unreadable:,} records were not JSON objects: skipped", file=sys.stderr)
    if report.unattributed_clicks:
        print(
            f"{report.unattributed_clicks:,} clicks named a message no decision read here sent: "
            "left out",
            file=sys.stderr,
        )
    rows = report.rows()
    if args.json:
        sys.stdout.write(orjson.dumps([row.to_dict() for row in rows]).decode() + "\n")
    else:
        print_report(rows)
    if args.html is not None:
        write_html_report(report, args.html, args.policy or settings.policy_file)
    return 0


def write_html_report(report: Report, path: Path, policy: Path | None) -> None:
    """The page, written whole or not at all (a reader never sees half of it)."""
    from streams.runtime.policy_file import load_policy
    from streams.tools.report_html import Names, render_html

    page = render_html(report, Names.of(load_policy(policy)), int(time.time() * 1000))
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(page, "utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path} ({len(page) / 1e6:.1f} MB; opens in a browser, no network needed)",
          file=sys.stderr)  # fmt: skip


def print_report(rows: list[Row], file: IO[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Recovery by flow and variant")
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
            f"{d['messages']:,} ({d['sms']:,}/{d['email']:,})", f"{d['clicked']:,}",
            f"{d['conversions']:,}",
            f"{d['orders_recovered']:,}",
            f"{d['recovery_rate']:.1%}", d["revenue"], d["revenue_per_message"], lift,
        )  # fmt: skip
    Console(file=file or sys.stdout, width=terminal_width()).print(table)


def run_replay_command(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.replay import (
        IN_RANGE,
        WHOLE,
        ReplaySummary,
        collect,
        copy_topics,
        finish,
        namespace_worker,
        namespaced,
        wait_for_audience,
    )

    start, end = time_argument(args.start, "--from"), time_argument(args.end, "--to")
    if end <= start:
        raise ConfigurationError("--to must come after --from")
    journey_engine(settings)  # a bad policy or coupon secret fails here, before any copying
    namespace = args.namespace or f"replay-{start}-{end}"
    target = namespaced(settings, namespace)
    summary = ReplaySummary()
    asyncio.run(copy_topics(settings, target, WHOLE, None, summary))
    with tempfile.TemporaryDirectory(prefix=f"cartpulse-replay-{namespace}-") as tmp:
        state = Path(tmp)
        with namespace_worker(target, state, args.dry_run), activity("replay: audience"):
            asyncio.run(wait_for_audience(target, args.timeout))
        asyncio.run(copy_topics(settings, target, IN_RANGE, (start, end), summary))
        print(
            f"copied {sum(summary.copied.values()):,} records into {target.topic_prefix}* "
            f"({', '.join(f'{k} {n:,}' for k, n in sorted(summary.copied.items()))}); "
            f"{summary.outside:,} outside the range",
            file=sys.stderr,
        )
        with namespace_worker(target, state, args.dry_run) as log, activity("replay: running"):
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
