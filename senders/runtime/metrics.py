"""The senders' metrics catalogue (Prometheus). Labels are closed, low-cardinality sets.

Every metric, its labels and what it counts (mirrored in the docs' metrics catalogue):

* ``cartpulse_send_commands_total{channel,source}``: commands taken off ``send.<channel>``
  (source ``main``) or its retry topic (``retry``).
* ``cartpulse_send_outcomes_total{channel,status}``: results recorded on ``send.results``.
* ``cartpulse_send_provider_errors_total{channel,code}``: Twilio error codes, SMTP reply codes.
* ``cartpulse_send_retries_total{channel,reason}``: retries of commands certainly not sent.
* ``cartpulse_send_deferred_total{channel,reason}``: commands moved to the retry topic.
* ``cartpulse_send_dlq_total{channel}``: invalid commands written to ``<topic>.dlq``.
* ``cartpulse_send_latency_seconds{channel}``: provider request time, request to answer.
* ``cartpulse_send_limiter_wait_seconds{channel}``: wait for a reserved rate-limit slot.
* ``cartpulse_send_in_flight{channel}``: commands being worked on by this replica.
* ``cartpulse_send_infra_errors_total{channel,component}``: Redis or Kafka failures (retried).
* ``cartpulse_send_provider_faults_total{channel,reason}``: provider answers that make the
  channel unavailable (``auth``, ``connection``, ``timeout``, ``server_error``).
* ``cartpulse_send_provider_unavailable{channel,reason}``: 1 while the provider is unavailable
  for that reason (``health.py``), else 0.
* ``cartpulse_send_consent_mirror_age_seconds{channel}``: seconds since the consent mirror was
  last caught up on every partition, as this sender sees it (``+Inf`` with no heartbeat).
* ``cartpulse_consent_mirror_records_total{outcome}``: consent records applied, stale,
  deleted or invalid.
* ``cartpulse_consent_mirror_history_total{outcome}``: consent records a store wrote itself,
  appended to ``consents.history`` by the mirror (``appended``) or found there already
  (``seen``).

Of ``cartpulse coupons`` (``CouponMetrics``; docs/compliance.md, Coupons):

* ``cartpulse_coupon_records_total{outcome}``: ``coupons`` records read: ``issued`` (to
  register), ``mirrored`` (a later state kept in Redis), ``stale`` (older than the state
  kept), ``invalid`` (dead-lettered); ``erased``: a state naming a customer whose id an erasure
  retired, written again without them.
* ``cartpulse_coupon_registrations_total{provider,outcome}``: answers of the store's coupon
  provider: ``registered``, ``refused``, ``retry``, ``pending`` (topic acks), and
  ``gave_up`` (unreachable until the senders stopped waiting).
* ``cartpulse_coupon_redemptions_total{outcome}``: codes on completed orders: ``redeemed``
  (first use), ``reused`` (another order used it again: reported), ``foreign`` (not a code
  cartpulse issued), ``repeat`` (an order seen again).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT_BUCKETS = (0.0, 0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 30.0)


@dataclass(frozen=True, slots=True)
class Metrics:
    commands: Counter
    outcomes: Counter
    provider_errors: Counter
    retries: Counter
    deferred: Counter
    dlq: Counter
    latency: Histogram
    limiter_wait: Histogram
    in_flight: Gauge
    infra_errors: Counter
    provider_faults: Counter
    provider_unavailable: Gauge
    mirror_records: Counter
    mirror_age: Gauge
    mirror_history: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        """Register every sender metric on ``registry`` (one registry per process or test)."""
        return cls(
            commands=Counter(
                "cartpulse_send_commands",
                "Send commands taken off the command topics.",
                ["channel", "source"],
                registry=registry,
            ),
            outcomes=Counter(
                "cartpulse_send_outcomes",
                "Results recorded on send.results, by status.",
                ["channel", "status"],
                registry=registry,
            ),
            provider_errors=Counter(
                "cartpulse_send_provider_errors",
                "Errors answered by the provider, by its error code.",
                ["channel", "code"],
                registry=registry,
            ),
            retries=Counter(
                "cartpulse_send_retries",
                "Retries of commands that were certainly not sent, by reason.",
                ["channel", "reason"],
                registry=registry,
            ),
            deferred=Counter(
                "cartpulse_send_deferred",
                "Commands moved to the retry topic, by reason.",
                ["channel", "reason"],
                registry=registry,
            ),
            dlq=Counter(
                "cartpulse_send_dlq",
                "Invalid commands written to the dead-letter topic.",
                ["channel"],
                registry=registry,
            ),
            latency=Histogram(
                "cartpulse_send_latency_seconds",
                "Time from a provider request to its answer.",
                ["channel"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            limiter_wait=Histogram(
                "cartpulse_send_limiter_wait_seconds",
                "Wait for a rate-limit slot (reserved slots only).",
                ["channel"],
                buckets=_WAIT_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "cartpulse_send_in_flight",
                "Commands being worked on by this replica.",
                ["channel"],
                registry=registry,
            ),
            infra_errors=Counter(
                "cartpulse_send_infra_errors",
                "Redis or Kafka failures; the command is retried, not dropped.",
                ["channel", "component"],
                registry=registry,
            ),
            provider_faults=Counter(
                "cartpulse_send_provider_faults",
                "Provider answers that make the channel unavailable (credentials refused, "
                "not reachable, 5xx); the commands are held, not failed.",
                ["channel", "reason"],
                registry=registry,
            ),
            provider_unavailable=Gauge(
                "cartpulse_send_provider_unavailable",
                "1 while the provider is unavailable for this reason, else 0.",
                ["channel", "reason"],
                registry=registry,
            ),
            mirror_records=Counter(
                "cartpulse_consent_mirror_records",
                "Consent records seen by the Redis mirror, by what happened to them.",
                ["outcome"],
                registry=registry,
            ),
            mirror_age=Gauge(
                "cartpulse_send_consent_mirror_age_seconds",
                "Seconds since the consent mirror this sender reads was last caught up on every "
                "partition; +Inf while it has no heartbeat.",
                ["channel"],
                registry=registry,
            ),
            mirror_history=Counter(
                "cartpulse_consent_mirror_history",
                "Consent records a store wrote itself, appended to consents.history by the "
                "mirror (appended) or found there already (seen).",
                ["outcome"],
                registry=registry,
            ),
        )


@dataclass(frozen=True, slots=True)
class CouponMetrics:
    """``cartpulse coupons``' metrics (see the module docstring)."""

    records: Counter
    registrations: Counter
    redemptions: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CouponMetrics:
        return cls(
            records=Counter(
                "cartpulse_coupon_records",
                "coupons records read by the registrar, by what happened to them.",
                ["outcome"],
                registry=registry,
            ),
            registrations=Counter(
                "cartpulse_coupon_registrations",
                "Answers of the stores' coupon providers, by provider and outcome.",
                ["provider", "outcome"],
                registry=registry,
            ),
            redemptions=Counter(
                "cartpulse_coupon_redemptions",
                "Coupon codes on completed orders: redeemed, reused (reported), foreign, repeat.",
                ["outcome"],
                registry=registry,
            ),
        )
