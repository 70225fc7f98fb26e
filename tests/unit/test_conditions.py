"""``when`` conditions: what compile_condition refuses (with the place and what is wrong), what
it takes, and how a compiled condition evaluates (streams/core/conditions.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contract.errors import ConfigurationError
from streams.core.conditions import (
    CONTEXT,
    ITEM,
    SAMPLE_CONTEXT,
    ZERO_CONTEXT,
    Condition,
    ConditionError,
    compile_condition,
    context_problems,
    prepare,
)

WHERE = "policy.toml:14: flows.vip.when"


def context(**changes: dict[str, Any]) -> dict[str, Any]:
    """The zero context with some roots' fields replaced."""
    out = copy.deepcopy(dict(ZERO_CONTEXT))
    for root, fields in changes.items():
        out[root] = {**out[root], **fields}
    return out


def item(**fields: Any) -> dict[str, Any]:
    """A line of cart.items: zero values but ``fields``."""
    zero = {"int": 0, "double": 0.0, "string": "", "bool": False}
    return {**{name: zero[var.type] for name, var in ITEM.items()}, **fields}


def refusal(expr: str) -> str:
    with pytest.raises(ConfigurationError) as err:
        compile_condition(expr, WHERE)
    message = str(err.value)
    assert message.startswith(f"{WHERE}: "), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("cart.value >", r"'cart.value >' is not valid CEL: at 1:13: mismatched input '<EOF>'"),
        ("cart.value = 1", "is not valid CEL: at 1:12: token recognition error"),
        ("cart.items.exists(i, i.price > 1.0", "is not valid CEL: at 1:35: missing ')'"),
        ("", "is not valid CEL"),
    ],
)
def test_a_syntax_error_is_refused_with_its_position(expr: str, says: str) -> None:
    message = refusal(expr)
    assert says in message
    assert "expecting {" not in message  # CEL's list of expected tokens is left out


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("custmer.orders_count > 1", "unknown name 'custmer' (did you mean 'customer'?)"),
        ("order.total > 1.0", "unknown name 'order'"),
        # a bound name used outside its macro is unknown there
        (
            "cart.items.exists(i, i.in_stock) && i.price > 1.0",
            "Undefined variable or function: 'i'",
        ),
    ],
)
def test_an_unknown_root_is_refused(expr: str, says: str) -> None:
    message = refusal(expr)
    assert says in message
    if "unknown name" in message:
        assert (
            "a condition can use cart, abandonment, customer, journey, engagement, now" in message
        )


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("cart.valu > 1.0", "cart has no field 'valu' (did you mean 'value'?)"),
        ("customer.tag.size() > 0", "customer has no field 'tag' (did you mean 'tags'?)"),
        # behind a guard neither sample passes: found without evaluating it
        ("cart.value > 1000.0 && cart.valu > 1.0", "cart has no field 'valu'"),
        (
            "cart.items.exists(i, i.pric > 100.0)",
            "an item of cart.items has no field 'pric' (did you mean 'price'?)",
        ),
        ("now.hour == 9", "now has no field 'hour'; it has local_hour"),
    ],
)
def test_an_unknown_field_is_refused(expr: str, says: str) -> None:
    assert says in refusal(expr)


def test_a_dot_inside_a_string_is_no_field() -> None:
    assert not compile_condition("customer.country == 'cart.valu'", WHERE).holds(SAMPLE_CONTEXT)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        (
            "cart.value * 2 > 300.0",
            "fails for an empty cart and a new customer (every value zero): Unsupported "
            "operation: float * int (CEL does not mix int and double in arithmetic; cart.value",
        ),
        ("cart.value > 'a'", "No such overload"),
        ("customer.orders_count / journey.messages_sent > 1", "division by zero"),
        ("cart.items[0].price > 10.0", "index out of bounds: 0 (guard it: size(cart.items) > 0"),
        # only the rich sample reaches the second half
        (
            "size(customer.tags) > 0 && customer.tags[0] > 1",
            "fails for a sample cart with items and a tagged customer: No such overload",
        ),
    ],
)
def test_a_type_or_evaluation_error_is_refused(expr: str, says: str) -> None:
    assert says in refusal(expr)


@pytest.mark.parametrize(
    "expr", ["customer.orders_count", "cart.currency", "cart.items", "engagement.clicked ? 1 : 0"]
)
def test_a_result_that_is_not_a_boolean_is_refused(expr: str) -> None:
    assert "not true or false" in refusal(expr)


