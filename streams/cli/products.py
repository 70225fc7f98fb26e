"""``cartpulse import --format products``: catalogue files → the ``products`` topic.

A FILE is JSONL product records, or a REES46 CSV whose catalogue is derived
(``streams.offline.catalogue_file``). Bad lines go to ``products.dlq`` (or ``--rejects FILE``) with
their reason and never stop the import; exit 1 when any line was rejected or not taken.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.topics import TopicCatalogue
from streams.offline.catalogue_file import ProductLine, read_product_lines
from streams.offline.output import reported_rejects
from streams.runtime.settings import Settings

FORMAT = "products"


def check_products_import(args: argparse.Namespace) -> None:
    """Raise ``ConfigurationError`` for flags a catalogue import does not take."""
    if args.rate is not None or args.speedup is not None:
        raise ConfigurationError(
            "--rate and --speedup pace events; a catalogue (--format products) is imported "
            "as fast as Kafka takes it: leave them out"
        )


async def import_products_command(args: argparse.Namespace, settings: Settings) -> int:
    """Produce every product version of ``args.files``; print the summary (``--json`` too)."""
    from streams.offline.importer import import_products, open_rejects
    from streams.runtime.kafka import create_topics, producer

    topics = TopicCatalogue.of(settings)
    if not args.no_create_topics:
        await create_topics(settings, topics.specs())
    kafka = producer(settings)
    await kafka.start()
    try:
        with contextlib.ExitStack() as stack:
            rejects = open_rejects(args.rejects, stack, kafka, topics)
            lines = reported_rejects(_lines(args.files, settings.max_record_bytes))
            summary = await import_products(lines, kafka, topics, rejects)
    finally:
        await kafka.stop()
    if args.json:
        sys.stdout.write(orjson.dumps(summary.to_dict()).decode() + "\n")
    else:
        rate = summary.imported / summary.seconds if summary.seconds else 0.0
        print(
            f"imported {summary.imported:,} product versions, invalid {summary.invalid:,} "
            f"in {summary.seconds:.1f}s ({rate:,.0f} versions/s)"
        )
        for reason, count in summary.reasons.most_common():
            print(f"  invalid: {reason:40} {count:>6,}")
        if summary.invalid:
            where = args.rejects or f"{topics.prefix}products.dlq"
            print(f"  rejected lines were written to {where}")
        if summary.failed or summary.dlq_failed:
            print(
                f"  {summary.failed:,} versions and {summary.dlq_failed:,} rejected lines were "
                "NOT written (Kafka did not take them; see the log above): import those again"
            )
    return 1 if summary.invalid or summary.failed or summary.dlq_failed else 0


def _lines(files: Sequence[Path], max_bytes: int) -> Iterator[ProductLine]:
    for path in files:
        try:
            yield from read_product_lines(path, max_bytes)
        except InvalidRecord as exc:  # a CSV that is not a REES46 export at all
            raise ConfigurationError(exc.reason) from None
