"""The metrics catalogue of the stream workers: every metric, its help and its fixed labels.

Labels are low-cardinality by construction: topics from the catalogue, event types from the
contract (anything else is ``unknown``), partitions bounded by the topic's partition count.
``docs/metrics.md`` mirrors this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class DetectorMetrics:
    events_in: Counter
    invalid: Counter
    unknown_types: Counter
    duplicates: Counter
    late: Counter
    repartitioned: Counter
    abandonments: Counter
    orders_forwarded: Counter
    watermark_lag: Gauge
    watermark: Gauge
    open_sessions: Gauge
    sessions: Gauge
    state_writes: Counter
    batch_seconds: Histogram
    detection_delay: Histogram
    standby_lag: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DetectorMetrics:
        return cls(
            events_in=Counter(
                "cartpulse_detector_events_total",
                "Input records taken by the detector, by topic and event type.",
                ["topic", "type"],
                registry=registry,
            ),
            invalid=Counter(
                "cartpulse_detector_invalid_total",
                "Input records sent to the DLQ because they break the event contract.",
                ["topic"],
                registry=registry,
            ),
            unknown_types=Counter(
                "cartpulse_detector_unknown_types_total",
                "Well-formed input records of a type the detector does not know (ignored).",
                ["topic"],
                registry=registry,
            ),
            duplicates=Counter(
                "cartpulse_detector_duplicates_total",
                "Events dropped because their event_id was seen within the dedup window.",
                registry=registry,
            ),
            late=Counter(
                "cartpulse_detector_late_events_total",
                "Events older than their partition's watermark on arrival.",
                registry=registry,
            ),
            repartitioned=Counter(
                "cartpulse_detector_repartitioned_total",
                "Records whose key was not their session_id, re-keyed through the repartition "
                "topic.",
                registry=registry,
            ),
            abandonments=Counter(
                "cartpulse_detector_abandonments_total",
                "Abandonments emitted, by kind.",
                ["kind"],
                registry=registry,
            ),
            orders_forwarded=Counter(
                "cartpulse_detector_orders_forwarded_total",
                "order_completed events forwarded to the orders topic for the journeys.",
                registry=registry,
            ),
            watermark_lag=Gauge(
                "cartpulse_detector_watermark_lag_seconds",
                "Wall clock minus the partition's watermark (live mode: how far behind).",
                ["partition"],
                registry=registry,
            ),
            watermark=Gauge(
                "cartpulse_detector_watermark_timestamp_seconds",
                "The partition's watermark, as a Unix time.",
                ["partition"],
                registry=registry,
            ),
            open_sessions=Gauge(
                "cartpulse_detector_open_sessions",
                "Sessions with an open activity period, on this worker.",
                registry=registry,
            ),
            sessions=Gauge(
                "cartpulse_detector_sessions",
                "Sessions held in state (open or keeping a cart), on this worker.",
                registry=registry,
            ),
            state_writes=Counter(
                "cartpulse_detector_state_writes_total",
                "Session states written to the table (and its changelog).",
                registry=registry,
            ),
            batch_seconds=Histogram(
                "cartpulse_detector_flush_seconds",
                "Time to persist one partition's changed sessions.",
                buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
                registry=registry,
            ),
            detection_delay=Histogram(
                "cartpulse_detector_detection_delay_seconds",
                "Live mode: wall clock at emission minus the abandonment's deadline.",
                buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0),
                registry=registry,
            ),
            standby_lag=Gauge(
                "cartpulse_table_standby_lag_records",
                "Changelog records this worker's standby copies of a table have yet to apply "
                "(the changelog's end as last fetched, minus the next offset applied).",
                ["table"],
                registry=registry,
            ),
        )


@dataclass(frozen=True, slots=True)
class JourneyMetrics:
    """The journeys agent's metrics; reasons outside the engine's closed set count as other."""

    inputs: Counter
    invalid: Counter
    rekeyed: Counter
    unroutable: Counter
    decisions: Counter
    journeys: Counter
    commands: Counter
    recoveries: Counter
    revenue: Counter
    due_customers: Gauge
    late: Counter
    held: Gauge
    held_age: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> JourneyMetrics:
        def counter(name: str, help_text: str, labels: list[str]) -> Counter:
            return Counter(name, help_text, labels, registry=registry)

        return cls(
            inputs=counter(
                "cartpulse_journeys_inputs_total",
                "Inputs taken by the journeys agent, by source topic.",
                ["source"],
            ),
            invalid=counter(
                "cartpulse_journeys_invalid_total",
                "Journey inputs sent to a DLQ (malformed, or an internal error), by source.",
                ["source"],
            ),
            rekeyed=counter(
                "cartpulse_journeys_rekeyed_total",
                "consents and send.results records re-keyed by customer for the journeys.",
                ["source"],
            ),
            unroutable=counter(
                "cartpulse_journeys_unroutable_total",
                "consents and send.results records without a customer id (not re-keyed).",
                ["source"],
            ),
            decisions=counter(
                "cartpulse_journeys_decisions_total",
                "Journey decisions (steps scheduled, deferred, skipped, emitted; journeys "
                "started, ignored, ended) by action and reason.",
                ["action", "reason"],
            ),
            journeys=counter(
                "cartpulse_journeys_total",
                "Journeys started and ended, by flow and event (started, converted, completed, "
                "superseded, replaced).",
                ["flow", "event"],
            ),
            commands=counter(
                "cartpulse_journeys_commands_total",
                "Send commands emitted, by channel and mode (live, dry_run).",
                ["channel", "mode"],
            ),
            recoveries=counter(
                "cartpulse_journeys_recoveries_total",
                "Orders attributed to a sent message, by flow and channel of the last touch.",
                ["flow", "channel"],
            ),
            revenue=counter(
                "cartpulse_journeys_recovered_revenue_total",
                "Revenue of recovered orders (in their own currencies), by flow and channel.",
                ["flow", "channel"],
            ),
            due_customers=Gauge(
                "cartpulse_journeys_due_customers",
                "Entries in the journeys' deadline index, by partition: customers with a pending "
                "step or an open conversion window (one whose next moment moved counts twice "
                "until its earlier entry comes due).",
                ["partition"],
                registry=registry,
            ),
            late=counter(
                "cartpulse_journeys_late_inputs_total",
                "Inputs that arrived after the journeys' clock had passed their event time "
                "(applied at once: the one way a live run may differ from an offline one), by "
                "source; overflow: a customer's held inputs were full.",
                ["source"],
            ),
            held=Gauge(
                "cartpulse_journeys_held_inputs",
                "Inputs held until the journeys' clock reaches their event time, by source.",
                ["source"],
                registry=registry,
            ),
            held_age=Gauge(
                "cartpulse_journeys_held_oldest_seconds",
                "Wall-clock seconds the earliest held input of a partition has waited.",
                ["partition"],
                registry=registry,
            ),
        )


@dataclass(frozen=True, slots=True)
class CatalogueMetrics:
    """The worker's catalogue reader (``streams/agents/catalogue.py``)."""

    records: Counter
    invalid: Counter
    callback_errors: Counter
    products: Gauge
    caught_up: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CatalogueMetrics:
        return cls(
            records=Counter(
                "cartpulse_catalogue_records_total",
                "products records read, by result: new (a version the catalogue kept), "
                "duplicate (one it already had, or older than its kept history), tombstone.",
                ["result"],
                registry=registry,
            ),
            invalid=Counter(
                "cartpulse_catalogue_invalid_total",
                "products records sent to products.dlq because they are not product versions.",
                registry=registry,
            ),
            callback_errors=Counter(
                "cartpulse_catalogue_callback_errors_total",
                "New versions whose handler in the journeys raised (logged; the version is kept).",
                registry=registry,
            ),
            products=Gauge(
                "cartpulse_catalogue_products",
                "Products known to this worker's catalogue.",
                registry=registry,
            ),
            caught_up=Gauge(
                "cartpulse_catalogue_caught_up",
                "1 once the reader has read products up to the end offsets seen at its start.",
                registry=registry,
            ),
        )


