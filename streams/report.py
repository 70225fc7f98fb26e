"""``cartpulse report``: per flow and variant, what the journeys did and what they earned.

Built from the decision log and the recoveries (topics, or the files ``cartpulse journeys``
writes). Lift compares the conversion rate of each variant's journeys with the holdout's of
the same flow (an order within the conversion window, whether or not a message was sent), with
a 95 % confidence interval (normal approximation for a difference of two proportions).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import orjson

from streams.core.eligibility import HOLDOUT

if TYPE_CHECKING:
    from streams.settings import Settings

Z95 = 1.959964
RecordKind = Literal["decision", "recovery"]


@dataclass(slots=True)
class Arm:
    journeys: int = 0
    messages: int = 0
    sms: int = 0
    email: int = 0
    conversions: int = 0
    recovered: int = 0
    revenue: Decimal = field(default_factory=Decimal)

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.journeys if self.journeys else 0.0


@dataclass(frozen=True, slots=True)
class Row:
    flow: str
    variant: str
    abandonments: int
    arm: Arm
    lift: float | None  # conversion-rate difference to the holdout
    lift_ci: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        arm = self.arm
        return {
            "flow": self.flow,
            "variant": self.variant,
            "abandonments": self.abandonments,
            "journeys": arm.journeys,
            "messages": arm.messages,
            "sms": arm.sms,
            "email": arm.email,
            "conversions": arm.conversions,
            "conversion_rate": round(arm.conversion_rate, 4),
            "orders_recovered": arm.recovered,
            "recovery_rate": round(arm.recovered / arm.journeys, 4) if arm.journeys else 0.0,
            "revenue": str(arm.revenue),
            "revenue_per_message": str(
                (arm.revenue / arm.messages).quantize(Decimal("0.01")) if arm.messages else 0
            ),
            "lift": None if self.lift is None else round(self.lift, 4),
            "lift_ci95": None if self.lift_ci is None else [round(x, 4) for x in self.lift_ci],
        }


# Repeats come from at-least-once delivery: a journeys worker that restarts re-emits what it
# wrote since its last commit (seconds of output), so they sit close to the first copy.
REPEAT_WINDOW = 1_000_000


class RecentKeys:
    """Whether a key was among the last ``size`` added: the bounded memory of a de-duplicator
    whose repeats arrive close to their first copy. Holds each key's hash (about 75 bytes per
    key in all), so a report over any topic stays within ~75 MB.
    """

    def __init__(self, size: int = REPEAT_WINDOW) -> None:
        self._size = size
        self._order: deque[int] = deque()
        self._hashes: set[int] = set()

    def first_time(self, key: tuple[Any, ...]) -> bool:
        """True, and remembered, unless ``key`` is among the recent ones."""
        try:
            digest = hash(key)
        except TypeError:  # a malformed record's list or object where a string belongs
            digest = hash(repr(key))
        if digest in self._hashes:
            return False
        self._hashes.add(digest)
        self._order.append(digest)
        if len(self._order) > self._size:
            self._hashes.discard(self._order.popleft())
        return True


class Report:
    """Accumulates decisions and recoveries; ``rows()`` summarises them."""

    def __init__(self) -> None:
        self.arms: dict[tuple[str, str], Arm] = defaultdict(Arm)
        self.abandonments: dict[str, int] = defaultdict(int)
        self.reasons: Counter[tuple[str, str, str]] = Counter()  # (flow, action, reason)
        self.unreadable = 0
        self._recent = RecentKeys()

    def add_raw(self, kind: RecordKind, raw: bytes) -> None:
        """One record as JSON (a topic's value or a file's line); unreadable ones are counted."""
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            self.unreadable += 1
        elif kind == "decision":
            self.add_decision(record)
        else:
            self.add_recovery(record)

    def add_decision(self, record: dict[str, Any]) -> None:
        # A repeat (at-least-once delivery) is the same record again, time included, and counts
        # once; two decisions that differ only in time (a second cart update, a step deferred
        # again for the same reason) are two.
        key = (record.get("journey_id"), record.get("action"), record.get("reason"),
               record.get("step"), record.get("abandonment_id"), record.get("at"))  # fmt: skip
        if not self._recent.first_time(key):
            return
        flow, action = record.get("flow"), record.get("action")
        if not isinstance(flow, str):
            return
        self.reasons[(flow, str(action), str(record.get("reason")))] += 1
        if action in ("started", "ignored"):
            self.abandonments[flow] += 1
        variant = record.get("variant")
        if not isinstance(variant, str):
            return
        arm = self.arms[(flow, variant)]
        if action == "started":
            arm.journeys += 1
        elif action == "emitted":
            arm.messages += 1
            if record.get("channel") == "sms":
                arm.sms += 1
            elif record.get("channel") == "email":
                arm.email += 1
        elif action == "ended" and record.get("reason") == "converted":
            arm.conversions += 1

    def add_recovery(self, record: dict[str, Any]) -> None:
        if not self._recent.first_time(("recovery", record.get("recovery_id"))):
            return
        flow, variant = record.get("flow"), record.get("variant")
        if not isinstance(flow, str) or not isinstance(variant, str):
            return
        arm = self.arms[(flow, variant)]
        arm.recovered += 1
        with contextlib.suppress(InvalidOperation):  # a bad amount counts the order, not money
            arm.revenue += Decimal(str(record.get("revenue") or 0))

    def rows(self) -> list[Row]:
        rows = []
        for (flow, variant), arm in sorted(self.arms.items()):
            holdout = self.arms.get((flow, HOLDOUT))
            lift = ci = None
            if variant != HOLDOUT and holdout is not None and holdout.journeys and arm.journeys:
                lift, ci = lift_with_ci(arm, holdout)
            rows.append(Row(flow, variant, self.abandonments[flow], arm, lift, ci))
        return rows


def lift_with_ci(treated: Arm, holdout: Arm) -> tuple[float, tuple[float, float]]:
    """Conversion-rate difference and its 95 % interval (Wald, difference of proportions)."""
    p1, n1 = treated.conversion_rate, treated.journeys
    p0, n0 = holdout.conversion_rate, holdout.journeys
    diff = p1 - p0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    return diff, (diff - Z95 * se, diff + Z95 * se)


async def report_from_topics(settings: Settings) -> Report:
    """The report over ``journey.decisions`` and ``recoveries`` as they are now."""
    from streams.kafka import read_all
    from streams.topics import Topic, TopicCatalogue

    report = Report()
    topics = TopicCatalogue.of(settings)
    sources: tuple[tuple[Topic, RecordKind], ...] = (
        (Topic.DECISIONS, "decision"),
        (Topic.RECOVERIES, "recovery"),
    )
    for topic, kind in sources:
        async for value in read_all(settings, topics.name(topic)):
            report.add_raw(kind, value)
    return report
