"""Two deployments side by side on one Kafka cluster and one Redis, told apart only by
``CARTPULSE_TOPIC_PREFIX``: their SMS senders take only their own commands, and send the same
command ids each, because their consumer groups, ledgers and limiters are their own."""

from __future__ import annotations

from collections import Counter

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from redis.asyncio import Redis

from senders.core.keys import Keys
from senders.runtime.app import run_sender
from streams.contract.commands import SendResult
from streams.runtime.settings import Settings
from tests.senders.conftest import (
    command,
    ensure_topics,
    final_results,
    produce_commands,
    running,
    sender_settings,
)
from tests.twilio_server import TwilioTestServer

pytestmark = pytest.mark.integration


async def assigned_topics(settings: Settings, group: str) -> set[str]:
    """The topics the members of consumer group ``group`` are assigned."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        members = response.groups[0][5]  # (member_id, client_id, host, metadata, assignment)
        return {
            topic
            for member in members
            for topic, _ in ConsumerProtocolMemberAssignment.decode(member[4]).assignment
        }
    finally:
        await admin.close()


async def delete_keys(redis: Redis, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def test_two_prefixes_on_one_broker_and_one_redis_do_not_share_anything(
    settings: Settings, key_prefix: str, redis: Redis, twilio: TwilioTestServer
) -> None:
    # Both under the test's own prefix, so the fixture deletes both environments' topics.
    envs = {
        name: sender_settings(
            settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{name}."}),
            key_prefix,
            twilio,
            redis_key_prefix=None,  # derived from the topic prefix, as in a deployment
            sender_group=None,
            sms_require_opt_in=False,
        )
        for name in ("a", "b")
    }
    a, b = envs["a"], envs["b"]
    assert a.effective_redis_key_prefix != b.effective_redis_key_prefix
    assert a.sender_group_id("sms") != b.sender_group_id("sms")
    shared = [command(to=f"+1415555{n:04d}") for n in range(6)]  # the same command ids in both
    own = {
        name: [command(to=f"+141555{6 + i}{n:04d}") for n in range(3)]
        for i, name in enumerate(envs)
    }
    sent = {name: {c.command_id for c in [*shared, *own[name]]} for name in envs}
    try:
        for env in envs.values():
            await ensure_topics(env, "sms")
        async with running(
            lambda stop: run_sender(a, "sms", stop=stop, handle_signals=False),
            lambda stop: run_sender(b, "sms", stop=stop, handle_signals=False),
        ):
            for name, env in envs.items():
                await produce_commands(env, [*shared, *own[name]])
            found: dict[str, list[SendResult]] = {
                name: await final_results(env, sent[name]) for name, env in envs.items()
            }
            assigned = {
                name: await assigned_topics(env, env.sender_group_id("sms"))
                for name, env in envs.items()
            }
            # Each ledger holds every shared id; the limiters' state is keyed under the same
            # prefix (it expires within milliseconds at these rates, so it is checked by name).
            ledgers = {
                name: [
                    await redis.exists(Keys(env.effective_redis_key_prefix).ledger(c.command_id))
                    for c in shared
                ]
                for name, env in envs.items()
            }
    finally:
        for env in envs.values():
            await delete_keys(redis, env.effective_redis_key_prefix)

    for name, env in envs.items():
        # Its own commands only, each sent once: no other replica took its partitions, and
        # the other deployment's ledger did not answer "duplicate" for the shared ids.
        assert {r.command_id for r in found[name]} == sent[name]
        assert Counter(r.status for r in found[name]) == Counter({"sent": len(sent[name])})
        assert assigned[name] == {
            f"{env.topic_prefix}send.sms",
            f"{env.topic_prefix}send.sms.retry",
        }
        assert ledgers[name] == [1] * len(shared)
        limiter = Keys(env.effective_redis_key_prefix).limiter("sms", "acct", "account", "acct")
        assert limiter.startswith(env.effective_redis_key_prefix)
    # Twilio was asked once per deployment for every shared command id.
    calls = Counter(r.form.get("To") for r in twilio.created)
    assert all(calls[c.to] == 2 for c in shared), calls
    assert all(calls[c.to] == 1 for name in envs for c in own[name]), calls
