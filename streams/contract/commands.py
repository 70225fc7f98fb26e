"""Send commands and send results: the contract between journeys and senders.

``parse_command`` turns the bytes of a ``send.sms`` / ``send.email`` record into a validated
``SendCommand`` or raises ``InvalidRecord`` with a reason (the record then goes to the DLQ).
``SendResult`` is what senders (and the webhooks, for delivery reports) put on
``send.results``, keyed by ``command_id``. Times are RFC 3339 UTC with milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.contract.errors import InvalidRecord
from streams.contract.json_record import json_object

Channel = Literal["sms", "email"]
Mode = Literal["live", "dry_run"]
ResultStatus = Literal[
    "sent", "failed", "suppressed", "expired", "duplicate", "unknown", "delivered", "undelivered"
]
CHANNELS: Final[tuple[Channel, ...]] = ("sms", "email")
RESULT_STATUSES: Final[tuple[ResultStatus, ...]] = (
    "sent",
    "failed",
    "suppressed",
    "expired",
    "duplicate",
    "unknown",
    "delivered",
    "undelivered",
)
# What a sender may end a command with; ``duplicate`` only reports a redelivery, and
# ``delivered`` / ``undelivered`` come later from the provider's status callbacks.
FINAL_SEND_STATUSES: Final = frozenset({"sent", "failed", "suppressed", "expired", "unknown"})
# Provider answers that mean the address itself can't be reached (not a passing failure):
# an invalid / non-mobile number when sending, an unknown / unreachable one in a status callback.
TWILIO_UNDELIVERABLE: Final = frozenset({"21211", "21614", "30005", "30006"})
SMTP_UNDELIVERABLE: Final = "5.1."  # enhanced status class: bad mailbox or address

MAX_COMMAND_BYTES: Final = 64 * 1024
E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Deliberately strict: no display names, no spaces, no CR/LF (header injection), one '@'.
EMAIL: Final = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
)
TEMPLATE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LOCALE: Final = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,2}$")


def is_undeliverable(channel: str | None, error_code: str | None) -> bool:
    """Whether a provider's error code says the address is unreachable, on ``channel``.

    The one rule for senders (which mark the address) and the journey engine (which then
    skips steps to it). SMS: Twilio codes 21211 / 21614 (answering the send) and 30005 /
    30006 (in a status callback). Email: an SMTP enhanced status 5.1.x, alone or after the
    reply code as the senders write it (``"550 5.1.1"``).
    """
    if channel == "sms":
        return error_code in TWILIO_UNDELIVERABLE
    if channel == "email":
        enhanced = (error_code or "").split()[-1:]  # the last token; none in a blank code
        return bool(enhanced) and enhanced[0].startswith(SMTP_UNDELIVERABLE)
    return False


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]
Id = Annotated[str, Field(min_length=1, max_length=256)]


def format_time(moment: datetime) -> str:
    """``2019-10-01T00:10:00.000Z`` (RFC 3339, UTC, milliseconds)."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class SendCommand(BaseModel):
    """One message to send. Validates itself; ``to`` matches the channel."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)

    command_id: Id
    journey_id: Id
    abandonment_id: Id
    customer_id: Id
    store_id: Id
    channel: Channel
    to: str = Field(min_length=3, max_length=254)
    template: str
    locale: str = "en"
    variables: dict[str, Any] = Field(default_factory=dict)
    variant: str | None = Field(None, max_length=128)
    not_before: UtcTime | None = None
    expires_at: UtcTime
    created_at: UtcTime
    mode: Mode = "live"

    @field_validator("not_before", "expires_at", "created_at", mode="before")
    @classmethod
    def _aware(cls, value: object) -> object:
        if isinstance(value, str) and (len(value) < 20 or value[10] not in "Tt "):
            raise ValueError("must be RFC 3339 with a date, a time and an offset")
        if isinstance(value, str) and not (value.endswith(("Z", "z")) or value[-6] in "+-"):
            raise ValueError("must carry a UTC offset")
        if isinstance(value, int | float) and not isinstance(value, bool):
            # pydantic turns only ValueError into a validation error; a TypeError would escape
            raise ValueError("must be an RFC 3339 string, not a number")  # noqa: TRY004
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not TEMPLATE_NAME.match(value):
            raise ValueError("must be a template name like 'cart_sms_1' ([a-z0-9_-], no paths)")
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if not LOCALE.match(value):
            raise ValueError("must be a language tag like 'en' or 'en-US'")
        return value.replace("_", "-")

    @model_validator(mode="after")
    def _coherent(self) -> SendCommand:
        if self.channel == "sms" and not E164.match(self.to):
            raise ValueError("to: an SMS goes to an E.164 number like +14155550123")
        if self.channel == "email" and not EMAIL.match(self.to):
            raise ValueError("to: an email goes to a plain address like ann@example.com")
        if self.not_before is not None and self.not_before >= self.expires_at:
            raise ValueError("not_before must come before expires_at")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="python")
        for key in ("not_before", "expires_at", "created_at"):
            if data[key] is not None:
                data[key] = format_time(data[key])
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def parse_command(raw: bytes | None, max_bytes: int = MAX_COMMAND_BYTES) -> SendCommand:
    """Validate one command record. Raises ``InvalidRecord`` (and nothing else) when it is bad."""
    if raw is None:
        raise InvalidRecord("a command record needs a value (tombstones are not commands)")
    if len(raw) > max_bytes:
        raise InvalidRecord(f"command is {len(raw)} bytes, over the {max_bytes}-byte limit")
    data = json_object(raw, "command", "a command")
    try:
        return SendCommand.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc)) from None


def command_id_of(raw: bytes | None) -> str | None:
    """The ``command_id`` of a record that may not validate, when it has a usable one."""
    try:
        data = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    value = data.get("command_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


def _reason(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "command"
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


class SendResult(BaseModel):
    """One outcome on ``send.results``. The extra ids let consumers join without a lookup."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    command_id: Id
    status: ResultStatus
    provider_id: str | None = None
    error_code: str | None = None
    attempts: int = Field(0, ge=0)
    at: UtcTime
    channel: Channel | None = None
    journey_id: str | None = None
    customer_id: str | None = None
    segments: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="python")
        data["at"] = format_time(self.at)
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> SendResult:
        try:
            return cls.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise InvalidRecord(f"not a send result: {exc}") from None
