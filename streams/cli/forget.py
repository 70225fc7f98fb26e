"""``cartpulse forget CUSTOMER``: the erasure command's flags and its report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from streams.contract.durations import DURATIONS, parse_duration_ms
from streams.contract.events import format_ms
from streams.runtime.settings import Settings


def add_parsers(commands: Any, kafka: argparse.ArgumentParser) -> None:
    forget = commands.add_parser(
        "forget",
        help="erase a customer (GDPR art. 17, CCPA): state, profile, consents, Redis keys",
        description="Writes an erasure request to the erasures topic, a tombstone for the "
        "profile on customers, and retires the customer id for the senders at once; then waits "
        "until the worker's journeys and detector (every partition) and the senders' Redis "
        "confirm on erasures.done, and closes the request: erasures keeps it without the "
        "customer id, so a replay never brings the customer back. Opted-out addresses stay on "
        "the suppression list as hashes. Exit 1 when a part did not confirm in time: the "
        "request stays open; run the same command again. docs/compliance.md, Erasure.",
        parents=[kafka],
    )
    forget.add_argument("customer", metavar="CUSTOMER", help="the customer id, as the store has it")
    forget.add_argument(
        "--reason",
        default="erasure request",
        help="why, kept for good: no names, email addresses or phone numbers",
    )
    forget.add_argument(
        "--wait",
        default="2m",
        help=f"how long to wait for the parts' confirmations; 0: only request; {DURATIONS}",
    )
    forget.add_argument(
        "--without",
        action="append",
        choices=["journeys", "detector", "senders"],
        help="a part this deployment does not run (not waited for); repeat for more",
    )
    forget.add_argument("--json", action="store_true", help="print the outcome as JSON")
    forget.set_defaults(run=_run_forget)


def _run_forget(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.forget import forget

    wait = parse_duration_ms(args.wait) / 1000
    outcome = asyncio.run(forget(settings, args.customer, args.reason, wait, args.without or ()))
    erasure = outcome.erasure
    if args.json:
        confirmed = {label: format_ms(done.at_ms) for label, done in outcome.confirmed.items()}
        report = {
            "subject": erasure.subject,
            "request_id": erasure.request_id,
            "requested_at": format_ms(erasure.requested_at_ms),
            "closed": outcome.closed,
            "confirmed": confirmed,
            "missing": outcome.missing,
        }
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        lines = [f"erasure {erasure.request_id} of {erasure.subject}"]
        for label, done in sorted(outcome.confirmed.items()):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(done.counts.items()))
            lines.append(f"  {label:<14} {format_ms(done.at_ms)}  {counts}".rstrip())
        if outcome.closed:
            lines.append("closed: erasures keeps the request without the customer id")
        elif wait <= 0:
            lines.append("requested; the parts confirm on erasures.done (not waited for)")
        sys.stdout.write("\n".join(lines) + "\n")
        if not outcome.closed and wait > 0:
            sys.stderr.write(
                f"cartpulse: not confirmed in time: {', '.join(outcome.missing)}; the request "
                "stays open (the customer id stays on erasures until it is closed): run the "
                "same command again once those parts run\n"
            )
    return 0 if outcome.closed or wait <= 0 else 1
