"""A local stack of a test module's own, to stop and start under the code it tests.

``deploy/local/stack.sh`` on free ports, under a directory of its own that shares the jar cache;
the shared stack on 9092 / 6379 keeps serving other tests and is never touched. One Kafka node,
or a cluster of three (``brokers=3``: nodes on a block of free ports, topics replicated three
times with two in sync), whose nodes can be killed and started one by one.
"""

from __future__ import annotations

import os
import random
import socket
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
    brokers: int = 1

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

    def kill_broker(self, node: int) -> None:
        """SIGKILL Kafka node ``node`` (1..brokers): a crash, nothing flushed."""
        self.run("kill-broker", str(node))

    def start_broker(self, node: int) -> None:
        """Start Kafka node ``node`` again; returns once it serves clients."""
        self.run("start-broker", str(node))

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.env['CARTPULSE_REDIS_PORT']}/0"

    def settings(self) -> Settings:
        """Settings on this stack's Kafka with topics of their own (two partitions each),
        replicated on every broker up to three."""
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
            topic_partitions=2,
            topic_replication=min(self.brokers, 3),
            store="memory://",
        )


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive ports free on every interface (below the ephemeral
    range clients use)."""
    for _ in range(200):
        first = random.randrange(20_000, 32_000 - size)
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("0.0.0.0", port))  # noqa: S104 - the stack's servers bind 127.0.0.1
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no block of {size} free ports")


@contextmanager
def own_stack(home: Path, brokers: int = 1) -> Iterator[OwnStack]:
    """Start a stack under ``home`` (an empty directory) on free ports, with ``brokers`` Kafka
    nodes (their client ports, then their controller ports, one block); purge it afterwards."""
    cache = Path(
        os.environ.get("CARTPULSE_STACK_DIR", Path.home() / ".cache" / "cartpulse" / "stack")
    )
    version = os.environ.get("CARTPULSE_KAFKA_VERSION", "4.1.1")
    for shared in ("m2", f"kafka-{version}"):  # the jars, fetched once for every stack
        (cache / shared).mkdir(parents=True, exist_ok=True)
        (home / shared).symlink_to(cache / shared)
    kafka = free_port_block(2 * brokers)
    stack = OwnStack(
        ",".join(f"127.0.0.1:{kafka + i}" for i in range(brokers)),
        {
            **os.environ,
            "CARTPULSE_STACK_DIR": str(home),
            "CARTPULSE_KAFKA_BROKERS": str(brokers),
            "CARTPULSE_KAFKA_PORT": str(kafka),
            "CARTPULSE_KAFKA_CONTROLLER_PORT": str(kafka + brokers),
            "CARTPULSE_REDIS_PORT": str(free_port()),
        },
        brokers,
    )
    stack.run("up")
    try:
        yield stack
    finally:
        stack.run("down", "--purge")
