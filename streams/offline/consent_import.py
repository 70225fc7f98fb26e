"""``cartpulse import --format consents``: a store's consent records → the consent ledger.

A FILE is JSONL, one consent a line in the shape of a ``consents`` record (docs/integrate.md,
"Customers and consents"): ``customer_id``, ``channel``, ``status``, ``recorded_at``, and
optionally ``source``, ``evidence`` and ``address`` (kept only as its hash). Each valid line is
written the one way cartpulse writes a consent change (``ConsentLedger``): its
``consents.history`` entry (source ``import``, the line's own source and evidence inside), then
its ``consents`` record. A bad line goes to ``consents.dlq`` (or ``--rejects FILE``) with its
reason and never stops the import. ``cartpulse simulate --audience`` writes its shoppers'
consents the same way (source ``simulated``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from streams.contract.consent_history import SOURCE_IMPORT, ConsentEntry, store_entry
from streams.contract.errors import InvalidRecord
from streams.contract.topics import Topic
from streams.offline.importer import DlqRejects, ImportSummary, Rejects, _reason_kind
from streams.offline.sources import SourceRecord, read_lines
from streams.runtime.consent_ledger import ConsentLedger

log = logging.getLogger(__name__)

FORMAT = "consents"
CHUNK = 2_000  # entries in flight together (two steps each: history, then consents)


@dataclass(frozen=True, slots=True)
class ConsentLine:
    source: str  # file:line
    line: bytes
    entry: ConsentEntry | None
    reason: str | None = None


def read_consent_lines(
    path: Path, max_bytes: int, via: str = SOURCE_IMPORT
) -> Iterator[ConsentLine]:
    """Every non-blank line of ``path`` (``-`` and ``.gz`` too) as an entry or a reason."""
    for source, line in read_lines(path):
        if len(line) > max_bytes:
            yield ConsentLine(source, line, None, f"line longer than {max_bytes} bytes")
            continue
        try:
            yield ConsentLine(source, line, store_entry(None, line, source, via))
        except InvalidRecord as exc:
            yield ConsentLine(source, line, None, exc.reason)


async def import_consents(
    lines: Iterable[ConsentLine], ledger: ConsentLedger, rejects: Rejects
) -> ImportSummary:
    """Write every valid line's entry (``ConsentLedger.record_all``, ``CHUNK`` at a time) and
    reject every invalid one; returns when all are acknowledged. A line Kafka did not take is
    counted in ``failed`` and logged with its source, never raised: import the file again
    (an entry written twice has one ``history_id``, and the history's readers print it once)."""
    summary = ImportSummary()
    started = time.monotonic()
    topic = ledger.consents_topic
    batch: list[ConsentLine] = []

    async def flush() -> None:
        errors = await ledger.record_all([item.entry for item in batch if item.entry])
        for item, error in zip(batch, errors, strict=True):
            if error is None:
                summary.imported += 1
                summary.by_topic[topic] += 1
            else:
                summary.failed += 1
                log.error("Kafka did not take the consent of %s: %r", item.source, error)
        batch.clear()

    for item in lines:
        if item.entry is None:
            summary.invalid += 1
            summary.reasons[_reason_kind(item.reason)] += 1
            await rejects.reject(
                SourceRecord(item.source, item.line, None, None, item.reason), Topic.CONSENTS
            )
            continue
        batch.append(item)
        if len(batch) >= CHUNK:
            await flush()
    if batch:
        await flush()
    if isinstance(rejects, DlqRejects):
        summary.dlq_failed = await rejects.deliveries.settle()
    summary.seconds = time.monotonic() - started
    return summary
