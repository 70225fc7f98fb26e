"""Wires the detector's Faust app: topics, the sessions table, the batch path, the leader's
ticks and the web endpoints. No decisions are made here; they live in ``streams.core``."""

from __future__ import annotations

import logging
import ssl
from typing import Any, cast

from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest

from streams.agents.batching import BatchingApp
from streams.agents.changelog import ChangelogTable
from streams.agents.detector import DetectorShell
from streams.agents.forgetting import install_forgetting
from streams.agents.journeys_app import install_journeys
from streams.agents.journeys_erasure import install_journey_erasure
from streams.agents.ticks import send_ticks
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.detection import DetectorConfig
from streams.runtime.metrics import DetectorMetrics, ErasureMetrics
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)
EXPOSITION = "text/plain; version=0.0.4"  # the text format generate_latest writes


def detector_config(settings: Settings) -> DetectorConfig:
    return DetectorConfig(
        gap_ms=int(settings.gap.total_seconds() * 1000),
        min_product_views=settings.min_product_views,
        lateness_ms=int(settings.lateness.total_seconds() * 1000),
        dedup_window_ms=int(settings.dedup_window.total_seconds() * 1000),
        default_store_id=settings.default_store_id,
    )


def faust_broker(settings: Settings) -> str:
    return ";".join(f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(","))


def create_app(
    settings: Settings, registry: CollectorRegistry | None = None
) -> tuple[BatchingApp, DetectorShell]:
    """The detector worker's Faust app, ready for ``faust.Worker``, and its shell."""
    topics = TopicCatalogue.of(settings)
    metrics_registry = registry if registry is not None else CollectorRegistry()
    metrics = DetectorMetrics.create(metrics_registry)
    erasure_metrics = ErasureMetrics.create(metrics_registry)
    app_id = settings.worker_group
    datadir = settings.data_dir / app_id  # RocksDB state is per app id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = BatchingApp(
        app_id,
        broker=faust_broker(settings),
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(datadir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_configs=settings.topic_configs(),  # min.insync.replicas of changelogs and the rest
        table_standby_replicas=settings.table_standby_replicas,
        web_enabled=settings.web_port != 0,
        web_port=settings.web_port or 6066,
        web_host=settings.web_host,
        consumer_group_instance_id=settings.group_instance_id,
        # Large fetches: the batch path is cheap per message, round trips are not.
        broker_max_poll_records=20_000,
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_linger=0.005,
        producer_max_batch_size=512 * 1024,
        producer_acks=-1,  # and idempotent: BatchingTransport's producer (PRODUCER_GUARANTEES)
        stream_wait_empty=False,
        # 10 s by default, not Faust's 60 s: a killed worker's partitions move quickly. A
        # survivor learns of the rebalance at its next heartbeat: every second, not every 3 s
        # (docs/operations.md, "Failover"); the session timeout is 6 s at least.
        broker_session_timeout=settings.session_timeout.total_seconds(),
        broker_heartbeat_interval=1.0,
    )
    inputs = [topics.name(t) for t in (Topic.CLICKSTREAM, Topic.CART, Topic.REPARTITION)]
    ticks = topics.name(Topic.TICKS)
    journey_ticks = topics.name(Topic.JOURNEY_TICKS)
    channel = app.topic(*inputs, ticks, key_serializer="raw", value_serializer="raw")
    # bytes key and value types make the table's codec "raw": states are our own orjson.
    table = app.Table(
        "sessions", key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
    )
    producer_topics = [topics.name(t) for t in (Topic.ABANDONMENTS, Topic.ORDERS)]
    for name in producer_topics:
        app.topic(name, key_serializer="raw", value_serializer="raw")

    async def send(topic: str, key: bytes | None, value: bytes, headers: Any) -> Any:
        return await app.producer.send(topic, key, value, None, None, headers)

    sessions = ChangelogTable(app, table)  # a flush's sessions in one write
    shell = DetectorShell(
        config=detector_config(settings),
        topics=topics,
        clock_mode=settings.clock,
        table=sessions,
        send=send,
        ack=app.consumer.ack,
        highwater=app.consumer.highwater,
        position=app.consumer.position,
        make_tp=TP,
        create_event=lambda message: app.create_event(
            message.key, message.value, message.headers, message
        ),
        metrics=metrics,
        flush_interval=settings.state_flush_interval.total_seconds(),
        max_record_bytes=settings.max_record_bytes,
        # every worker reads every erasure: a customer's sessions may be on any partition
        erased=install_forgetting(app, settings, topics, erasure_metrics),
        erasure_metrics=erasure_metrics,
        partition_items=sessions.partition_items,
    )
    app.deliver_batches([*inputs, ticks], shell.on_batch)
    app.drain_hooks.append(shell.drain)
    journeys = install_journeys(app, settings, topics, metrics_registry, send)
    if journeys is not None:
        journeys.erasure = install_journey_erasure(app, settings, topics, erasure_metrics)

    @app.agent(channel, concurrency=1)
    async def detector(stream: Any) -> None:
        # Subscribes the inputs (so the assignor co-partitions them with the table). Their
        # messages arrive through the batch path; nothing is ever delivered here.
        async for _ in stream:
            log.error("a detector input bypassed the batch path")

    @app.timer(settings.tick_interval.total_seconds(), on_leader=True)  # type: ignore[untyped-decorator]  # faust's timer is untyped
    async def tick() -> None:
        async def to_partition(topic: str, value: bytes, partition: int) -> Any:
            return await app.producer.send(topic, None, value, partition, None, None)

        await send_ticks(to_partition, ticks, settings.topic_partitions)
        if journeys is not None:
            await send_ticks(to_partition, journey_ticks, settings.topic_partitions)
        shell.gauge_sessions()

    @app.timer(settings.state_flush_interval.total_seconds())  # type: ignore[untyped-decorator]  # faust's timer is untyped
    async def flush_idle() -> None:
        await shell.flush_idle()

    @app.on_partitions_revoked.connect
    def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        shell.revoke({tp.partition for tp in revoked if tp.topic in inputs})
        if journeys is not None:
            journeys.revoke({tp.partition for tp in revoked if tp.topic == journey_ticks})

    @app.on_partitions_assigned.connect
    def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        partitions = {tp.partition for tp in assigned if tp.topic in inputs}
        shell.assign(partitions, app.consumer_generation_id)
        if journeys is not None:
            journeys.assign({tp.partition for tp in assigned if tp.topic == journey_ticks})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            gauge_standby_lag(app, metrics)
            # Faust hands content_type to aiohttp, which refuses a charset in it.
            return self.bytes(generate_latest(metrics_registry), content_type=EXPOSITION)

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ready = bool(app.consumer.assignment()) and not app.rebalancing
            return self.json({"ready": ready}, status=200 if ready else 503)

    return app, shell


