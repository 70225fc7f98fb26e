"""The demo's audience (``streams.offline.audience``) and the simulator's time-compression knobs."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from streams.cli.main import main
from streams.contract.commands import E164, EMAIL
from streams.contract.events import parse_time
from streams.contract.journey import parse_consent, parse_profile
from streams.contract.topics import Topic
from streams.offline.audience import AudienceConfig, audience, customer_id
from streams.offline.simulate import SimulationConfig, events_within, simulate

T0 = 1_767_225_600_000


def _records(shoppers: int, seed: int = 1, **kwargs: float) -> list[tuple[str, str, bytes]]:
    config = AudienceConfig(shoppers, T0, seed, **kwargs)
    return [(r.topic.value, r.key, orjson.dumps(r.value)) for r in audience(config)]


def test_same_seed_same_audience_other_seed_other_names() -> None:
    assert _records(200, seed=3) == _records(200, seed=3)
    assert _records(200, seed=3) != _records(200, seed=4)


def test_a_shopper_does_not_depend_on_the_audience_size() -> None:
    assert _records(500)[: 3 * 50] == _records(50)


def test_one_profile_and_one_consent_per_channel_for_each_simulated_customer() -> None:
    records = list(audience(AudienceConfig(30, T0)))
    profiles = [r for r in records if r.topic is Topic.CUSTOMERS]
    consents = [r for r in records if r.topic is Topic.CONSENTS]
    assert [p.key for p in profiles] == [customer_id(i) for i in range(30)]
    assert sorted(c.key for c in consents) == sorted(
        f"{customer_id(i)}:{ch}" for i in range(30) for ch in ("sms", "email")
    )


@pytest.mark.parametrize(("sms", "email"), [(0.7, 0.85), (0.2, 0.5), (0.0, 1.0)])
def test_opt_in_shares_within_tolerance(sms: float, email: float) -> None:
    shoppers = 4_000
    opted_in: Counter[str] = Counter()
    for record in audience(AudienceConfig(shoppers, T0, sms_opt_in=sms, email_opt_in=email)):
        if record.topic is Topic.CONSENTS and record.value["status"] == "opted_in":
            opted_in[record.value["channel"]] += 1
    # Binomial: 4 standard deviations of a share over 4,000 shoppers is at most 0.032.
    assert abs(opted_in["sms"] / shoppers - sms) < 0.032
    assert abs(opted_in["email"] / shoppers - email) < 0.032


def test_addresses_are_valid_unique_and_parse_as_the_journeys_read_them() -> None:
    records = list(audience(AudienceConfig(2_000, T0)))
    phones, emails = set(), set()
    for record in records:
        raw = orjson.dumps(record.value)
        if record.topic is Topic.CUSTOMERS:
            profile = parse_profile(record.key.encode(), raw)
            assert profile.phone is not None and E164.match(profile.phone), profile.phone
            assert profile.email is not None and EMAIL.match(profile.email), profile.email
            assert profile.email.startswith("shopper") and profile.email.endswith("@example.com")
            assert (profile.locale, profile.timezone) == ("en", "America/New_York")
            assert profile.first_name
            phones.add(profile.phone)
            emails.add(profile.email)
        else:
            consent = parse_consent(record.key.encode(), raw)
            assert consent.status in ("opted_in", "opted_out")
            assert consent.recorded_ms == T0
            assert consent.source and record.value["evidence"]
            assert parse_time(record.value["recorded_at"], "recorded_at") == T0
    assert len(phones) == len(emails) == 2_000


@pytest.mark.parametrize(
    "bad",
    [
        {"shoppers": 0},
        {"shoppers": 2_000_000},
        {"shoppers": 10, "sms_opt_in": 1.5},
        {"shoppers": 10, "email_opt_in": -0.1},
    ],
)
def test_bad_audience_config_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"shoppers|shares"):
        AudienceConfig(recorded_at_ms=T0, **bad)  # type: ignore[arg-type]  # ints and floats mixed


def _digest(config: SimulationConfig) -> str:
    digest = hashlib.sha256()
    for record in simulate(config):
        digest.update(orjson.dumps(record))
    return digest.hexdigest()


def test_simulation_defaults_are_unchanged() -> None:
    """Benchmarks and integration tests depend on the default stream: it must stay the same."""
    config = SimulationConfig(events=20_000, seed=1)
    assert (config.mean_pause_s, config.break_probability, config.break_minutes) == (
        20.0,
        0.03,
        (31.0, 120.0),
    )
    # Digests of the stream before the break length became configurable.
    assert _digest(config) == "6413e23fdc8c272570aba8db9c0bd3242c0633ef7ad3fd9ff31b1bab817231e9"
    assert (
        _digest(SimulationConfig(events=20_000, seed=7))
        == "0a339f1484110ede864a5779d02591c5b65afa9d4123006f05a5597c12162628"
    )


def _gaps_ms(config: SimulationConfig) -> list[int]:
    """Pauses between consecutive events of each session."""
    last: dict[str, int] = {}
    gaps = []
    for record in simulate(config):
        at = parse_time(record["occurred_at"], "occurred_at")
        sid = record["session_id"]
        if sid in last:
            gaps.append(at - last[sid])
        last[sid] = at
    return gaps


def test_compressed_time_for_the_demo() -> None:
    config = SimulationConfig(
        events=20_000, rate=20.0, shoppers=300, mean_pause_s=2.0, break_minutes=(0.5, 1.5)
    )
    gaps = _gaps_ms(config)
    breaks = [g for g in gaps if g >= 30_000]
    short = [g for g in gaps if g < 30_000]
    assert breaks, "some sessions take a break"
    assert all(30_000 <= g <= 90_000 for g in breaks)
    assert 1_500 < sum(short) / len(short) < 2_500  # exponential, mean 2 s
    assert 0.015 < len(breaks) / len(gaps) < 0.045  # the default break probability, 0.03
    # The defaults' breaks are 31-120 minutes (a slow stream, so that hours of event time pass).
    slow = SimulationConfig(events=20_000, rate=2.0)
    default_breaks = [g for g in _gaps_ms(slow) if g >= 30 * 60_000]
    assert default_breaks
    assert all(31 * 60_000 <= g <= 120 * 60_000 for g in default_breaks)
    assert max(gaps) <= timedelta(minutes=1.5) / timedelta(milliseconds=1)


def test_events_within_counts_the_events_before_a_moment_of_event_time() -> None:
    config = SimulationConfig(events=10**7, rate=40.0, shoppers=100, seed=6, mean_pause_s=2.0)
    n = events_within(config, 60)
    times = [
        parse_time(r["occurred_at"], "occurred_at") for r in simulate(replace(config, events=n + 1))
    ]
    assert times[n - 1] < T0 + 60_000 <= times[n]
    shifted = replace(config, start_ms=T0 + 400 * 86_400_000)
    assert events_within(shifted, 60) == n  # the stream only shifts with its start
    assert events_within(replace(config, events=5), 60) == 5  # the stream ended sooner


def test_known_shoppers_are_the_audience_ids() -> None:
    config = SimulationConfig(events=2_000, shoppers=50)
    customers = {r["customer_id"] for r in simulate(config) if "customer_id" in r}
    assert customers <= {customer_id(i) for i in range(50)}
    assert len(customers) > 25


@pytest.mark.parametrize(
    "bad",
    [
        {"break_minutes": (2.0, 1.0)},
        {"break_minutes": (0.0, 1.0)},
        {"mean_pause_s": 0.0},
        {"break_probability": 1.5},
        {"break_probability": -0.1},
    ],
)
def test_bad_simulation_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"break_minutes|mean_pause_s"):
        SimulationConfig(**bad)  # type: ignore[arg-type]  # mixed value types


def test_simulate_command_passes_the_time_knobs(tmp_path: Path) -> None:
    out = tmp_path / "traffic.jsonl"
    args = ["simulate", "--events", "500", "--rate", "20", "--shoppers", "50", "--seed", "3",
            "--start", "2026-01-01T00:00:00Z", "--mean-pause", "2", "--break-minutes", "0.5",
            "1.5", "--break-probability", "0.2", "--output", str(out)]  # fmt: skip
    assert main(args) == 0
    expected = SimulationConfig(
        events=500, rate=20.0, shoppers=50, start_ms=T0, seed=3, mean_pause_s=2.0,
        break_minutes=(0.5, 1.5), break_probability=0.2,
    )  # fmt: skip
    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == list(
        simulate(expected)
    )


@pytest.mark.parametrize(
    "bad",
    [
        ["--audience"],  # the audience goes to Kafka only
        ["--break-minutes", "3", "1"],
        ["--mean-pause", "0"],
    ],
)
def test_simulate_command_refuses_bad_options(
    bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--events", "5", *bad, "--output", str(tmp_path / "x")]) == 2
    assert "cartpulse:" in capsys.readouterr().err
