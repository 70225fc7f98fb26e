"""The catalogue reader reads again when its reading ends in a failure (a broker killed while
it starts: tests/integration/test_broker_down.py found the reader gone and the journeys waiting
their whole limit), and still stops when it is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from streams.agents import catalogue as module
from streams.agents.catalogue import CatalogueReader
from streams.contract.topics import TopicCatalogue
from streams.core.catalogue import Catalogue
from streams.runtime.metrics import CatalogueMetrics
from streams.runtime.settings import Settings


async def _never_sent(
    topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> object:
    raise AssertionError("nothing is dead-lettered here")


def _reader(failures: list[BaseException]) -> tuple[CatalogueReader, list[int]]:
    """A reader whose readings fail with ``failures`` in turn, then reach the end and wait."""
    reader = CatalogueReader(
        Settings(_env_file=None),  # type: ignore[call-arg]  # pydantic-settings' own argument
        TopicCatalogue(),
        Catalogue(),
        _never_sent,
        CatalogueMetrics.create(CollectorRegistry()),
    )
    readings: list[int] = []

    async def read() -> None:
        readings.append(1)
        if failures:
            raise failures.pop(0)
        reader._reached_end()
        await asyncio.Event().wait()

    reader._read = read  # type: ignore[method-assign]  # the Kafka side, faked
    return reader, readings


async def test_a_failed_reading_is_started_again_until_it_reads_to_the_end(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(module, "TOPIC_WAIT_SECONDS", 0.01)
    # aiokafka leaks its own task's cancellation when a broker dies under a starting consumer
    reader, readings = _reader([asyncio.CancelledError(), KafkaConnectionError("broker gone")])
    task = asyncio.create_task(reader.run())
    try:
        assert await asyncio.wait_for(reader.wait_until_read(60), 5) is True
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(readings) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("reading products failed" in w for w in warnings) == 2


async def test_a_cancelled_reader_stops() -> None:
    reader, _ = _reader([])
    task = asyncio.create_task(reader.run())
    await asyncio.wait_for(reader.wait_until_read(60), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
