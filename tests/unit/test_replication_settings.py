"""``CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS``: its default from the replication, its bounds, and
that every topic and producer cartpulse makes carries it (docs/operations.md, Three brokers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.contract.errors import ConfigurationError
from streams.runtime.kafka import PRODUCER_GUARANTEES
from streams.runtime.settings import load_settings
from tests.support.worker_app import worker_app_prints


@pytest.fixture(autouse=True)
def _no_replication_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTPULSE_TOPIC_REPLICATION", raising=False)
    monkeypatch.delenv("CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS", raising=False)


@pytest.mark.parametrize(("replication", "expected"), [("1", 1), ("2", 1), ("3", 2), ("5", 2)])
def test_the_default_lets_one_broker_be_down_from_three_replicas_on(
    monkeypatch: pytest.MonkeyPatch, replication: str, expected: int
) -> None:
    monkeypatch.setenv("CARTPULSE_TOPIC_REPLICATION", replication)
    settings = load_settings()
    assert settings.min_insync_replicas == expected
    assert settings.topic_configs() == {"min.insync.replicas": str(expected)}


def test_a_set_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_TOPIC_REPLICATION", "5")
    monkeypatch.setenv("CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS", "3")
    assert load_settings().topic_configs() == {"min.insync.replicas": "3"}


def test_more_in_sync_replicas_than_replicas_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_TOPIC_REPLICATION", "2")
    monkeypatch.setenv("CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(ConfigurationError, match="CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS"):
        load_settings()


def test_zero_is_out_of_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS", "0")
    with pytest.raises(ConfigurationError, match="CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS"):
        load_settings()


def test_the_worker_creates_topics_with_it_and_produces_idempotently(tmp_path: Path) -> None:
    body = (
        "import json\n"
        "producer = app.transport.create_producer()\n"
        "print(json.dumps({'changelog': app.transport._topic_config(compacting=True),\n"
        "                  'plain': app.transport._topic_config(),\n"
        "                  'producer': dict(producer._settings_extra()),\n"
        "                  'replication': app.conf.topic_replication_factor}))\n"
    )
    env = {"CARTPULSE_TOPIC_REPLICATION": "3", "CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS": None}
    printed = worker_app_prints(tmp_path, body, env)
    seen = json.loads(printed.splitlines()[-1])
    assert seen["changelog"] == {"min.insync.replicas": "2", "cleanup.policy": "compact"}
    assert seen["plain"] == {"min.insync.replicas": "2"}
    assert seen["producer"] == PRODUCER_GUARANTEES
    assert seen["replication"] == 3
