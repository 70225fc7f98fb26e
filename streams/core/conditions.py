"""``when`` conditions of the flow policy: CEL expressions over a typed context (pure).

A flow's ``when`` decides whether an abandonment enters it, a step's ``when`` whether the step
is sent when it is due (docs/semantics.md, Conditions). Expressions are CEL (the
``common-expression-language`` package); cartpulse does not parse them itself.

``compile_condition`` is the load-time check. After CEL's own syntax check it refuses a name
``CONTEXT`` does not declare (the macros' bound names aside), a field a root or an item does
not have (``cart.valu``, ``i.pric`` in ``cart.items.exists(i, ...)``), and then evaluates the
expression against two typed sample contexts (every value zero, and a rich one), refusing any
error there (a type error such as ``cart.value + 1``: CEL does not mix int and double in
arithmetic; ``cart.items[0]`` of an empty cart) and a result that is not a boolean. A misspelt
field under ``has()`` it cannot see: ``has()`` of a field a map lacks is false.

CEL compares an int with a double as numbers, so ``cart.value >= 150`` works; arithmetic does
not mix them: write ``cart.value * 2.0``, and ``double(customer.orders_count)`` to mix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import cel

from streams.contract.errors import CartpulseError, ConfigurationError

FieldType = Literal["int", "double", "string", "bool", "list(string)", "list(item)"]


@dataclass(frozen=True, slots=True)
class Var:
    """One name of the context: its CEL type, its value in the rich sample context (the zero
    sample takes the type's zero value) and what it means (docs/policy.md shows it)."""

    type: FieldType
    sample: Any
    meaning: str


# An element of cart.items. The engine fills every field; unknown values are zero values.
ITEM: Final[Mapping[str, Var]] = {
    "id": Var("string", "sku-1", "the product id"),
    "name": Var("string", "Espresso beans", "the product's name"),
    "quantity": Var("int", 2, "how many are in the cart"),
    "price": Var("double", 120.0, "the unit price now (the catalogue's, else as seen)"),
    "in_stock": Var("bool", True, "whether the product is in stock now"),
    "inventory": Var("int", 3, "units in stock now; -1 when the catalogue does not say"),
}

# The context every condition is evaluated in: root → field → declaration. Every name is always
# present; a value the engine does not know is its type's zero value ("", 0, 0.0, false, []).
CONTEXT: Final[Mapping[str, Mapping[str, Var]]] = {
    "cart": {
        "value": Var("double", 180.0, "the cart's value in its currency; 0.0 when unknown"),
        "currency": Var("string", "EUR", "ISO 4217 code of the cart's currency"),
        "items": Var("list(item)", None, "the cart's lines (fields below), as of now"),
    },
    "abandonment": {
        "kind": Var(
            "string",
            "cart",
            "what started the journey: `cart`, `browse`, `price_drop`, `back_in_stock`",
        ),
        "checkout_started": Var("bool", True, "whether the shopper reached the checkout"),
        "products_viewed": Var("int", 4, "how many products the abandoned session viewed"),
    },
    "customer": {
        "orders_count": Var("int", 3, "the customer's past orders (their profile)"),
        "total_spent": Var("double", 420.0, "what the customer has spent so far"),
        "tags": Var("list(string)", ["vip", "newsletter"], "the profile's tags"),
        "country": Var("string", "DE", "the profile's country (ISO 3166-1 alpha-2)"),
        "locale": Var("string", "de-DE", "the profile's locale"),
    },
    "journey": {
        "messages_sent": Var(
            "int", 1, "messages this journey has sent so far (0 for a flow's `when`)"
        ),
    },
    "engagement": {
        "clicked": Var(
            "bool", True, "the customer clicked a message's link since the journey began"
        ),
        "opened": Var("bool", True, "the customer opened an email since the journey began"),
    },
    "now": {
        "local_hour": Var("int", 14, "the hour (0-23) in the customer's time zone"),
    },
}
DOUBLES: Final = tuple(
    [
        f"{r}.{name}"
        for r, fields in CONTEXT.items()
        for name, v in fields.items()
        if v.type == "double"
    ]
    + [f"cart.items[].{name}" for name, v in ITEM.items() if v.type == "double"]
)

_ZERO: Final[Mapping[FieldType, Any]] = {
    "int": 0,
    "double": 0.0,
    "string": "",
    "bool": False,
    "list(string)": [],
    "list(item)": [],
}
# Names the comprehension macros bind (`cart.items.exists(i, ...)`): Program.variables() lists
# them with the context's names.
_MACRO: Final = r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,"
_BOUND: Final = re.compile(_MACRO)
_ITEM_BOUND: Final = re.compile(r"\bcart\s*\.\s*items\s*" + _MACRO)
# `name.field` not preceded by a dot (a root or a bound name) and not a method call.
_MEMBER: Final = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\.\s*([A-Za-z_]\w*)\b(?!\s*\()")
# CEL's string literals, blanked before names are looked for (a dot in a string is no field).
_STRING: Final = re.compile(
    "[rRbB]{0,2}(?:"
    + "|".join(
        (
            r"'{3}[\s\S]*?'{3}",
            r'"{3}[\s\S]*?"{3}',
            r"'(?:\\.|[^'\\\n])*'",
            r'"(?:\\.|[^"\\\n])*"',
        )
    )
    + ")"
)
_SYNTAX: Final = re.compile(r"<input>:(\d+:\d+): Syntax error: ([^\n]*)")
_EXPECTED_SET: Final = re.compile(r" expecting \{[^}]*\}")
_MIXED: Final = re.compile(r"\b(float|int|uint) [-+*/%] (float|int|uint)\b")
_MIXING: Final = (
    f"CEL does not mix int and double in arithmetic; {', '.join(DOUBLES)} are double: "
    "write 2.0, not 2, and double(customer.orders_count) to mix"
)
# What the cel package raises when an expression fails at run time (src/lib.rs maps CEL's
# errors to these): unknown key or index, overflow or division by zero, no such overload,
# unknown function or variable.
_EVALUATION_ERRORS: Final = (LookupError, ArithmeticError, TypeError, ValueError, RuntimeError)


class ConditionError(CartpulseError):
    """A condition could not be evaluated (a run-time error, or a result that is not a
    boolean); ``reason`` is one line. The engine records it as the decision's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled CEL expression. Equal when their sources are equal (not where they stand)."""

    source: str
    where: str = field(compare=False)  # "policy.toml:14: flows.vip.when", for errors
    program: cel.Program = field(compare=False, repr=False)

    def holds(self, context: Mapping[str, Any] | Prepared) -> bool:
        """Whether the condition holds in ``context`` (every root and field of ``CONTEXT``).

        Raises ``ConditionError`` when evaluation fails or gives something other than a bool;
        never anything else. Converting a plain mapping to CEL values is most of the cost
        (about 40 µs for a two-line cart): ``prepare`` it once for several conditions."""
        values = context.values if isinstance(context, Prepared) else _values(context)
        try:
            result = self.program.execute(values)
        except _EVALUATION_ERRORS as exc:
            raise ConditionError(f"{self.where}: {_evaluation_message(exc)}") from None
        if not isinstance(result, bool):
            raise ConditionError(f"{self.where}: gave {result!r}, not true or false")
        return result

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # a compiled program cannot be pickled or copied; its source compiles again
        return _recompiled, (self.source, self.where)


def _recompiled(source: str, where: str) -> Condition:
    return Condition(source, where, cel.compile(source))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A context converted to CEL values once; any number of ``holds`` calls read it
    (evaluating then costs well under a microsecond). Build it with ``prepare``."""

    values: cel.Context


def prepare(context: Mapping[str, Any]) -> Prepared:
    """``context`` as CEL values; later changes to ``context`` are not seen."""
    return Prepared(cel.Context(variables=_values(context)))


def _values(context: Mapping[str, Any]) -> dict[str, Any]:
    return context if isinstance(context, dict) else dict(context)


def compile_condition(expr: str, where: str) -> Condition:
    """Compile and check ``expr``; ``where`` (``file:line: path``) starts every error.

    Raises ``ConfigurationError`` for a syntax error, a name or field the context does not
    have, a type error or a result that is not a boolean (see the module's docstring)."""
    try:
        program = cel.compile(expr)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {expr!r} is not valid CEL: {_syntax(exc)}") from None
    code = _STRING.sub("''", expr)
    bound = _BOUND.findall(code)
    for name in program.variables():
        if name not in CONTEXT and name not in bound:
            raise ConfigurationError(
                f"{where}: unknown name {name!r}{_did_you_mean(name, CONTEXT)}; "
                f"a condition can use {', '.join(CONTEXT)}"
            )
    _check_fields(code, bound, where)
    condition = Condition(expr, where, program)
    for label, context in _SAMPLES:
        try:
            condition.holds(context)
        except ConditionError as exc:
            reason = exc.reason.removeprefix(f"{where}: ")
            raise ConfigurationError(f"{where}: {expr!r} fails {label}: {reason}") from None
    return condition


def _check_fields(code: str, bound: list[str], where: str) -> None:
    """Refuse ``cart.valu`` and ``i.pric`` (``i`` bound over cart.items only) even where the
    samples would not reach them (``cart.value > 1000.0 && cart.valu ...``)."""
    over_items = _ITEM_BOUND.findall(code)
    items = {name for name in over_items if bound.count(name) == over_items.count(name)}
    for name, member in _MEMBER.findall(code):
        if name in items:
            fields, what = ITEM, "an item of cart.items"
        elif name in CONTEXT and name not in bound:
            fields, what = CONTEXT[name], name
        else:
            continue
        if member not in fields:
            raise ConfigurationError(
                f"{where}: {what} has no field {member!r}{_did_you_mean(member, fields)}; "
                f"it has {', '.join(fields)}"
            )


def _zero(var: Var) -> Any:
    return list(_ZERO[var.type]) if var.type.startswith("list") else _ZERO[var.type]


def _sample(var: Var) -> Any:
    if var.type == "list(item)":
        second = {**{k: v.sample for k, v in ITEM.items()}, "id": "sku-2", "price": 60.0}
        return [{k: v.sample for k, v in ITEM.items()}, second]
    return list(var.sample) if isinstance(var.sample, list) else var.sample


ZERO_CONTEXT: Final[Mapping[str, Mapping[str, Any]]] = {
    root: {name: _zero(var) for name, var in fields.items()} for root, fields in CONTEXT.items()
}
SAMPLE_CONTEXT: Final[Mapping[str, Mapping[str, Any]]] = {
    root: {name: _sample(var) for name, var in fields.items()} for root, fields in CONTEXT.items()
}
_SAMPLES: Final = (
    ("for an empty cart and a new customer (every value zero)", prepare(ZERO_CONTEXT)),
    ("for a sample cart with items and a tagged customer", prepare(SAMPLE_CONTEXT)),
)
_FIELDS: Final = sorted({*ITEM, *(name for fields in CONTEXT.values() for name in fields)})


def _syntax(exc: ValueError) -> str:
    """CEL's first syntax error on one line: ``at 1:13: mismatched input '<EOF>'``."""
    found = _SYNTAX.search(str(exc))
    if found is None:
        return str(exc).splitlines()[0]
    return f"at {found.group(1)}: {_EXPECTED_SET.sub('', found.group(2))}"


def _evaluation_message(exc: Exception) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError):
        key = text.strip("'\"")
        return f"no such key {key!r}{_did_you_mean(key, _FIELDS)}"
    first = text.splitlines()[0] if text else type(exc).__name__
    first = first.split(". ")[0].rstrip(".")
    if _MIXED.search(first):
        return f"{first} ({_MIXING})"
    if isinstance(exc, IndexError):
        return f"{first} (guard it: size(cart.items) > 0 && cart.items[0]...)"
    return first


def _did_you_mean(name: str, known: Mapping[str, object] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def context_problems(context: Mapping[str, Any]) -> list[str]:
    """Where ``context`` differs from ``CONTEXT`` (a missing, extra or mistyped name), for
    tests of the code that builds it; an empty list when it conforms."""
    problems: list[str] = []
    for root, fields in CONTEXT.items():
        values = context.get(root)
        if not isinstance(values, Mapping):
            problems.append(f"{root}: missing")
            continue
        problems += [f"{root}.{extra}: not declared" for extra in set(values) - set(fields)]
        for name, var in fields.items():
            problems += _typed(f"{root}.{name}", var.type, values.get(name, _MISSING))
    problems += [f"{extra}: not declared" for extra in set(context) - set(CONTEXT)]
    return problems


_MISSING: Final = object()
_PYTHON: Final[Mapping[str, type]] = {"int": int, "double": float, "string": str, "bool": bool}


def _typed(path: str, kind: FieldType, value: Any) -> list[str]:
    if value is _MISSING:
        return [f"{path}: missing"]
    if kind in _PYTHON:
        ok = type(value) is _PYTHON[kind]  # bool is an int to isinstance, not to CEL
        return [] if ok else [f"{path}: {value!r} is not {kind}"]
    if not isinstance(value, list):
        return [f"{path}: {value!r} is not a list"]
    if kind == "list(string)":
        return [
            f"{path}[{i}]: {v!r} is not string" for i, v in enumerate(value) if type(v) is not str
        ]
    problems: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            problems.append(f"{path}[{i}]: not a map")
            continue
        problems += [f"{path}[{i}].{extra}: not declared" for extra in set(item) - set(ITEM)]
        for name, var in ITEM.items():
            problems += _typed(f"{path}[{i}].{name}", var.type, item.get(name, _MISSING))
    return problems
