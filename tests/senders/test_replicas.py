"""Three SMS replicas as separate OS processes (``cartpulse send sms``) sharing one rate limit
through Redis, against the Twilio test server enforcing the same limit; and the same with one
replica SIGKILLed mid-run."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from redis.asyncio import Redis

from streams.models.commands import FINAL_SEND_STATUSES, SendCommand
from streams.settings import Settings
from tests.senders.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
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
        await wait_for_group(s, f"{s.sender_group}.sms", 3)
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
    rate = 100.0
    twilio = TwilioProcess(ACCOUNT_SID, AUTH_TOKEN, rate=rate, burst=5)
    s = sender_settings(
        settings.model_copy(update={"topic_partitions": 12}),
        key_prefix,
        twilio,
        sms_rate=rate,
        sms_burst=1,
        sms_require_opt_in=False,
        sender_claim_ttl=3.0,
        sender_inline_wait=1.0,
    )
    await ensure_topics(s, "sms")
    batch = [command(to=f"+1415666{n:04d}") for n in range(700)]
    replicas = spawn(s, "sms", tmp_path, 3)
    try:
        await twilio.start()
        await wait_for_group(s, f"{s.sender_group}.sms", 3)
        await produce_commands(s, batch)
        await twilio.wait_created(150, within=20)
        replicas[0].process.kill()  # SIGKILL: no goodbye, claims and a request may be out
        replicas[0].process.wait()
        await wait_for_group(s, f"{s.sender_group}.sms", 2, within=30)
        found = await final_results(s, {cmd.command_id for cmd in batch}, within=40)
    finally:
        codes = stop(replicas[1:])
        try:
            requests, rate_limited = await twilio.snapshot()
        finally:
            twilio.stop()
    assert codes == [0, 0], [r.tail() for r in replicas]
    report = rate_report(requests, rate_limited)
    print(f"\nSIGKILL run at {rate}/s: {report}")  # noqa: T201 - the numbers, for the record
    final: dict[str, list[str]] = defaultdict(list)
    for result in found:
        if result.status != "duplicate":
            final[result.command_id].append(result.status)
    assert set(final) == {cmd.command_id for cmd in batch}  # nothing lost
    assert all(len(statuses) == 1 for statuses in final.values()), [
        (cid, s) for cid, s in final.items() if len(s) > 1
    ]  # exactly one final status each
    assert {statuses[0] for statuses in final.values()} <= FINAL_SEND_STATUSES
    assert report.duplicates == 0  # never two messages for one command
    assert report.rate_limited == 0
    sent = {cid for cid, statuses in final.items() if statuses == ["sent"]}
    unknown = {cid for cid, statuses in final.items() if statuses == ["unknown"]}
    assert sent | unknown == set(final)
    assert len(unknown) <= 3  # only requests the kill cut off (at most the few in flight)
    created = {command_of(r) for r in requests if r.created}
    assert sent <= created  # every "sent" is a message the server made, once
    assert created <= sent | unknown
    print(  # noqa: T201 - the numbers, for the record
        f"sent {len(sent)}, unknown {len(unknown)}, duplicates on send.results "
        f"{sum(1 for r in found if r.status == 'duplicate')}"
    )
