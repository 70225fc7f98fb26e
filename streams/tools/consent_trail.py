"""Reading ``consents.history`` back: one customer's trail (``cartpulse consents history``) and
every change of a time range (``cartpulse consents export``).

The history is keyed by each subject's pseudonym (``history_subject``: HMAC-SHA256 of the
customer id under ``CARTPULSE_ADDRESS_HASH_KEY``), so a trail is asked for by the customer id
and read under the name computed from it. A trail reads one partition: the one the producers
put that key in (aiokafka's ``DefaultPartitioner``: murmur2 of the key, as the Java client),
from its start to the end offset seen when the read begins; other subjects' records there are
skipped. Its cost is that
partition, about the history's size over its partition count, never the whole topic. The trail
is in the order the changes were appended, which is their order for one customer.

An export reads every partition in full (its cost: the whole topic), keeps the entries whose
``recorded_at`` is within [from, to) and returns them sorted by ``recorded_at`` (then by
partition and offset), so memory grows with the entries of the range, not of the topic.

Each ``history_id`` is returned once: a change written twice (a retry, a re-import, the mirror
meeting a store's record again) keeps its first appearance.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient

from streams.contract.consent_history import HistoryRecord, history_subject, parse_history
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import partition_of, read_records, topic_offsets
from streams.runtime.settings import Settings


@dataclass(frozen=True, slots=True)
class Trail:
    topic: str
    partition: int
    entries: list[HistoryRecord]
    unreadable: int  # records of the customer's key that were not history records


async def history_partitions(settings: Settings) -> tuple[str, int]:
    """The history topic's name and partition count; ``ConfigurationError`` when it does not
    exist (asked without naming it: a metadata request for a missing topic may create it,
    with the broker's default retention instead of forever)."""
    name = TopicCatalogue.of(settings).name(Topic.CONSENT_HISTORY)
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        exists = name in set(await admin.list_topics())
    finally:
        await admin.close()
    if not exists:
        raise ConfigurationError(
            f"there is no topic {name}: no consent change was recorded under this prefix yet "
            "(check --prefix / CARTPULSE_TOPIC_PREFIX)"
        )
    _, ends = await topic_offsets(settings, [name])
    return name, len(ends)


async def read_trail(settings: Settings, subject: str, channel: str | None = None) -> Trail:
    """Every change of ``subject`` (a customer_id, or ``addr:<hash>``), of ``channel`` only
    when given, in the order appended: the records keyed by its history name."""
    name, count = await history_partitions(settings)
    key = history_subject(subject, Pseudonyms.of(settings)).encode()
    partition = partition_of(key, count)
    entries: list[HistoryRecord] = []
    seen: set[str] = set()
    unreadable = 0
    async for record in read_records(settings, name, {partition}):
        if record.key != key:
            continue
        try:
            entry = parse_history(record.value)
        except InvalidRecord:
            unreadable += 1
            continue
        if (channel is None or entry.channel == channel) and entry.history_id not in seen:
            seen.add(entry.history_id)
            entries.append(entry)
    return Trail(name, partition, entries, unreadable)


async def read_range(
    settings: Settings, from_ms: int, to_ms: int
) -> tuple[list[HistoryRecord], int]:
    """Every change recorded within [``from_ms``, ``to_ms``), sorted by ``recorded_at``; and
    how many records were not history records."""
    name, _ = await history_partitions(settings)
    found: list[tuple[int, int, int, HistoryRecord]] = []
    seen: set[tuple[int, str]] = set()  # per partition: one key's duplicates share it
    unreadable = 0
    async for record in read_records(settings, name):
        try:
            entry = parse_history(record.value)
        except InvalidRecord:
            unreadable += 1
            continue
        mark = (record.partition, entry.history_id)
        if from_ms <= entry.recorded_at_ms < to_ms and mark not in seen:
            seen.add(mark)
            found.append((entry.recorded_at_ms, record.partition, record.offset, entry))
    found.sort(key=lambda item: item[:3])
    return [item[3] for item in found], unreadable
