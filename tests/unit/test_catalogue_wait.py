"""The journeys' wait for the catalogue (``CatalogueReader.wait_until_read``), through the
reader's own looks at Kafka faked: it returns once the reader has caught up, at once when the
topic does not exist, and after its limit (with a warning) when the reading never ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

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


def _reader() -> CatalogueReader:
    return CatalogueReader(
        Settings(_env_file=None),  # type: ignore[call-arg]  # pydantic-settings' own argument
        TopicCatalogue(),
        Catalogue(),
        _never_sent,
        CatalogueMetrics.create(CollectorRegistry()),
    )


@contextlib.asynccontextmanager
async def _running(reader: CatalogueReader) -> AsyncIterator[None]:
    task = asyncio.create_task(reader.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_reader_that_caught_up_is_not_waited_for() -> None:
    reader = _reader()
    reader._reached_end()  # as ``run`` does at the topic's end
    assert await asyncio.wait_for(reader.wait_until_read(60), 1) is True


async def test_the_wait_ends_when_the_reader_catches_up_and_says_how_far_it_got(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = _reader()
    caplog.set_level(logging.INFO, logger=module.__name__)
    waiting = asyncio.create_task(reader.wait_until_read(60, every=0.05))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    reader._reached_end()
    assert await asyncio.wait_for(waiting, 1) is True
    assert "the journeys wait until products is read (0 products so far)" in caplog.text


async def test_a_topic_that_does_not_exist_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_topics(settings: Settings) -> set[str]:
        return {"orders"}

    monkeypatch.setattr(module, "_topic_names", no_topics)
    reader = _reader()
    async with _running(reader):
        assert await asyncio.wait_for(reader.wait_until_read(60), 5) is False
        assert not reader.is_caught_up  # it goes on looking for the topic


async def test_a_reading_that_never_ends_is_waited_for_at_most_the_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unreachable(settings: Settings) -> set[str]:
        raise KafkaConnectionError("no broker")

    monkeypatch.setattr(module, "_topic_names", unreachable)
    monkeypatch.setattr(module, "TOPIC_WAIT_SECONDS", 0.01)
    reader = _reader()
    async with _running(reader):
        assert await asyncio.wait_for(reader.wait_until_read(0.3, every=0.1), 5) is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not read to its end after 0.3s (0 products so far)" in w for w in warnings)
