"""Three SMS replicas as separate OS processes (``cartpulse send sms``) sharing one rate limit
through Redis, against the Twilio test server enforcing the same limit; and the same with one
replica SIGKILLed mid-run."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from redis.asyncio import Redis

from streams.contract.commands import SendCommand, SendResult
from streams.runtime.settings import Settings
from tests.senders.conftest import (
    command,
    ensure_topics,
    final_results,
    produce_commands,
    results,
    sender_settings,
)
from tests.senders.replicas import (
    TwilioProcess,
    command_of,
    rate_report,
    spawn,
    stop,
    wait_for_group,
)
from tests.support.webhooks import ACCOUNT_SID, AUTH_TOKEN

pytestmark = pytest.mark.integration

RATE = 50.0
LONG_NAME = "Handmade Blue Stoneware Mug with Gold Rim and Matching Saucer, Set of Two"


def commands_for(segments: int, every_nth_long: int = 0) -> list[SendCommand]:
    """Commands worth ``segments`` SMS segments; every n-th one two segments long."""
    made: list[SendCommand] = []
    total, n = 0, 0
    while total < segments:
        two = bool(every_nth_long) and n % every_nth_long == every_nth_long - 1
        two = two and segments - total >= 2
        cmd = command(to=f"+1415555{n:04d}")
        if two:
            cmd.variables["cart_items"][0]["name"] = LONG_NAME
        made.append(cmd)
        total += 2 if two else 1
        n += 1
    return made


async def test_three_replicas_share_the_rate_exactly(
    settings: Settings, key_prefix: str, redis: Redis, tmp_path: Path
) -> None:
    twilio = TwilioProcess(ACCOUNT_SID, AUTH_TOKEN, rate=RATE, burst=5)
    s = sender_settings(
        settings.model_copy(update={"topic_partitions": 12}),
        key_prefix,
        twilio,
        sms_rate=RATE,
        sms_burst=1,
        sms_require_opt_in=False,
    )
    await ensure_topics(s, "sms")
    batch = commands_for(int(RATE * 20))
    replicas = spawn(s, "sms", tmp_path, 3)
    try:
        await twilio.start()
        await wait_for_group(s, s.sender_group_id("sms"), 3)
        await produce_commands(s, batch)
        await twilio.wait_created(len(batch), within=45)
        found = await results(s, len(batch), within=20)
    finally:
        codes = stop(replicas)
        try:
            requests, rate_limited = await twilio.snapshot()
        finally:
            twilio.stop()
    report = rate_report(requests, rate_limited)
    print(f"\n3 replicas at {RATE}/s: {report}")  # noqa: T201 - the numbers, for the record
    assert codes == [0, 0, 0], [r.tail() for r in replicas]  # graceful SIGTERM
    assert report.messages == len(batch)
    assert report.segments == int(RATE * 20)
    assert report.duplicates == 0
    assert report.rate_limited == 0
    assert report.max_second <= RATE
    assert abs(report.achieved - RATE) / RATE <= 0.02
    statuses = defaultdict(list)
    for result in found:
        statuses[result.command_id].append(result.status)
    assert {cmd.command_id: statuses[cmd.command_id] for cmd in batch} == {
        cmd.command_id: ["sent"] for cmd in batch
    }


async def test_sigkill_of_a_replica_loses_and_repeats_nothing(
    settings: Settings, key_prefix: str, redis: Redis, tmp_path: Path
) -> None:
    """One replica is SIGKILLed while it has claims, reserved rate slots and requests out.

    24 recipients make Twilio hang (the message is created, the answer never comes in time):
    the live replicas end theirs as ``unknown`` (timeout); the dead replica's ones are found
    ``sending`` by their next owner and ended ``unknown`` (interrupted) - never sent twice.
    """
    rate = 50.0
    twilio = TwilioProcess(ACCOUNT_SID, AUTH_TOKEN, rate=rate, burst=5, timeout_hang=60.0)
    s = sender_settings(
        settings.model_copy(update={"topic_partitions": 12}),
        key_prefix,
        twilio,
        sms_rate=rate,
        sms_burst=1,
        sms_require_opt_in=False,
        sender_claim_ttl=3.0,
        sender_inline_wait=1.0,
        twilio_timeout=6.0,
    )
    await ensure_topics(s, "sms")
    hanging = [command(to=f"+1415667{n:04d}") for n in range(24)]
    batch = [command(to=f"+1415666{n:04d}") for n in range(400)]
    every = {cmd.command_id for cmd in [*hanging, *batch]}
    replicas = spawn(s, "sms", tmp_path, 3)
    try:
        await twilio.start()
        for cmd in hanging:
            await twilio.fail(cmd.to, "timeout")
        await wait_for_group(s, s.sender_group_id("sms"), 3)
        await produce_commands(s, hanging)
        await produce_commands(s, batch)
        await twilio.wait_created(100, within=20)
        replicas[0].process.kill()  # SIGKILL: no goodbye, claims and a request may be out
        replicas[0].process.wait()
        await wait_for_group(s, s.sender_group_id("sms"), 2, within=30)
        found = await final_results(s, every, within=60)
    finally:
        codes = stop(replicas[1:])
        try:
            requests, rate_limited = await twilio.snapshot()
        finally:
            twilio.stop()
    assert codes == [0, 0], [r.tail() for r in replicas]
    report = rate_report(requests, rate_limited)
    print(f"\nSIGKILL run at {rate}/s: {report}")  # noqa: T201 - the numbers, for the record
    final: dict[str, list[SendResult]] = defaultdict(list)
    for result in found:
        if result.status != "duplicate":
            final[result.command_id].append(result)
    assert set(final) == every  # nothing lost
    # Exactly one final status each. The same result may be on the topic twice: a replica
    # killed between the broker's ack and marking it published in the ledger gets it
    # republished, byte for byte, by the next owner (consumers key on command_id).
    assert all(len(set(rs)) == 1 for rs in final.values()), [
        (cid, [r.status for r in rs]) for cid, rs in final.items() if len(set(rs)) > 1
    ]
    republished = sum(len(rs) - 1 for rs in final.values())
    assert report.duplicates == 0  # never two messages for one command
    assert report.rate_limited == 0
    outcome = {cid: (rs[0].status, rs[0].error_code) for cid, rs in final.items()}
    normal = Counter(outcome[cmd.command_id] for cmd in batch)
    # A request the kill cut off is "unknown", like any whose answer was lost: at most the
    # dead replica's few in flight. Everything else was sent.
    assert set(normal) <= {("sent", None), ("unknown", "interrupted")}
    assert normal[("unknown", "interrupted")] <= s.sender_concurrency
    hung = Counter(outcome[cmd.command_id] for cmd in hanging)
    assert set(hung) <= {("unknown", "timeout"), ("unknown", "interrupted")}
    assert hung[("unknown", "interrupted")] >= 1  # the dead replica's requests
    created = Counter(command_of(r) for r in requests if r.created)
    assert all(created[cmd.command_id] == 1 for cmd in hanging)
    for cmd in batch:  # sent: exactly one message; cut off: at most one
        allowed = {1} if outcome[cmd.command_id][0] == "sent" else {0, 1}
        assert created[cmd.command_id] in allowed
    print(  # noqa: T201 - the numbers, for the record
        f"hanging requests: {dict(hung)}; the others: {dict(normal)}; duplicate reports: "
        f"{sum(1 for r in found if r.status == 'duplicate')}; republished results: {republished}"
    )
