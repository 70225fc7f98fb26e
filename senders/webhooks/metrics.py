"""The webhooks' metrics catalogue (Prometheus). Labels are closed, low-cardinality sets.

* ``cartpulse_webhook_requests_total{route,outcome}``: requests answered, by route
  (``sms_inbound``, ``sms_status``, ``unsubscribe``, ``click``, ``open``) and outcome (``ok``,
  ``duplicate``, ``ignored``, ``forbidden``, ``invalid``, ``too_large``, ``expired``,
  ``unavailable``, ``timeout``: the body did not arrive in time, 408; ``hung_up``: the client
  left before its body arrived).
* ``cartpulse_webhook_keywords_total{kind}``: inbound SMS by keyword kind (``opt_out``,
  ``opt_in``, ``help``, ``none``).
* ``cartpulse_webhook_consents_total{channel,status}``: consent records written to ``consents``.
* ``cartpulse_webhook_unresolved_numbers_total``: opt-outs / opt-ins from a number no customer
  was texted at (recorded under the number only).
* ``cartpulse_webhook_delivery_reports_total{status}``: status callbacks put on
  ``send.results`` (``delivered``, ``undelivered``, ``failed``).
* ``cartpulse_webhook_clicks_total{outcome}``: click redirects, email tokens and short SMS
  links alike (``redirected``, ``lost``: the redirect happened but the engagement record could
  not be written).
* ``cartpulse_webhook_opens_total{outcome}``: open pixels served, each a 200 with the image
  whatever its token (``recorded``: ``email_opened`` is on ``engagement``; ``lost``: it could
  not be written; ``invalid``: a malformed or forged token; ``expired``: a genuine one past its
  lifetime).
* ``cartpulse_webhook_latency_seconds{route}``: time to answer a request.
* ``cartpulse_webhook_connections``: connections open on the public port.
* ``cartpulse_webhook_connections_closed_total{reason}``: connections the service closed on
  its own (``idle``: nothing sent within the keep-alive timeout; ``slow_headers``: a request
  head not complete within the header timeout; ``over_limit``: refused at the connection
  limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Route = Literal["sms_inbound", "sms_status", "unsubscribe", "click", "open"]
ROUTES: Final[tuple[Route, ...]] = ("sms_inbound", "sms_status", "unsubscribe", "click", "open")
OpenOutcome = Literal["recorded", "lost", "invalid", "expired"]
OPEN_OUTCOMES: Final[tuple[OpenOutcome, ...]] = ("recorded", "lost", "invalid", "expired")
CloseReason = Literal["idle", "slow_headers", "over_limit"]
CLOSE_REASONS: Final[tuple[CloseReason, ...]] = ("idle", "slow_headers", "over_limit")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class WebhookMetrics:
    requests: Counter
    keywords: Counter
    consents: Counter
    unresolved: Counter
    delivery_reports: Counter
    clicks: Counter
    opens: Counter
    latency: Histogram
    connections: Gauge
    connections_closed: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WebhookMetrics:
        """Register every webhook metric on ``registry`` (one registry per process or test)."""
        return cls(
            requests=Counter(
                "cartpulse_webhook_requests",
                "Webhook requests answered, by route and outcome.",
                ["route", "outcome"],
                registry=registry,
            ),
            keywords=Counter(
                "cartpulse_webhook_keywords",
                "Inbound SMS by keyword kind (none: an ordinary message).",
                ["kind"],
                registry=registry,
            ),
            consents=Counter(
                "cartpulse_webhook_consents",
                "Consent records written to the consents topic.",
                ["channel", "status"],
                registry=registry,
            ),
            unresolved=Counter(
                "cartpulse_webhook_unresolved_numbers",
                "Keywords from numbers no customer was texted at (recorded under the number).",
                registry=registry,
            ),
            delivery_reports=Counter(
                "cartpulse_webhook_delivery_reports",
                "Twilio status callbacks recorded on send.results, by status.",
                ["status"],
                registry=registry,
            ),
            clicks=Counter(
                "cartpulse_webhook_clicks",
                "Click-tracking redirects, by whether the engagement record was written.",
                ["outcome"],
                registry=registry,
            ),
            opens=Counter(
                "cartpulse_webhook_opens",
                "Email open pixels served, by what became of the open.",
                ["outcome"],
                registry=registry,
            ),
            latency=Histogram(
                "cartpulse_webhook_latency_seconds",
                "Time to answer a webhook request.",
                ["route"],
                buckets=_BUCKETS,
                registry=registry,
            ),
            connections=Gauge(
                "cartpulse_webhook_connections",
                "Connections open on the webhooks' public port.",
                registry=registry,
            ),
            connections_closed=Counter(
                "cartpulse_webhook_connections_closed",
                "Connections closed by the service: idle, slow_headers, over_limit.",
                ["reason"],
                registry=registry,
            ),
        )
