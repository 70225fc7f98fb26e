"""The report's arithmetic, and ``cartpulse journeys`` over files with bad lines in them."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from streams.cli.main import main
from streams.core.eligibility import HOLDOUT, assign_variant
from streams.runtime.policy_file import load_policy
from streams.tools.report import Arm, RecentKeys, Report, lift_with_ci


def _decision(journey: str, action: str, reason: str, variant: str, step: int | None = None):  # type: ignore[no-untyped-def]
    return {
        "journey_id": journey, "action": action, "reason": reason, "flow": "cart",
        "variant": variant, "step": step, "abandonment_id": f"ab-{journey}",
    }  # fmt: skip


def test_report_counts_each_arm_and_lift_against_the_holdout() -> None:
    report = Report()
    for i in range(100):  # treated: 30 of 100 convert, 2 messages each
        report.add_decision(_decision(f"t{i}", "started", "cart", "control"))
        for step, channel in ((0, "sms"), (1, "email")):
            emitted = _decision(f"t{i}", "emitted", "sent_to_channel", "control", step)
            report.add_decision({**emitted, "channel": channel})
        if i < 30:
            report.add_decision(_decision(f"t{i}", "ended", "converted", "control"))
            report.add_recovery({"recovery_id": f"r{i}", "flow": "cart", "variant": "control",
                                 "revenue": "10.50"})  # fmt: skip
    for i in range(50):  # holdout: 10 of 50 convert
        report.add_decision(_decision(f"h{i}", "started", "cart", "holdout"))
        if i < 10:
            report.add_decision(_decision(f"h{i}", "ended", "converted", "holdout"))
    report.add_decision(_decision("t0", "started", "cart", "control"))  # a repeat counts once
    report.add_decision({"action": "ignored", "reason": "reentry_cooldown", "flow": "cart"})
    rows = {row.variant: row.to_dict() for row in report.rows()}
    control, holdout = rows["control"], rows["holdout"]
    assert control["journeys"] == 100 and holdout["journeys"] == 50
    assert (control["messages"], control["sms"], control["email"]) == (200, 100, 100)
    assert control["abandonments"] == 151  # 150 started + 1 ignored
    assert control["orders_recovered"] == 30
    assert control["revenue"] == "315.00"
    assert control["revenue_per_message"] == "1.58"
    assert control["lift"] == pytest.approx(0.30 - 0.20)
    low, high = control["lift_ci95"]
    se = math.sqrt(0.3 * 0.7 / 100 + 0.2 * 0.8 / 50)
    assert low == pytest.approx(0.1 - 1.959964 * se, abs=1e-4)
    assert high == pytest.approx(0.1 + 1.959964 * se, abs=1e-4)
    assert holdout["lift"] is None


def test_decisions_at_different_times_count_apart_and_an_exact_repeat_once() -> None:
    report = Report()
    deferred = _decision("t1", "deferred", "quiet_hours", "control", 0)
    report.add_decision({**deferred, "at": "2026-06-10T03:00:00.000Z"})
    report.add_decision({**deferred, "at": "2026-06-11T03:00:00.000Z"})  # deferred again
    report.add_decision({**deferred, "at": "2026-06-11T03:00:00.000Z"})  # redelivered
    updated = _decision("t1", "updated", "cart_changed", "control")
    report.add_decision({**updated, "at": "2026-06-10T04:00:00.000Z"})
    report.add_decision({**updated, "at": "2026-06-10T05:00:00.000Z"})
    assert report.reasons[("cart", "deferred", "quiet_hours")] == 2
    assert report.reasons[("cart", "updated", "cart_changed")] == 2


def test_lift_of_equal_arms_is_zero_with_a_symmetric_interval() -> None:
    arm = Arm(journeys=200, conversions=50)
    diff, (low, high) = lift_with_ci(arm, Arm(journeys=200, conversions=50))
    assert diff == 0
    assert low == pytest.approx(-high)
    assert high > 0


def test_offline_journeys_report_bad_lines_and_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTPULSE_COUPON_SECRET", "s")
    abandonment = {
        "abandonment_id": "ab-1", "kind": "browse", "session_id": "s1", "customer_id": "c1",
        "store_id": "default", "last_activity_at": "2026-06-10T14:00:00.000Z",
        "detected_at": "2026-06-10T14:30:00.000Z", "checkout_started": False,
        "cart": {"items": []}, "viewed_products": [{"product_id": "p1", "views": 1}],
    }  # fmt: skip
    (tmp_path / "ab.jsonl").write_bytes(
        orjson.dumps(abandonment) + b"\n{not json\n" + b'{"kind": "cart"}\n'
    )
    (tmp_path / "customers.jsonl").write_bytes(
        orjson.dumps({"customer_id": "c1", "email": "c1@example.com"}) + b"\n"
    )
    consent = {"customer_id": "c1", "channel": "email", "status": "opted_in",
               "recorded_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    (tmp_path / "consents.jsonl").write_bytes(
        orjson.dumps(consent) + b"\n" + orjson.dumps({**consent, "channel": "fax"}) + b"\n"
    )
    out = tmp_path / "commands.jsonl"
    code = main([
        "journeys", "--abandonments", str(tmp_path / "ab.jsonl"),
        "--customers", str(tmp_path / "customers.jsonl"),
        "--consents", str(tmp_path / "consents.jsonl"), "--output", str(out),
    ])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "ab.jsonl:2: " in err and "ab.jsonl:3: " in err
    assert "consents.jsonl:2: consent key must be customer_id:channel" in err
    assert "3 invalid" in err
    commands = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    decided = (tmp_path / "commands.decisions.jsonl").read_bytes().splitlines()
    decisions = [orjson.loads(line) for line in decided]
    # The default policy holds out 10 % of customers: c1's arm decides what it gets.
    arm = assign_variant(load_policy().flows["browse"].experiment, "c1")
    assert {d["variant"] for d in decisions if d["action"] == "started"} == {arm}
    expected = [] if arm == HOLDOUT else [("email", "browse_email_1", "c1@example.com")]
    assert [(c["channel"], c["template"], c["to"]) for c in commands] == expected
    assert (tmp_path / "commands.recoveries.jsonl").exists()


def test_a_bad_policy_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[stores.default]\ntimezone = "Nowhere/City"\n')
    (tmp_path / "ab.jsonl").write_bytes(b"")
    code = main([
        "journeys", "--abandonments", str(tmp_path / "ab.jsonl"), "--policy", str(policy),
        "--output", "-",
    ])  # fmt: skip
    assert code == 2
    assert "policy.toml:2: stores.default.timezone: 'Nowhere/City' is not an IANA time zone" in (
        capsys.readouterr().err
    )


def test_repeats_are_recognised_within_a_bounded_window() -> None:
    recent = RecentKeys(size=2)
    assert recent.first_time(("a",))
    assert not recent.first_time(("a",))
    assert recent.first_time(("b",))
    assert recent.first_time(("c",))  # "a" has left the window of two
    assert recent.first_time(("a",))
    assert recent.first_time(("x", ["not", "hashable"]))
    assert not recent.first_time(("x", ["not", "hashable"]))
