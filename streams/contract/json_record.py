"""The JSON object a record's value must hold, or the ``InvalidRecord`` that says why not."""

from __future__ import annotations

from typing import Any

import orjson

from streams.contract.errors import InvalidRecord


def json_object(raw: bytes, what: str, subject: str | None = None) -> dict[str, Any]:
    """``raw`` decoded; raises ``InvalidRecord``: "<what> is not valid JSON", or "<subject>
    must be a JSON object" (``subject`` defaults to ``what``) for any other JSON value."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRecord(f"{what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRecord(f"{subject or what} must be a JSON object")
    return data
