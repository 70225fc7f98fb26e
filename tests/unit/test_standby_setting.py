"""``CARTPULSE_TABLE_STANDBY_REPLICAS``: bounded, and what the worker's Faust app is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.contract.errors import ConfigurationError
from streams.runtime.settings import load_settings
from tests.support.worker_app import worker_app_prints


def test_one_standby_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTPULSE_TABLE_STANDBY_REPLICAS", raising=False)
    assert load_settings().table_standby_replicas == 1


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("1", 1), ("3", 3)])
def test_within_bounds(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("CARTPULSE_TABLE_STANDBY_REPLICAS", value)
    assert load_settings().table_standby_replicas == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "greater than or equal to 0"), ("4", "less than or equal to 3"), ("two", "integer")],
)
def test_out_of_bounds_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("CARTPULSE_TABLE_STANDBY_REPLICAS", value)
    with pytest.raises(ConfigurationError, match="CARTPULSE_TABLE_STANDBY_REPLICAS") as raised:
        load_settings()
    assert message in str(raised.value)


@pytest.mark.parametrize(("value", "expected"), [(None, "1"), ("0", "0"), ("2", "2")])
def test_the_worker_app_keeps_that_many_standbys(
    tmp_path: Path, value: str | None, expected: str
) -> None:
    body = "print(app.conf.table_standby_replicas)\n"
    printed = worker_app_prints(tmp_path, body, {"CARTPULSE_TABLE_STANDBY_REPLICAS": value})
    assert printed.split() == [expected]
