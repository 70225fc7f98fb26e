"""The send command and send result contract (streams/contract/commands.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from streams.contract.commands import SendResult, command_id_of, format_time, parse_command
from streams.contract.errors import InvalidRecord

BASE: dict[str, Any] = {
    "command_id": "c1",
    "journey_id": "j1",
    "abandonment_id": "a1",
    "customer_id": "cust-1",
    "store_id": "s1",
    "channel": "sms",
    "to": "+14155550100",
    "template": "cart_sms_1",
    "locale": "en-US",
    "variables": {"first_name": "Ann", "cart_url": "https://x.example/c"},
    "variant": "a",
    "not_before": "2024-05-01T10:00:00.000Z",
    "expires_at": "2024-05-03T10:00:00.000Z",
    "created_at": "2024-05-01T09:00:00.000+02:00",
    "mode": "live",
}


def raw(**changes: Any) -> bytes:
    data = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


def test_a_valid_command_round_trips() -> None:
    command = parse_command(raw())
    assert command.created_at == datetime(2024, 5, 1, 7, 0, tzinfo=UTC)  # normalised to UTC
    assert command.to_dict()["created_at"] == "2024-05-01T07:00:00.000Z"
    assert parse_command(command.to_json()) == command


def test_email_commands_and_defaults() -> None:
    command = parse_command(
        raw(channel="email", to="ann.b+cart@example.co.uk", mode=..., not_before=...)
    )
    assert command.mode == "live" and command.not_before is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"to": "4155550100"}, "E.164"),
        ({"to": "+1 415 555 0100"}, "E.164"),
        ({"channel": "email", "to": "ann@example.com\r\nBcc: all@example.com"}, "plain address"),
        ({"channel": "email", "to": "Ann <ann@example.com>"}, "plain address"),
        ({"channel": "push"}, "channel"),
        ({"template": "../../etc/passwd"}, "template name"),
        ({"locale": "english please"}, "language tag"),
        ({"expires_at": "2024-05-03T10:00:00"}, "offset"),
        ({"expires_at": 1714730400000}, "not a number"),
        ({"not_before": "2024-05-04T00:00:00Z"}, "not_before must come before"),
        ({"command_id": ""}, "command_id"),
        ({"command_id": ...}, "command_id"),
        ({"mode": "maybe"}, "mode"),
        ({"variables": ["not", "a", "dict"]}, "variables"),
    ],
)
def test_invalid_commands_say_why(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecord) as error:
        parse_command(raw(**changes))
    assert reason in error.value.reason


@pytest.mark.parametrize(
    "value", [None, b"", b"not json", b"[1, 2]", b'"text"', b"{" + b" " * 70_000 + b"}"]
)
def test_garbage_is_an_invalid_record_never_a_crash(value: bytes | None) -> None:
    with pytest.raises(InvalidRecord):
        parse_command(value)


def test_command_id_of_a_broken_record() -> None:
    assert command_id_of(raw(to="nope")) == "c1"
    assert command_id_of(b"garbage") is None
    assert command_id_of(None) is None


def test_result_shape() -> None:
    at = datetime(2024, 5, 1, 7, 0, 0, 123_000, tzinfo=UTC)
    result = SendResult(command_id="c1", status="sent", provider_id="SM1", attempts=1, at=at)
    data = orjson.loads(result.to_json())
    assert data["at"] == "2024-05-01T07:00:00.123Z" == format_time(at)
    assert {"command_id", "status", "provider_id", "error_code", "attempts", "at"} <= set(data)
    assert SendResult.from_json(result.to_json()) == result
    with pytest.raises(InvalidRecord):
        SendResult.from_json(b'{"command_id": "c1", "status": "maybe"}')
