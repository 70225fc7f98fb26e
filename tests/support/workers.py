"""``cartpulse worker`` as a subprocess on the real stack, and waiting for its output."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from streams.kafka import topic_counts
from streams.settings import Settings

COUPON_SECRET = "journeys-test-secret"

# The worker with its journeys (the detector tests run it without them).
JOURNEYS = {"CARTPULSE_JOURNEYS_ENABLED": "true", "CARTPULSE_COUPON_SECRET": COUPON_SECRET}


def worker_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CARTPULSE_TOPIC_PREFIX": settings.topic_prefix,
        "CARTPULSE_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "CARTPULSE_STORE": "rocksdb://",
        "CARTPULSE_DATA_DIR": str(data_dir),
        "CARTPULSE_WEB_PORT": "0",
        "CARTPULSE_JOURNEYS_ENABLED": "false",  # the detector alone
    }


@contextmanager
def worker(
    settings: Settings, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``cartpulse worker ARGS`` (state under ``tmp_path``); ``env`` adds settings."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info", *args],
            env={**worker_env(settings, tmp_path / "state"), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-4000:]


def journeys_worker(
    settings: Settings, tmp_path: Path, web_port: int = 0
) -> AbstractContextManager[object]:
    """An event-mode worker that runs the journeys."""
    env = {**JOURNEYS, "CARTPULSE_WEB_PORT": str(web_port)}
    return worker(settings, tmp_path, "--clock", "event", env=env)


async def wait_for_count(
    settings: Settings, topic: str, at_least: int, within: float, poll: float = 0.5
) -> int:
    deadline = time.monotonic() + within
    count = 0
    while time.monotonic() < deadline:
        count = (await topic_counts(settings, [topic]))[topic]
        if count >= at_least:
            return count
        await asyncio.sleep(poll)
    return count
