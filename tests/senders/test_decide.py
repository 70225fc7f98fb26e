"""``decide``: each row is one fact about a command and the exact action it must lead to."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senders.adapters.consents import Consent
from senders.adapters.ratelimit import Grant
from senders.core.decide import (
    COUPON_POLL,
    Action,
    Answer,
    Backoff,
    Claim,
    CouponGate,
    Fact,
    Finish,
    Go,
    Postpone,
    RateAnswer,
    Redeliver,
    Retry,
    Rules,
    SendAt,
    Standing,
    TakeOver,
    Wait,
    decide,
    retry_delay,
)
from senders.core.ledger_states import Busy, Claimed, Finished, Sending
from senders.core.outcomes import ProviderOutcome
from senders.coupons.gate import UNAVAILABLE, Verdict
from streams.contract.commands import SendCommand
from streams.contract.erasure import ERASURE_SOURCE
from streams.runtime.settings import Settings
from tests.senders.conftest import command

NOW = 1_900_000_000.0
RULES = Rules(
    inline=2.0,
    hold=10.0,
    sending_grace=8.0,
    retry_unknown=False,
    opt_in_channels=frozenset({"sms"}),
    coupon_recheck=30.0,
    backoff_base=0.1,
    backoff_max=1.0,
)
FINISHED = Finished(b"{}", True)
OPTED_IN = Consent("opted_in", 1)
OPTED_OUT = Consent("opted_out", 1, "stop")


def at(seconds: float) -> str:
    return datetime.fromtimestamp(NOW + seconds, tz=UTC).isoformat()


def cmd(expires_in: float = 3600.0, **fields: Any) -> SendCommand:
    return command(expires_at=at(expires_in), created_at=at(-1), **fields)


def near(value: float) -> Any:
    """A computed time, compared to the float rounding (``CLAIM_MARGIN`` and the like)."""
    return pytest.approx(value)


def outcome(kind: Any, code: str | None = "E1", **fields: Any) -> ProviderOutcome:
    return ProviderOutcome(kind, "ok", error_code=code, **fields)


CASES: list[tuple[str, SendCommand, Fact, Action]] = [
    # the ledger's answer to a claim
    ("finished: answered from the ledger", cmd(), Claim(FINISHED), Redeliver(FINISHED)),
    ("claimed and due", cmd(), Claim(Claimed()), Go()),
    ("claimed, expired", cmd(expires_in=0), Claim(Claimed()), Finish("expired")),
    (
        "not_before soon: waited in place",
        cmd(not_before=at(1.5)),
        Claim(Claimed()),
        Wait(near(1.5)),
    ),
    (
        "not_before later: deferred to it",
        cmd(not_before=at(60)),
        Claim(Claimed()),
        Postpone(NOW + 60, "not_before"),
    ),
    ("not_before past", cmd(not_before=at(-5)), Claim(Claimed()), Go()),
    ("busy: looked at again shortly", cmd(), Claim(Busy(0.2)), Wait(near(0.25))),
    ("busy long: steps of a quarter inline wait", cmd(), Claim(Busy(20.0)), Wait(0.5)),
    (
        "busy past the hold limit: deferred",
        cmd(),
        Claim(Busy(3.0), held=10.0),
        Postpone(near(NOW + 3.05), "claimed"),
    ),
    ("sending, young: waited for", cmd(), Claim(Sending(7.9, "o")), Wait(near(0.15))),
    (
        "sending, young, held long: deferred",
        cmd(),
        Claim(Sending(2.0, "o"), held=11.0),
        Postpone(near(NOW + 6.05), "in_flight"),
    ),
    ("sending past the grace: taken over", cmd(), Claim(Sending(8.0, "o")), TakeOver()),
    # consent standing
    ("opted in", cmd(), Standing(OPTED_IN, False), Go()),
    ("opted out", cmd(), Standing(OPTED_OUT, False), Finish("suppressed", "opted_out")),
    (
        "erased",
        cmd(),
        Standing(Consent("opted_out", 1, ERASURE_SOURCE), False),
        Finish("suppressed", "erased"),
    ),
    ("sms, no consent", cmd(), Standing(None, False), Finish("suppressed", "no_consent")),
    ("email, no consent", cmd(channel="email", to="a@example.com"), Standing(None, False), Go()),
    ("undeliverable", cmd(), Standing(OPTED_IN, True), Finish("suppressed", "undeliverable")),
    (
        "opted out beats undeliverable",
        cmd(),
        Standing(OPTED_OUT, True),
        Finish("suppressed", "opted_out"),
    ),
    # the coupon gate
    ("coupon honoured", cmd(), CouponGate(Verdict("send")), Go()),
    (
        "coupon refused",
        cmd(),
        CouponGate(Verdict("unavailable", reason="expired")),
        Finish("suppressed", UNAVAILABLE),
    ),
    ("coupon pending: polled", cmd(), CouponGate(Verdict("wait", NOW + 600)), Wait(COUPON_POLL)),
    (
        "coupon pending, held: deferred to the recheck",
        cmd(),
        CouponGate(Verdict("wait", NOW + 600), held=2.0),
        Postpone(NOW + 30, "coupon_pending"),
    ),
    (
        "coupon pending, held: deferred to its deadline when sooner",
        cmd(),
        CouponGate(Verdict("wait", NOW + 5), held=2.2),
        Postpone(NOW + 5, "coupon_pending"),
    ),
    # the rate limiter
    ("slot now", cmd(), RateAnswer(Grant(True, 0.0)), SendAt(NOW)),
    ("slot soon", cmd(), RateAnswer(Grant(True, 1.5)), SendAt(NOW + 1.5)),
    (
        "slot after the deadline",
        cmd(expires_in=1.0),
        RateAnswer(Grant(True, 1.0)),
        Finish("expired", "rate_limit"),
    ),
    ("no slot yet, near: held", cmd(), RateAnswer(Grant(False, 3.0)), Wait(near(1.01))),
    ("no slot yet, nearer: held", cmd(), RateAnswer(Grant(False, 2.5)), Wait(near(0.51))),
    (
        "no slot within the hold limit: deferred",
        cmd(),
        RateAnswer(Grant(False, 12.0)),
        Postpone(NOW + 12, "rate_limit"),
    ),
    (
        "no slot before the deadline",
        cmd(expires_in=5.0),
        RateAnswer(Grant(False, 12.0)),
        Finish("expired", "rate_limit"),
    ),
    # the provider's answer
    ("sent", cmd(), Answer(ProviderOutcome("sent", "ok", "SM1")), Finish("sent", None, "SM1")),
    ("unknown", cmd(), Answer(outcome("unknown")), Finish("unknown", "E1")),
    (
        "opted out at the provider",
        cmd(),
        Answer(outcome("opted_out", "21610")),
        Finish("suppressed", "21610", then="record_opt_out"),
    ),
    (
        "undeliverable",
        cmd(),
        Answer(outcome("undeliverable", "21614")),
        Finish("failed", "21614", then="mark_undeliverable"),
    ),
    ("failed", cmd(), Answer(outcome("failed")), Finish("failed", "E1")),
    ("retry", cmd(), Answer(outcome("retry")), Retry(outcome("retry"))),
    ("unavailable", cmd(), Answer(outcome("unavailable")), Retry(outcome("unavailable"))),
    # a back-off
    ("short back-off: in place", cmd(), Backoff(0.4, "E1"), Wait(0.4)),
    ("long back-off: deferred", cmd(), Backoff(30.0, "E1"), Postpone(NOW + 30, "provider_backoff")),
    (
        "back-off past the deadline",
        cmd(expires_in=0.3),
        Backoff(0.4, "E1"),
        Finish("expired", "E1"),
    ),
]


@pytest.mark.parametrize(
    ("command_", "fact", "expected"),
    [pytest.param(c, f, a, id=name) for name, c, f, a in CASES],
)
def test_decide(command_: SendCommand, fact: Fact, expected: Action) -> None:
    assert decide(command_, fact, NOW, RULES) == expected


def test_unknown_is_retried_when_configured() -> None:
    brave = replace(RULES, retry_unknown=True)
    answer = Answer(outcome("unknown"))
    assert decide(cmd(), answer, NOW, brave) == Retry(outcome("unknown"))


def test_no_opt_in_needed_when_not_configured() -> None:
    lenient = Rules.of(Settings(sms_require_opt_in=False), sending_grace=8.0)
    assert lenient.opt_in_channels == frozenset()
    assert decide(cmd(), Standing(None, False), NOW, lenient) == Go()
    strict = Rules.of(Settings(sms_require_opt_in=True), sending_grace=8.0)
    assert strict.opt_in_channels == frozenset({"sms"})


@pytest.mark.parametrize(
    ("attempts", "retry_after", "health_wait", "jitter", "expected"),
    [
        (1, None, 0.0, 0.0, 0.05),  # the back-off: half of base at the least
        (1, None, 0.0, 0.999, pytest.approx(0.09995)),
        (4, None, 0.0, 0.0, 0.4),  # base·2³ = 0.8, half of it
        (9, None, 0.0, 0.0, 0.5),  # capped at backoff_max, half of it
        (1, 30.0, 0.0, 0.5, 30.0),  # the provider's Retry-After wins
        (1, None, 4.0, 0.5, 4.0),  # a fault being probed wins
    ],
)
def test_retry_delay(
    attempts: int, retry_after: float | None, health_wait: float, jitter: float, expected: Any
) -> None:
    assert retry_delay(attempts, retry_after, health_wait, RULES, jitter) == expected


consents = st.one_of(
    st.none(),
    st.builds(
        Consent,
        st.sampled_from(["opted_in", "opted_out"]),
        st.integers(0, 10**13),
        st.sampled_from(["", "stop", "checkout", ERASURE_SOURCE]),
    ),
)


@given(consent=consents, undeliverable=st.booleans(), email=st.booleans())
def test_never_sent_without_standing(
    consent: Consent | None, undeliverable: bool, email: bool
) -> None:
    """Whatever the standing, a command goes on only when its recipient did not opt out, is
    reachable, and (SMS) opted in."""
    c = cmd(channel="email", to="a@example.com") if email else cmd()
    action = decide(c, Standing(consent, undeliverable), NOW, RULES)
    allowed = (
        not undeliverable
        and (consent is None or consent.status == "opted_in")
        and (email or consent is not None)
    )
    if allowed:
        assert action == Go()
    else:
        assert isinstance(action, Finish) and action.status == "suppressed"


@given(
    granted=st.booleans(),
    wait=st.floats(0, 100, allow_nan=False),
    expires_in=st.floats(0, 100, allow_nan=False),
)
def test_a_rate_answer_never_sends_past_the_deadline_nor_holds_long(
    granted: bool, wait: float, expires_in: float
) -> None:
    c = cmd(expires_in=expires_in)
    action = decide(c, RateAnswer(Grant(granted, wait)), NOW, RULES)
    match action:
        case SendAt(slot):
            assert granted and slot < c.expires_at.timestamp()
        case Wait(seconds):
            assert not granted and seconds <= RULES.inline
        case Postpone(until, reason):
            assert reason == "rate_limit" and not granted and wait > RULES.hold
            assert until < c.expires_at.timestamp()
        case Finish(status, error_code):
            assert (status, error_code) == ("expired", "rate_limit")
            assert NOW + wait >= c.expires_at.timestamp()
        case _:
            pytest.fail(f"a rate answer led to {action!r}")


@given(delay=st.floats(0, 100, allow_nan=False), expires_in=st.floats(0, 100, allow_nan=False))
def test_a_back_off_waits_in_place_only_briefly_and_never_past_the_deadline(
    delay: float, expires_in: float
) -> None:
    c = cmd(expires_in=expires_in)
    action = decide(c, Backoff(delay, "E1"), NOW, RULES)
    if isinstance(action, Finish):
        assert action == Finish("expired", "E1")
        assert NOW + delay >= c.expires_at.timestamp()
    else:
        assert NOW + delay < c.expires_at.timestamp()
        assert action == (
            Wait(delay) if delay <= RULES.inline else Postpone(NOW + delay, "provider_backoff")
        )


def test_every_wait_in_place_is_short() -> None:
    waits = [decide(c, f, NOW, RULES) for _, c, f, a in CASES if isinstance(a, Wait)]
    assert len(waits) >= 6
    assert all(isinstance(w, Wait) and 0 < w.seconds <= RULES.inline for w in waits)
