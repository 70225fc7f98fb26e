"""A Kafka broker restarted under the importer and under the worker (docs/operations.md, Faults).

The broker here is one of the module's own (``tests/support/own_stack.py``): the shared one on
9092 keeps serving other tests while this one is stopped and started again, its data kept.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.runtime.kafka import topic_counts
from tests.conftest import consume_all
from tests.integration.test_detector_worker import offline
from tests.support.cli import run_cli
from tests.support.events import write_views
from tests.support.own_stack import OwnStack, own_stack
from tests.support.workers import wait_for_count, worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """A stack of this module's own, restarted with its data kept."""
    with own_stack(tmp_path_factory.mktemp("own-stack")) as stack:
        yield stack


async def test_the_importer_loses_nothing_and_repeats_nothing_across_a_broker_restart(
    own_broker: OwnStack, tmp_path: Path
) -> None:
    settings = own_broker.settings()
    total = 2500
    path = write_views(tmp_path / "views.jsonl", total)
    env = {
        "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap,
        "CARTPULSE_TOPIC_PREFIX": settings.topic_prefix,
        "CARTPULSE_TOPIC_PARTITIONS": "2",
    }
    importing = await asyncio.create_subprocess_exec(  # about 5 s: the restart falls mid-run
        sys.executable, "-m", "streams.cli", "import", "--json", "--rate", "500", str(path),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    clickstream = f"{settings.topic_prefix}clickstream"
    # the topics created (the importer waits for their leaders) and a second's lines written
    await wait_for_count(settings, clickstream, 500, within=60, poll=0.05)
    assert importing.returncode is None, "the import ended before the broker went away"
    await asyncio.to_thread(own_broker.restart)
    out, raw_err = await asyncio.wait_for(importing.communicate(), timeout=60)
    err = raw_err.decode()
    assert out, err  # the summary prints whatever happened
    summary = orjson.loads(out)
    assert summary["imported"] + summary["failed"] == total, err
    # Awaited in the test's own loop: asyncio.run in a sync test leaves pytest-asyncio an event
    # loop it never closes, which fails a later test with ResourceWarnings.
    records = await consume_all(settings, clickstream, total, within=20)
    ids = [orjson.loads(r.value)["event_id"] for r in records]
    assert len(ids) == len(set(ids)), "a line was imported twice"
    assert summary["failed"] == 0, err  # every line made it, once
    assert importing.returncode == 0, err
    assert len(ids) == total


async def test_the_worker_after_a_broker_restart_gives_what_offline_detect_gives(
    own_broker: OwnStack, tmp_path: Path
) -> None:
    settings = own_broker.settings()
    events = tmp_path / "traffic.jsonl"
    generated = run_cli(
        settings, "simulate", "--events", "30000", "--rate", "20",
        "--start", "2026-01-01T00:00:00Z", "--output", str(events),
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    expected = {str(a["abandonment_id"]) for a in offline(events, "--gap", "10m", "--flush")}
    imported = run_cli(settings, "import", "--quiet", str(events))
    assert imported.returncode == 0, imported.stderr
    topic = f"{settings.topic_prefix}abandonments"
    with worker(settings, tmp_path, "--clock", "event", "--gap", "10m") as process:
        assert await wait_for_count(settings, topic, 1, within=60, poll=0.05) >= 1
        before = (await topic_counts(settings, [topic]))[topic]
        own_broker.restart()
        marked = run_cli(settings, "watermark", "end")  # after the worker caught up again
        assert marked.returncode == 0, marked.stderr
        await wait_for_count(settings, topic, len(expected), within=60)
        await asyncio.sleep(1)
        records = await consume_all(settings, topic, len(expected))
        assert process.poll() is None  # the same worker, through the restart
    got = [orjson.loads(r.value)["abandonment_id"] for r in records]
    assert before < len(expected)  # the broker went away mid-stream
    # Nothing lost, nothing invented; a repeat (at least once) carries the same id.
    assert set(got) == expected
