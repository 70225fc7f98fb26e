"""A ``redis-server`` of a test's own, on a free port, that the test may stop and start again
(the shared one on 6379 serves other tests at the same time). Its data is kept across a
restart (append-only file, fsync on every write), as a production Redis keeps it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.net import free_port


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--daemonize", "no",
        ]  # fmt: skip
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        """SIGTERM, as an operator's restart does; waits until it is gone."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def serve_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """The body of a test's ``own_redis`` fixture: started, yielded, stopped."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (deploy/local/stack.sh install)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
