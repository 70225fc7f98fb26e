"""One rule for "this address can't be reached": the senders and the journey engine share it."""

from __future__ import annotations

import pytest

from streams.contract.commands import is_undeliverable


@pytest.mark.parametrize(
    ("channel", "code", "expected"),
    [
        ("sms", "21211", True),
        ("sms", "21614", True),
        ("sms", "30005", True),  # unknown number, from a status callback
        ("sms", "30006", True),  # landline or unreachable carrier
        ("sms", "30003", False),  # unreachable handset: a passing failure
        ("sms", "21610", False),  # opted out, not unreachable
        ("sms", "http_400", False),
        ("email", "550 5.1.1", True),  # as smtp_outcome writes it
        ("email", "553 5.1.3", True),
        ("email", "5.1.1", True),  # the enhanced status alone
        ("email", "550 5.7.1", False),
        ("email", "550", False),
        ("email", " ", False),
        ("email", "21211", False),
        ("sms", "550 5.1.1", False),
        (None, "21211", False),
        ("sms", None, False),
        ("email", None, False),
    ],
)
def test_is_undeliverable(channel: str | None, code: str | None, expected: bool) -> None:
    assert is_undeliverable(channel, code) is expected
