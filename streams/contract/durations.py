"""Durations as people type them, the same everywhere (flags, ``CARTPULSE_*`` settings, the
policy file): `90s`, `30m`, `1h30m`, `5d`, `500ms`, ISO 8601 (`PT30M`, `P1DT12H`), or a bare
number of seconds (`1800`, `1.5`)."""

from __future__ import annotations

import re
from datetime import timedelta

from streams.contract.errors import ConfigurationError

DURATIONS = "a duration: 90s, 30m, 1h30m, 5d, 500ms, PT30M, or a number of seconds"

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER = r"(\d+(?:\.\d+)?)"
# "t" only before a time part: P1DT and PT are not durations.
_ISO = re.compile(rf"p(?:{_NUMBER}d)?(?:t(?=\d)(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?)?")
_ISO_UNITS = ("d", "h", "m", "s")
_EXAMPLES = "write e.g. 90s, 30m, 1h30m, 5d, 500ms, PT30M, or a number of seconds"


def parse_duration_ms(text: str) -> int:
    """``"1h30m"`` or ``"PT1H30M"`` → 5_400_000. Raises ``ConfigurationError`` for anything else,
    a negative duration included."""
    value = text.strip().lower()
    if value.startswith("-") and value != "-":
        raise ConfigurationError(
            f"{text!r} is not a duration: it must not be negative; {_EXAMPLES}"
        )
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return round(float(value) * 1000)
    iso = _ISO.fullmatch(value)
    if iso is not None and any(iso.groups()):
        parts = [(n, u) for n, u in zip(iso.groups(), _ISO_UNITS, strict=True) if n]
    else:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ConfigurationError(f"{text!r} is not a duration; {_EXAMPLES}")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in parts))


def to_timedelta(value: object, positive: bool = False) -> timedelta:
    """A setting's value (text as written, a number of seconds, or a ``timedelta``) as a
    ``timedelta``; ``ValueError`` (what pydantic reports) for anything else."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        if value.strip().startswith("-"):
            raise ValueError(f"must not be negative, got {value!r}; {_EXAMPLES}")
        try:
            result = timedelta(milliseconds=parse_duration_ms(value))
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
    else:
        raise ValueError(f"{value!r} is not a duration; {_EXAMPLES}")  # noqa: TRY004 - pydantic reports only ValueError
    if result < timedelta(0):
        raise ValueError(f"must not be negative, got {value!r}; {_EXAMPLES}")
    if positive and result == timedelta(0):
        raise ValueError(f"must be longer than 0; {_EXAMPLES}")
    return result
