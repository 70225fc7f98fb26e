"""``cartpulse report``: per flow and variant, what the journeys did and what they earned.

Built from the decision log, the recoveries and, when given, the engagement records (topics, or
files: ``cartpulse journeys`` writes the first two). Per flow, branch (the flow's variant) and
step: the funnel abandonments → entered → sent → clicked → recovered, recovered revenue per day
(UTC), and the lift. Decisions are read first: a click or a recovery finds its step through the
``command_id`` of the ``emitted`` decision before it. Lift compares the conversion rate of each
variant's journeys with the holdout's of the same flow (an order within the conversion window,
whether or not a message was sent), with a 95 % confidence interval (normal approximation for a
difference of two proportions).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import orjson

from streams.contract.errors import InvalidRecord
from streams.contract.events import parse_time
from streams.core.eligibility import HOLDOUT

if TYPE_CHECKING:
    from streams.runtime.settings import Settings

Z95 = 1.959964
RecordKind = Literal["decision", "recovery", "engagement"]
StepKey = tuple[str, str, int]  # flow, variant, step index (0: the flow's first step)
DayKey = tuple[str, str, str]  # flow, variant, UTC day (YYYY-MM-DD)


@dataclass(slots=True)
class Arm:
    journeys: int = 0
    messages: int = 0
    sms: int = 0
    email: int = 0
    clicked: int = 0  # messages with at least one link click
    # the funnel counts journeys: those sent a message, with a clicked one, with an order credited
    journeys_sent: int = 0
    journeys_clicked: int = 0
    journeys_recovered: int = 0
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
            "clicked": arm.clicked,
            "journeys_sent": arm.journeys_sent,
            "journeys_clicked": arm.journeys_clicked,
            "journeys_recovered": arm.journeys_recovered,
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


@dataclass(slots=True)
class StepStats:
    """One step of one branch: its channel, messages sent and clicked, orders credited to it."""

    channel: str = ""
    sent: int = 0
    clicked: int = 0
    recovered: int = 0
    revenue: Decimal = field(default_factory=Decimal)


@dataclass(slots=True)
class DayStats:
    recovered: int = 0
    revenue: Decimal = field(default_factory=Decimal)


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
        self.steps: dict[StepKey, StepStats] = defaultdict(StepStats)
        self.days: dict[DayKey, DayStats] = defaultdict(DayStats)
        self.triggers: dict[str, str] = {}  # flow -> what its journeys started on
        self.stores: dict[str, Counter[str]] = defaultdict(Counter)  # flow -> its orders' stores
        self.currencies: dict[str, Counter[str]] = defaultdict(Counter)  # flow -> theirs
        self.spans: dict[str, tuple[int, int]] = {}  # flow -> its records' first and last time
        self.unattributed_clicks = 0  # clicks on a command no emitted decision named
        self.unreadable = 0
        self._recent = RecentKeys()
        # Every message sent, by its command_id's hash, to its step and its journey's hash (about
        # 150 bytes a message): what a click, which names only the command, is counted for. And
        # the journeys (by their id's hash, about 70 bytes each) that reached each funnel stage.
        self._sent: dict[int, tuple[StepKey, int | None]] = {}
        self._step_keys: dict[StepKey, StepKey] = {}  # one tuple per step, shared by _sent
        self._clicked: set[int] = set()
        self._reached: tuple[set[int], set[int], set[int]] = (set(), set(), set())

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
        elif kind == "recovery":
            self.add_recovery(record)
        else:
            self.add_engagement(record)

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
        self._seen(flow, record.get("at"))
        reason = record.get("reason")
        self.reasons[(flow, str(action), str(reason))] += 1
        if action in ("started", "ignored"):
            self.abandonments[flow] += 1
        variant = record.get("variant")
        if not isinstance(variant, str):
            return
        arm = self.arms[(flow, variant)]
        if action == "started":
            arm.journeys += 1
            if isinstance(reason, str):  # a journey starts for its abandonment's kind
                self.triggers.setdefault(flow, reason)
        elif action == "emitted":
            channel = record.get("channel")
            arm.messages += 1
            if channel == "sms":
                arm.sms += 1
            elif channel == "email":
                arm.email += 1
            self._sent_by_step(record, flow, variant, channel)
        elif action == "ended" and reason == "converted":
            arm.conversions += 1

    def _sent_by_step(self, record: dict[str, Any], flow: str, variant: str, channel: Any) -> None:
        step = record.get("step")
        if type(step) is not int:
            return
        key = self._step_keys.setdefault((flow, variant, step), (flow, variant, step))
        stats = self.steps[key]
        stats.sent += 1
        stats.channel = str(channel or stats.channel)
        journey = _journey(record)
        if self._first(0, journey):
            self.arms[(flow, variant)].journeys_sent += 1
        command_id = record.get("command_id")
        if isinstance(command_id, str):
            self._sent[hash(command_id)] = (key, journey)

    def _first(self, stage: int, journey: int | None) -> bool:
        """True, and remembered, the first time ``journey`` reaches funnel ``stage`` (0: sent,
        1: clicked, 2: recovered); always for a record without a journey id."""
        if journey is None:
            return True
        seen = self._reached[stage]
        if journey in seen:
            return False
        seen.add(journey)
        return True

    def add_engagement(self, record: dict[str, Any]) -> None:
        """A ``link_clicked`` record counts its message as clicked (once, however many clicks);
        other engagement is left out."""
        if record.get("type") != "link_clicked":
            return
        command_id = record.get("command_id")
        if not isinstance(command_id, str):
            self.unattributed_clicks += 1
            return
        digest = hash(command_id)
        if digest in self._clicked:
            return
        self._clicked.add(digest)
        sent = self._sent.get(digest)
        if sent is None:
            self.unattributed_clicks += 1
            return
        key, journey = sent
        flow, variant, _ = key
        self._seen(flow, record.get("occurred_at"))
        arm = self.arms[(flow, variant)]
        arm.clicked += 1
        arm.journeys_clicked += self._first(1, journey)
        self.steps[key].clicked += 1

    def _seen(self, flow: str, at: Any) -> None:
        with contextlib.suppress(InvalidRecord):  # a record without a usable time still counts
            self._span(flow, parse_time(at, "at"))

    def _span(self, flow: str, ms: int) -> None:
        first, last = self.spans.get(flow, (ms, ms))
        self.spans[flow] = (min(first, ms), max(last, ms))

    def add_recovery(self, record: dict[str, Any]) -> None:
        if not self._recent.first_time(("recovery", record.get("recovery_id"))):
            return
        flow, variant = record.get("flow"), record.get("variant")
        if not isinstance(flow, str) or not isinstance(variant, str):
            return
        revenue = Decimal()
        with contextlib.suppress(InvalidOperation):  # a bad amount counts the order, not money
            revenue = Decimal(str(record.get("revenue") or 0))
        if not revenue.is_finite():
            revenue = Decimal()
        arm = self.arms[(flow, variant)]
        arm.recovered += 1
        arm.revenue += revenue
        arm.journeys_recovered += self._first(2, _journey(record))
        for name, counts in (("store_id", self.stores), ("currency", self.currencies)):
            value = record.get(name)
            if isinstance(value, str) and value:
                counts[flow][value] += 1
        command_id = record.get("command_id")
        sent = self._sent.get(hash(command_id)) if isinstance(command_id, str) else None
        step = None if sent is None else sent[0]
        if step is not None and step[:2] == (flow, variant):
            self.steps[step].recovered += 1
            self.steps[step].revenue += revenue
        try:
            occurred = parse_time(record.get("occurred_at"))
        except InvalidRecord:
            return
        self._span(flow, occurred)
        day = self.days[(flow, variant, utc_day(occurred))]
        day.recovered += 1
        day.revenue += revenue

    def rows(self) -> list[Row]:
        rows = []
        for (flow, variant), arm in sorted(self.arms.items()):
            holdout = self.arms.get((flow, HOLDOUT))
            lift = ci = None
            if variant != HOLDOUT and holdout is not None and holdout.journeys and arm.journeys:
                lift, ci = lift_with_ci(arm, holdout)
            rows.append(Row(flow, variant, self.abandonments[flow], arm, lift, ci))
        return rows


def _journey(record: dict[str, Any]) -> int | None:
    journey_id = record.get("journey_id")
    return hash(journey_id) if isinstance(journey_id, str) else None


def utc_day(ms: int) -> str:
    """The UTC calendar day of epoch milliseconds, as YYYY-MM-DD."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def lift_with_ci(treated: Arm, holdout: Arm) -> tuple[float, tuple[float, float]]:
    """Conversion-rate difference and its 95 % interval (Wald, difference of proportions)."""
    p1, n1 = treated.conversion_rate, treated.journeys
    p0, n0 = holdout.conversion_rate, holdout.journeys
    diff = p1 - p0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    return diff, (diff - Z95 * se, diff + Z95 * se)


async def report_from_topics(settings: Settings) -> Report:
    """The report over ``journey.decisions``, ``recoveries`` and ``engagement`` as they are now
    (in that order: a click or recovery finds its step through the decisions)."""
    from streams.contract.topics import Topic, TopicCatalogue
    from streams.runtime.kafka import read_all

    report = Report()
    topics = TopicCatalogue.of(settings)
    sources: tuple[tuple[Topic, RecordKind], ...] = (
        (Topic.DECISIONS, "decision"),
        (Topic.RECOVERIES, "recovery"),
        (Topic.ENGAGEMENT, "engagement"),
    )
    for topic, kind in sources:
        async for value in read_all(settings, topics.name(topic)):
            report.add_raw(kind, value)
    return report
