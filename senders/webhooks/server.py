"""The sockets ``cartpulse webhooks`` listens on: the public port, guarded (``connections``),
and the metrics port, on its own (private by default) address.

``bind`` opens a listening socket before anything else starts, so a port in use or a host
that does not resolve ends the process at once with ``ConfigurationError`` (one line, exit
code 2), not a traceback after Kafka was reached.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from senders.webhooks.connections import ConnectionGuard
from streams.runtime.binding import BACKLOG

log = logging.getLogger(__name__)

SPARE_DESCRIPTORS: Final = 64  # Kafka, Redis, the metrics port, logs: beside the connections


def ensure_descriptors(connections: int) -> None:
    """Raise the soft file-descriptor limit so ``connections`` fit, as far as the hard limit
    allows; warn when they still do not (accept() would fail with EMFILE under load)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        if raised < wanted:
            log.warning(
                "CARTPULSE_WEBHOOKS_MAX_CONNECTIONS=%d needs %d file descriptors, the limit is "
                "%d: lower the setting or raise ulimit -n",
                connections,
                wanted,
                raised,
            )


class GuardedSite(web.BaseSite):
    """An aiohttp site on a bound socket whose connections go through ``guard``."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard):
        super().__init__(runner, backlog=BACKLOG)
        self._sock = sock
        self._guard = guard

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("set the runner up before starting its sites")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.wrap(server), sock=self._sock)


def guard_middleware(guard: ConnectionGuard) -> Middleware:
    """Tells ``guard`` when a request's head has arrived and when it has been answered."""

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        guard.request_started(transport)
        try:
            return await handler(request)
        finally:
            guard.request_finished(transport)

    return timed
