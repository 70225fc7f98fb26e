"""Strict ``application/x-www-form-urlencoded`` parsing (pure).

Anything that is not a well-formed, UTF-8, reasonably small form raises ``InvalidRecord``;
nothing else escapes, whatever the bytes (a property test holds it to that). Repeated names
keep every value in order, as Twilio's signature algorithm needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl

from streams.contract.errors import InvalidRecord

MAX_FIELDS: Final = 200
FORM_TYPE: Final = "application/x-www-form-urlencoded"

Form = Mapping[str, tuple[str, ...]]


def parse_form(body: bytes) -> dict[str, tuple[str, ...]]:
    """The fields of an urlencoded body; raises ``InvalidRecord`` when it is not one."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRecord("form body must be percent-encoded ASCII") from None
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidRecord("form field is not UTF-8 once percent-decoded") from None
    except ValueError:
        raise InvalidRecord(f"form has more than {MAX_FIELDS} fields") from None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return {name: tuple(values) for name, values in fields.items()}


def first(form: Form, name: str) -> str:
    """The first value of ``name``, or ``""``."""
    values = form.get(name, ())
    return values[0] if values else ""


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == FORM_TYPE
