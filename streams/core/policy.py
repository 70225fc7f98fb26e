"""The flow policy (docs/semantics.md, Journeys): flows, eligibility, incentives, experiments,
attribution, and the stores' table (streams.core.stores).

``parse_policy(text, source)`` validates a TOML document and returns a frozen ``Policy``; every
problem raises ``ConfigurationError`` naming the file, the line (where it can be found) and the
field, e.g. ``policy.toml:14: flows.cart.steps[1].after: '2x' is not a duration``. Pure: the
caller reads the file (``streams.runtime.policy_file``).

Durations are written ``90s``, ``30m``, ``1h``, ``5d`` (or ``1h30m``) or ISO 8601 (``PT1H``).
Conditions (``when``) are CEL, checked when the policy loads (streams.core.conditions).
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, get_args

from streams.contract.commands import CHANNELS, TEMPLATE_NAME, Channel
from streams.contract.errors import ConfigurationError
from streams.core.conditions import Condition, compile_condition
from streams.core.incentives import INCENTIVE_KEYS as INCENTIVE_KEYS  # the policy's parts
from streams.core.incentives import TIER_KEYS as TIER_KEYS
from streams.core.incentives import Incentives, parse_incentives
from streams.core.incentives import Tier as Tier
from streams.core.policy_reader import Reader
from streams.core.stores import Store, parse_stores

Trigger = Literal["cart", "browse", "checkout", "price_drop", "back_in_stock"]
TRIGGERS: Final[tuple[Trigger, ...]] = get_args(Trigger)
CATALOGUE_TRIGGERS: Final[frozenset[Trigger]] = frozenset({"price_drop", "back_in_stock"})
DEFAULT_LOOKBACK_MS: Final = 14 * 86_400_000
DEFAULT_MIN_DROP: Final = Decimal("0.10")
ConsentRule = Literal["opt_in", "opt_in_or_soft"]
_CLOCK: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# The keys each table may hold; anything else is refused with the list. docs/policy.md is
# generated from these (streams/tools/policy_reference.py), so the reference cannot fall behind.
TOP_KEYS: Final = frozenset({"mode", "eligibility", "attribution", "incentives", "stores", "flows"})
ELIGIBILITY_KEYS: Final = frozenset({"max_per_day", "reentry_cooldown", *CHANNELS})
CHANNEL_KEYS: Final = frozenset({"consent", "min_interval", "quiet_hours"})
ATTRIBUTION_KEYS: Final = frozenset(CHANNELS)
FLOW_KEYS: Final = frozenset(
    {"trigger", "steps", "experiment", "priority", "when", "lookback", "min_drop"}
    | {"reentry_cooldown"}
)
STEP_KEYS: Final = frozenset(
    {"after", "channel", "template", "expires_after", "incentive", "enabled", "when"}
)
EXPERIMENT_KEYS: Final = frozenset({"name", "holdout", "variants"})
VARIANT_KEYS: Final = frozenset({"name", "weight", "templates", "delay", "incentive"})


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local times between ``start`` and ``end`` (crossing midnight when start > end)."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class ChannelRules:
    consent: ConsentRule
    min_interval_ms: int
    quiet_hours: QuietHours | None


@dataclass(frozen=True, slots=True)
class Step:
    after_ms: int
    channel: Channel
    template: str
    expires_after_ms: int
    incentive: bool = False
    enabled: bool = True  # a disabled step is never scheduled (it keeps its place: ids stay)
    when: Condition | None = None  # judged when the step is due; false: the step is skipped
    after_text: str = field(default="", compare=False)  # ``after`` as written, for people


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float
    templates: Mapping[str, str] = field(default_factory=dict)  # step template → replacement
    delay_ms: int = 0  # added to every step's delay
    incentive: bool = True  # False: this variant offers no coupon


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    holdout: float
    variants: tuple[Variant, ...]


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    trigger: Trigger
    steps: tuple[Step, ...]
    experiment: Experiment | None = None
    priority: int = 0  # among the flows of a trigger, the highest whose ``when`` holds wins
    when: Condition | None = None  # None: every abandonment of the trigger qualifies
    # price_drop / back_in_stock: how long ago the shopper may have seen the product
    lookback_ms: int = DEFAULT_LOOKBACK_MS
    min_drop: Decimal = DEFAULT_MIN_DROP  # price_drop: the smallest drop, a fraction (0.10)
    reentry_cooldown_ms: int | None = None  # None: eligibility.reentry_cooldown

    def variant(self, name: str) -> Variant | None:
        """The experiment's variant called ``name`` (None for the holdout or no experiment)."""
        if self.experiment is None:
            return None
        return next((v for v in self.experiment.variants if v.name == name), None)


