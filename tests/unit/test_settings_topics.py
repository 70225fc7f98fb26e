from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import orjson
import pytest

from streams.agents.roster import announcement
from streams.contract.errors import ConfigurationError
from streams.contract.topics import Topic, TopicCatalogue, input_topic_for
from streams.core.pacing import Pacer
from streams.runtime.settings import Settings, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [v for v in os.environ if v.startswith("CARTPULSE_")]:
        monkeypatch.delenv(variable)
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.store == "rocksdb://"
    assert settings.kafka_client_options()["security_protocol"] == "PLAINTEXT"


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("CARTPULSE_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("CARTPULSE_DLQ_RETENTION", "P7D")
    settings = load_settings()
    assert settings.topic_prefix == "prod."
    assert settings.topic_partitions == 12
    assert settings.dlq_retention == timedelta(days=7)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CARTPULSE_KAFKA_BOOTSTRAP_SERVERS", "localhost", "is not host:port"),
        ("CARTPULSE_TOPIC_PREFIX", "bad prefix/", "topic prefix"),
        ("CARTPULSE_TOPIC_PARTITIONS", "0", "CARTPULSE_TOPIC_PARTITIONS"),
        ("CARTPULSE_STORE", "redis://", "rocksdb://"),
        ("CARTPULSE_REDIS_URL", "http://x", "redis://"),
        ("CARTPULSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "needs CARTPULSE_KAFKA_SASL_MECHANISM"),
        ("CARTPULSE_SESSION_TIMEOUT", "PT2S", "CARTPULSE_SESSION_TIMEOUT.*6 seconds"),
        ("CARTPULSE_WEBHOOKS_OPT_OUT_KEYWORDS", "REVOKE", r"OPT_OUT_KEYWORDS: .*JSON list"),
        ("CARTPULSE_WEBHOOKS_REDIRECT_HOSTS", "shop.example.com", r"HOSTS: .*JSON object"),
        ("CARTPULSE_GAP", "PT25H", "CARTPULSE_GAP .*CARTPULSE_DEDUP_WINDOW"),
        ("CARTPULSE_GAP", "PT0S", "CARTPULSE_GAP: must be longer than 0"),
        ("CARTPULSE_LATENESS", "-PT1S", "CARTPULSE_LATENESS: must not be negative"),
    ],
)
def test_bad_settings_say_which_and_why(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CARTPULSE_WEBHOOKS_OPT_OUT_KEYWORDS", "REVOKE"),
        ("CARTPULSE_GAP", "PT25H"),
        ("CARTPULSE_TOPIC_PARTITIONS", "many"),
    ],
)
@pytest.mark.parametrize(
    "command", [["topics", "list"], ["detect", "--input", "-", "--output", "-"]]
)
def test_a_bad_setting_is_one_line_and_exit_2(
    variable: str, value: str, command: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *command],
        env={**os.environ, variable: value},
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cartpulse: invalid settings:")
    assert variable in lines[0]


def test_settings_are_frozen_and_secrets_masked() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="hunter2",  # type: ignore[arg-type]  # pydantic coerces to SecretStr
        redis_url="redis://:topsecret@127.0.0.1:6379/0",  # type: ignore[arg-type]  # coerced
    )
    assert "hunter2" not in repr(settings)
    assert "topsecret" not in repr(settings)
    assert settings.kafka_client_options()["sasl_plain_password"] == "hunter2"
    with pytest.raises(Exception, match="frozen"):
        settings.topic_prefix = "x"  # type: ignore[misc]  # the point: it is frozen


def test_catalogue_names_configs_and_dlqs() -> None:
    catalogue = TopicCatalogue("prod.")
    specs = {spec.name: spec for spec in catalogue.specs()}
    assert catalogue.name(Topic.SEND_SMS) == "prod.send.sms"
    assert specs["prod.customers"].configs == {"cleanup.policy": "compact"}
    assert specs["prod.consents"].compacted
    assert not specs["prod.clickstream"].compacted
    for topic in (Topic.CLICKSTREAM, Topic.CART, Topic.CUSTOMERS, Topic.CONSENTS):
        assert specs[catalogue.dlq(topic)].is_dlq
    assert "prod.recoveries.dlq" not in specs
    assert len(specs) == len(catalogue.specs())  # no name twice


def test_input_topic_by_type() -> None:
    assert input_topic_for("product_viewed") is Topic.CLICKSTREAM
    assert input_topic_for("page_viewed") is Topic.CLICKSTREAM
    for etype in ("cart_item_added", "cart_item_removed", "checkout_started", "order_completed"):
        assert input_topic_for(etype) is Topic.CART


def test_pacer_rate() -> None:
    pacer = Pacer(rate=100)
    assert pacer.delay(10.0, 0) == 0.0
    assert pacer.delay(10.0, 0) == pytest.approx(0.01)
    assert pacer.delay(10.05, 0) == 0.0  # behind schedule: no wait


def test_pacer_speedup_replays_spacing() -> None:
    pacer = Pacer(speedup=10)
    assert pacer.delay(0.0, 1_000_000) == 0.0
    assert pacer.delay(0.0, 1_010_000) == pytest.approx(1.0)  # 10 s of history in 1 s
    assert pacer.delay(0.5, 999_000) == 0.0  # an earlier event goes at once


def test_pacer_unpaced_and_bad_values() -> None:
    assert Pacer().delay(0.0, 5) == 0.0
    with pytest.raises(ConfigurationError):
        Pacer(rate=0)
    with pytest.raises(ConfigurationError):
        Pacer(rate=1, speedup=2)


def test_a_worker_announces_the_agents_it_runs_and_its_clock() -> None:
    settings = load_settings(worker_id="w-1", journeys_enabled=False, clock="event")
    key, value = announcement(settings, 1_767_225_600_000)
    assert key == b"w-1"
    assert orjson.loads(value) == {
        "worker_id": "w-1",
        "runs": ["detector"],
        "clock": "event",
        "announced_at": 1_767_225_600_000,
    }
    assert TopicCatalogue("p.").specs()[-1].name == "p.workers"
