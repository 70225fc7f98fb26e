"""The topic catalogue: every topic cartpulse reads or writes, with its key and its configs.

Names get ``Settings.topic_prefix``. Inputs have a ``.dlq`` sibling that holds the bad records
with the reason in headers (docs/architecture.md, Topics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.runtime.settings import Settings


class Topic(StrEnum):
    """Logical topic names (before the prefix)."""

    CLICKSTREAM = "clickstream"
    CART = "cart"
    CUSTOMERS = "customers"
    CONSENTS = "consents"
    CONSENT_HISTORY = "consents.history"
    ABANDONMENTS = "abandonments"
    SEND_SMS = "send.sms"
    SEND_EMAIL = "send.email"
    SEND_SMS_RETRY = "send.sms.retry"
    SEND_EMAIL_RETRY = "send.email.retry"
    SEND_RESULTS = "send.results"
    ENGAGEMENT = "engagement"
    RECOVERIES = "recoveries"
    ORDERS = "orders"
    TICKS = "detector.ticks"
    REPARTITION = "detector.repartition"
    DECISIONS = "journey.decisions"
    JOURNEY_INPUTS = "journey.inputs"
    JOURNEY_TICKS = "journey.ticks"
    PRODUCTS = "products"
    WORKERS = "workers"
    COUPONS = "coupons"
    ERASURES = "erasures"
    ERASURES_DONE = "erasures.done"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its full name, key, and the configs it is created with."""

    name: str
    key: str
    compacted: bool = False
    is_input: bool = False
    is_dlq: bool = False
    configs: dict[str, str] = field(default_factory=dict)


_SPECS: dict[Topic, tuple[str, bool, bool]] = {
    # topic: (key, compacted, is an input with a DLQ)
    Topic.CLICKSTREAM: ("session_id", False, True),
    Topic.CART: ("session_id", False, True),
    Topic.CUSTOMERS: ("customer_id", True, True),
    Topic.CONSENTS: ("customer_id:channel", True, True),
    # every consent change with its evidence, never compacted (streams/runtime/consent_ledger.py)
    Topic.CONSENT_HISTORY: ("subject (pseudonym)", False, False),
    Topic.ABANDONMENTS: ("customer_id or session_id", False, True),
    Topic.SEND_SMS: ("recipient", False, True),
    Topic.SEND_EMAIL: ("recipient", False, True),
    # commands a sender deferred (rate limit, provider back-off), each with its due time
    Topic.SEND_SMS_RETRY: ("recipient", False, False),
    Topic.SEND_EMAIL_RETRY: ("recipient", False, False),
    Topic.SEND_RESULTS: ("command_id", False, True),
    Topic.ENGAGEMENT: ("customer_id", False, True),
    Topic.RECOVERIES: ("customer_id", False, False),
    # order_completed events forwarded by the detector; an input of the journeys
    Topic.ORDERS: ("customer_id or session_id", False, True),
    # wake-ups from the detector's leader, one record per partition (co-partitioned with inputs)
    Topic.TICKS: ("partition", False, False),
    # input records whose key was not their session_id, re-keyed (co-partitioned with inputs)
    Topic.REPARTITION: ("session_id", False, False),
    # the journey engine's audit trail: every start, schedule, deferral, skip and end, with why
    Topic.DECISIONS: ("customer_id", False, False),
    # consents and send results re-keyed by customer_id (co-partitioned with the journeys)
    Topic.JOURNEY_INPUTS: ("customer_id", False, False),
    # wake-ups of the journeys agent, one record per partition
    Topic.JOURNEY_TICKS: ("partition", False, False),
    # the product catalogue: versions of each product, read whole by every journeys worker
    Topic.PRODUCTS: ("product_id", True, True),
    # every coupon code issued, registered with the store, redeemed: its latest state
    # (streams/contract/coupons.py); the store's systems may read it and write acks to it
    Topic.COUPONS: ("code", True, True),
    # erasure requests (cartpulse forget), keyed by the customer's pseudonym, each on the
    # partition of the customer id (co-partitioned with the journeys); kept for good
    Topic.ERASURES: ("customer subject", True, True),
    # each part's confirmation that it applied an erasure
    Topic.ERASURES_DONE: ("customer subject:part", True, False),
    # what each worker runs, in its own words, written when it starts (streams/agents/roster.py)
    Topic.WORKERS: ("worker_id", True, False),
}


# The topic a sender defers a command of each command topic to (senders/runtime/consumer.py).
RETRY_TOPICS: dict[Topic, Topic] = {
    Topic.SEND_SMS: Topic.SEND_SMS_RETRY,
    Topic.SEND_EMAIL: Topic.SEND_EMAIL_RETRY,
}


# docs/compliance.md, Erasure: the open request is compacted away within about a day.
ERASURE_COMPACTION: dict[str, str] = {
    "segment.ms": str(24 * 60 * 60 * 1000),
    "max.compaction.lag.ms": str(24 * 60 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.01",
}


@dataclass(frozen=True, slots=True)
class TopicCatalogue:
    """Topic names under one prefix (a deployment, or a replay's namespace)."""

    prefix: str = ""
    dlq_retention: timedelta = timedelta(days=14)
    history_retention: timedelta | None = None  # of consents.history; None: kept forever

    @classmethod
    def of(cls, settings: Settings) -> TopicCatalogue:
        """The catalogue of a deployment (or a replay's namespace): its prefix and DLQ retention."""
        return cls(
            settings.topic_prefix, settings.dlq_retention, settings.consent_history_retention
        )

    def name(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"

    def dlq(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}.dlq"

    def specs(self) -> list[TopicSpec]:
        """Every topic to create, inputs' dead-letter topics included, in a stable order."""
        specs: list[TopicSpec] = []
        for topic, (key, compacted, is_input) in _SPECS.items():
            configs = {"cleanup.policy": "compact"} if compacted else {}
            if topic in (Topic.TICKS, Topic.JOURNEY_TICKS):
                configs = {"retention.ms": str(60 * 60 * 1000)}  # wake-ups are worthless later
            if topic in RETRY_TOPICS.values():
                configs = {"cleanup.policy": "delete"}
            if topic is Topic.CONSENT_HISTORY:
                kept = self.history_retention
                retention = "-1" if kept is None else str(int(kept.total_seconds() * 1000))
                configs = {"cleanup.policy": "delete", "retention.ms": retention}
            if topic is Topic.ERASURES:
                # an open request holds the customer id until it is closed: compact it
                # away soon after (the closed record replaces it under the same key)
                configs |= ERASURE_COMPACTION
            specs.append(TopicSpec(self.name(topic), key, compacted, is_input, False, configs))
            if is_input:
                retention = str(int(self.dlq_retention.total_seconds() * 1000))
                specs.append(
                    TopicSpec(
                        self.dlq(topic),
                        key,
                        is_dlq=True,
                        configs={"cleanup.policy": "delete", "retention.ms": retention},
                    )
                )
        return specs


# Which input topic an event type is produced to. Cart-changing and conversion events go to
# ``cart``; browsing goes to ``clickstream``. Both are keyed by session_id.
CART_TYPES = frozenset(
    {"cart_item_added", "cart_item_removed", "checkout_started", "order_completed"}
)


def input_topic_for(event_type: str) -> Topic:
    """The input topic an event of ``event_type`` belongs on."""
    return Topic.CART if event_type in CART_TYPES else Topic.CLICKSTREAM
