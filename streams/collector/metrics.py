"""The collector's metrics catalogue (Prometheus). Labels are closed, low-cardinality sets;
docs/metrics.md mirrors this module.

* ``cartpulse_collect_events_total{outcome,reason}``: events answered in a 200, ``accepted``
  (reason ``none``) or ``rejected`` by reason kind (``streams.collector.batch.REJECT_KINDS``).
* ``cartpulse_collect_requests_total{status}``: requests answered, by HTTP status (``other``
  for one outside ``STATUSES``).
* ``cartpulse_collect_produce_seconds``: from handing a request's records to the producer to
  Kafka's acknowledgement of all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

STATUSES: Final = (
    *("200", "204", "400", "401", "403", "404", "405", "408", "413", "415", "500", "503"),
    "other",
)
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class CollectorMetrics:
    events: Counter
    requests: Counter
    produce_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CollectorMetrics:
        """Register every collector metric on ``registry`` (one registry per process or test)."""
        return cls(
            events=Counter(
                "cartpulse_collect_events",
                "Events answered, accepted or rejected (by reason kind).",
                ["outcome", "reason"],
                registry=registry,
            ),
            requests=Counter(
                "cartpulse_collect_requests",
                "Requests answered, by HTTP status.",
                ["status"],
                registry=registry,
            ),
            produce_seconds=Histogram(
                "cartpulse_collect_produce_seconds",
                "Time from producing a request's records to Kafka acknowledging all of them.",
                buckets=_BUCKETS,
                registry=registry,
            ),
        )

    def request(self, status: int) -> None:
        """Count an answer (a status outside ``STATUSES`` as ``other``: the label set is closed)."""
        label = str(status)
        self.requests.labels(label if label in STATUSES else "other").inc()
