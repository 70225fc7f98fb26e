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
        )
