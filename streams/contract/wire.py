"""What every wire record cartpulse validates in Python shares: pydantic (v2) models, frozen,
unknown keys ignored, times as epoch milliseconds on the inside and RFC 3339 on the wire, and
one way to turn a ``ValidationError`` into the one-line ``InvalidRecord`` reason that ends in
a DLQ record or on the command line (the field's name and what is wrong with it). Pure.

A model names the reasons its fields are refused for in ``REASONS`` (the wire name of a field
to its sentence); a field it does not name is refused as ``<field>: <what pydantic says>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError, core_schema

from streams.contract.errors import InvalidRecord
from streams.contract.events import format_ms, parse_time
from streams.contract.json_record import json_object

WIRE: Final = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class WireRecord(BaseModel):
    """A record read from or written to a topic or Redis; see the module's docstring."""

    model_config = WIRE

    REASONS: ClassVar[Mapping[str, str]] = {}


class Lenient:
    """A field's annotation: a value of the wrong type reads as ``default`` (a fresh one from
    ``factory`` when given), as if absent: for fields a reader does not rely on, which records
    written by others may carry loosely. Validated in pydantic's core: no Python call."""

    def __init__(self, default: object = None, factory: Callable[[], object] | None = None) -> None:
        self.default = default
        self.factory = factory

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        if self.factory is not None:
            return core_schema.with_default_schema(
                handler(source), default_factory=self.factory, on_error="default"
            )
        return core_schema.with_default_schema(
            handler(source), default=self.default, on_error="default"
        )


R = TypeVar("R", bound=WireRecord)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., None])


def positional(init: F) -> F:
    """Marks a record's own ``__init__``, a typed positional constructor that hands every
    field to ``BaseModel.__init__`` (validated there), as pydantic marks its own: a record
    read from the wire (``model_validate``) is then validated by pydantic's core directly,
    with its context, instead of being passed through this constructor as keywords."""
    setattr(init, "__pydantic_base_init__", True)  # noqa: B010 - pydantic's own marker
    return init


READ: Final = {"read": True}  # the validation context of a record read from the wire


def epoch_ms(value: object, field: str) -> int:
    """``parse_time``'s rule for a wire time, as a pydantic error (so a record's first
    problem is the one reported, whichever field it is in)."""
    try:
        return parse_time(value, field)
    except InvalidRecord as exc:
        raise PydanticCustomError("wire_time", "{reason}", {"reason": exc.reason}) from None


WRITTEN_TIME: Final = PlainSerializer(format_ms, return_type=str)


def wire_time(field: str) -> BeforeValidator:
    """The validator of a time field: RFC 3339 with an offset (or epoch milliseconds) on the
    wire, epoch milliseconds inside; ``field`` is its wire name in the reason a bad one is
    refused with (``parse_time``'s). Written back with ``WRITTEN_TIME``
    (``2019-10-01T00:10:00.000Z``)::

        RecordedAt = Annotated[int, wire_time("recorded_at"), WRITTEN_TIME]

    The rule applies to what is read (``from_data``, ``from_json``: context ``READ``); a
    record cartpulse builds itself takes the milliseconds it is given (a clock's, a time
    already read)."""

    def validate(value: object, info: ValidationInfo) -> object:
        if info.context is None and type(value) is int:
            return value
        return epoch_ms(value, field)

    return BeforeValidator(validate)


def refusal(exc: ValidationError, reasons: Mapping[str, str] = {}) -> str:
    """The first problem of ``exc`` in one line: the sentence ``reasons`` keeps for the field
    (by its wire name), else ``<field>: <what is wrong>``; a whole-record rule's own text."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    head = str(first["loc"][0]) if first["loc"] else ""
    if head in reasons:
        return reasons[head]
    if first["type"] == "missing":
        return f"{where} is required"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] in ("wire_time", "value_error") or not where:
        return message
    return f"{where}: {message}"


def from_json(
    model: type[R],
    raw: bytes | str,
    what: str,
    subject: str | None = None,
    context: Mapping[str, object] | None = None,
) -> R:
    """``raw`` as a ``model``; ``InvalidRecord`` with the reason when it is not one:
    ``json_object``'s ("<what> is not valid JSON", "<subject> must be a JSON object"), else
    ``refusal``'s line. Decoded by orjson, then validated: on the consents mirror's records
    that measured as fast as pydantic's own ``model_validate_json`` or faster (4.3 against
    4.5 us a record), and it keeps ``json_object``'s reasons for what is not an object."""
    return from_data(
        model, json_object(raw if isinstance(raw, bytes) else raw.encode(), what, subject), context
    )


def from_json_as(adapter: TypeAdapter[T], raw: bytes | str, refused: str) -> T:
    """``raw`` as the adapter's type (a token's array), parsed and validated in one pass;
    ``InvalidRecord(refused)`` when it is not one. One reason for every problem: such a
    payload is cartpulse's own, sealed, and tells whoever sends it back nothing more."""
    try:
        return adapter.validate_json(raw, context=READ)
    except ValidationError:
        raise InvalidRecord(refused) from None


def from_data(
    model: type[R], data: Mapping[str, Any], context: Mapping[str, object] | None = None
) -> R:
    """``data`` (a decoded JSON object) as a ``model``; ``InvalidRecord`` with ``refusal``'s
    line when it is not one. ``context`` adds to ``READ`` what the model's validators need
    to know of the record besides its value (its key)."""
    try:
        return model.model_validate(data, context=READ if context is None else {**READ, **context})
    except ValidationError as exc:
        raise InvalidRecord(refusal(exc, model.REASONS)) from None
