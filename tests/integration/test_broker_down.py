"""A broker killed under the worker and under the senders (docs/operations.md, "Three brokers
and a broker down").

A cluster of the module's own (``tests/support/own_stack.py``): three Kafka nodes, topics
replicated three times with two in sync. An hour of simulated traffic, ending two days ago, is
imported; the worker with its journeys (event clock) reads it, and once it has written its first
abandonments the broker that coordinates its consumer group is SIGKILLed. The worker goes on with
two brokers; ``cartpulse watermark end`` ends the input, and the commands and decisions equal
``cartpulse detect --flush`` piped into ``cartpulse journeys``, byte for byte: no event,
abandonment or command lost or repeated. Then, the broker back, the SMS and email senders send
those commands to the Twilio and SMTP test servers while ``cartpulse import --rate`` streams
more events in, and the broker coordinating the email senders' group is SIGKILLed mid-sending
and mid-import: every command still gets its outcome, each message reaches its provider once,
and every event streamed in is in Kafka once.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from senders.runtime.app import run_mirror, run_sender
from streams.agents.worker_process import worker_env, worker_process
from streams.contract.commands import FINAL_SEND_STATUSES
from streams.contract.topics import Topic, TopicCatalogue
from streams.offline.simulate import SimulationConfig
from streams.runtime.kafka import read_all
from streams.runtime.settings import Settings
from streams.tools.replay import wait_for_journeys
from tests.senders.conftest import final_results, running, sender_settings
from tests.smtp_server import SmtpTestServer, make_certificate
from tests.support.events import write_views
from tests.support.live_offline import (
    JOURNEYS,
    Difference,
    Traffic,
    cartpulse,
    offline,
    produce_audience,
    while_running,
    write_traffic,
)
from tests.support.own_stack import OwnStack, own_stack
from tests.support.webhooks import ACCOUNT_SID, AUTH_TOKEN
from tests.support.workers import wait_for_count
from tests.twilio_server import TwilioTestServer

pytestmark = [
    pytest.mark.integration,
    # the senders run in this process: their Kafka clients log the dead broker
    pytest.mark.expect_errors,
]

HOUR_MS = 3_600_000
PATIENCE = 60.0
VIEWS, VIEWS_RATE = 2_500, 250  # about 10 s of importing, across the senders' broker death
ROOT = Path(__file__).resolve().parents[2]


def shape(now_ms: int) -> SimulationConfig:
    """3,000 events of 200 shoppers over an hour that ended about 53 h ago: every journey step
    (the last ones 48 h after the cart) is due by now, the first ones have expired, the later
    ones have not, so the senders send some and expire others."""
    return SimulationConfig(
        events=3_000, rate=3_000 / 3_600, shoppers=200, start_ms=now_ms - 54 * HOUR_MS, seed=7
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    with own_stack(tmp_path_factory.mktemp("three-brokers"), brokers=3) as stack:
        yield stack


async def coordinator(settings: Settings, group: str) -> int:
    """The broker (= stack.sh node) that coordinates ``group``."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        return int(await admin.find_coordinator(group))
    finally:
        await admin.close()


