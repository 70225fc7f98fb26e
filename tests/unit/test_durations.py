"""Durations: one parser for the CLI and the policy file, ISO 8601 included."""

from __future__ import annotations

import pytest

from streams.contract.durations import parse_duration_ms
from streams.contract.errors import ConfigurationError
from streams.core.policy import parse_policy
from tests.support.journeys import POLICY

H = 3_600_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", 30 * 60_000), ("1h30m", 90 * 60_000), ("45s", 45_000), ("500ms", 500),
        ("2d", 2 * 24 * H), ("90", 90_000), ("1.5", 1500), ("PT1H", H), ("pt30m", 30 * 60_000),
        ("PT1H30M", 90 * 60_000), ("P1D", 24 * H), ("P1DT12H", 36 * H), ("PT0S", 0),
        ("PT1.5S", 1500), (" PT45S ", 45_000),
    ],
)  # fmt: skip
def test_durations(text: str, expected: int) -> None:
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize("text", ["", "20x", "P", "PT", "P1DT", "P1H", "T1H", "PT1H2", "1h 30m"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a duration"):
        parse_duration_ms(text)


def test_policy_durations_take_iso_and_integer_seconds() -> None:
    steps = parse_policy(POLICY).flows["cart"].steps
    for written in ('"PT20H"', '"P0DT20H"', "72000"):
        changed = parse_policy(POLICY.replace('after = "20h"', f"after = {written}", 1))
        assert changed.flows["cart"].steps == steps


@pytest.mark.parametrize("written", ['"20x"', "-5", "true", "1.5", '""'])
def test_a_bad_policy_duration_names_the_file_line_and_field(written: str) -> None:
    text = POLICY.replace('after = "20h"', f"after = {written}", 1)
    with pytest.raises(ConfigurationError, match="is not a duration") as err:
        parse_policy(text, "p.toml")
    where, line, field, _ = str(err.value).split(":", 3)
    assert (where, field) == ("p.toml", " flows.cart.steps[1].after")
    assert text.splitlines()[int(line) - 1].strip() == f"after = {written}"


FORMS = [("90s", 90_000), ("30m", 30 * 60_000), ("1h30m", 90 * 60_000), ("5d", 5 * 24 * H),
         ("500ms", 500), ("PT30M", 30 * 60_000), ("1800", 1_800_000)]  # fmt: skip


@pytest.mark.parametrize(("text", "ms"), FORMS)
def test_every_form_is_a_setting(text: str, ms: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from streams.runtime.settings import load_settings

    monkeypatch.setenv("CARTPULSE_SENDER_CLAIM_TTL", text)
    monkeypatch.setenv("CARTPULSE_DEDUP_WINDOW", "30d")  # any gap below fits in it
    monkeypatch.setenv("CARTPULSE_GAP", text)
    settings = load_settings()
    assert settings.sender_claim_ttl == settings.gap == timedelta(milliseconds=ms)


@pytest.mark.parametrize(("text", "ms"), FORMS)
def test_every_form_is_a_flag(text: str, ms: int) -> None:
    from streams.offline.output import duration_seconds

    assert duration_seconds(text) == ms / 1000


@pytest.mark.parametrize(("text", "ms"), FORMS)
def test_every_form_is_a_policy_duration(text: str, ms: int) -> None:
    from streams.core.policy_reader import Reader

    reader = Reader("", "policy.toml")
    assert reader.duration({"after": text}, "after", "flows.cart.steps[0].after", None) == ms
    if text.isdigit():  # a TOML integer: seconds, as in the flags and the settings
        assert reader.duration({"after": int(text)}, "after", "after", None) == ms


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CARTPULSE_SENDER_CLAIM_TTL", "-5m", "must not be negative"),
        ("CARTPULSE_SENDER_CLAIM_TTL", "0", "must be longer than 0"),
        ("CARTPULSE_TICK_INTERVAL", "PT0S", "must be longer than 0"),
        ("CARTPULSE_SMTP_TIMEOUT", "20x", "'20x' is not a duration"),
    ],
)
def test_a_bad_duration_setting_lists_the_forms(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.runtime.settings import load_settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message) as err:
        load_settings()
    assert f"{name}: " in str(err.value)
    assert "90s, 30m, 1h30m, 5d, 500ms, PT30M" in str(err.value)


def test_zero_lateness_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.runtime.settings import load_settings

    monkeypatch.setenv("CARTPULSE_LATENESS", "0")
    assert load_settings().lateness.total_seconds() == 0
