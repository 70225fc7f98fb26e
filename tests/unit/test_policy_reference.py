"""docs/policy.md is what streams/tools/policy_reference.py writes from the parser's key sets.

This is the CI check: a key added to the parser without a description, or a description edited
without regenerating, fails here. The examples must parse, and a default written as a TOML value
must read as the key's absence does.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

import pytest

from streams.core.conditions import CONTEXT, ITEM
from streams.core.policy import parse_policy
from streams.tools import policy_reference
from streams.tools.policy_reference import SECTIONS, Section


def test_docs_policy_md_is_current() -> None:
    expected = policy_reference.render()
    current = policy_reference.DOC.read_text(encoding="utf-8")
    assert current == expected, (
        "docs/policy.md is stale: run python -m streams.tools.policy_reference"
    )
    assert policy_reference.main(["--check"]) == 0


def test_every_key_the_parser_takes_is_described() -> None:
    text = policy_reference.render()
    for section in SECTIONS:
        assert set(section.entries) == set(section.keys), section.path
        for key in section.keys:
            assert f"| `{key}` |" in text


def test_a_key_without_a_description_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    first = SECTIONS[0]
    widened: Section = replace(first, keys=frozenset({*first.keys, "brand_new"}))
    monkeypatch.setattr(policy_reference, "SECTIONS", (widened, *SECTIONS[1:]))
    with pytest.raises(SystemExit, match=r"brand_new"):
        policy_reference.render()


def test_the_example_policy_sets_every_key_and_parses() -> None:
    policy = parse_policy(policy_reference.example_policy(), "example.toml")
    flow = policy.flows["cart"]
    assert flow.experiment is not None
    assert flow.experiment.variants[0].templates == {"cart_sms_1": "cart_sms_1_short"}
    assert policy.store("default").sms_opt_out == "first_in_30_days"
    assert flow.when is not None and flow.steps[0].when is not None
    drop = policy.flows["price_drop"]  # the keys only catalogue flows take
    assert (drop.trigger, drop.min_drop, drop.lookback_ms) == (
        "price_drop",
        Decimal("0.15"),
        7 * 86_400_000,
    )


def test_every_name_a_condition_can_use_is_described() -> None:
    text = policy_reference.render()
    for root, fields in CONTEXT.items():
        for name, var in fields.items():
            assert f"| `{root}.{name}` | {var.type} |" in text
    for name in ITEM:
        assert f"| `cart.items[].{name}` |" in text


def without(text: str, table: str, key: str) -> str:
    """``text`` without the line setting ``key`` in the first ``[table]`` / ``[[table]]``."""
    lines = text.splitlines()
    header = re.compile(rf"^\[\[?{re.escape(table)}\]\]?$")
    start = next(i for i, line in enumerate(lines) if header.match(line))
    at = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(f"{key} = "))
    return "\n".join(lines[:at] + lines[at + 1 :]) + "\n"


def set_to(text: str, table: str, key: str, value: str) -> str:
    lines = without(text, table, key).splitlines()
    header = re.compile(rf"^\[\[?{re.escape(table)}\]\]?$")
    start = next(i for i, line in enumerate(lines) if header.match(line))
    return "\n".join([*lines[: start + 1], f"{key} = {value}", *lines[start + 1 :]]) + "\n"


TABLES = {
    "(top level)": None,
    "eligibility": "eligibility",
    "eligibility.<channel>": "eligibility.email",
    "attribution": "attribution",
    "incentives": "incentives",
    "stores.<id>": "stores.default",
    "flows.<name>": "flows.price_drop",  # it sets every scalar key of a flow
    "flows.<name>.steps[]": "flows.cart.steps",
    "flows.<name>.experiment": "flows.cart.experiment",
    "flows.<name>.experiment.variants[]": "flows.cart.experiment.variants",
}
SIMPLE_DEFAULTS = [
    (section.path, key, entry.default[1:-1])
    for section in SECTIONS
    for key, entry in sorted(section.entries.items())
    if re.fullmatch(r"`[^`]+`", entry.default)
    and entry.type not in {"table", "array of tables"}
    and section.path in TABLES
    and TABLES[section.path] is not None
]


@pytest.mark.parametrize(("path", "key", "default"), SIMPLE_DEFAULTS)
def test_a_documented_default_reads_as_the_key_left_out(path: str, key: str, default: str) -> None:
    table = TABLES[path]
    assert table is not None
    example = policy_reference.example_policy()
    assert parse_policy(without(example, table, key)) == parse_policy(
        set_to(example, table, key, default)
    )


def test_the_documented_defaults_are_checked() -> None:
    assert len(SIMPLE_DEFAULTS) >= 15
