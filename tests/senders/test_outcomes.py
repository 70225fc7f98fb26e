"""Provider answers → what happens to the command (pure mapping), and the back-off."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senders.core.outcomes import backoff, error_label, smtp_outcome, twilio_outcome
from streams.contract.commands import is_undeliverable

SID = "SM" + "a" * 32


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason", "code"),
    [
        (201, {"sid": SID, "num_segments": "2"}, "sent", "ok", None),
        (201, {}, "unknown", "bad_response", "no_sid"),  # accepted, but which message?
        (429, {"code": 20429, "status": 429}, "retry", "rate_limited", "20429"),
        (400, {"code": 20429}, "retry", "rate_limited", "20429"),
        (429, None, "retry", "rate_limited", "http_429"),
        (500, {"code": 20500}, "unknown", "server_error", "20500"),
        (503, None, "unknown", "server_error", "http_503"),
        (400, {"code": 21610}, "opted_out", "opted_out", "21610"),
        (400, {"code": 21211}, "undeliverable", "undeliverable", "21211"),
        (400, {"code": 21614}, "undeliverable", "undeliverable", "21614"),
        # credentials or account: nothing was sent, the fault is ours, not the message's
        (401, {"code": 20003}, "unavailable", "auth", "20003"),
        (401, None, "unavailable", "auth", "http_401"),
        (403, {"code": 20005}, "unavailable", "auth", "20005"),
        (404, {"code": 20404}, "unavailable", "auth", "20404"),
        (400, {"code": 21602}, "failed", "rejected", "21602"),
        (302, None, "unknown", "bad_response", "http_302"),
    ],
)
def test_twilio(
    status: int, body: dict[str, object] | None, kind: str, reason: str, code: str | None
) -> None:
    outcome = twilio_outcome(status, body)
    assert (outcome.kind, outcome.reason, outcome.error_code) == (kind, reason, code)
    # the code the sender writes tells the journey engine the same (one rule)
    assert is_undeliverable("sms", outcome.error_code) is (kind == "undeliverable")


def test_twilio_sent_keeps_sid_segments_and_retry_after() -> None:
    sent = twilio_outcome(201, {"sid": SID, "num_segments": "3"})
    assert (sent.provider_id, sent.segments) == (SID, 3)
    assert twilio_outcome(429, {"code": 20429}, "1.5").retry_after == 1.5
    assert twilio_outcome(429, {"code": 20429}, "soon").retry_after is None


@pytest.mark.parametrize(
    ("code", "message", "kind", "error"),
    [
        (250, "2.0.0 queued", "sent", None),
        (421, "4.3.2 closing", "unavailable", "421 4.3.2"),  # the relay, not the message
        (450, "mailbox busy", "retry", "450"),
        (451, "4.7.1 greylisted", "retry", "451 4.7.1"),
        (550, "5.1.1 no such user", "undeliverable", "550 5.1.1"),
        (553, "5.1.3 bad address syntax", "undeliverable", "553 5.1.3"),
        (550, "5.7.1 rejected as spam", "failed", "550 5.7.1"),
        (554, "transaction failed", "failed", "554"),
        (535, "5.7.8 bad credentials", "unavailable", "535 5.7.8"),
        (530, "5.7.0 authentication required", "unavailable", "530 5.7.0"),
    ],
)
def test_smtp(code: int, message: str, kind: str, error: str | None) -> None:
    outcome = smtp_outcome(code, message)
    assert (outcome.kind, outcome.error_code) == (kind, error)
    assert is_undeliverable("email", outcome.error_code) is (kind == "undeliverable")


@given(st.integers(1, 200), st.floats(0.001, 10), st.floats(0.01, 600), st.floats(0, 0.999999))
def test_backoff_is_bounded_and_jittered(
    attempt: int, base: float, cap: float, rand: float
) -> None:
    delay = backoff(attempt, base, cap, rand)
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    assert ceiling / 2 <= delay < ceiling or delay == pytest.approx(ceiling / 2)
    assert delay <= cap


def test_backoff_grows_then_caps() -> None:
    delays = [backoff(n, 0.5, 8.0, 0.0) for n in range(1, 8)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff(0, 0.5, 8.0) == 0.0


@pytest.mark.parametrize(
    ("code", "label"),
    [(None, "none"), ("21610", "21610"), ("550 5.1.1", "550"), ("timeout", "other")],
)
def test_error_labels_stay_low_cardinality(code: str | None, label: str) -> None:
    assert error_label(code) == label
