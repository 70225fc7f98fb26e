"""What every cartpulse service serves and obeys: health probes, metrics, stop signals.

Shared by the worker's neighbours (the senders, the consent mirror, the webhooks, the
collector), so each answers ``/healthz``, ``/readyz`` and ``/metrics`` alike and stops on
SIGTERM / SIGINT the same way (docs/operations.md, "Graceful shutdown").
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Ready = Callable[[], Awaitable[bool]]


def add_health(app: web.Application, ready: Ready) -> None:
    """Add ``/healthz`` (the process answers) and ``/readyz`` (503 until ``ready``)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if await ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def add_probes(app: web.Application, registry: CollectorRegistry, ready: Ready) -> None:
    """Add ``/metrics`` (``registry``) and the probes of ``add_health``."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/metrics", metrics)
    add_health(app, ready)


@contextlib.asynccontextmanager
async def stop_on_signals(stop: asyncio.Event, enabled: bool = True) -> AsyncIterator[None]:
    """Set ``stop`` on SIGTERM / SIGINT while the block runs; with ``enabled`` false, do
    nothing (the caller handles signals itself)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT) if enabled else ():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


Site = tuple[web.AppRunner, Callable[[web.AppRunner], web.BaseSite]]


@contextlib.asynccontextmanager
async def sites_started(*sites: Site) -> AsyncIterator[None]:
    """Set up each runner and start its site, in order, for the block; then clean up every runner
    set up, in reverse order (requests in flight get the runner's ``shutdown_timeout``).

    A runner or site that fails to start still has the runners before it cleaned up.
    """
    runners: list[web.AppRunner] = []
    try:
        for runner, site in sites:
            runners.append(runner)
            await runner.setup()
            await site(runner).start()
        yield
    finally:
        for each in reversed(runners):
            await each.cleanup()


async def serve_until_stopped(
    stop: asyncio.Event, handle_signals: bool = True, started: asyncio.Event | None = None
) -> None:
    """Set ``started`` (when given), then block until ``stop`` is set, or SIGTERM / SIGINT
    arrives while ``handle_signals`` (``stop_on_signals``)."""
    if started is not None:
        started.set()
    async with stop_on_signals(stop, handle_signals):
        await stop.wait()
