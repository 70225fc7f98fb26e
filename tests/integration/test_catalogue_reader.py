"""The worker's catalogue reader against the real local Kafka broker: every partition of
``products`` from the beginning into one catalogue, new versions handed on, bad records
dead-lettered with their reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from streams.agents.catalogue import CatalogueReader
from streams.contract.products import ProductVersion
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.catalogue import Catalogue
from streams.runtime.kafka import REASON_HEADER, SOURCE_HEADER, create_topics, producer
from streams.runtime.metrics import CatalogueMetrics
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.support.net import free_port
from tests.support.workers import journeys_worker

pytestmark = pytest.mark.integration

T0 = 1_767_261_600_000  # 2026-01-01T10:00:00Z


def version(product_id: str, at: int, price: str) -> ProductVersion:
    return ProductVersion(product_id=product_id, price=Decimal(price), updated_ms=at)


@pytest.fixture
async def kafka(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    await create_topics(settings, TopicCatalogue.of(settings).specs())
    client = producer(settings)
    await client.start()
    yield client
    await client.stop()


class Reading:
    """A reader running in a task of its own, with what it handed on."""

    def __init__(self, settings: Settings, kafka: AIOKafkaProducer) -> None:
        self.seen: list[ProductVersion] = []
        self.arrived = asyncio.Event()
        self.registry = CollectorRegistry()

        async def send(
            topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
        ) -> object:
            return await kafka.send_and_wait(topic, value=value, key=key, headers=headers)

        def on_version(item: ProductVersion) -> None:
            self.seen.append(item)
            self.arrived.set()

        self.reader = CatalogueReader(
            settings,
            TopicCatalogue.of(settings),
            Catalogue(),
            send,
            CatalogueMetrics.create(self.registry),
            on_version,
        )
        self.task = asyncio.create_task(self.reader.run())

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def test_the_reader_reads_every_partition_hands_on_new_versions_and_dead_letters(
    settings: Settings, kafka: AIOKafkaProducer
) -> None:
    topic = TopicCatalogue.of(settings).name(Topic.PRODUCTS)
    older, newer = version("p1", T0, "80.00"), version("p1", T0 + 60_000, "64.00")
    others = [version(f"p{n}", T0, "10.00") for n in range(2, 12)]  # spread over partitions
    for item in [newer, older, *others, newer]:  # out of order, and one repeated
        await kafka.send_and_wait(topic, item.to_json(), key=item.product_id.encode())
    bad = orjson.dumps({"product_id": "p2", "price": "-3", "updated_at": T0})
    await kafka.send_and_wait(topic, bad, key=b"p2")
    await kafka.send_and_wait(topic, None, key=b"p3")  # a tombstone

    reading = Reading(settings, kafka)
    try:
        await asyncio.wait_for(reading.reader.caught_up(), 30)
        catalogue = reading.reader.catalogue
        assert len(catalogue) == 11
        assert catalogue.history("p1") == (older, newer)
        assert catalogue.as_of("p1", T0 + 59_999) == older
        assert catalogue.latest("p2") == others[0]  # the bad record changed nothing
        assert sorted(v.product_id for v in reading.seen) == sorted(
            ["p1", "p1", *(o.product_id for o in others)]
        )
        assert reading.metric("cartpulse_catalogue_records_total", result="new") == 12
        assert reading.metric("cartpulse_catalogue_records_total", result="duplicate") == 1
        assert reading.metric("cartpulse_catalogue_records_total", result="tombstone") == 1
        assert reading.metric("cartpulse_catalogue_invalid_total") == 1
        assert reading.metric("cartpulse_catalogue_products") == 11
        assert reading.metric("cartpulse_catalogue_caught_up") == 1

        (dead,) = await consume_all(settings, f"{topic}.dlq", 1)
        headers = dict(dead.headers)
        assert dead.value == bad
        assert dead.key == b"p2"
        assert headers[REASON_HEADER] == b"catalogue: price must be a finite amount >= 0, got '-3'"
        assert headers[SOURCE_HEADER].startswith(f"{topic}:".encode())

        # Once caught up it goes on reading: a later version arrives too.
        reading.arrived.clear()
        latest = version("p1", T0 + 120_000, "59.00")
        await kafka.send_and_wait(topic, latest.to_json(), key=b"p1")
        await asyncio.wait_for(reading.arrived.wait(), 30)
        assert reading.seen[-1] == latest
        assert catalogue.latest("p1") == latest
    finally:
        await reading.stop()


async def test_an_empty_catalogue_is_caught_up_at_once(
    settings: Settings, kafka: AIOKafkaProducer
) -> None:
    reading = Reading(settings, kafka)
    try:
        await asyncio.wait_for(reading.reader.caught_up(), 30)
        assert len(reading.reader.catalogue) == 0
        assert reading.reader.is_caught_up
    finally:
        await reading.stop()


@pytest.mark.expect_errors  # the reader logs the handler's failure, and goes on
async def test_a_failing_handler_is_counted_and_the_reader_goes_on(
    settings: Settings, kafka: AIOKafkaProducer
) -> None:
    topic = TopicCatalogue.of(settings).name(Topic.PRODUCTS)
    for item in (version("p1", T0, "1.00"), version("p2", T0, "2.00")):
        await kafka.send_and_wait(topic, item.to_json(), key=item.product_id.encode())
    registry = CollectorRegistry()

    async def send(
        topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> object:
        raise AssertionError("nothing is dead-lettered here")

    async def broken(item: ProductVersion) -> None:
        raise RuntimeError(f"no handler for {item.product_id}")

    reader = CatalogueReader(
        settings,
        TopicCatalogue.of(settings),
        Catalogue(),
        send,
        CatalogueMetrics.create(registry),
        broken,
    )
    task = asyncio.create_task(reader.run())
    try:
        await asyncio.wait_for(reader.caught_up(), 30)
        assert len(reader.catalogue) == 2
        assert registry.get_sample_value("cartpulse_catalogue_callback_errors_total") == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_reader_started_before_the_topic_exists_waits_for_it(settings: Settings) -> None:
    async def send(
        topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> object:
        raise AssertionError("nothing is dead-lettered here")

    reader = CatalogueReader(
        settings,
        TopicCatalogue.of(settings),
        Catalogue(),
        send,
        CatalogueMetrics.create(CollectorRegistry()),
    )
    task = asyncio.create_task(reader.run())
    try:
        await asyncio.sleep(1.5)
        assert not reader.is_caught_up
        report = await create_topics(settings, TopicCatalogue.of(settings).specs())
        # the reader's looks did not create it (with the broker's defaults, not compacted)
        assert TopicCatalogue.of(settings).name(Topic.PRODUCTS) in report.created
        await asyncio.wait_for(reader.caught_up(), 30)
        assert len(reader.catalogue) == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_worker_reads_the_catalogue_as_it_runs_the_journeys(
    settings: Settings, kafka: AIOKafkaProducer, tmp_path: Path
) -> None:
    """``install_catalogue`` in the worker's app: the reader runs as its task, counted on
    ``/metrics``, and a stop closes it without a traceback (``worker`` checks the log)."""
    topic = TopicCatalogue.of(settings).name(Topic.PRODUCTS)
    for item in (version("p1", T0, "1.00"), version("p2", T0, "2.00")):
        await kafka.send_and_wait(topic, item.to_json(), key=item.product_id.encode())
    port = free_port()
    samples: dict[str, float] = {}
    with journeys_worker(settings, tmp_path, web_port=port):
        async with aiohttp.ClientSession() as http:
            for _ in range(120):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                        samples = _samples(await response.text())
                if samples.get("cartpulse_catalogue_caught_up") == 1:
                    break
                await asyncio.sleep(0.5)
    assert samples.get("cartpulse_catalogue_caught_up") == 1, samples
    assert samples["cartpulse_catalogue_products"] == 2


def _samples(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text exposition."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name and not line.startswith("#") and "{" not in name:
            found[name] = float(value)
    return found
