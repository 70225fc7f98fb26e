"""The SMS sender end to end on the real stack: Kafka, Redis, the consent mirror and the
Twilio test server, with one sender replica running in this process."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from senders.adapters.consents import ConsentStore
from senders.core.keys import Keys
from senders.runtime.app import run_mirror, run_sender
from streams.contract.commands import SendResult, parse_command
from streams.runtime.kafka import REASON_HEADER
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.senders.conftest import (
    command,
    ensure_topics,
    kafka_producer,
    opt_in,
    produce_commands,
    results,
    running,
    sender_settings,
    until_mirrored,
)
from tests.support.net import free_port
from tests.support.webhooks import ACCOUNT_SID, AUTH_TOKEN
from tests.twilio_server import TwilioTestServer

pytestmark = pytest.mark.integration


def by_command(found: list[SendResult]) -> dict[str, list[SendResult]]:
    grouped: dict[str, list[SendResult]] = {}
    for result in found:
        grouped.setdefault(result.command_id, []).append(result)
    return grouped


def requests_for(twilio: TwilioTestServer, command_id: str) -> int:
    return sum(
        parse_qs(urlparse(r.form.get("StatusCallback", "")).query).get("command_id") == [command_id]
        for r in twilio.requests
    )


async def test_every_outcome_end_to_end(
    settings: Settings, key_prefix: str, redis: Redis, twilio: TwilioTestServer
) -> None:
    port = free_port()
    s = sender_settings(settings, key_prefix, twilio, sender_http_port=port)
    mirror_settings = s.model_copy(update={"sender_http_port": 0})
    await ensure_topics(s, "sms")
    ok = command(to="+14155550101")
    expired = command(to="+14155550102", expires_in=-5)
    opted_out = command(to="+14155550103")
    no_consent = command(to="+14155550104")
    stop_reply = command(to="+14155550105")
    invalid_number = command(to="+14155550106")
    timeout = command(to="+14155550107")
    server_error = command(to="+14155550108")
    dry_run = command(to="+14155550109", mode="dry_run")
    bad_template = command(to="+14155550110", template="no_such_template")
    dropped = command(to="+14155550111")
    twilio.fail_recipient(stop_reply.to, "21610")
    twilio.fail_recipient(invalid_number.to, "21211")
    twilio.fail_recipient(timeout.to, "timeout")
    twilio.fail_recipient(server_error.to, "500")
    twilio.fail_recipient(dropped.to, "reset")
    batch = [ok, expired, opted_out, no_consent, stop_reply, invalid_number, timeout]
    batch += [server_error, dry_run, bad_template, dropped]

    store = ConsentStore(redis, Keys(key_prefix))
    async with running(
        lambda stop: run_sender(s, "sms", stop=stop, handle_signals=False),
        lambda stop: run_mirror(mirror_settings, stop=stop, handle_signals=False),
    ):
        async with kafka_producer(s) as kafka:
            for cmd in batch:
                if cmd is not no_consent:
                    await opt_in(kafka, s, cmd.customer_id, "sms")
            await kafka.send_and_wait(
                f"{s.topic_prefix}consents",
                key=f"{opted_out.customer_id}:sms".encode(),
                value=orjson.dumps(
                    {
                        "status": "opted_out",
                        "source": "sms_stop",
                        "recorded_at": datetime.now(UTC).isoformat(),
                    }
                ),
            )
            # and a consent record the mirror cannot use: dead-lettered, the mirror goes on
            await kafka.send_and_wait(f"{s.topic_prefix}consents", key=b"c1:fax", value=b"{}")
        await until_mirrored(
            store,
            {c.customer_id: "opted_in" for c in batch if c not in (no_consent, opted_out)}
            | {opted_out.customer_id: "opted_out"},
        )
        await produce_commands(s, [*batch, ok])  # ``ok`` twice: a redelivered duplicate
        async with kafka_producer(s) as kafka:
            for raw in (b"not json at all", orjson.dumps({**ok.to_dict(), "to": "12345"})):
                await kafka.send_and_wait(f"{s.topic_prefix}send.sms", value=raw, key=b"x")
        first = await results(s, len(batch) + 1)

        # After 21610 and 21211 the same recipients are never called again.
        again_stopped = command(to=stop_reply.to, customer_id=stop_reply.customer_id)
        again_invalid = command(to=invalid_number.to)
        async with kafka_producer(s) as kafka:
            await opt_in(kafka, s, again_invalid.customer_id, "sms")
        await until_mirrored(store, {again_invalid.customer_id: "opted_in"})
        await produce_commands(s, [again_stopped, again_invalid])
        found = await results(s, len(batch) + 3)

        # Twilio's 500 left the channel unavailable until a working provider answers (a probe):
        # one more message gives that answer, whatever order the outcomes above came in.
        recovered = command()
        async with kafka_producer(s) as kafka:
            await opt_in(kafka, s, recovered.customer_id, "sms")
        await until_mirrored(store, {recovered.customer_id: "opted_in"})
        await produce_commands(s, [recovered])
        after = await results(s, len(batch) + 4)
        assert [r.status for r in after if r.command_id == recovered.command_id] == ["sent"]

        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            assert (await http.get(f"{base}/healthz")).status == 200
            # Ready: the mirror's heartbeat is fresh and the provider answered as a working one.
            for _ in range(40):
                if (ready := (await http.get(f"{base}/readyz")).status) == 200:
                    break
                await asyncio.sleep(0.25)
            assert ready == 200
            metrics = await (await http.get(f"{base}/metrics")).text()

    assert len(first) >= len(batch) + 1
    grouped = by_command(found)
    final = {cid: [r for r in rs if r.status != "duplicate"] for cid, rs in grouped.items()}
    assert all(len(rs) == 1 for rs in final.values()), final
    outcome = {cid: (rs[0].status, rs[0].error_code) for cid, rs in final.items()}
    assert outcome[ok.command_id] == ("sent", None)
    assert [r.status for r in grouped[ok.command_id]] == ["sent", "duplicate"]
    assert outcome[expired.command_id] == ("expired", None)
    assert outcome[opted_out.command_id] == ("suppressed", "opted_out")
    assert outcome[no_consent.command_id] == ("suppressed", "no_consent")
    assert outcome[stop_reply.command_id] == ("suppressed", "21610")
    assert outcome[invalid_number.command_id] == ("failed", "21211")
    assert outcome[timeout.command_id] == ("unknown", "timeout")
    assert outcome[server_error.command_id] == ("unknown", "20500")
    assert outcome[dry_run.command_id] == ("suppressed", "dry_run")
    assert outcome[bad_template.command_id] == ("failed", "invalid_message")
    assert outcome[dropped.command_id] == ("unknown", "ServerDisconnectedError")
    assert outcome[again_stopped.command_id] == ("suppressed", "opted_out")
    assert outcome[again_invalid.command_id] == ("suppressed", "undeliverable")

    # What Twilio saw: one request per command that got that far, never a second one.
    calls = {
        cmd.command_id: requests_for(twilio, cmd.command_id)
        for cmd in [*batch, again_stopped, again_invalid]
    }
    assert calls == {
        cmd.command_id: int(cmd in (ok, stop_reply, invalid_number, timeout, server_error, dropped))
        for cmd in [*batch, again_stopped, again_invalid]
    }
    sent = next(r for r in twilio.requests if r.form["To"] == ok.to)
    assert (
        final[ok.command_id][0].provider_id == sent.sid and sent.sid and sent.sid.startswith("SM")
    )
    assert sent.form["From"] == s.twilio_from
    assert sent.form["Body"].endswith("\nReply STOP to opt out.")
    assert sent.form["Body"].startswith("Cartpulse Shop: Hi Ann, you left Blue Mug in your cart.")
    assert 3500 <= int(sent.form["ValidityPeriod"]) <= 3600  # never past expires_at
    assert final[ok.command_id][0].segments == 1 == sent.segments
    assert final[ok.command_id][0].attempts == 1

    # 21610 became an opt-out on the consents topic and in the mirror.
    consents = await consume_all(s, f"{s.topic_prefix}consents", len(batch) + 3)
    opt_outs = [
        orjson.loads(r.value) for r in consents if r.key == f"{stop_reply.customer_id}:sms".encode()
    ]
    assert [c["status"] for c in opt_outs] == ["opted_in", "opted_out"]
    assert opt_outs[1]["source"] == "provider:21610"
    assert (await store.get(stop_reply.customer_id, "sms")).status == "opted_out"  # type: ignore[union-attr]

    # Invalid commands went to the DLQ with their reason, and the loop went on.
    dlq = await consume_all(s, f"{s.topic_prefix}send.sms.dlq", 3)
    reasons = sorted(dict(r.headers)[REASON_HEADER].decode() for r in dlq)
    assert len(reasons) == 3
    assert reasons[0] == "command is not valid JSON"
    assert any("no template 'no_such_template'" in reason for reason in reasons)
    assert any("E.164" in reason for reason in reasons)

    assert (
        'cartpulse_send_outcomes_total{channel="sms",status="sent"} 2.0' in metrics
    )  # + recovered
    assert 'cartpulse_send_provider_errors_total{channel="sms",code="21610"} 1.0' in metrics
    assert 'cartpulse_send_dlq_total{channel="sms"} 3.0' in metrics
    assert Counter(r.status for r in twilio.requests)[429] == 0
    mirror_dlq = await consume_all(s, f"{s.topic_prefix}consents.dlq", 1)
    assert [dict(r.headers)[REASON_HEADER] for r in mirror_dlq] == [
        b"consent mirror: consent key must be customer_id:channel with channel sms or email"
    ]


async def test_rate_limited_and_refused_requests_are_retried_until_sent(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    port = free_port()
    twilio = TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN, timeout_hang=5.0)
    s = sender_settings(
        settings,
        key_prefix,
        None,
        twilio_api_base=f"http://127.0.0.1:{port}",
        sms_require_opt_in=False,
    )
    await ensure_topics(s, "sms")
    refused = command(to="+14155550201")
    throttled = command(to="+14155550202")
    later = command(
        to="+14155550203", not_before=(datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    )
    try:
        async with running(lambda stop: run_sender(s, "sms", stop=stop, handle_signals=False)):
            await produce_commands(s, [refused])
            await asyncio.sleep(1.5)  # nothing listens yet: connection refused, retried
            await twilio.start(port=port)
            twilio.fail_recipient(throttled.to, "429", times=2)
            await produce_commands(s, [throttled, later])
            found = {r.command_id: r for r in await results(s, 3)}
    finally:
        await twilio.stop()
    assert found[refused.command_id].status == "sent"
    assert found[refused.command_id].attempts >= 2  # the failed connects count as attempts
    assert found[throttled.command_id].status == "sent"
    assert found[throttled.command_id].attempts == 3  # 429, 429, 201
    assert requests_for(twilio, throttled.command_id) == 3
    assert found[later.command_id].status == "sent"
    sent_at = next(r.at for r in twilio.created if r.form["To"] == later.to)
    assert later.not_before is not None and sent_at >= later.not_before.timestamp()
    deferred = await consume_all(s, f"{s.topic_prefix}send.sms.retry", 1)
    reasons = [
        (parse_command(r.value).command_id, dict(r.headers)["cartpulse.defer_reason"])
        for r in deferred
    ]
    # `later` waits on the retry topic for its not_before; `refused` and `throttled` may wait
    # there too when a back-off (with jitter) outgrows the in-place wait.
    assert reasons.count((later.command_id, b"not_before")) == 1
    others = {r for r in reasons if r != (later.command_id, b"not_before")}
    retried = {
        (refused.command_id, b"provider_backoff"),
        (throttled.command_id, b"provider_backoff"),
    }
    assert others <= retried, reasons
    assert len(twilio.created) == 3
