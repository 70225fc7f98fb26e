"""``cartpulse import`` against the real local Kafka broker."""

from __future__ import annotations

import asyncio
import csv
import hashlib
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.contract.topics import TopicCatalogue
from streams.offline.sources import REES46_TYPES
from streams.runtime.kafka import (
    DLQ_EXCERPT_BYTES,
    ORIGINAL_BYTES_HEADER,
    ORIGINAL_SHA256_HEADER,
    ORIGINAL_TOPIC_HEADER,
    REASON_HEADER,
    SOURCE_HEADER,
)
from streams.runtime.settings import Settings
from tests.conftest import ROOT, consume_all
from tests.support.cli import run_cli
from tests.support.events import cart_event, write_jsonl

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "data" / "rees46" / "multicategory-2019-10-01-head.csv"


async def test_rees46_sample_lands_keyed_by_session(settings: Settings) -> None:
    result = run_cli(settings, "import", "--format", "rees46", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "imported 17,434 events, invalid 0" in result.stdout

    with SAMPLE.open() as handle:
        rows = list(csv.DictReader(handle))
    expected_types = Counter(REES46_TYPES[row["event_type"]] for row in rows)
    rows_per_session = Counter(row["user_session"] for row in rows)

    clickstream = await consume_all(settings, f"{settings.topic_prefix}clickstream", 17_055)
    cart = await consume_all(settings, f"{settings.topic_prefix}cart", 379)
    records = clickstream + cart
    assert len(records) == 17_434 == len(rows)

    events = [orjson.loads(r.value) for r in records]
    assert all(r.key == e["session_id"].encode() for r, e in zip(records, events, strict=True))
    assert Counter(e["type"] for e in events) == expected_types
    assert {e["type"] for e in (orjson.loads(r.value) for r in clickstream)} == {"product_viewed"}
    assert Counter(e["session_id"] for e in events) == rows_per_session
    assert len({e["event_id"] for e in events}) == 17_434
    # Every session's records share one partition (the key decides), so its order holds.
    partitions: dict[tuple[str, str], set[int]] = {}
    for record, event in zip(records, events, strict=True):
        partitions.setdefault((record.topic, event["session_id"]), set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert len({r.partition for r in clickstream}) == settings.topic_partitions


async def test_broken_lines_are_reported_and_dead_lettered(
    settings: Settings, tmp_path: Path
) -> None:
    lines = [
        cart_event(event_id="g1"),
        b'{"event_id": "broken",',
        cart_event(event_id="b2", session_id=None),
        cart_event(event_id="b3", occurred_at="2019-10-01 noon"),
        cart_event(event_id="b4", type="cart_emptied"),
        cart_event(event_id="b5", cart={"url": "x" * 70_000}),
        cart_event(event_id="g2", type="product_viewed"),
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)

    result = run_cli(settings, "import", str(path))
    assert result.returncode == 1, result.stderr  # done, but some lines were rejected
    assert "imported 2 events, invalid 5" in result.stdout
    for lineno, reason in [
        (2, "not valid JSON"),
        (3, "session_id is required"),
        (4, "occurred_at must be RFC 3339"),
        (5, "unknown type 'cart_emptied'"),
        (6, "record is 70"),
    ]:
        assert f"mixed.jsonl:{lineno}: {reason}" in result.stderr

    prefix = settings.topic_prefix
    cart = await consume_all(settings, f"{prefix}cart", 1)
    clickstream = await consume_all(settings, f"{prefix}clickstream", 1)
    assert [orjson.loads(r.value)["event_id"] for r in cart] == ["g1"]
    assert [orjson.loads(r.value)["event_id"] for r in clickstream] == ["g2"]

    dead = await consume_all(settings, f"{prefix}cart.dlq", 3)
    dead += await consume_all(settings, f"{prefix}clickstream.dlq", 2)
    assert len(dead) == 5
    by_source = {dict(r.headers)[SOURCE_HEADER].decode(): dict(r.headers) for r in dead}
    assert sorted(by_source) == [f"mixed.jsonl:{n}" for n in range(2, 7)]
    assert b"not valid JSON" in by_source["mixed.jsonl:2"][REASON_HEADER]
    assert by_source["mixed.jsonl:2"][ORIGINAL_TOPIC_HEADER] == f"{prefix}clickstream".encode()
    assert by_source["mixed.jsonl:3"][ORIGINAL_TOPIC_HEADER] == f"{prefix}cart".encode()
    # Each as it came, but for the 70 kB line: its first 64 KiB (dead letters are bounded).
    assert {r.value for r in dead} == {line[:DLQ_EXCERPT_BYTES] for line in lines[1:6]}
    assert len(lines[5]) > DLQ_EXCERPT_BYTES


async def test_a_rejected_line_over_a_megabyte_is_dead_lettered_as_an_excerpt(
    settings: Settings, tmp_path: Path
) -> None:
    """Kafka refuses records over ~1 MB: the whole line used to go to the DLQ and end the run."""
    huge = cart_event(event_id="huge", cart={"url": "x" * 1_500_000})
    lines = [cart_event(event_id="g1"), huge, cart_event(event_id="g2")]
    path = write_jsonl(tmp_path / "huge.jsonl", lines)

    result = run_cli(settings, "import", str(path))
    assert result.returncode == 1, result.stderr  # done, one line rejected
    assert "imported 2 events, invalid 1" in result.stdout
    assert "huge.jsonl:2: record is 1500" in result.stderr
    prefix = settings.topic_prefix
    cart = await consume_all(settings, f"{prefix}cart", 2)
    assert sorted(orjson.loads(r.value)["event_id"] for r in cart) == ["g1", "g2"]
    (dead,) = await consume_all(settings, f"{prefix}cart.dlq", 1)
    headers = dict(dead.headers)
    assert dead.value == huge[:DLQ_EXCERPT_BYTES]
    assert headers[ORIGINAL_BYTES_HEADER] == str(len(huge)).encode()
    assert headers[ORIGINAL_SHA256_HEADER] == hashlib.sha256(huge).hexdigest().encode()
    assert headers[SOURCE_HEADER] == b"huge.jsonl:2"


async def test_rejects_file_instead_of_dlq(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "oct.csv"
    path.write_text(
        "event_time,event_type,product_id,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,1,1.00,7,s1\n"
        "2019-10-01 00:00:01 UTC,wishlist,1,1.00,7,s1\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli(settings, "import", str(path), "--rejects", str(rejects), "--json")
    assert result.returncode == 1, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["imported"] == 1
    assert summary["invalid"] == 1
    assert summary["by_type"] == {"product_viewed": 1}
    (rejected,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert rejected["source"] == "oct.csv:3"
    assert "unknown event_type 'wishlist'" in rejected["reason"]


async def test_topics_create_is_idempotent(settings: Settings) -> None:
    first = run_cli(settings, "topics", "create")
    assert first.returncode == 0, first.stderr
    assert f"created  {settings.topic_prefix}customers" in first.stdout
    second = run_cli(settings, "topics", "create")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert f"exists   {settings.topic_prefix}consents" in second.stdout


def test_speedup_replays_the_original_spacing(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "spaced.csv"
    path.write_text(
        "event_time,event_type,product_id,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,1,1.00,7,s1\n"
        "2019-10-01 00:00:20 UTC,view,1,1.00,7,s1\n"
    )
    result = run_cli(settings, "import", str(path), "--speedup", "10", "--json")
    assert result.returncode == 0, result.stderr
    seconds = orjson.loads(result.stdout)["seconds"]
    assert seconds >= 1.9  # 20 s of history at 10x takes 2 s; never faster


async def test_a_prefixs_topics_can_be_deleted_and_no_prefix_is_refused(settings: Settings) -> None:
    from streams.runtime.kafka import delete_topics, topic_offsets

    assert run_cli(settings, "topics", "create").returncode == 0
    catalogue = sorted(spec.name for spec in TopicCatalogue(settings.topic_prefix).specs())
    asked = run_cli(settings, "topics", "delete", "--prefix", settings.topic_prefix)
    assert asked.returncode == 1 and "run again with --yes" in asked.stderr
    assert [line.split()[-1] for line in asked.stdout.splitlines()] == catalogue
    assert await delete_topics(settings, settings.topic_prefix, dry_run=True) == catalogue
    done = run_cli(settings, "topics", "delete", "--prefix", settings.topic_prefix, "--yes")
    assert done.returncode == 0
    assert [line.split()[-1] for line in done.stdout.splitlines()] == catalogue
    for _ in range(50):  # deletion is asynchronous on the broker
        _, ends = await topic_offsets(settings, catalogue)
        if not ends:
            break
        await asyncio.sleep(0.2)
    assert not ends
    with pytest.raises(ValueError, match="give a prefix"):
        await delete_topics(settings, "")
    refused = run_cli(settings, "topics", "delete", "--prefix", " ", "--yes")
    assert refused.returncode != 0 and "must not be empty" in refused.stderr
