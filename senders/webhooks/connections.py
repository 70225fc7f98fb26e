"""Connection hygiene on the public port: idle and trickling connections are closed, and there
are never more than ``max_connections`` open.

aiohttp waits for a request head as long as a client cares to trickle it, and accepts every
connection until the process runs out of file descriptors. ``ConnectionGuard`` sits between
the listening socket and aiohttp's protocol (``wrap``): each connection gets a timer, the
keep-alive timeout while it idles (before its first request and between requests), the header
timeout from the first byte of a request until the routes see its head (``request_started``,
called by a middleware; ``request_finished`` starts the idle timer again). While a request is
being handled the routes bound it themselves (the body timeout, the handler deadline). A
connection beyond the limit is answered 503 and closed before aiohttp sees it.

Each close is counted by reason; the log gets at most one line per reason per minute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from senders.webhooks.lograte import ThrottledLog
from senders.webhooks.metrics import CloseReason, WebhookMetrics

log = logging.getLogger(__name__)

OVER_LIMIT_ANSWER: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 20\r\n\r\ntoo many connections"
)
_State = Literal["idle", "head", "busy"]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    keepalive_timeout: float  # seconds a connection may send nothing
    header_timeout: float  # seconds from a request's first byte to its complete head
    body_timeout: float  # seconds from the head to the complete body (the routes apply it)
    max_connections: int

    def __post_init__(self) -> None:
        if min(self.keepalive_timeout, self.header_timeout, self.body_timeout) <= 0:
            raise ValueError("connection timeouts must be above 0")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


class ConnectionGuard:
    """Times and counts the public port's connections (see the module)."""

    def __init__(self, limits: ConnectionLimits, metrics: WebhookMetrics, log: ThrottledLog):
        self.limits = limits
        self._metrics = metrics
        self._log = log
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}

    @property
    def open(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server``: ``factory``'s protocols, guarded."""
        return lambda: _Guarded(self, factory)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """The routes have a request's head: no connection timer while it is handled."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.busy()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        """The request was answered: the connection idles (keep-alive) until the next one."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.idle()

    def admit(self, transport: asyncio.BaseTransport, connection: _Guarded) -> bool:
        if len(self._open) >= self.limits.max_connections:
            self.closed(
                "over_limit",
                "connection limit reached (%d open): new connections are answered 503",
                self.limits.max_connections,
            )
            return False
        self._open[transport] = connection
        self._metrics.connections.set(len(self._open))
        return True

    def forget(self, transport: asyncio.BaseTransport) -> None:
        if self._open.pop(transport, None) is not None:
            self._metrics.connections.set(len(self._open))

    def closed(self, reason: CloseReason, message: str, *args: object) -> None:
        """Count a connection the service closed; log it within the budget (closing an idle
        connection is routine, so only at debug level)."""
        self._metrics.connections_closed.labels(reason).inc()
        level = logging.DEBUG if reason == "idle" else logging.WARNING
        self._log.log(level, reason, message, *args)


class _Guarded(asyncio.Protocol):
    """One connection: forwards everything to aiohttp's protocol, and owns the timer."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state: _State = "idle"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError(f"a TCP server's transport, not {transport!r}")
        self._transport = transport
        if not self._guard.admit(transport, self):
            transport.write(OVER_LIMIT_ANSWER)
            transport.close()
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)
        self.idle()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._state == "idle":
            self._state = "head"
            self._arm(self._guard.limits.header_timeout, "slow_headers")
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._inner is not None and self._transport is not None:
            self._guard.forget(self._transport)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def busy(self) -> None:
        self._state = "busy"
        self._disarm()

    def idle(self) -> None:
        self._state = "idle"
        self._arm(self._guard.limits.keepalive_timeout, "idle")

    def _arm(self, seconds: float, reason: CloseReason) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self._expire, reason)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, reason: CloseReason) -> None:
        self._timer = None
        if self._transport is None or self._transport.is_closing():
            return
        what = "sent nothing" if reason == "idle" else "did not finish its request head"
        limit = (
            self._guard.limits.keepalive_timeout
            if reason == "idle"
            else self._guard.limits.header_timeout
        )
        self._guard.closed(reason, "closed a connection that %s within %g s", what, limit)
        self._transport.abort()  # no answer is owed, and a client that stops reading gets none