@dataclass(frozen=True, slots=True)
class ErasureMetrics:
    """Erasures (docs/compliance.md, Erasure), by part: ``journeys``, ``detector`` (the worker)
    and ``senders`` (the consent mirror's process)."""

    applied: Counter
    dropped: Counter
    ignored: Counter
    invalid: Counter
    known: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ErasureMetrics:
        return cls(
            applied=Counter(
                "cartpulse_erasures_applied_total",
                "Erasure requests a part applied (and confirmed on erasures.done).",
                ["part"],
                registry=registry,
            ),
            dropped=Counter(
                "cartpulse_erasure_dropped_total",
                "What erasures dropped, by part: journey states, detector sessions, Redis keys.",
                ["part"],
                registry=registry,
            ),
            ignored=Counter(
                "cartpulse_erased_inputs_ignored_total",
                "Input records of an erased customer that a part ignored (a replay, a re-import).",
                ["part"],
                registry=registry,
            ),
            invalid=Counter(
                "cartpulse_erasure_invalid_total",
                "erasures records that are not erasures (dead-lettered or skipped), by part.",
                ["part"],
                registry=registry,
            ),
            known=Gauge(
                "cartpulse_erasures_known",
                "Erased customers this worker's erasure reader knows.",
                registry=registry,
            ),
        )
