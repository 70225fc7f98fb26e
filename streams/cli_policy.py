"""``cartpulse policy check``: is a flow policy file valid, and can every step be rendered?

The same checks the worker, ``cartpulse journeys`` and the senders run when they load the
policy (streams.policy_file, senders.packs), plus warnings that do not stop them: a store
that sends email without a postal address or SMS without a ``short_link_base``, a template
that only exists in a fallback language, coupons without ``CARTPULSE_COUPON_SECRET``, short
links without ``CARTPULSE_CLICK_SECRET``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.core.policy import Policy
from streams.policy_file import load_policy, policy_location
from streams.settings import Settings


def add_parsers(commands: Any) -> None:
    policy = commands.add_parser(
        "policy",
        help="check a flow policy file",
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


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    from senders.packs import Packs, require_templates

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
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 1 if warnings and args.strict else 0


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
