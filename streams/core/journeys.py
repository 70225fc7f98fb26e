"""The journey engine , pure: one customer's state + one input + ``now`` → decisions.

``JourneyEngine`` methods take a ``CustomerState``, an input and ``now`` (epoch ms on the
engine's clock: the watermark in event mode, the wall clock in live mode), change the state in
place and return ``Outputs``: send commands, decisions (every start, schedule, deferral, skip
and end with its reason) and recoveries. No Faust, Kafka, Redis or clock reads; the worker's
journeys agent and ``cartpulse journeys`` call the same methods.

Rules, precisely:

* A step is due at ``last_activity + after (+ the variant's delay)`` and expires at
  ``last_activity + expires_after``. It is checked when scheduled (consent, address) and again
  when due (also quiet hours and caps). A step blocked by quiet hours or a cap is deferred to
  the first moment both allow, unless that is at or past its expiry; then it is skipped.
* Commands carry the step's due moment as ``created_at`` and ``not_before`` (not the wall
  clock), so a replay of the same inputs gives byte-identical commands.
* An order of the customer that occurred at or after a journey's start ends it as converted:
  its pending steps are dropped, whenever the order arrives. A cart journey supersedes a browse
  journey; a new cart abandonment while a cart journey runs only updates its cart. A customer
  enters a flow at most once per re-entry cooldown. An opt-out drops that channel's pending
  steps at once.
* Attribution: an order within the channel's window after a sent message is a recovery
  credited to the latest such message. A result that says the message did not go out
  (failed, suppressed, expired, undelivered) removes it from the touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from streams.contract.commands import Channel, Mode, SendCommand, SendResult, is_undeliverable
from streams.contract.ids import stable_id
from streams.contract.journey import (
    AbandonmentIn,
    Action,
    ConsentChange,
    Decision,
    EngagementIn,
    OrderIn,
    Profile,
    Recovery,
    cart_value,
)
from streams.contract.products import ProductVersion
from streams.core.catalogue import Catalogue
from streams.core.conditions import Condition, ConditionError
from streams.core.eligibility import (
    HOLDOUT,
    address_for,
    assign_variant,
    cap_free_at,
    consent_reason,
    coupon_code,
    next_allowed,
    resolve_zone,
)
from streams.core.flow_context import condition_context, shown_at
from streams.core.journey_state import (
    CustomerState,
    Journey,
    KnownOrder,
    Seen,
    StepState,
    Touch,
)
from streams.core.messages import CART_KINDS, build_command, journey_id_of
from streams.core.policy import ChannelRules, Flow, Policy, Step, Trigger
from streams.core.stores import NOTICE_WINDOW_MS, Store

NOT_SENT: Final = frozenset({"failed", "suppressed", "expired", "undelivered"})
# A send result's error_code when a coupon step was not sent (senders/coupons/gate.py).
COUPON_UNAVAILABLE: Final = "coupon_unavailable"
MAX_ORDERS: Final = 32
# Reasons that skip a step as soon as it is scheduled; the others are checked again when due.
FINAL_AT_SCHEDULE: Final = frozenset({HOLDOUT, "opted_out", "undeliverable"})
MAX_DEFERRALS: Final = 50  # a step deferred this often is skipped (a policy that never allows)
CATALOGUE_TRIGGERS: Final[tuple[Trigger, ...]] = ("back_in_stock", "price_drop")  # this order
MAX_SEEN: Final = 64  # products kept per customer for the catalogue triggers
MAX_ENGAGED: Final = 32  # clicks and opens kept per customer
SEEN_FIELDS: Final = frozenset({"name", "url", "image_url", "currency"})


# Every reason a decision can carry: a closed set, so metrics labels stay low-cardinality.
REASONS: Final = frozenset(
    {
        "cart", "browse", "checkout", "price_drop", "back_in_stock", "eligible",
        "awaiting_consent", "awaiting_address",
        "sent_to_channel", "cart_changed", "converted", "completed",
        "superseded", "replaced", "opted_out", "no_consent", "no_address", "undeliverable",
        "expired", "holdout", "quiet_hours", "sms_cap", "email_cap", "daily_cap", "anonymous",
        "no_flow", "duplicate", "cart_journey_active", "journey_active",
        "reentry_cooldown", "expired_quiet_hours", "expired_sms_cap", "expired_email_cap",
        "expired_daily_cap", "no_flow_matches", "condition", "condition_error", "out_of_stock",
        "coupon_unavailable",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Target:
    """Where a step that may be sent goes: its spec, its channel's rules, the store, the address."""

    spec: Step
    rules: ChannelRules
    store: Store
    address: str


