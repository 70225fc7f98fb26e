"""Fixtures for the real local stack: Kafka (KRaft) and Redis, started or reused; Redis under
a per-test key prefix, and the Twilio test server (the senders' and the webhooks' tests use
both).

The stack is the one ``deploy/local/stack.sh`` runs (ports from ``CARTPULSE_KAFKA_PORT`` and
``CARTPULSE_REDIS_PORT``). When a service is down the fixture starts it; if that fails, the
test fails in CI (``CI=true``) and is skipped elsewhere with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from redis.asyncio import Redis

from streams.runtime.kafka import delete_topics
from streams.runtime.settings import Settings
from tests.support.webhooks import ACCOUNT_SID, AUTH_TOKEN
from tests.twilio_server import TwilioTestServer

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "deploy" / "local" / "stack.sh"
KAFKA_PORT = int(os.environ.get("CARTPULSE_KAFKA_PORT", "9092"))
REDIS_PORT = int(os.environ.get("CARTPULSE_REDIS_PORT", "6379"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# Fixtures that start or reach a service: Kafka, Redis, a broker or Redis of the test's own,
# Chromium, and the package build (cargo's release build, then pip from PyPI into a fresh
# venv). ``pytest --unit`` (``make test-unit``) deselects every test whose fixtures include
# one, and the ``integration`` ones; what is left runs with no service at all.
SERVICE_FIXTURES = frozenset(
    {"stack", "own_redis", "own_broker", "own_stack", "browser", "chromium", "chromium_binary"}
    | {"wheel", "sdist", "installed"}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--unit",
        action="store_true",
        help="run only the tests that need no service (Kafka, Redis, Chromium): make test-unit",
    )


def needs_services(item: pytest.Item) -> bool:
    """Whether a collected test reaches a service (its fixtures' closure, or a marker)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(fixtures & SERVICE_FIXTURES) or item.get_closest_marker("integration") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--unit"):
        return
    kept = [item for item in items if not needs_services(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if needs_services(item)])
        items[:] = kept


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Debian's Chromium (``make test`` installs it): missing, the test fails in CI and is
    skipped elsewhere with the reason."""
    from tests.support.email_browser import chromium_path

    path = chromium_path()
    if path is None:
        message = "no Chromium: apt-get install chromium (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    """Kafka and Redis accepting clients on 127.0.0.1 (started with stack.sh when down)."""
    if not (_accepts(KAFKA_PORT) and _accepts(REDIS_PORT)):
        result = subprocess.run(
            ["bash", str(STACK), "up"], capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            message = f"local stack did not start:\n{result.stdout}\n{result.stderr}"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
    yield


@pytest.fixture
def settings(stack: None) -> Iterator[Settings]:
    """Settings for one test: the local stack and a topic prefix of its own.

    The test's topics (its prefix's, and the workers' own under it) are deleted afterwards: a
    single-node broker that kept every test's partitions would run out of file handles.
    """
    settings = Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{KAFKA_PORT}",
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        topic_partitions=4,
        store="memory://",
    )
    yield settings
    # In a thread of its own: the test's event loop may still be around.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, delete_topics(settings, settings.topic_prefix)).result()


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def redis(stack: None, key_prefix: str) -> AsyncIterator[Redis]:
    """The local Redis; every key the test wrote under its prefix is deleted afterwards."""
    client = Redis(host="127.0.0.1", port=REDIS_PORT)
    await client.ping()
    yield client
    keys = [key async for key in client.scan_iter(match=f"{key_prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioTestServer]:
    server = TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN, timeout_hang=5.0)
    await server.start()
    yield server
    await server.stop()


async def consume_all(
    settings: Settings, topic: str, expected: int, within: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from the beginning; waits for at least ``expected`` of them."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        for _ in range(50):
            if partitions:
                break
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
            await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if len(records) >= expected and all(
                pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)
            ):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
            if len(records) >= expected:  # more may have arrived since end_offsets
                end = await consumer.end_offsets(tps)
        return records
    finally:
        await consumer.stop()


# The directories whose tests fail when they log an ERROR (or CRITICAL) record they did not
# declare with ``@pytest.mark.expect_errors``: all of them. (What a worker or sender in a
# subprocess logs is its own; the tests read its output where it matters.)
ERRORS_CHECKED = frozenset(
    {"agents", "unit", "senders", "webhooks", "collector", "integration", "packaging"}
)
TESTS = Path(__file__).resolve().parent


def _errors_checked(item: pytest.Item) -> bool:
    try:
        where = item.path.resolve().relative_to(TESTS).parts
    except ValueError:
        return False
    return bool(where) and where[0] in ERRORS_CHECKED


# aiokafka logs these at ERROR and tries again after its backoff: a partition whose leader is
# being elected (a topic just created, a broker just killed). They are the client's transients,
# not a cartpulse path that caught a bug (CI once failed test_roster on one).
RETRIED_BY_AIOKAFKA = ("NotLeaderForPartitionError", "LeaderNotAvailableError")


def _retried_by_aiokafka(record: logging.LogRecord) -> bool:
    return record.name.startswith("aiokafka.") and any(
        error in record.getMessage() for error in RETRIED_BY_AIOKAFKA
    )


def undeclared_errors(
    item: pytest.Item, records: Iterable[logging.LogRecord]
) -> list[logging.LogRecord]:
    """The ERROR and CRITICAL ``records`` that ``item`` logged without declaring them (none
    outside ``ERRORS_CHECKED``, or for a test marked ``expect_errors``), less aiokafka's
    retried leader-election errors."""
    if not _errors_checked(item) or item.get_closest_marker("expect_errors") is not None:
        return []
    return [
        record
        for record in records
        if record.levelno >= logging.ERROR and not _retried_by_aiokafka(record)
    ]


@pytest.fixture(autouse=True)
def no_undeclared_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fail a test that logged an ERROR or CRITICAL record it did not declare: a shell catches
    a bug, logs it and goes on, so without this a test of a broken path could still pass.
    Declare the ones a test provokes with ``@pytest.mark.expect_errors`` (and assert them
    with ``caplog``)."""
    yield
    node = request.node
    logged = [r for when in ("setup", "call") for r in caplog.get_records(when)]
    errors = undeclared_errors(node, logged)
    if errors:
        lines = "\n".join(
            f"  {r.levelname} {r.name}: {r.getMessage()}"
            + (f" ({r.exc_info[0].__name__})" if r.exc_info and r.exc_info[0] else "")
            for r in errors
        )
        pytest.fail(
            f"{node.nodeid} logged {len(errors)} error record(s) it did not declare "
            f"(@pytest.mark.expect_errors):\n{lines}",
            pytrace=False,
        )
