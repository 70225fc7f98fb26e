"""docs/policy.md, the flow policy's reference, generated from the parser's own key sets.

The keys come from where the parser declares them (``TOP_KEYS`` … in streams/core/policy.py,
``KEYS`` in streams/core/stores.py), their descriptions from streams/tools/policy_keys.py, the names
a condition can use from ``CONTEXT`` in streams/core/conditions.py. ``render()`` refuses a key
the parser takes but no entry describes (or the reverse), so the reference cannot fall behind
the code, and tests/unit/test_policy_reference.py fails when docs/policy.md is not what
``render()`` writes.

    python -m streams.tools.policy_reference            # rewrite docs/policy.md
    python -m streams.tools.policy_reference --check    # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Set
from pathlib import Path
from typing import Final

from streams.core.conditions import CONTEXT, ITEM
from streams.tools.policy_keys import SECTIONS, Section

DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def _check(section: Section) -> None:
    described = set(section.entries)
    if described != set(section.keys):
        missing = sorted(set(section.keys) - described)
        gone = sorted(described - set(section.keys))
        raise SystemExit(
            f"{section.path}: the parser takes {missing} which streams/tools/policy_keys.py does "
            f"not describe, and it describes {gone} which the parser refuses; update SECTIONS "
            "in streams/tools/policy_keys.py"
        )


def example_policy() -> str:
    """A policy that sets every key to its example (tests/unit/test_policy_reference.py parses
    it, so every example is one the parser takes)."""
    by_path = {s.path: s.entries for s in SECTIONS}

    def lines(path: str, skip: Set[str] = frozenset()) -> list[str]:
        return [
            f"{k} = {e.example}"
            for k, e in sorted(by_path[path].items())
            if e.type not in {"table", "array of tables"} and k not in skip
        ]

    out = [*lines("(top level)"), "", "[eligibility]", *lines("eligibility")]
    for channel in ("sms", "email"):
        rules = lines("eligibility.<channel>")
        if channel == "sms":  # SMS needs an explicit opt-in
            rules = [r.replace('"opt_in_or_soft"', '"opt_in"') for r in rules]
        out += ["", f"[eligibility.{channel}]", *rules]
    out += ["", "[attribution]", *lines("attribution"), "", "[incentives]", *lines("incentives")]
    out += ["", "[[incentives.tiers]]", *lines("incentives.tiers[]", {"amount"})]
    # an amount tier, in a currency of its own (a tier gives percent or amount, not both)
    out += ["", "[[incentives.currencies.EUR.tiers]]", 'min_value = "100"', 'amount = "5"']
    out += ["", "[stores.default]", *lines("stores.<id>")]
    out += ["", "[flows.cart]", *lines("flows.<name>", _CATALOGUE_ONLY), "", "[[flows.cart.steps]]"]
    out += [*lines("flows.<name>.steps[]"), "", "[flows.cart.experiment]"]
    out += [*lines("flows.<name>.experiment"), "", "[[flows.cart.experiment.variants]]"]
    out += lines("flows.<name>.experiment.variants[]")
    # the keys only catalogue flows take, on a flow of their own
    out += ["", "[flows.price_drop]", 'trigger = "price_drop"', *lines("flows.<name>", {"trigger"})]
    out += ["", "[[flows.price_drop.steps]]", 'after = "0s"', 'channel = "email"']
    out += ['template = "price_drop_email_1"']
    return "\n".join(out) + "\n"


_CATALOGUE_ONLY: Final = frozenset({"lookback", "min_drop"})
_CONDITIONS: Final = """\
A flow's and a step's `when` is a [CEL](https://cel.dev) expression over the names below,
written as a TOML string: `when = "cart.value >= 150.0 && 'vip' in customer.tags"`. Every name
is always there: a value cartpulse does not know is its type's zero value (`""`, `0`, `0.0`,
`false`, `[]`). CEL compares an int with a double as numbers (`cart.value >= 150` works) but
does not mix them in arithmetic: write `cart.value * 2.0`, and `double(customer.orders_count)`
to mix. Lists take `in`, `size()` and the macros `all`, `exists`, `exists_one`, `map` and
`filter`: `cart.items.exists(i, i.price > 100.0)`.

When the policy loads, a condition is refused, naming the file, the line and the key, when it
is not valid CEL, uses a name or a field not listed here, or fails or gives something other
than `true` or `false` for an empty cart and a new customer (every value zero) or for a sample
cart with items and a tagged customer. Guard what an empty cart lacks:
`size(cart.items) > 0 && cart.items[0].price > 20.0`. A condition that still fails on a real
journey counts as not holding. `has()` of a field that does not exist is false, not an error."""


def _conditions() -> list[str]:
    """The ``Conditions`` section: ``CONTEXT``, one row per name."""
    out = ["", "## Conditions", "", _CONDITIONS, ""]
    out += ["| name | type | meaning |", "|---|---|---|"]
    for root, fields in CONTEXT.items():
        for name, var in fields.items():
            out.append(f"| `{root}.{name}` | {var.type} | {var.meaning} |")
            if var.type == "list(item)":
                out += [
                    f"| `{root}.{name}[].{k}` | {v.type} | {v.meaning} |" for k, v in ITEM.items()
                ]
    return out


def render() -> str:
    """docs/policy.md; raises ``SystemExit`` when a section's keys and descriptions differ."""
    out = [
        "# Flow policy reference",
        "",
        "<!-- Generated by `python -m streams.tools.policy_reference` from the parser's key sets",
        "(streams/core/policy.py, streams/core/stores.py); edit the descriptions there, not here.",
        "tests/unit/test_policy_reference.py fails when this file is out of date. -->",
        "",
        "The flow policy is a TOML file (`CARTPULSE_POLICY_FILE`, `--policy`; the shipped one is",
        "[streams/policies/default.toml](../streams/policies/default.toml)). What the journeys do",
        "with it: [semantics.md, Journeys](semantics.md#journeys-per-customer). Check a policy",
        "with `cartpulse policy check FILE --strict`; an unknown key is refused, naming the file,",
        "the line and the keys that table takes.",
        "",
        "Durations are written `90s`, `30m`, `1h`, `5d`, `1h30m` or ISO 8601 (`PT1H`); a TOML",
        "integer is seconds.",
    ]
    for section in SECTIONS:
        _check(section)
        out += ["", f"## `{section.path}`", "", section.about, ""]
        out += ["| key | type | default | example | meaning |", "|---|---|---|---|---|"]
        for key, e in sorted(section.entries.items()):
            example = e.example if e.example.startswith("[") else f"{key} = {e.example}"
            out.append(f"| `{key}` | {e.type} | {e.default} | `{example}` | {e.meaning} |")
    out += _conditions()
    out += ["", "## Every key at once", "", "```toml", example_policy().rstrip("\n"), "```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/policy.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            sys.stderr.write(
                f"{DOC} is out of date: run python -m streams.tools.policy_reference\n"
            )
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