def gauge_standby_lag(app: Any, metrics: DetectorMetrics) -> None:
    """Per table, how far this worker's standby copies are behind their changelogs: the records
    a promoted standby applies before its partition is served (docs/operations.md, "Failover").
    The end is the consumer's last fetched highwater, or recovery's when nothing was fetched."""
    recovery = app.tables.recovery
    lag: dict[str, int] = {table.name: 0 for table in app.tables.values()}
    assigned = app.consumer.assignment()
    for tp in recovery.standby_tps:
        if tp not in assigned:
            continue  # unassigned meanwhile (a rebalance): not a standby now
        end = app.consumer.highwater(tp)
        if end is None:
            end = recovery.standby_highwaters.get(tp, -1) + 1
        applied = recovery.standby_offsets.get(tp)
        behind = end - (applied + 1 if applied is not None else 0)
        name = recovery.tp_to_table[tp].name
        lag[name] += max(0, behind)
    for name, records in lag.items():
        metrics.standby_lag.labels(name).set(records)


def _credentials(settings: Settings) -> Any:
    if not settings.kafka_security_protocol.startswith("SASL") and (
        settings.kafka_security_protocol != "SSL"
    ):
        return None
    import faust

    options = settings.kafka_client_options()
    ssl_context = cast(ssl.SSLContext | None, options.get("ssl_context"))
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)
