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


@pytest.mark.parametrize(
    ("code", "message", "kind", "reason"),
    [
        (550, "5.1.1 no such user", "undeliverable", "undeliverable"),
        (553, "5.1.3 bad syntax", "undeliverable", "undeliverable"),
        (550, "5.7.1 spam", "failed", "rejected"),
        (554, "no", "failed", "rejected"),
        (535, "5.7.8 bad credentials", "failed", "auth"),
        (450, "4.2.1 mailbox busy", "retry", "smtp_transient"),
    ],
)
def test_smtp_refusals_follow_the_rule(code: int, message: str, kind: str, reason: str) -> None:
    """A bad mailbox (5.1.x) is undeliverable, and the code the sender writes says so to the
    journey engine; any other refusal is neither."""
    outcome = smtp_outcome(code, message)
    assert (outcome.kind, outcome.reason) == (kind, reason)
    assert is_undeliverable("email", outcome.error_code) is (kind == "undeliverable")


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        (21211, "undeliverable", "undeliverable"),
        (21614, "undeliverable", "undeliverable"),
        (21610, "opted_out", "opted_out"),
        (21602, "failed", "rejected"),
        (20003, "failed", "rejected"),
    ],
)
def test_twilio_refusals_follow_the_rule(code: int, kind: str, reason: str) -> None:
    """An invalid or non-mobile number is undeliverable, and the code the sender writes says so
    to the journey engine; an opt-out or a bad request is neither."""
    outcome = twilio_outcome(400, {"code": code})
    assert (outcome.kind, outcome.reason) == (kind, reason)
    assert is_undeliverable("sms", outcome.error_code) is (kind == "undeliverable")
