"""The sender's own small HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from streams.contract.errors import ConfigurationError
from streams.runtime.serving import add_probes


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
