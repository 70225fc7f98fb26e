"""Several ``cartpulse worker`` processes in one consumer group, as a scaled deployment runs
them: each with its own state directory, web port and log. Members join and are killed while
the group works; on leaving, the living ones are stopped (SIGTERM, then SIGKILL) and every log
is checked as ``tests.support.workers.worker`` checks one."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from contextlib import ExitStack
from http import HTTPStatus
from pathlib import Path
from types import TracebackType

import aiohttp

from streams.runtime.settings import Settings
from tests.support.net import free_port
from tests.support.workers import worker

GRACE = 30.0  # seconds a member has to drain on SIGTERM, as worker_process gives it


class WorkerGroup:
    """``cartpulse worker ARGS`` with ``env``, one process per ``join``; a context manager."""

    def __init__(
        self, settings: Settings, directory: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._args = args
        self._env = env or {}
        self._stack = ExitStack()
        self._ports: dict[int, int] = {}
        self.members: list[subprocess.Popen[bytes]] = []

    def join(self) -> subprocess.Popen[bytes]:
        """A new member, with a state directory and a web port of its own."""
        home = self._directory / f"worker-{len(self.members)}"
        port = free_port()
        env = {**self._env, "CARTPULSE_WEB_PORT": str(port)}
        member = self._stack.enter_context(worker(self._settings, home, *self._args, env=env))
        self.members.append(member)
        self._ports[member.pid] = port
        return member

    async def ready(self, within: float) -> None:
        """Until every living member says on /readyz that it holds partitions and is not
        rebalancing; fails the test after ``within`` seconds."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if all([await self._ready(http, member) for member in self.alive()]):
                    return
                await asyncio.sleep(0.5)
        raise AssertionError(f"the group was not ready within {within:.0f} s")

    async def _ready(self, http: aiohttp.ClientSession, member: subprocess.Popen[bytes]) -> bool:
        url = f"http://127.0.0.1:{self._ports[member.pid]}/readyz"
        try:
            async with http.get(url) as response:
                return response.status == HTTPStatus.OK
        except (aiohttp.ClientError, TimeoutError):
            return False  # not listening yet

    def kill(self, member: subprocess.Popen[bytes]) -> None:
        """SIGKILL, as a crash or an evicted pod: no drain, no commit, no leave-group; the
        group notices only when its session times out."""
        member.send_signal(signal.SIGKILL)
        assert member.wait(timeout=10) == -signal.SIGKILL

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [member for member in self.members if member.poll() is None]

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # All at once: one by one, each leaving would rebalance the others before they stop.
        living = self.alive()
        for member in living:
            member.send_signal(signal.SIGTERM)
        for member in living:
            try:
                member.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                member.kill()
                member.wait()
        self._stack.__exit__(kind, error, trace)
