"""``cartpulse policy explain``: which flow an abandonment would enter, and why.

The journey engine itself decides, on a customer with nothing else known (no journeys, no
orders, no sends): the abandonment enters as it would in the worker, and the decisions it
records are told as sentences: each flow tried in order with its condition's verdict, the
flow entered, and each step with when it is due and whether it could be sent (consent,
address, holdout). Nothing is read from or written to Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.contract.commands import CHANNELS
from streams.contract.errors import InvalidRecord
from streams.contract.events import format_ms
from streams.contract.journey import AbandonmentIn, Decision, Profile
from streams.core.journey_state import CustomerState
from streams.core.journeys import JourneyEngine
from streams.core.policy import Policy

# What each decision reason means, for a reader who has not read the engine.
_WHY = {
    "condition": "its condition is false",
    "condition_error": "its condition could not be evaluated",
    "no_flow": "the policy has no flow for this trigger",
    "no_flow_matches": "no flow's condition holds: nothing is sent",
    "anonymous": "the abandonment has no customer_id: nobody to message",
    "eligible": "can be sent (checked again when due: quiet hours, caps, its condition)",
    "awaiting_consent": "no consent yet: sent only if an opt-in (or, for email where the "
    "store allows it, the soft opt-in of an existing customer) is known when due",
    "awaiting_address": "no address yet: sent only if the profile has one when due",
    "opted_out": "the customer opted out of this channel",
    "undeliverable": "the address is marked undeliverable",
    "holdout": "the customer is in the experiment's holdout: nothing is sent",
}


@dataclass(frozen=True, slots=True)
class Explanation:
    lines: list[str]
    decisions: list[Decision]


def explain(
    policy: Policy,
    abandonment: AbandonmentIn,
    profile: Profile | None,
    consents: dict[str, str],
) -> Explanation:
    """Run ``abandonment`` through the engine for a customer known only by ``profile`` and
    ``consents`` (channel → opted_in / opted_out), and tell what it decided."""
    customer = abandonment.customer_id or (profile.customer_id if profile else "")
    if not customer:
        return Explanation([_WHY["anonymous"]], [])
    for channel, status in consents.items():
        if channel not in CHANNELS or status not in ("opted_in", "opted_out"):
            raise InvalidRecord(f"--consent {channel}={status}: use sms|email=opted_in|opted_out")
    state = CustomerState(customer)
    state.profile = profile
    state.consents = {ch: (status, 0, "explain") for ch, status in consents.items()}
    engine = JourneyEngine(policy, b"cartpulse policy explain")
    outputs = engine.on_abandonment(state, abandonment, abandonment.detected_ms)
    trigger = abandonment.kind
    if abandonment.kind == "cart" and abandonment.checkout_started:
        trigger = "cart that reached checkout (checkout flows first, then cart flows)"
    lines = [f"{abandonment.abandonment_id}: a {trigger} abandonment of {customer}"]
    lines += [_sentence(policy, decision) for decision in outputs.decisions]
    return Explanation(lines, outputs.decisions)


def _sentence(policy: Policy, d: Decision) -> str:
    why = _WHY.get(d.reason, d.reason)
    flow = policy.flows.get(d.flow or "")
    if d.action == "ignored" and d.reason in ("condition", "condition_error") and flow:
        source = flow.when.source if flow.when else ""
        return f"  flow {d.flow} (priority {flow.priority}): not entered: {why} ({source})"
    if d.action == "ignored":
        return f"  not entered{f' ({d.flow})' if d.flow else ''}: {why}"
    if d.action == "started" and flow:
        condition = f"its condition holds ({flow.when.source})" if flow.when else "no condition"
        return (
            f"  flow {d.flow} (priority {flow.priority}): entered: {condition}; variant {d.variant}"
        )
    if d.step is not None and flow:
        step = flow.steps[d.step]
        due = format_ms(d.due_ms) if d.due_ms is not None else "?"
        when = f", when {step.when.source}" if step.when else ""
        return (
            f"    step {d.step} {step.channel} {step.template} due {due}{when}: {d.action}: {why}"
        )
    return f"  {d.action}: {why}"
