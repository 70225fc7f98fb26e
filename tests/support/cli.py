"""The ``cartpulse`` command line as a subprocess, against a test's topics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.runtime.settings import Settings
from tests.support.env import settings_env

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``cartpulse ARGS`` against the test's topics; ``env`` adds settings."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={
            **os.environ,
            "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "CARTPULSE_TOPIC_PREFIX": settings.topic_prefix,
            "CARTPULSE_TOPIC_PARTITIONS": str(settings.topic_partitions),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``cartpulse ARGS`` running in the background with every one of ``settings``, its output
    appended to ``log``; stop it with ``terminate``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env={**os.environ, **settings_env(settings)},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def terminate(process: subprocess.Popen[bytes], within: float, log: Path) -> float:
    """SIGTERM and wait; the seconds it took to exit. Fails the test with the end of ``log``
    when the process exits non-zero, or is still running ``within`` seconds on (it is killed)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(process.wait, within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"no exit {within} s after SIGTERM:\n{tail(log)}")
    assert process.returncode == 0, tail(log)
    return time.monotonic() - started


def tail(log: Path) -> str:
    """The end of a process's log, for a failure message."""
    return log.read_text(errors="replace")[-4000:]
