"""``create_topics`` waits for its new topics' leaders (streams/runtime/kafka.py): a client that
asks a broker for a topic before its metadata has it is told the topic does not exist."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from streams.runtime import kafka
from streams.runtime.kafka import wait_for_leaders


class FakeAdmin:
    """Describes each topic without leaders for its first ``unled`` answers; raises ``fails``
    first, one a call."""

    def __init__(self, unled: int, partitions: int = 2, fails: tuple[Exception, ...] = ()) -> None:
        self.unled, self.partitions, self.asked = unled, partitions, []
        self.fails = list(fails)

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        self.asked.append(list(names))
        if self.fails:
            raise self.fails.pop(0)
        leader = -1 if len(self.asked) <= self.unled else 1
        return [
            {
                "error_code": 0,
                "topic": name,
                "partitions": [{"partition": p, "leader": leader} for p in range(self.partitions)],
            }
            for name in names
        ]


async def test_it_asks_again_until_every_partition_has_a_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "LEADERS_POLL_S", 0.0)
    admin = FakeAdmin(unled=2)
    await wait_for_leaders(admin, ["a", "b"], partitions=2)  # type: ignore[arg-type]  # a fake
    assert admin.asked == [["a", "b"]] * 3


async def test_a_topic_with_fewer_partitions_than_asked_is_not_ready_yet(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kafka, "LEADERS_POLL_S", 0.0)
    monkeypatch.setattr(kafka, "LEADERS_WITHIN_S", 0.05)
    admin = FakeAdmin(unled=0, partitions=1)
    with caplog.at_level(logging.WARNING, logger="streams.runtime.kafka"):
        await wait_for_leaders(admin, ["a"], partitions=2)  # type: ignore[arg-type]  # a fake
    assert len(admin.asked) > 1
    assert "without a leader for every partition after 0 s: a" in caplog.text


async def test_a_broker_out_of_reach_a_moment_is_asked_again_other_errors_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "LEADERS_POLL_S", 0.0)
    restarting = FakeAdmin(unled=0, fails=(KafkaConnectionError("restarting"),))
    await wait_for_leaders(restarting, ["a"], partitions=2)  # type: ignore[arg-type]  # a fake
    assert len(restarting.asked) == 2
    refused = FakeAdmin(unled=0, fails=(TopicAuthorizationFailedError(),))
    with pytest.raises(TopicAuthorizationFailedError):
        await wait_for_leaders(refused, ["a"], partitions=2)  # type: ignore[arg-type]  # a fake
