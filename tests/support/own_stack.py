"""A local stack of a test module's own, to stop and start under the code it tests.

``deploy/local/stack.sh`` on free ports, under a directory of its own that shares the jar cache;
the shared stack on 9092 / 6379 keeps serving other tests and is never touched.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.runtime.settings import Settings
from tests.conftest import IN_CI, STACK
from tests.support.net import free_port


@dataclass(frozen=True)
class OwnStack:
    """A running stack: its Kafka's ``bootstrap`` servers, and ``stack.sh`` commands on it."""

    bootstrap: str
    env: dict[str, str]

    def run(self, *args: str) -> None:
        """Run ``stack.sh <args>`` on this stack; a failure fails the test (skips it when
        ``up`` fails outside CI: no Java, no network for the jars)."""
        result = subprocess.run(
            ["bash", str(STACK), *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            message = f"stack.sh {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
            if IN_CI or args[0] != "up":
                pytest.fail(message)
            pytest.skip(message)

    def restart(self) -> None:
        """Stop the stack and start it again, its data kept."""
        self.run("down")
        self.run("up")

    def settings(self) -> Settings:
        """Settings on this stack's Kafka with topics of their own (two partitions each)."""
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
            topic_partitions=2,
            store="memory://",
        )


@contextmanager
def own_stack(home: Path) -> Iterator[OwnStack]:
    """Start a stack under ``home`` (an empty directory) on free ports; purge it afterwards."""
    cache = Path(
        os.environ.get("CARTPULSE_STACK_DIR", Path.home() / ".cache" / "cartpulse" / "stack")
    )
    version = os.environ.get("CARTPULSE_KAFKA_VERSION", "4.1.1")
    for shared in ("m2", f"kafka-{version}"):  # the jars, fetched once for every stack
        (cache / shared).mkdir(parents=True, exist_ok=True)
        (home / shared).symlink_to(cache / shared)
    kafka = free_port()
    stack = OwnStack(
        f"127.0.0.1:{kafka}",
        {
            **os.environ,
            "CARTPULSE_STACK_DIR": str(home),
            "CARTPULSE_KAFKA_PORT": str(kafka),
            "CARTPULSE_KAFKA_CONTROLLER_PORT": str(free_port()),
            "CARTPULSE_REDIS_PORT": str(free_port()),
        },
    )
    stack.run("up")
    try:
        yield stack
    finally:
        stack.run("down", "--purge")