@dataclass(slots=True)
class Outputs:
    commands: list[SendCommand] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)

    def extend(self, other: Outputs) -> None:
        self.commands += other.commands
        self.decisions += other.decisions
        self.recoveries += other.recoveries


class JourneyEngine:
    """Applies the policy to one customer at a time; holds no per-customer state itself."""

    def __init__(
        self,
        policy: Policy,
        coupon_secret: bytes,
        dry_run: bool = False,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.policy = policy
        self.coupon_secret = coupon_secret
        self.mode: Mode = "dry_run" if dry_run or policy.mode == "dry_run" else "live"
        # The catalogue as the worker (or ``cartpulse journeys --products``) knows it; steps
        # read it as of their own moment.
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        # condition source → the context roots it names, and whether it reads the cart's lines
        self._reads: dict[str, tuple[frozenset[str], bool]] = {}
        # How long a seen product is watched: the longest lookback of a catalogue flow (0:
        # the policy has none, and abandonments' products are not kept).
        self.watch_ms = max(
            (f.lookback_ms for f in policy.flows.values() if f.trigger in CATALOGUE_TRIGGERS),
            default=0,
        )

    # -- inputs ------------------------------------------------------------------------

    def on_abandonment(self, state: CustomerState, ab: AbandonmentIn, now: int) -> Outputs:
        out = self.advance(state, now)
        self._remember(state, ab)
        flows = self.policy.flows_for
        candidates = flows("cart") if ab.kind == "cart" else flows("browse")
        if ab.kind == "cart" and ab.checkout_started:
            candidates = flows("checkout") + candidates
        self._enter(out, state, ab, candidates)
        out.extend(self.advance(state, now))
        return out

    def on_product(self, state: CustomerState, version: ProductVersion, now: int) -> Outputs:
        """A catalogue change of a product the customer saw: a price drop or a restock may
        start a journey (docs/semantics.md, Catalogue triggers)."""
        out = self.advance(state, version.updated_ms)
        seen = state.seen.get(version.product_id)
        if seen is not None and version.updated_ms > seen.at_ms:
            for trigger in CATALOGUE_TRIGGERS:
                flows = tuple(
                    f for f in self.policy.flows_for(trigger) if _qualifies(f, seen, version)
                )
                if flows:
                    ab = _catalogue_abandonment(state.customer_id, trigger, seen, version)
                    self._enter(out, state, ab, flows, key=version.product_id)
        out.extend(self.advance(state, now))
        return out

    def on_engagement(self, state: CustomerState, item: EngagementIn, now: int) -> Outputs:
        out = self.advance(state, min(now, item.occurred_ms))
        if (item.kind, item.occurred_ms) not in state.engaged:
            state.engaged = sorted([*state.engaged, (item.kind, item.occurred_ms)])[-MAX_ENGAGED:]
        out.extend(self.advance(state, now))
        return out

    def _enter(
        self,
        out: Outputs,
        state: CustomerState,
        ab: AbandonmentIn,
        candidates: tuple[Flow, ...],
        key: str | None = None,
    ) -> None:
        """Start the journey of the first candidate flow whose condition holds, or say why
        none starts. ``key``: the product a catalogue trigger is about (its cooldown is per
        flow and product)."""
        at = ab.detected_ms

        def ignore(reason: str, flow_name: str | None = None) -> None:
            out.decisions.append(
                Decision(
                    at, state.customer_id, "ignored", reason,
                    abandonment_id=ab.abandonment_id, flow=flow_name,
                )
            )  # fmt: skip

        if not candidates:
            return ignore("no_flow")
        known = next((j for j in state.journeys if j.abandonment_id == ab.abandonment_id), None)
        if known is not None:
            return ignore("duplicate", known.flow)
        label = candidates[0].name
        for journey in state.journeys:
            if not journey.active:
                continue
            if journey.kind in CART_KINDS and ab.kind == "cart":
                journey.cart, journey.viewed_products = ab.cart, ab.viewed_products
                journey.checkout_started = journey.checkout_started or ab.checkout_started
                return self._decide(out, state, journey, "updated", "cart_changed", at)
            if journey.kind in CART_KINDS:
                return ignore("cart_journey_active", label)
            if ab.kind != "cart":
                return ignore("journey_active", label)
        flow = self._choose(out, state, ab, candidates)
        if flow is None:
            return ignore("no_flow_matches")
        for journey in [j for j in state.journeys if j.active]:
            self._end(out, state, journey, "superseded", at)  # a cart supersedes the others
        entry = flow.name if key is None else f"{flow.name}:{key}"
        entered = state.entries.get(entry)
        cooldown = self.policy.reentry_cooldown_for(flow)
        if entered is not None and ab.last_activity_ms - entered < cooldown:
            return ignore("reentry_cooldown", flow.name)
        # One journey per flow: a tracked (finished) one of the same flow ends here.
        for journey in [j for j in state.journeys if j.flow == flow.name]:
            self._end(out, state, journey, "replaced", at)
        journey = self._start(out, state, flow, ab, entry)
        # Orders already seen that happened after the shopper left (a replay may deliver
        # them first): the steps due before each go out, then the order converts the journey.
        for index, known_order in enumerate(list(state.orders)):
            if known_order.occurred_ms >= journey.started_ms and not journey.converted:
                out.extend(self.advance(state, known_order.occurred_ms))
                credited = self._convert(out, state, known_order, [journey])
                state.orders[index] = known_order._replace(credited=credited)
        return None

    def _choose(
        self, out: Outputs, state: CustomerState, ab: AbandonmentIn, candidates: tuple[Flow, ...]
    ) -> Flow | None:
        """The first flow (highest priority first) whose ``when`` holds at the abandonment;
        each flow passed over is a decision ``ignored`` with reason ``condition`` (or
        ``condition_error`` when it could not be evaluated)."""
        store = self.policy.store(ab.store_id)
        for flow in candidates:
            if flow.when is None:
                return flow
            context = self._context(
                flow.when, state, ab.kind, ab.checkout_started, ab.cart, ab.viewed_products,
                store, ab.detected_ms, since=ab.last_activity_ms, messages_sent=0,
            )  # fmt: skip
            reason = "condition"
            try:
                if flow.when.holds(context):
                    return flow
            except ConditionError:
                reason = "condition_error"
            out.decisions.append(
                Decision(
                    ab.detected_ms, state.customer_id, "ignored", reason,
                    abandonment_id=ab.abandonment_id, flow=flow.name,
                )
            )  # fmt: skip
        return None

    def _context(
        self,
        condition: Condition,
        state: CustomerState,
        kind: str,
        checkout_started: bool,
        cart: dict[str, Any],
        viewed: list[Any],
        store: Store,
        at: int,
        *,
        since: int,
        messages_sent: int,
    ) -> dict[str, Any]:
        reads = self._reads.get(condition.source)
        if reads is None:
            # the roots it names, and whether it names the cart's lines: handing CEL the lines
            # costs most, so a condition that does not read them gets none
            names = frozenset(condition.program.variables())
            reads = self._reads[condition.source] = (names, "items" in condition.source)
        roots, reads_items = reads
        profile = state.profile
        items = cart.get("items") if reads_items else None
        return condition_context(
            roots,
            kind=kind,
            checkout_started=checkout_started,
            cart=cart,
            items=items if isinstance(items, list) else [],
            viewed=viewed,
            profile=profile,
            messages_sent=messages_sent,
            engaged=[k for k, t in state.engaged if since <= t <= at],
            at_ms=at,
            zone=resolve_zone(profile.timezone if profile else None, store.timezone),
            catalogue=self.catalogue,
        )

    def _remember(self, state: CustomerState, ab: AbandonmentIn) -> None:
        """Keep the products of an abandonment, as the customer saw them, for the catalogue
        triggers (only when the policy has such flows)."""
        if not self.watch_ms:
            return
        lines = [*(ab.cart.get("items") or []), *ab.viewed_products]
        catalogue = self.catalogue if len(self.catalogue) else None
        for item in reversed(lines):  # a cart line wins over the same product viewed
            if not isinstance(item, dict):
                continue
            product_id = item.get("product_id")
            if not isinstance(product_id, str):
                continue
            version = catalogue.as_of(product_id, ab.last_activity_ms) if catalogue else None
            price = item.get("price")
            state.seen[product_id] = Seen(
                ab.last_activity_ms,
                None if price is None else str(price),
                version.in_stock if version is not None else True,
                ab.store_id,
                {k: item[k] for k in SEEN_FIELDS if item.get(k) is not None},
            )
        # Sightings older than the longest lookback fire nothing (``_qualifies``): they go
        # when the customer is seen again, not on every tick.
        cutoff = ab.last_activity_ms - self.watch_ms
        if any(v.at_ms <= cutoff for v in state.seen.values()):
            state.seen = {p: v for p, v in state.seen.items() if v.at_ms > cutoff}
        if len(state.seen) > MAX_SEEN:
            newest = sorted(state.seen.items(), key=lambda kv: (kv[1].at_ms, kv[0]))[-MAX_SEEN:]
            state.seen = dict(newest)

    def on_order(self, state: CustomerState, order: OrderIn, now: int) -> Outputs:
        # Steps due up to the order's time go out before it, whatever the partition's clock
        # says; steps due after it never do. Then the clock moves on.
        out = self.advance(state, order.occurred_ms)
        if any(known.event_id == order.event_id for known in state.orders):
            out.extend(self.advance(state, now))
            return out
        state.ordered = True
        value = None if order.value is None else str(order.value)
        known = KnownOrder(
            order.occurred_ms, order.event_id, order.order_id, value, order.currency, False,
            order.discount_codes,
        )  # fmt: skip
        credited = self._convert(out, state, known, state.journeys)
        state.orders = sorted([*state.orders, known._replace(credited=credited)])[-MAX_ORDERS:]
        out.extend(self.advance(state, now))
        return out

    def _convert(
        self, out: Outputs, state: CustomerState, order: KnownOrder, journeys: list[Journey]
    ) -> bool:
        """End ``journeys`` the order converts; credit it to the last touch. True if credited."""
        for journey in journeys:
            if journey.converted or not journey.started_ms <= order.occurred_ms < journey.ends_ms:
                continue
            journey.converted = True
            self._skip_pending(out, state, journey, "converted", order.occurred_ms)
            self._decide(
                out, state, journey, "ended", "converted", order.occurred_ms, value=order.value
            )
        touch = None if order.credited else self._last_touch(state, order.occurred_ms)
        credited = next(
            (j for j in state.journeys if touch and j.journey_id == touch.journey_id), None
        )
        if touch is None or credited is None:
            return order.credited
        out.recoveries.append(
            Recovery(
                state.customer_id, order.event_id, order.order_id, order.occurred_ms,
                None if order.value is None else Decimal(order.value), order.currency,
                credited.journey_id, credited.abandonment_id, credited.flow, credited.variant,
                touch.channel, touch.command_id, credited.store_id,
                self._coupon_used(state, order),
            )
        )  # fmt: skip
        return True

    def _coupon_used(self, state: CustomerState, order: KnownOrder) -> str | None:
        """The coupon of one of the customer's journeys that ``order`` used, if any (a code
        is the HMAC of its journey id: only that journey's messages carried it)."""
        used = {c.strip().upper() for c in order.coupon_codes}
        if not used:
            return None
        prefix = self.policy.incentives.code_prefix
        for journey in state.journeys:
            code = coupon_code(self.coupon_secret, journey.journey_id, prefix)
            if code.upper() in used:
                return code
        return None

    def on_profile(self, state: CustomerState, profile: Profile, now: int) -> Outputs:
        out = self.advance(state, now)
        state.profile = profile
        return out

    def on_consent(self, state: CustomerState, change: ConsentChange, now: int) -> Outputs:
        # Steps due before the change see the old consent; an opt-out wins a tie.
        before = change.recorded_ms - (1 if change.status == "opted_out" else 0)
        out = self.advance(state, min(now, before)) if change.status else Outputs()
        self._apply_consent(out, state, change)
        out.extend(self.advance(state, now))
        return out

    def _apply_consent(self, out: Outputs, state: CustomerState, change: ConsentChange) -> None:
        current = state.consents.get(change.channel)
        if current is not None and current[1] > change.recorded_ms:
            return  # an older record (a replay): the ledger never moves backwards
        if change.status is None:
            state.consents.pop(change.channel, None)
            return
        state.consents[change.channel] = (change.status, change.recorded_ms, change.source)
        if change.status == "opted_out":
            for journey in state.journeys:
                self._skip_pending(
                    out, state, journey, "opted_out", change.recorded_ms, change.channel
                )

    def on_result(self, state: CustomerState, result: SendResult, now: int) -> Outputs:
        out = self.advance(state, now)
        if result.status in NOT_SENT:
            state.touches = [t for t in state.touches if t.command_id != result.command_id]
            # An opt-out notice that never reached the number is due again.
            state.notices = {a: n for a, n in state.notices.items() if n[1] != result.command_id}
        if result.error_code == COUPON_UNAVAILABLE:
            self._coupon_unavailable(out, state, result)
        channel = result.channel
        if channel is not None and is_undeliverable(channel, result.error_code):
            address = self._address(state, channel)
            if address:
                state.undeliverable[channel] = address
        return out

    def _coupon_unavailable(self, out: Outputs, state: CustomerState, result: SendResult) -> None:
        """The sender did not send a step because the store never registered its coupon (or
        no longer honours it): the step is skipped, and the trail says why."""
        for journey in state.journeys:
            for step in journey.steps:
                if step.command_id == result.command_id and step.status == "emitted":
                    at = int(result.at.timestamp() * 1000)
                    self._skip(out, state, journey, step, COUPON_UNAVAILABLE, at)
                    return

    # -- time --------------------------------------------------------------------------

    def advance(self, state: CustomerState, now: int) -> Outputs:
        """Fire every step due at or before ``now``; end journeys whose window has passed."""
        out = Outputs()
        for _ in range(MAX_DEFERRALS * 4):
            due = [
                (step.due_ms, journey.started_ms, step.index, journey, step)
                for journey in state.journeys
                if not journey.converted
                for step in journey.steps
                if step.status == "pending" and step.due_ms <= now
            ]
            if not due:
                break
            _, _, _, journey, step = min(due, key=lambda d: (d[0], d[1], d[2]))
            self._fire(out, state, journey, step)
        for journey in list(state.journeys):
            if not journey.active and journey.ends_ms <= now:
                state.journeys.remove(journey)
                if not journey.converted:
                    self._decide(out, state, journey, "ended", "completed", journey.ends_ms)
        window = max(self.policy.conversion_window_ms, 86_400_000)
        state.sends = [(ch, t) for ch, t in state.sends if t > now - window]
        state.touches = [t for t in state.touches if t.at_ms > now - window]
        state.orders = [o for o in state.orders if o.occurred_ms > now - window]
        state.notices = {a: n for a, n in state.notices.items() if n[0] > now - NOTICE_WINDOW_MS}
        state.engaged = [(k, t) for k, t in state.engaged if t > now - window]
        return out

    # -- internals ---------------------------------------------------------------------

    def _start(
        self, out: Outputs, state: CustomerState, flow: Flow, ab: AbandonmentIn, entry: str
    ) -> Journey:
        variant_name = assign_variant(flow.experiment, state.customer_id)
        variant = flow.variant(variant_name)
        delay = variant.delay_ms if variant else 0
        start = ab.last_activity_ms
        journey = Journey(
            journey_id=journey_id_of(state.customer_id, flow.name, ab.abandonment_id),
            flow=flow.name,
            kind=flow.trigger,
            abandonment_id=ab.abandonment_id,
            session_id=ab.session_id,
            store_id=ab.store_id,
            started_ms=start,
            ends_ms=start + self.policy.conversion_window_ms,
            variant=variant_name,
            checkout_started=ab.checkout_started,
            cart=ab.cart,
            viewed_products=ab.viewed_products,
            steps=[
                StepState(i, start + s.after_ms + delay, start + s.expires_after_ms)
                for i, s in enumerate(flow.steps)
                if s.enabled
            ],
        )
        state.journeys.append(journey)
        state.entries[entry] = start
        self._decide(out, state, journey, "started", flow.trigger, ab.detected_ms)
        for step in journey.steps:
            target = HOLDOUT if variant_name == HOLDOUT else self._target(state, journey, step)
            if isinstance(target, str) and target in FINAL_AT_SCHEDULE:
                self._skip(out, state, journey, step, target, ab.detected_ms)
                continue
            # Missing consent or address may still come (a profile or opt-in arriving after
            # the abandonment): the step waits and is checked again when due.
            why = (
                f"awaiting_{target.removeprefix('no_')}" if isinstance(target, str) else "eligible"
            )
            self._decide(out, state, journey, "scheduled", why, ab.detected_ms, step)
        return journey

    def _target(self, state: CustomerState, journey: Journey, step: StepState) -> Target | str:
        """Where the step goes, or why it can't be sent at all (a reason: consent, address)."""
        spec = self._step(journey, step)
        rules = self.policy.channels[spec.channel]
        store = self.policy.store(journey.store_id)
        status = state.consents.get(spec.channel, (None,))[0]
        profile = state.profile
        existing = state.ordered or (profile is not None and profile.existing_customer)
        reason = consent_reason(spec.channel, status, rules, store.soft_opt_in, existing)
        if reason is not None:
            return reason
        address = self._address(state, spec.channel)
        if address is None:
            return "no_address"
        if state.undeliverable.get(spec.channel) == address:
            return "undeliverable"
        return Target(spec, rules, store, address)

    def _fire(self, out: Outputs, state: CustomerState, journey: Journey, step: StepState) -> None:
        at = step.due_ms
        target = self._target(state, journey, step)
        if isinstance(target, str):
            self._skip(out, state, journey, step, target, at)
            return
        if at >= step.expires_ms:
            self._skip(out, state, journey, step, "expired", at)
            return
        spec, rules = target.spec, target.rules
        profile = state.profile
        zone = resolve_zone(profile.timezone if profile else None, target.store.timezone)
        # The first rule that holds the step back names the deferral; None while none does.
        allowed, reason = at, None
        for _ in range(8):  # quiet hours and caps may push each other; settle on one moment
            quiet = next_allowed(allowed, zone, rules.quiet_hours)
            if quiet > allowed:
                allowed, reason = quiet, reason or "quiet_hours"
            capped, cap = cap_free_at(
                state.sends, spec.channel, allowed, rules, self.policy.max_per_day
            )
            if cap is None:  # the caps allow ``allowed`` (cap_free_at moved nothing)
                break
            allowed, reason = capped, reason or cap
        if reason is not None:  # held back to ``allowed`` (later than ``at``)
            if allowed >= step.expires_ms or step.deferrals >= MAX_DEFERRALS:
                self._skip(out, state, journey, step, f"expired_{reason}", at)
                return
            step.due_ms, step.deferrals = allowed, step.deferrals + 1
            self._decide(out, state, journey, "deferred", reason, at, step)
            return
        if spec.when is not None and not self._step_holds(state, journey, spec, at):
            self._skip(out, state, journey, step, f"condition:{spec.template}", at)
            return
        shown, nothing_left = shown_at(
            journey.cart, journey.viewed_products, self.catalogue, at,
            target.store.low_stock_threshold, journey.kind in CART_KINDS,
        )  # fmt: skip
        if nothing_left:
            self._skip(out, state, journey, step, "out_of_stock", at)
            return
        notice = self._opt_out_notice(state, target, at)
        command = build_command(self.policy, self.coupon_secret, self.mode, state, journey,
                                step, target.address, notice, shown)  # fmt: skip
        if spec.channel == "sms" and notice:
            state.notices[target.address] = (at, command.command_id)
        step.status, step.command_id = "emitted", command.command_id
        state.sends.append((spec.channel, at))
        state.touches.append(Touch(spec.channel, at, journey.journey_id, command.command_id))
        out.commands.append(command)
        self._decide(out, state, journey, "emitted", "sent_to_channel", at, step,
                     command_id=command.command_id)  # fmt: skip

    def _step_holds(self, state: CustomerState, journey: Journey, spec: Step, at: int) -> bool:
        """A step's ``when`` at the moment it would be sent (an evaluation error: false)."""
        if spec.when is None:
            return True
        context = self._context(
            spec.when, state, journey.kind, journey.checkout_started, journey.cart,
            journey.viewed_products, self.policy.store(journey.store_id), at,
            since=journey.started_ms,
            messages_sent=sum(1 for s in journey.steps if s.status == "emitted"),
        )  # fmt: skip
        try:
            return spec.when.holds(context)
        except ConditionError:
            return False

    def _opt_out_notice(self, state: CustomerState, target: Target, at: int) -> bool:
        """Whether this SMS ends with the opt-out line: always, unless the store's rule is
        first_in_30_days and the number got one within 30 days (docs/semantics.md)."""
        if target.store.sms_opt_out == "every_message":
            return True
        last = state.notices.get(target.address)
        return last is None or at - last[0] >= NOTICE_WINDOW_MS

    def _step(self, journey: Journey, step: StepState) -> Step:
        return self.policy.flows[journey.flow].steps[step.index]

    def _address(self, state: CustomerState, channel: Channel) -> str | None:
        profile = state.profile
        if profile is None:
            return None
        return address_for(channel, profile.phone, profile.email)

    def _last_touch(self, state: CustomerState, at: int) -> Touch | None:
        windows = self.policy.attribution_ms
        eligible = [t for t in state.touches if t.at_ms <= at < t.at_ms + windows[t.channel]]
        return max(eligible, key=lambda t: t.at_ms) if eligible else None

    def _end(self, out: Outputs, state: CustomerState, journey: Journey, why: str, at: int) -> None:
        self._skip_pending(out, state, journey, why, at)
        state.journeys.remove(journey)
        self._decide(out, state, journey, "ended", why, at)

    def _skip(
        self,
        out: Outputs,
        state: CustomerState,
        journey: Journey,
        step: StepState,
        why: str,
        at: int,
    ) -> None:
        """Skip one step, and say why."""
        step.status = "skipped"
        self._decide(out, state, journey, "skipped", why, at, step)

    def _skip_pending(
        self,
        out: Outputs,
        state: CustomerState,
        journey: Journey,
        why: str,
        at: int,
        channel: Channel | None = None,
    ) -> None:
        """Skip every pending step of ``journey`` (only those on ``channel``, when given)."""
        for step in journey.steps:
            if step.status != "pending":
                continue
            if channel is None or self._step(journey, step).channel == channel:
                self._skip(out, state, journey, step, why, at)

    def _decide(
        self,
        out: Outputs,
        state: CustomerState,
        journey: Journey,
        action: Action,
        reason: str,
        at: int,
        step: StepState | None = None,
        command_id: str | None = None,
        value: str | None = None,
    ) -> None:
        out.decisions.append(
            Decision(
                at_ms=at,
                customer_id=state.customer_id,
                action=action,
                reason=reason,
                journey_id=journey.journey_id,
                abandonment_id=journey.abandonment_id,
                flow=journey.flow,
                variant=journey.variant,
                step=None if step is None else step.index,
                channel=None if step is None else self._step(journey, step).channel,
                due_ms=None if step is None else step.due_ms,
                command_id=command_id,
                value=value,
            )
        )


def _qualifies(flow: Flow, seen: Seen, version: ProductVersion) -> bool:
    """Whether ``version`` of a product the customer saw fires ``flow``'s trigger."""
    if version.updated_ms - seen.at_ms > flow.lookback_ms or not version.in_stock:
        return False
    if flow.trigger == "back_in_stock":
        return not seen.in_stock
    was = cart_value({"value": seen.price})
    return (
        was is not None and version.price is not None and version.price <= was * (1 - flow.min_drop)
    )


def _catalogue_abandonment(
    customer_id: str, trigger: str, seen: Seen, version: ProductVersion
) -> AbandonmentIn:
    """A catalogue trigger as the journeys take it: an abandonment of the one product, at the
    catalogue change (delays count from it)."""
    product = {**seen.item, "product_id": version.product_id, "price": seen.price}
    return AbandonmentIn(
        abandonment_id=stable_id("ct", 12, trigger, customer_id, version.product_id,
                                 version.updated_ms),
        kind=trigger,
        session_id="",
        customer_id=customer_id,
        store_id=version.store_id or seen.store_id,
        last_activity_ms=version.updated_ms,
        detected_ms=version.updated_ms,
        checkout_started=False,
        cart={},
        viewed_products=[{k: v for k, v in product.items() if v is not None}],
    )  # fmt: skip


def anonymous(ab: AbandonmentIn) -> Decision:
    """The decision for an abandonment without a known customer: nobody to message."""
    return Decision(
        ab.detected_ms, "", "ignored", "anonymous", abandonment_id=ab.abandonment_id, flow=ab.kind
    )


__all__ = ["REASONS", "JourneyEngine", "Outputs", "anonymous"]
