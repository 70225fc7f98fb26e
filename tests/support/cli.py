"""The ``cartpulse`` command line as a subprocess, against a test's topics."""

from __future__ import annotations

import os
import subprocess
import sys

from streams.settings import Settings


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
