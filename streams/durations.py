"""Durations as people type them: `30m`, `1h30m`, `45s`, `500ms`, `2d`, ISO 8601 (`PT1H`,
`P1DT12H`), or plain seconds."""

from __future__ import annotations

import re

from streams.errors import ConfigurationError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER = r"(\d+(?:\.\d+)?)"
# "t" only before a time part: P1DT and PT are not durations.
_ISO = re.compile(rf"p(?:{_NUMBER}d)?(?:t(?=\d)(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?)?")
_ISO_UNITS = ("d", "h", "m", "s")


def parse_duration_ms(text: str) -> int:
    """``"1h30m"`` or ``"PT1H30M"`` → 5_400_000. Raises ``ConfigurationError`` for anything else."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return round(float(value) * 1000)
    iso = _ISO.fullmatch(value)
    if iso is not None and any(iso.groups()):
        parts = [(n, u) for n, u in zip(iso.groups(), _ISO_UNITS, strict=True) if n]
    else:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ConfigurationError(
                f"{text!r} is not a duration; write e.g. 30m, 1h30m, 45s, 500ms, 2d or PT1H"
            )
    return round(sum(float(n) * _UNIT_MS[u] for n, u in parts))
