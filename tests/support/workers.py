"""``cartpulse worker`` as a subprocess on the real stack, and waiting for its output."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from streams.agents.worker_process import worker_env, worker_process
from streams.runtime.kafka import topic_counts
from streams.runtime.settings import Settings

COUPON_SECRET = "journeys-test-secret"

# The worker with its journeys (the detector tests run it without them).
JOURNEYS = {"CARTPULSE_JOURNEYS_ENABLED": "true", "CARTPULSE_COUPON_SECRET": COUPON_SECRET}


@contextmanager
def worker(
    settings: Settings, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``cartpulse worker ARGS`` (state under ``tmp_path``); ``env`` adds settings. Its log
    must hold no traceback, and be JSON lines (the CLI's own ``cartpulse:`` lines aside)."""
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    full_env = worker_env(settings, tmp_path / "state", **(env or {}))
    with worker_process(full_env, log, *args, loglevel="info") as process:
        yield process
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
    for line in text.splitlines():
        if line and not line.startswith("cartpulse: "):
            assert isinstance(json.loads(line), dict), line


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
