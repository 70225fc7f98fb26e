"""The sender's own small HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.errors import ConfigurationError

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


def make_app(registry: CollectorRegistry, ready: Callable[[], bool]) -> web.Application:
    async def is_ready() -> bool:
        return ready()

    app = web.Application()
    add_probes(app, registry, is_ready)
    return app


async def start_http(
    host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]
) -> web.AppRunner:
    """Serve on ``host:port`` until the returned runner is cleaned up.

    Raises ``ConfigurationError`` when the address cannot be bound (in use, not an address of
    this host): a setting to fix, not a fault to retry."""
    runner = web.AppRunner(make_app(registry, ready), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        reason = exc.strerror or str(exc)
        raise ConfigurationError(
            f"cannot serve /metrics on {host}:{port} (CARTPULSE_SENDER_HTTP_HOST / _PORT): {reason}"
        ) from None
    return runner