async def replication_of(settings: Settings, topic: str) -> tuple[int, str]:
    """A topic's replica count and its ``min.insync.replicas``."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    return len(described["partitions"][0]["replicas"]), configs["min.insync.replicas"]


def command_ids(values: list[bytes]) -> list[str]:
    return [str(orjson.loads(value)["command_id"]) for value in values]


async def test_a_broker_killed_under_the_worker_and_the_senders_loses_and_repeats_nothing(
    cluster: OwnStack, tmp_path: Path
) -> None:
    settings = cluster.settings()
    assert settings.topic_replication == 3 and settings.min_insync_replicas == 2
    traffic = await asyncio.to_thread(
        write_traffic, tmp_path / "traffic", shape(int(time.time() * 1000))
    )
    wanted = await asyncio.to_thread(offline, traffic, tmp_path / "offline")
    assert len(wanted.commands) > 100, len(wanted.commands)

    killed = await run_worker_through_a_broker_death(cluster, settings, traffic, tmp_path)
    # The broker comes back (for the senders' part) while the outputs are compared.
    back = asyncio.create_task(asyncio.to_thread(cluster.start_broker, killed))
    try:
        name = TopicCatalogue.of(settings).name
        sms, email = name(Topic.SEND_SMS), name(Topic.SEND_EMAIL)
        commands = [v async for v in read_all(settings, sms)]
        commands += [v async for v in read_all(settings, email)]
        decisions = [v async for v in read_all(settings, name(Topic.DECISIONS))]
        got_commands, got_decisions = sorted(commands), sorted(decisions)
        assert got_commands == wanted.commands, Difference.of(got_commands, wanted.commands)
        assert got_decisions == wanted.decisions, Difference.of(got_decisions, wanted.decisions)
        # Replicated as configured, the worker's own (Faust's) topics too.
        changelog = f"{settings.worker_group}-journeys-changelog"
        for topic in (email, changelog):
            assert await replication_of(settings, topic) == (3, "2"), topic
    finally:
        await back

    # Events stream in again, into topics of their own, while the senders send.
    streamed = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}more."})
    views = write_views(tmp_path / "views.jsonl", VIEWS)
    importing = await start_import(streamed, views, tmp_path)
    try:
        await send_every_command(cluster, settings, command_ids(commands), tmp_path, importing)
        out, err = await asyncio.wait_for(importing.communicate(), timeout=PATIENCE)
    finally:
        if importing.returncode is None:
            importing.kill()
            await importing.wait()
    summary = orjson.loads(out)
    assert summary["imported"] == VIEWS and summary["failed"] == 0, err.decode()[-3000:]
    clickstream = TopicCatalogue.of(streamed).name(Topic.CLICKSTREAM)
    seen = [str(orjson.loads(v)["event_id"]) async for v in read_all(streamed, clickstream)]
    assert sorted(seen) == sorted(f"v{n}" for n in range(VIEWS))  # each once, none lost


async def run_worker_through_a_broker_death(
    cluster: OwnStack, settings: Settings, traffic: Traffic, tmp_path: Path
) -> int:
    """The worker with its journeys over ``traffic``, the broker coordinating its group killed
    once its first abandonments are out, to the end of its journeys; the killed node."""
    env = worker_env(settings, tmp_path / "state", **JOURNEYS)
    await asyncio.to_thread(cartpulse, env, ROOT, "topics", "create")
    await produce_audience(settings, traffic.customers, traffic.consents)
    await asyncio.to_thread(cartpulse, env, ROOT, "import", "--quiet", str(traffic.events))
    abandonments = TopicCatalogue.of(settings).name(Topic.ABANDONMENTS)
    found = len((tmp_path / "offline" / "abandonments.jsonl").read_bytes().splitlines())
    log = tmp_path / "worker.log"
    with worker_process(env, log, "--clock", "event", loglevel="info") as worker:
        # The first abandonments out: the worker is at work (its commands wait for the end).
        wait = wait_for_count(settings, abandonments, 1, PATIENCE, poll=0.2)
        before = await while_running(worker, log, wait)
        assert 1 <= before < found, f"{before} of {found} abandonments at the kill"
        killed = await coordinator(settings, settings.worker_group)
        await asyncio.to_thread(cluster.kill_broker, killed)
        marked = asyncio.to_thread(
            cartpulse, env, ROOT, "watermark", "end", "--timeout", str(PATIENCE)
        )
        await while_running(worker, log, marked)
        await while_running(worker, log, wait_for_journeys(settings, PATIENCE))
        assert worker.poll() is None  # the same worker, through the broker's death
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
    return killed


async def start_import(
    settings: Settings, events: Path, tmp_path: Path
) -> asyncio.subprocess.Process:
    """``cartpulse import --json --rate`` of ``events``, running (its topics created first,
    replicated as the settings say)."""
    env = worker_env(settings, tmp_path / "import-state")
    await asyncio.to_thread(cartpulse, env, ROOT, "topics", "create")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", "import", "--json", "--no-create-topics",
        "--rate", str(VIEWS_RATE), str(events), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def send_every_command(
    cluster: OwnStack,
    settings: Settings,
    ids: list[str],
    tmp_path: Path,
    importing: asyncio.subprocess.Process,
) -> None:
    """The senders send ``ids``' commands; a broker is killed once they are at it (and while
    ``importing`` runs)."""
    twilio = TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN)
    await twilio.start()
    (tmp_path / "tls").mkdir()
    smtp = SmtpTestServer(*make_certificate(tmp_path / "tls"))
    await smtp.start()
    s = sender_settings(
        settings,
        f"t{uuid.uuid4().hex[:10]}:",
        twilio,
        smtp,
        redis_url=SecretStr(cluster.redis_url),
        # slow enough that the broker dies mid-sending
        sms_rate=30.0, sms_burst=5, email_rate=30.0, email_burst=5,
        sender_session_timeout=timedelta(seconds=6),
    )  # fmt: skip
    try:
        async with running(
            lambda stop: run_mirror(s, stop=stop, handle_signals=False),
            lambda stop: run_sender(s, "sms", stop=stop, handle_signals=False),
            lambda stop: run_sender(s, "email", stop=stop, handle_signals=False),
        ):
            for _ in range(int(PATIENCE * 10)):  # a few emails out first
                if len(smtp.messages) >= 10:
                    break
                await asyncio.sleep(0.1)
            assert smtp.messages, "the senders sent nothing"
            killed = await coordinator(s, s.sender_group_id("email"))
            sent_before = len(smtp.messages)
            await asyncio.to_thread(cluster.kill_broker, killed)
            if importing.returncode is not None:
                _, err = await importing.communicate()
                pytest.fail(f"the import ended before the broker went away:\n{err.decode()}")
            found = await final_results(s, set(ids), within=PATIENCE)
    finally:
        await smtp.stop()
        await twilio.stop()

    final = {r.command_id: r.status for r in found if r.status in FINAL_SEND_STATUSES}
    assert set(final) == set(ids), f"{len(set(ids) - set(final))} commands without an outcome"
    sent = {cid for cid, status in final.items() if status == "sent"}
    texts = Counter(
        parse_qs(urlparse(r.form.get("StatusCallback", "")).query).get("command_id", [""])[0]
        for r in twilio.created
    )
    emails = Counter(str(m.message["X-Cartpulse-Command"]) for m in smtp.messages)
    assert max([*texts.values(), *emails.values()]) == 1, "a message went out twice"
    assert set(texts) | set(emails) == sent  # and every sent one went out
    assert sent_before < len(emails)  # the broker went away mid-sending
    assert Counter(final.values())["sent"] > 50, Counter(final.values())