@dataclass(frozen=True, slots=True)
class Policy:
    flows: Mapping[str, Flow]
    channels: Mapping[Channel, ChannelRules]
    max_per_day: int
    reentry_cooldown_ms: int
    attribution_ms: Mapping[Channel, int]
    incentives: Incentives
    stores: Mapping[str, Store]
    mode: Literal["live", "dry_run"] = "live"

    def store(self, store_id: str) -> Store:
        return self.stores.get(store_id) or self.stores["default"]

    def flows_for(self, trigger: Trigger) -> tuple[Flow, ...]:
        """The flows of ``trigger``, highest ``priority`` first, equal priorities by name."""
        return tuple(
            sorted(
                (f for f in self.flows.values() if f.trigger == trigger),
                key=lambda f: (-f.priority, f.name),
            )
        )

    def reentry_cooldown_for(self, flow: Flow) -> int:
        """The flow's own re-entry cooldown (ms), else the policy's."""
        own = flow.reentry_cooldown_ms
        return self.reentry_cooldown_ms if own is None else own

    @property
    def conversion_window_ms(self) -> int:
        """How long a journey watches for an order: the longest attribution window."""
        return max(self.attribution_ms.values())


def parse_policy(text: str, source: str = "policy.toml") -> Policy:
    """Validate a flow policy document; raises ``ConfigurationError`` naming line and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from None
    r = Reader(text, source)
    r.known(data, TOP_KEYS, "")
    mode = data.get("mode", "live")
    if mode not in ("live", "dry_run"):
        raise r.fail("mode", "must be 'live' or 'dry_run'")
    elig = r.table(data, "eligibility", "eligibility")
    r.known(elig, ELIGIBILITY_KEYS, "eligibility")
    max_per_day = elig.get("max_per_day", 3)
    if not isinstance(max_per_day, int) or max_per_day < 1:
        raise r.fail("eligibility.max_per_day", "must be an integer >= 1")
    channels = {ch: _channel(r, r.table(elig, ch, f"eligibility.{ch}"), ch) for ch in CHANNELS}
    attribution_table = r.table(data, "attribution", "attribution")
    r.known(attribution_table, ATTRIBUTION_KEYS, "attribution")
    defaults = {"sms": "1d", "email": "5d"}
    attribution = {
        ch: r.duration(attribution_table, ch, f"attribution.{ch}", defaults[ch]) for ch in CHANNELS
    }
    return Policy(
        flows=_flows(r, r.table(data, "flows", "flows")),
        channels=channels,
        max_per_day=max_per_day,
        reentry_cooldown_ms=r.duration(
            elig, "reentry_cooldown", "eligibility.reentry_cooldown", "24h"
        ),
        attribution_ms=attribution,
        incentives=parse_incentives(r, r.table(data, "incentives", "incentives")),
        stores=parse_stores(r, r.table(data, "stores", "stores")),
        mode=mode,
    )


def _channel(r: Reader, data: Mapping[str, Any], channel: Channel) -> ChannelRules:
    path = f"eligibility.{channel}"
    r.known(data, CHANNEL_KEYS, path)
    consent = data.get("consent", "opt_in")
    if consent not in ("opt_in", "opt_in_or_soft"):
        raise r.fail(f"{path}.consent", "must be 'opt_in' or 'opt_in_or_soft'")
    if channel == "sms" and consent != "opt_in":
        raise r.fail(f"{path}.consent", "SMS needs an explicit opt-in (TCPA): use 'opt_in'")
    default_interval = "24h" if channel == "sms" else "16h"
    quiet = data.get("quiet_hours", "20:00-08:00" if channel == "sms" else "")
    return ChannelRules(
        consent=consent,
        min_interval_ms=r.duration(data, "min_interval", f"{path}.min_interval", default_interval),
        quiet_hours=_quiet(r, quiet, f"{path}.quiet_hours"),
    )


def _quiet(r: Reader, value: object, path: str) -> QuietHours | None:
    if value == "":
        return None
    if not isinstance(value, str) or value.count("-") != 1:
        raise r.fail(path, "write the quiet window as 'HH:MM-HH:MM' (local time), or ''")
    start, end = (_clock(r, part.strip(), path) for part in value.split("-"))
    if start == end:
        raise r.fail(path, "start and end are equal; use '' for no quiet hours")
    return QuietHours(start, end)


def _clock(r: Reader, value: str, path: str) -> time:
    match = _CLOCK.match(value)
    if match is None:
        raise r.fail(path, f"{value!r} is not a 24-hour time like 08:00")
    return time(int(match.group(1)), int(match.group(2)))


def _flows(r: Reader, data: Mapping[str, Any]) -> dict[str, Flow]:
    flows: dict[str, Flow] = {}
    for name, raw in data.items():
        path = f"flows.{name}"
        if not isinstance(raw, dict):
            raise r.fail(path, "must be a table")
        r.known(raw, FLOW_KEYS, path)
        trigger = next((t for t in TRIGGERS if raw.get("trigger") == t), None)
        if trigger is None:
            raise r.fail(f"{path}.trigger", f"must be one of {list(TRIGGERS)}")
        steps_raw = raw.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise r.fail(f"{path}.steps", "give at least one [[...steps]] table")
        steps = tuple(_step(r, s, f"{path}.steps[{i}]") for i, s in enumerate(steps_raw))
        for before, after in itertools.pairwise(steps):
            if after.after_ms < before.after_ms:
                raise r.fail(f"{path}.steps", "steps must be in order of their 'after'")
        experiment = None
        if "experiment" in raw:
            experiment = _experiment(r, raw["experiment"], f"{path}.experiment", name)
        priority = raw.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise r.fail(f"{path}.priority", "must be an integer (the highest goes first)")
        for key, triggers in (("lookback", CATALOGUE_TRIGGERS), ("min_drop", {"price_drop"})):
            if key in raw and trigger not in triggers:
                only = " and ".join(t for t in TRIGGERS if t in triggers)
                raise r.fail(f"{path}.{key}", f"only {only} flows take it, not {trigger}")
        lookback = DEFAULT_LOOKBACK_MS
        if "lookback" in raw:
            lookback = r.duration(raw, "lookback", f"{path}.lookback", None)
            if lookback <= 0:
                raise r.fail(f"{path}.lookback", "must be longer than 0")
        cooldown = None
        if "reentry_cooldown" in raw:
            cooldown = r.duration(raw, "reentry_cooldown", f"{path}.reentry_cooldown", None)
        flows[name] = Flow(
            name,
            trigger,
            steps,
            experiment,
            priority=priority,
            when=_condition(r, raw, path),
            lookback_ms=lookback,
            min_drop=_min_drop(r, raw, path),
            reentry_cooldown_ms=cooldown,
        )
    return flows


def _condition(r: Reader, raw: Mapping[str, Any], path: str) -> Condition | None:
    """``raw["when"]`` compiled and checked (streams.core.conditions), or None when absent."""
    if "when" not in raw:
        return None
    expr = raw["when"]
    if not isinstance(expr, str) or not expr.strip():
        raise r.fail(f"{path}.when", "must be a CEL expression, like 'cart.value >= 150.0'")
    return compile_condition(expr, f"{r.where(f'{path}.when')}: {path}.when")


def _min_drop(r: Reader, raw: Mapping[str, Any], path: str) -> Decimal:
    """``min_drop`` as a fraction: ``10`` and ``"10%"`` are 0.10."""
    value = raw.get("min_drop")
    if value is None:
        return DEFAULT_MIN_DROP
    text = value.strip().removesuffix("%").strip() if isinstance(value, str) else value
    try:
        percent = Decimal(str(text)) if not isinstance(text, bool) else None
    except InvalidOperation:
        percent = None
    if percent is None or not percent.is_finite() or not 0 < percent < 100:
        raise r.fail(
            f"{path}.min_drop", f"{value!r} is not a percentage above 0 and below 100, like 10"
        )
    return percent / 100


def _step(r: Reader, raw: object, path: str) -> Step:
    if not isinstance(raw, dict):
        raise r.fail(path, "must be a table")
    r.known(raw, STEP_KEYS, path)
    channel = raw.get("channel")
    if channel not in CHANNELS:
        raise r.fail(f"{path}.channel", "must be 'sms' or 'email'")
    template = r.string(raw, "template", f"{path}.template", None)
    if not TEMPLATE_NAME.match(template):
        raise r.fail(f"{path}.template", "a template name is [a-z0-9_-], like cart_sms_1")
    after = r.duration(raw, "after", f"{path}.after", None)
    expires = r.duration(raw, "expires_after", f"{path}.expires_after", "48h")
    if expires <= after:
        raise r.fail(f"{path}.expires_after", "must be longer than 'after'")
    incentive = raw.get("incentive", False)
    if not isinstance(incentive, bool):
        raise r.fail(f"{path}.incentive", "must be true or false")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise r.fail(f"{path}.enabled", "must be true or false")
    when = _condition(r, raw, path)
    written = raw["after"]
    text = f"{written}s" if isinstance(written, int) else str(written)
    return Step(after, channel, template, expires, incentive, enabled, when, text)


def _experiment(r: Reader, raw: object, path: str, flow: str) -> Experiment:
    if not isinstance(raw, dict):
        raise r.fail(path, "must be a table")
    r.known(raw, EXPERIMENT_KEYS, path)
    holdout = raw.get("holdout", 0.0)
    if not isinstance(holdout, int | float) or not 0 <= holdout < 1:
        raise r.fail(f"{path}.holdout", "must be a share in [0, 1), e.g. 0.1")
    variants_raw = raw.get("variants", [{"name": "control", "weight": 1}])
    if not isinstance(variants_raw, list) or not variants_raw:
        raise r.fail(f"{path}.variants", "give at least one variant")
    variants = []
    for i, item in enumerate(variants_raw):
        vpath = f"{path}.variants[{i}]"
        if not isinstance(item, dict):
            raise r.fail(vpath, "must be a table")
        r.known(item, VARIANT_KEYS, vpath)
        weight = item.get("weight", 1)
        if not isinstance(weight, int | float) or weight <= 0:
            raise r.fail(f"{vpath}.weight", "must be a number > 0")
        templates = item.get("templates", {})
        if not isinstance(templates, dict) or not all(
            isinstance(v, str) and TEMPLATE_NAME.match(v) for v in templates.values()
        ):
            raise r.fail(f"{vpath}.templates", "map step templates to template names")
        incentive = item.get("incentive", True)
        if not isinstance(incentive, bool):
            raise r.fail(f"{vpath}.incentive", "must be true or false")
        name = r.string(item, "name", f"{vpath}.name", None)
        if name == "holdout":
            raise r.fail(f"{vpath}.name", "'holdout' is reserved for the holdout group")
        delay = r.duration(item, "delay", f"{vpath}.delay", "0s")
        variants.append(Variant(name, float(weight), dict(templates), delay, incentive))
    if len({v.name for v in variants}) != len(variants):
        raise r.fail(f"{path}.variants", "variant names must be unique")
    name = r.string(raw, "name", f"{path}.name", flow)
    return Experiment(name, float(holdout), tuple(variants))
