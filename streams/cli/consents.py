"""``cartpulse consents history|export`` and ``cartpulse import --format consents``: the consent
history for audits, and a store's consent records into the ledger (docs/compliance.md)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from streams.cli.common import CommandParser
from streams.contract.consent_history import HistoryRecord, history_subject
from streams.contract.errors import ConfigurationError
from streams.contract.events import format_ms
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.offline.output import open_output, reported_rejects, time_argument
from streams.runtime.settings import Settings

if TYPE_CHECKING:  # the readers need Kafka: imported when a command runs
    from streams.offline.consent_import import ConsentLine


def add_consent_parsers(actions: Any, kafka: CommandParser) -> None:
    """``consents history`` and ``consents export`` under the ``consents`` command."""
    history = actions.add_parser(
        "history",
        help="one customer's consent changes with their evidence, in order",
        description="Reads consents.history for one customer (only the partition its key is "
        "in; the history knows the customer by the pseudonym computed from the id with "
        "CARTPULSE_ADDRESS_HASH_KEY): every change, on both channels unless --channel, in the "
        "order it was recorded, with its source and evidence. Exit 1 when there is none.",
        parents=[kafka],
    )
    history.add_argument(
        "customer",
        nargs="?",
        metavar="CUSTOMER",
        help="a customer_id (or addr:<hash>); read under its pseudonym",
    )
    history.add_argument(
        "--address",
        metavar="PHONE",
        help="instead of CUSTOMER: a number's own record (a STOP from a number is recorded "
        "for the number as well as for each customer texted at it)",
    )
    history.add_argument("--channel", choices=["sms", "email"], help="only this channel")
    history.add_argument("--json", action="store_true", help="each record as written, JSONL")
    history.set_defaults(run=run_history)

    export = actions.add_parser(
        "export",
        help="every consent change recorded in a time range, as JSONL",
        description="Reads all of consents.history and writes the changes whose recorded_at "
        "is within [--from, --to), sorted by recorded_at, one record as written per line.",
        parents=[kafka],
    )
    export.add_argument(
        "--from", dest="start", required=True, metavar="TIME", help="RFC 3339 or epoch ms"
    )
    export.add_argument(
        "--to", dest="end", required=True, metavar="TIME", help="RFC 3339 or epoch ms; excluded"
    )
    export.add_argument("--output", default="-", metavar="FILE|-", help="where to write")
    export.set_defaults(run=run_export)


def run_history(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from streams.tools.consent_trail import read_trail

    subject = _subject(args.customer, args.address)
    trail = asyncio.run(read_trail(settings, subject, args.channel))
    if args.json:
        for entry in trail.entries:
            sys.stdout.write(orjson.dumps(entry.value).decode() + "\n")
    else:
        what = f"{args.channel} consent" if args.channel else "consent"
        named = history_subject(subject, Pseudonyms.of(settings))
        print(
            f"{subject} ({named}): {len(trail.entries)} {what} change(s) "
            f"({trail.topic}, partition {trail.partition})"
        )
        for entry in trail.entries:
            print(describe(entry))
    if trail.unreadable:
        print(f"{trail.unreadable} record(s) of {subject} were not readable", file=sys.stderr)
    if not trail.entries:
        print(f"cartpulse: no consent change is recorded for {subject}", file=sys.stderr)
        return 1
    return 0


def describe(entry: HistoryRecord) -> str:
    """One change in three lines: when, channel, status and source (and what the subject is,
    when not the customer: the erasure's record); the address hash and when cartpulse wrote
    it; the evidence as compact JSON."""
    value = entry.value
    evidence = orjson.dumps(value.get("evidence"), option=orjson.OPT_SORT_KEYS).decode()
    kind = value.get("kind")
    of = f"  ({kind})" if kind not in (None, "customer", "number") else ""
    return (
        f"{format_ms(entry.recorded_at_ms)}  {entry.channel:5}  {entry.status:10}  "
        f"{entry.source}{of}\n"
        f"    address {value.get('address_hash') or '-'}  written {value.get('written_at')}  "
        f"id {entry.history_id}\n"
        f"    evidence {evidence}"
    )


def _subject(customer: str | None, address: str | None) -> str:
    if (customer is None) == (address is None):
        raise ConfigurationError("give a CUSTOMER or --address PHONE (one of them)")
    if address is not None:
        from senders.adapters.consents import address_subject

        return address_subject(address)
    return cast(str, customer)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from streams.tools.consent_trail import read_range

    start, end = time_argument(args.start, "--from"), time_argument(args.end, "--to")
    if end <= start:
        raise ConfigurationError("--to must be after --from")
    entries, unreadable = asyncio.run(read_range(settings, start, end))
    with open_output(args.output) as out:
        for entry in entries:
            out.write(orjson.dumps(entry.value) + b"\n")
    where = "standard output" if args.output == "-" else args.output
    print(
        f"{len(entries):,} consent change(s) recorded from {format_ms(start)} to "
        f"{format_ms(end)} written to {where}",
        file=sys.stderr,
    )
    if unreadable:
        print(f"{unreadable:,} record(s) were not history records", file=sys.stderr)
    return 0


async def import_consents_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write every consent of ``args.files`` to the ledger; print the summary (``--json``
    too). Exit 1 when a line was rejected or not taken."""
    from streams.offline.consent_import import import_consents
    from streams.offline.importer import open_rejects
    from streams.runtime.consent_ledger import ConsentLedger
    from streams.runtime.kafka import create_topics, producer

    if args.rate is not None or args.speedup is not None:
        raise ConfigurationError(
            "--rate and --speedup pace events; consents (--format consents) are imported "
            "as fast as Kafka takes them: leave them out"
        )
    topics = TopicCatalogue.of(settings)
    if not args.no_create_topics:
        await create_topics(settings, topics.specs())
    kafka = producer(settings)
    await kafka.start()
    try:
        with contextlib.ExitStack() as stack:
            rejects = open_rejects(args.rejects, stack, kafka, topics)
            lines = reported_rejects(_lines(args.files, settings.max_record_bytes))
            summary = await import_consents(lines, ConsentLedger.of(settings, kafka), rejects)
    finally:
        await kafka.stop()
    if args.json:
        sys.stdout.write(orjson.dumps(summary.to_dict()).decode() + "\n")
    else:
        print(
            f"imported {summary.imported:,} consents (each on consents.history, then "
            f"consents), invalid {summary.invalid:,} in {summary.seconds:.1f}s"
        )
        for reason, count in summary.reasons.most_common():
            print(f"  invalid: {reason:40} {count:>6,}")
        if summary.invalid:
            where = args.rejects or topics.dlq(Topic.CONSENTS)
            print(f"  rejected lines were written to {where}")
        if summary.failed or summary.dlq_failed:
            print(
                f"  {summary.failed:,} consents and {summary.dlq_failed:,} rejected lines were "
                "NOT written (Kafka did not take them; see the log above): import those again"
            )
    return 1 if summary.invalid or summary.failed or summary.dlq_failed else 0


def _lines(files: Sequence[Path], max_bytes: int) -> Iterator[ConsentLine]:
    from streams.offline.consent_import import read_consent_lines

    for path in files:
        yield from read_consent_lines(path, max_bytes)
