"""Two deployments on one Kafka cluster and one Redis differ only by ``CARTPULSE_TOPIC_PREFIX``:
every consumer group, Redis key prefix and changelog derives from it unless set explicitly."""

from __future__ import annotations

import pytest

from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOPIC_PREFIX", "SENDER_GROUP", "REDIS_KEY_PREFIX", "WORKER_ID"):
        monkeypatch.delenv(f"CARTPULSE_{name}", raising=False)


def names(settings: Settings) -> dict[str, str]:
    """Every shared-infrastructure name one deployment uses."""
    return {
        "sms": settings.sender_group_id("sms"),
        "email": settings.sender_group_id("email"),
        "mirror": settings.sender_group_id("consent-mirror"),
        "worker": settings.worker_group,
        "keys": settings.effective_redis_key_prefix,
    }


def test_without_a_prefix_the_names_are_the_historical_ones() -> None:
    assert names(load_settings()) == {
        "sms": "cartpulse-senders.sms",
        "email": "cartpulse-senders.email",
        "mirror": "cartpulse-senders.consent-mirror",
        "worker": "cartpulse-detector",
        "keys": "cartpulse:",
    }


def test_every_name_derives_from_the_topic_prefix() -> None:
    assert names(load_settings(topic_prefix="prod.")) == {
        "sms": "prod.cartpulse-senders.sms",
        "email": "prod.cartpulse-senders.email",
        "mirror": "prod.cartpulse-senders.consent-mirror",
        "worker": "prod.cartpulse-detector",
        "keys": "prod.cartpulse:",
    }


def test_two_prefixes_share_no_name() -> None:
    a = names(load_settings(topic_prefix="staging."))
    b = names(load_settings(topic_prefix="prod."))
    assert not set(a.values()) & set(b.values())


def test_an_explicit_value_wins_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("CARTPULSE_SENDER_GROUP", "legacy-senders")
    monkeypatch.setenv("CARTPULSE_REDIS_KEY_PREFIX", "cartpulse:")
    settings = load_settings()
    assert settings.sender_group_id("sms") == "legacy-senders.sms"
    assert settings.sender_group_id("consent-mirror") == "legacy-senders.consent-mirror"
    assert settings.effective_redis_key_prefix == "cartpulse:"


def test_an_explicit_empty_key_prefix_is_kept() -> None:
    assert load_settings(topic_prefix="prod.", redis_key_prefix="").effective_redis_key_prefix == ""


def test_a_copy_with_another_topic_prefix_derives_again() -> None:
    """A replay's namespace is a copy of the settings with a longer prefix: its senders must
    not share the deployment's groups or ledger."""
    base = load_settings(topic_prefix="prod.")
    replay = base.model_copy(update={"topic_prefix": "prod.r1."})
    assert not set(names(base).values()) & set(names(replay).values())


def test_the_retry_topics_are_in_the_catalogue_under_the_prefix() -> None:
    catalogue = TopicCatalogue("prod.")
    specs = {spec.name: spec for spec in catalogue.specs()}
    for command, retry in (
        (Topic.SEND_SMS, Topic.SEND_SMS_RETRY),
        (Topic.SEND_EMAIL, Topic.SEND_EMAIL_RETRY),
    ):
        assert catalogue.name(retry) == f"{catalogue.name(command)}.retry"
        spec = specs[catalogue.name(retry)]
        assert spec.key == "recipient"
        assert spec.configs == {"cleanup.policy": "delete"}
        assert not spec.is_input and not spec.compacted
    assert "prod.send.sms.retry.dlq" not in specs
