"""Sender replicas as separate OS processes (``cartpulse send sms``), for the multi-replica
tests and ``bench/senders.py``: start them, wait for their consumer group to settle, read what
the Twilio test server saw, stop them."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from streams.runtime.settings import Settings
from tests.support.env import settings_env
from tests.support.net import free_port
from tests.twilio_server import Request

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def spawn(settings: Settings, channel: str, log_dir: Path, count: int) -> list[Replica]:
    env = {**os.environ, **settings_env(settings)}
    replicas = []
    for n in range(count):
        log = log_dir / f"{channel}-replica-{n}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "send", channel],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        replicas.append(Replica(process, log))
    return replicas


async def wait_for_group(
    settings: Settings, group: str, members: int, within: float = 60.0
) -> None:
    """Until the consumer group is Stable with ``members`` members (all replicas joined)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                [response] = await admin.describe_consumer_groups([group])
                description = response.groups[0]
                if description[2] == "Stable" and len(description[5]) == members:
                    return
            except Exception:  # noqa: BLE001, S110 - the group may not exist yet: ask again
                pass
            await asyncio.sleep(0.25)
        raise AssertionError(f"group {group} did not settle with {members} members")
    finally:
        await admin.close()


def stop(replicas: list[Replica], timeout: float = 30.0) -> list[int | None]:
    """SIGTERM every live replica and wait; returns exit codes (None: had to be killed)."""
    for replica in replicas:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for replica in replicas:
        try:
            codes.append(replica.process.wait(timeout))
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()
            codes.append(None)
    return codes


def command_of(request: Request) -> str | None:
    values = parse_qs(urlparse(request.form.get("StatusCallback", "")).query).get("command_id")
    return values[0] if values else None


class TwilioProcess:
    """The Twilio test server in its own process, so that nothing the test does in its own
    event loop can stall it (a stalled server would bunch requests and see false 429s)."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        rate: float | None,
        burst: int,
        timeout_hang: float = 30.0,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = ["--port", str(self.port), "--account-sid", account_sid, "--auth-token", auth_token]
        args += ["--timeout-hang", str(timeout_hang)]
        if rate is not None:
            args += ["--rate", str(rate), "--burst", str(burst)]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.twilio_server", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                async with aiohttp.ClientSession() as http, http.get(self._url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("the Twilio test server did not start")

    @property
    def _url(self) -> str:
        return f"{self.base_url}/_test/requests"

    async def fail(self, to: str, failure: str, times: int | None = None) -> None:
        """Make requests to ``to`` fail with ``failure`` (see ``tests.twilio_server.FAILURES``)."""
        body = {"to": to, "failure": failure, "times": times}
        url = f"{self.base_url}/_test/fail"
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
            response.raise_for_status()

    async def snapshot(self) -> tuple[list[Request], int]:
        """Every request so far and the number of 429s the rate limit answered."""
        async with aiohttp.ClientSession() as http, http.get(self._url) as response:
            data = await response.json()
        return [Request(**r) for r in data["requests"]], int(data["rate_limited"])

    async def wait_created(self, count: int, within: float) -> None:
        """Until the server created ``count`` messages (asks for counts only: cheap)."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                async with http.get(f"{self.base_url}/_test/stats") as response:
                    if (await response.json())["created"] >= count:
                        return
                await asyncio.sleep(0.5)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@dataclass(frozen=True)
class RateReport:
    segments: int
    messages: int
    seconds: float
    achieved: float  # segments per second between the first and the last send
    max_second: int  # most segments in one calendar second
    max_window: int  # most segments in any sliding one-second window
    rate_limited: int  # 429s answered by the server
    duplicates: int  # commands the server created more than one message for

    def row(self, label: str, configured: float | None, replicas: int) -> str:
        target = f"{configured:g}" if configured else "unlimited"
        ratio = f"{self.achieved / configured:.3f}" if configured else "-"
        return (
            f"| {label} | {replicas} | {target} | {self.achieved:.2f} | {ratio} | {self.max_second} "
            f"| {self.rate_limited} | {self.duplicates} | {self.messages} | {self.seconds:.1f} |"
        )


HEADER = (
    "| run | replicas | configured seg/s | achieved seg/s | achieved / configured | "
    "max seg in a second | 429s | duplicate sends | messages | seconds |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def rate_report(requests: list[Request], rate_limited: int) -> RateReport:
    created = sorted((r for r in requests if r.created), key=lambda r: r.at)
    if len(created) < 2:
        raise AssertionError("fewer than two messages were sent")
    seconds = created[-1].at - created[0].at
    segments = sum(r.segments for r in created)
    # GCRA charges a send's cost after it: n sends span the costs of all but the last one.
    achieved = (segments - created[-1].segments) / seconds if seconds > 0 else math.inf
    per_second = Counter[int]()
    for r in created:
        per_second[math.floor(r.at)] += r.segments
    window, start, in_window = 0, 0, 0
    for r in created:
        in_window += r.segments
        while r.at - created[start].at >= 1.0:
            in_window -= created[start].segments
            start += 1
        window = max(window, in_window)
    by_command = Counter(command_of(r) for r in created)
    duplicates = sum(1 for cid, n in by_command.items() if cid is not None and n > 1)
    return RateReport(
        segments,
        len(created),
        seconds,
        achieved,
        max(per_second.values()),
        window,
        rate_limited,
        duplicates,
    )
