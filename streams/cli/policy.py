"""``cartpulse policy check``: is a flow policy file valid, and can every step be rendered?
``cartpulse policy explain``: which flow would an abandonment enter, and why
(streams.tools.policy_explain).

The same checks the worker, ``cartpulse journeys`` and the senders run when they load the
policy (streams.runtime.policy_file, senders.messages.packs); then the flows as an outline (per
trigger, in the
order they are tried, with their conditions and steps); then warnings that do not stop them:
a store that sends email without a postal address or SMS without a ``short_link_base``, a
template that only exists in a fallback language, coupons without ``CARTPULSE_COUPON_SECRET``,
short links without ``CARTPULSE_CLICK_SECRET``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.core.conditions import Condition
from streams.core.policy import CATALOGUE_TRIGGERS, TRIGGERS, Flow, Policy, Step
from streams.runtime.policy_file import load_policy, policy_location
from streams.runtime.settings import Settings


def add_parsers(commands: Any) -> None:
    policy = commands.add_parser(
        "policy",
        help="check a flow policy file, or explain what it does with an abandonment",
        description="Flow policy files (TOML): docs/semantics.md, Journeys.",
    )
    verbs = policy.add_subparsers(title="commands", metavar="COMMAND")
    check = verbs.add_parser(
        "check",
        help="validate a policy and its templates; exit 2 on errors",
        description="Validates FILE as the worker would load it, finds every step's template "
        "for every store (the store's folder, CARTPULSE_TEMPLATES_DIR, the shipped pack) and "
        "prints warnings that do not stop the worker.",
    )
    check.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="default: CARTPULSE_POLICY_FILE, else the shipped policy",
    )
    check.add_argument(
        "--templates-dir", type=Path, metavar="DIR", help="default: CARTPULSE_TEMPLATES_DIR"
    )
    check.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    check.set_defaults(run=run_check)
    explain = verbs.add_parser(
        "explain",
        help="which flow an abandonment would enter, and why",
        description="Runs one abandonment through the journey engine for a customer known "
        "only by --customer and --consent, and says which flows it tried, which it entered "
        "and whether each step could be sent (docs/semantics.md, Flows and conditions).",
    )
    explain.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="the policy; default: CARTPULSE_POLICY_FILE, else the shipped policy",
    )
    explain.add_argument(
        "--abandonment",
        required=True,
        metavar="JSON|@FILE",
        help="an abandonment record (the abandonments topic's shape)",
    )
    explain.add_argument(
        "--customer",
        metavar="JSON|@FILE",
        help="the customer's profile (the customers topic's shape)",
    )
    explain.add_argument(
        "--consent",
        action="append",
        metavar="CHANNEL=STATUS",
        help="a consent the customer has, e.g. email=opted_in (repeatable)",
    )
    explain.add_argument("--json", action="store_true", help="print the decisions as JSON lines")
    explain.set_defaults(run=run_explain)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    from senders.messages.packs import Packs, require_templates

    path: Path | None = args.file or settings.policy_file
    if args.templates_dir is not None:
        settings = settings.model_copy(update={"templates_dir": args.templates_dir})
    policy = load_policy(path)  # ConfigurationError: file, line, field (exit 2)
    warnings = require_templates(policy, Packs.of(settings, policy), policy_location(path))
    warnings += _warnings(policy, settings, path)
    name = str(path) if path else "the shipped policy"
    flows = ", ".join(
        f"{f.name} ({f.trigger}, {len(f.steps)} step{'s' * (len(f.steps) != 1)})"
        for f in policy.flows.values()
    )
    stores = ", ".join(f"{s.store_id} ({s.locale}, {s.timezone})" for s in policy.stores.values())
    print(f"{name}: valid; flows: {flows}; stores: {stores}")
    print("\n".join(outline(policy)))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 1 if warnings and args.strict else 0


def run_explain(args: argparse.Namespace, settings: Settings) -> int:
    from streams.contract.journey import parse_abandonment, parse_profile
    from streams.tools.policy_explain import explain

    policy = load_policy(args.file or settings.policy_file)
    try:
        abandonment = parse_abandonment(_json_arg(args.abandonment, "--abandonment"))
        profile = None
        if args.customer is not None:
            raw = _json_arg(args.customer, "--customer")
            key = (abandonment.customer_id or "").encode() or None
            profile = parse_profile(key, raw)
        consents = dict(item.partition("=")[::2] for item in args.consent or ())
        told = explain(policy, abandonment, profile, consents)
    except InvalidRecord as exc:
        raise ConfigurationError(exc.reason) from None
    if args.json:
        for decision in told.decisions:
            sys.stdout.write(decision.to_json().decode() + "\n")
    else:
        print("\n".join(told.lines))
    return 0


def _json_arg(value: str, flag: str) -> bytes:
    """A JSON argument as bytes: written inline, or ``@FILE``."""
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"{flag}: cannot read {value[1:]}: {exc.strerror}") from None
    return value.encode()


def outline(policy: Policy) -> list[str]:
    """The flows, per trigger in the order an abandonment tries them: priority, condition and
    the catalogue settings, then each step's delay (as written), channel, template, coupon,
    whether it is enabled, and its condition."""
    lines: list[str] = []
    for trigger in TRIGGERS:
        flows = policy.flows_for(trigger)
        if not flows:
            continue
        then = " (then the cart flows)" if trigger == "checkout" else ""
        lines += ["", f"trigger {trigger}{then}:"]
        for n, flow in enumerate(flows, 1):
            lines.append(f"  {n}. {flow.name}: {_flow_facts(flow)}")
            rows = [_step_row(step) for step in flow.steps]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
            for row in rows:
                cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
                lines.append("       " + "  ".join([*cells, row[-1]]).rstrip())
    return lines


def _flow_facts(flow: Flow) -> str:
    facts = [f"priority {flow.priority}", _when(flow.when)]
    if flow.trigger == "price_drop":
        facts.append(f"min_drop {(flow.min_drop * 100).normalize():f}%")
    if flow.trigger in CATALOGUE_TRIGGERS:
        facts.append(f"lookback {_duration(flow.lookback_ms)}")
    if flow.reentry_cooldown_ms is not None:
        facts.append(f"reentry_cooldown {_duration(flow.reentry_cooldown_ms)}")
    if flow.experiment is not None:
        variants = ", ".join(v.name for v in flow.experiment.variants)
        facts.append(
            f"experiment {flow.experiment.name} (holdout {flow.experiment.holdout:.0%}; {variants})"
        )
    return ", ".join(facts)


def _step_row(step: Step) -> tuple[str, ...]:
    after = step.after_text or _duration(step.after_ms)
    return (
        f"after {after}",
        step.channel,
        step.template,
        "coupon" if step.incentive else "no coupon",
        "enabled" if step.enabled else "disabled",
        _when(step.when),
    )


def _duration(ms: int) -> str:
    """``5_400_000`` → ``1h30m``; ``0s`` for nothing."""
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, ms = divmod(ms, size)
        parts += [f"{count}{unit}"] if count else []
    parts += [f"{ms}ms"] if ms else []
    return "".join(parts) or "0s"


def _when(condition: Condition | None) -> str:
    return "always" if condition is None else f"when {' '.join(condition.source.split())}"


def _warnings(policy: Policy, settings: Settings, path: Path | None) -> list[str]:
    where = policy_location(path)
    found: list[str] = []
    emails = any(s.channel == "email" for f in policy.flows.values() for s in f.steps)
    for store in policy.stores.values():
        if emails and store.postal_address is None:
            field = f"stores.{store.store_id}"
            found.append(
                f"{where(field)}: {field}: no postal_address: its email commands will fail "
                "with missing_postal_address (every commercial email must show one)"
            )
    texts = any(s.channel == "sms" and s.enabled for f in policy.flows.values() for s in f.steps)
    for store in policy.stores.values():
        field = f"stores.{store.store_id}"
        if texts and store.short_link_base is None:
            found.append(
                f"{where(field)}: {field}: no short_link_base: its SMS carry their links as "
                "written (a store URL can double an SMS's segments) and their clicks are not seen"
            )
        if store.short_link_base is not None and not settings.click_secret.get_secret_value():
            found.append(
                f"{where(field + '.short_link_base')}: {field}.short_link_base: "
                "CARTPULSE_CLICK_SECRET is not set: the SMS sender will refuse to start"
            )
    coupons = any(s.incentive for f in policy.flows.values() for s in f.steps)
    if coupons and not settings.coupon_secret.get_secret_value():
        found.append(
            "steps offer coupons but CARTPULSE_COUPON_SECRET is not set: the worker will "
            "refuse to start"
        )
    return found