@pytest.mark.parametrize(
    ("expr", "zero", "sample"),
    [
        ("cart.value >= 150", False, True),  # an int literal compares with a double
        ("cart.value >= 150.0", False, True),
        ("cart.items.exists(i, i.price > 100.0)", False, True),
        ("'vip' in customer.tags", False, True),
        ("cart.items.all(i, i.in_stock) && size(cart.items) == 2", False, True),
        ("cart.items.map(i, i.quantity).exists(q, q > 1)", False, True),
        ("cart.items.filter(i, i.price < 100.0).size() == 1", False, True),
        ("customer.tags.exists_one(t, t.startsWith('news'))", False, True),
        ("customer.tags.exists(i, i == 'vip') && cart.items.exists(i, i.price > 1.0)", False, True),
        ("size(cart.items) > 0 && cart.items[0].price > 100.0", False, True),
        ("double(customer.orders_count) * 10.0 < cart.value", False, True),
        ("now.local_hour >= 9 && now.local_hour < 21", False, True),
        ("!engagement.clicked", True, False),
        ("abandonment.kind == 'cart' && abandonment.checkout_started", False, True),
        ("customer.country in ['DE', 'AT']", False, True),
        ("has(cart.value)", True, True),
        ("true", True, True),
    ],
)
def test_good_expressions_compile_and_evaluate(expr: str, zero: bool, sample: bool) -> None:
    condition = compile_condition(expr, WHERE)
    assert (condition.holds(ZERO_CONTEXT), condition.holds(SAMPLE_CONTEXT)) == (zero, sample)
    prepared = (prepare(ZERO_CONTEXT), prepare(SAMPLE_CONTEXT))
    assert (condition.holds(prepared[0]), condition.holds(prepared[1])) == (zero, sample)


def test_a_multi_line_condition_is_one_expression() -> None:
    condition = compile_condition("cart.value >= 150.0\n  && 'vip' in customer.tags", WHERE)
    assert condition.holds(SAMPLE_CONTEXT)


def test_conditions_are_equal_by_their_source_not_their_place() -> None:
    here = compile_condition("cart.value > 1.0", "a.toml:1: flows.a.when")
    there = compile_condition("cart.value > 1.0", "b.toml:9: flows.b.when")
    assert here == there and hash(here) == hash(there)
    assert here != compile_condition("cart.value > 2.0", WHERE)


def test_a_run_time_error_is_a_condition_error_naming_the_place() -> None:
    condition = compile_condition("size(cart.items) > 0 && cart.items[0].price > 1.0", WHERE)
    broken = context(cart={"items": [item(price="1.00")]})  # text where a double belongs
    with pytest.raises(ConditionError) as err:
        condition.holds(broken)
    assert err.value.reason.startswith(f"{WHERE}: No such overload")
    with pytest.raises(ConditionError, match="no such key 'value'"):
        compile_condition("cart.value > 1.0", WHERE).holds({**broken, "cart": {"items": []}})
    with pytest.raises(ConditionError, match="Undefined variable"):
        compile_condition("cart.value > 1.0", WHERE).holds({})


def test_holds_reads_a_mapping_that_is_not_a_dict() -> None:
    from types import MappingProxyType

    condition = compile_condition("cart.value > 100.0", WHERE)
    assert condition.holds(MappingProxyType(context(cart={"value": 120.0})))


@given(value=st.floats(min_value=0, max_value=1e9), threshold=st.integers(0, 10**6))
def test_an_int_threshold_compares_with_the_double_value_as_numbers(
    value: float, threshold: int
) -> None:
    condition = compile_condition(f"cart.value >= {threshold}", WHERE)
    assert condition.holds(context(cart={"value": value})) == (value >= threshold)


def test_the_samples_follow_the_declared_schema() -> None:
    assert context_problems(ZERO_CONTEXT) == []
    assert context_problems(SAMPLE_CONTEXT) == []
    assert SAMPLE_CONTEXT["cart"]["items"], "the rich sample has items"
    assert SAMPLE_CONTEXT["customer"]["tags"], "and tags"
    numbers = [
        value
        for fields in SAMPLE_CONTEXT.values()
        for value in fields.values()
        if isinstance(value, int | float)
    ]
    assert all(numbers), "and no zero numbers"


def test_context_problems_name_what_is_missing_extra_or_mistyped() -> None:
    bad = context(cart={"value": 1, "items": [item(quantity=True, x=1)]})
    del bad["now"]
    bad["shop"] = {}
    assert sorted(context_problems(bad)) == [
        "cart.items[0].quantity: True is not int",
        "cart.items[0].x: not declared",
        "cart.value: 1 is not double",
        "now: missing",
        "shop: not declared",
    ]


def test_the_declared_doubles_are_the_money_amounts() -> None:
    doubles = {
        f"{root}.{name}"
        for root, fields in CONTEXT.items()
        for name, var in fields.items()
        if var.type == "double"
    }
    assert doubles == {"cart.value", "customer.total_spent"}
    assert [n for n, v in ITEM.items() if v.type == "double"] == ["price"]


def test_a_condition_survives_copy_and_pickle() -> None:
    import pickle

    condition = compile_condition("'vip' in customer.tags", WHERE)
    for copied in (copy.deepcopy(condition), pickle.loads(pickle.dumps(condition))):  # noqa: S301 - our own bytes
        assert copied == condition and copied.where == WHERE
        assert copied.holds(SAMPLE_CONTEXT)


def test_a_condition_object_is_frozen() -> None:
    condition = compile_condition("true", WHERE)
    assert isinstance(condition, Condition)
    with pytest.raises(AttributeError):
        condition.source = "false"  # type: ignore[misc]
