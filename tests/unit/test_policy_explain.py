"""``cartpulse policy explain``: the flow an abandonment would enter, and why, in sentences."""

from __future__ import annotations

import subprocess
import sys

import orjson

from streams.contract.journey import Profile, parse_abandonment
from streams.runtime.policy_file import load_policy
from streams.tools.policy_explain import explain


def _abandonment(value: str, checkout: bool = False, customer: str | None = "c1") -> bytes:
    return orjson.dumps(
        {
            "abandonment_id": "ab-1", "kind": "cart", "session_id": "s1",
            "customer_id": customer, "store_id": "default",
            "last_activity_at": "2026-06-10T14:00:00.000Z",
            "detected_at": "2026-06-10T14:30:00.000Z", "checkout_started": checkout,
            "cart": {"items": [{"product_id": "p1", "quantity": 1, "price": value}],
                     "value": value, "currency": "USD"},
            "viewed_products": [],
        }
    )  # fmt: skip


def test_a_high_value_cart_enters_the_high_value_flow_and_says_why() -> None:
    told = explain(load_policy(None), parse_abandonment(_abandonment("200.00")), None, {})
    text = "\n".join(told.lines)
    assert "flow cart_high_value (priority 10): entered: its condition holds" in text
    # no profile: no address, no consent: every step waits for them
    assert text.count("no consent yet") == 3


def test_a_small_cart_passes_the_high_value_flow_over() -> None:
    profile = Profile("c1", phone="+14155550123", email="ann@example.com")
    told = explain(
        load_policy(None), parse_abandonment(_abandonment("20.00")), profile, {"sms": "opted_in"}
    )
    assert told.lines[1].startswith("  flow cart_high_value (priority 10): not entered")
    assert "flow cart (priority 0): entered" in told.lines[2]
    assert [d.reason for d in told.decisions][:2] == ["condition", "cart"]


def test_a_checkout_goes_to_the_checkout_flow_and_anonymous_to_nobody() -> None:
    told = explain(load_policy(None), parse_abandonment(_abandonment("20.00", True)), None, {})
    assert "reached checkout" in told.lines[0]
    assert "flow checkout (priority 0): entered" in told.lines[1]
    nobody = explain(
        load_policy(None), parse_abandonment(_abandonment("20.00", customer=None)), None, {}
    )
    assert nobody.lines == ["the abandonment has no customer_id: nobody to message"]


def test_the_command_prints_sentences_or_json_and_refuses_bad_input() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", "policy", "explain", *args],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip

    done = run("--abandonment", _abandonment("200.00").decode(), "--consent", "email=opted_in")
    assert done.returncode == 0, done.stderr
    assert "cart_high_value (priority 10): entered" in done.stdout
    as_json = run("--abandonment", _abandonment("200.00").decode(), "--json")
    actions = [orjson.loads(line)["action"] for line in as_json.stdout.splitlines()]
    assert actions[:2] == ["started", "scheduled"]
    bad = run("--abandonment", '{"kind": "cart"}')
    assert bad.returncode == 2
    assert "abandonment" in bad.stderr
    wrong = run("--abandonment", _abandonment("1").decode(), "--consent", "fax=opted_in")
    assert wrong.returncode == 2 and "fax" in wrong.stderr
