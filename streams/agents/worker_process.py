"""``cartpulse worker`` as a child process: what a replay, the benchmarks and the tests start.

``worker_env`` is the environment of a worker over ``settings``' broker and topics with its
state in ``data_dir`` (the detector alone unless ``extra`` says otherwise); ``worker_process``
runs one and, on leaving, stops it as an orchestrator would: SIGTERM (it drains), then SIGKILL
after ``grace`` seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.runtime.settings import Settings


def worker_env(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CARTPULSE_TOPIC_PREFIX": settings.topic_prefix,
        "CARTPULSE_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "CARTPULSE_TOPIC_REPLICATION": str(settings.topic_replication),
        "CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS": str(settings.min_insync_replicas),
        "CARTPULSE_STORE": "rocksdb://",
        "CARTPULSE_DATA_DIR": str(data_dir),
        "CARTPULSE_WEB_PORT": "0",
        "CARTPULSE_JOURNEYS_ENABLED": "false",  # the detector alone
        **extra,
    }


@contextmanager
def worker_process(
    env: dict[str, str],
    log: Path,
    *args: str,
    loglevel: str = "warn",
    grace: float = 30.0,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``cartpulse worker ARGS`` with ``env``, its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own command, with this interpreter
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", loglevel, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
