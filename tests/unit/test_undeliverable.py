"""One rule for "this address can't be reached": the senders and the journey engine share it."""

from __future__ import annotations

import pytest

from senders.outcomes import smtp_outcome, twilio_outcome
from streams.models.commands import is_undeliverable


@pytest.mark.parametrize(
    ("channel", "code", "expected"),
    [
        ("sms", "21211", True),
        ("sms", "21614", True),
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


@pytest.mark.parametrize(
    ("code", "message"),
    [(550, "5.1.1 no such user"), (553, "5.1.3 bad syntax"), (550, "5.7.1 spam"), (554, "no")],
)
def test_the_senders_and_the_rule_agree_on_smtp(code: int, message: str) -> None:
    outcome = smtp_outcome(code, message)
    assert (outcome.kind == "undeliverable") is is_undeliverable("email", outcome.error_code)


@pytest.mark.parametrize("code", [21211, 21614, 21610, 21602, 20003])
def test_the_senders_and_the_rule_agree_on_twilio(code: int) -> None:
    outcome = twilio_outcome(400, {"code": code})
    assert (outcome.kind == "undeliverable") is is_undeliverable("sms", outcome.error_code)
