"""The collector's aiohttp applications: HTTP in, ``auth`` / ``batch`` / ``outbox`` called,
JSON out. No decisions here.

Public: ``POST /v1/events`` (``OPTIONS`` for a browser's preflight), ``/healthz``, ``/readyz``.
``/metrics`` is served by ``make_metrics_app`` on its own, private address.

Answers: 200 with a verdict per event once Kafka acknowledged them all; 400 a body that is not
an event or an array of events; 401 no or wrong credentials; 413 over the body or event limit;
415 a content type other than JSON or text/plain; 503 with ``Retry-After`` when Kafka did not
acknowledge (nothing is taken: send the request again). Every error is ``{"error": reason}``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Final

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry

from streams.collector.auth import (
    SIGNATURE_HEADER,
    STORE_HEADER,
    Caller,
    Credentials,
    Refused,
    authenticate,
)
from streams.collector.batch import Accepted, BadBatch, check_events, read_batch
from streams.collector.cors import cors_headers, preflight_headers
from streams.collector.metrics import CollectorMetrics
from streams.collector.outbox import KafkaUnavailable, Outbox
from streams.runtime.serving import Ready, add_health, add_probes

log = logging.getLogger(__name__)

EVENTS_PATH: Final = "/v1/events"
# navigator.sendBeacon sends a string as text/plain (no preflight); aiohttp names a request
# without Content-Type application/octet-stream.
CONTENT_TYPES: Final = frozenset({"application/json", "text/plain", "application/octet-stream"})


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int
    max_events: int
    max_record_bytes: int
    body_timeout: float = 10.0


def _error(status: int, reason: str, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": reason}),
        content_type="application/json",
        headers=headers,
    )


def make_app(
    credentials: Credentials,
    outbox: Outbox,
    metrics: CollectorMetrics,
    ready: Ready,
    limits: Limits,
) -> web.Application:
    """The public application (its body cap is ``limits.max_body_bytes``)."""

    async def events(request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        cors = cors_headers(origin, credentials.allowed_origins)
        if request.content_type not in CONTENT_TYPES:
            return _error(415, "send application/json or text/plain", cors)
        if (request.content_length or 0) > limits.max_body_bytes:
            return _error(413, f"the body is over {limits.max_body_bytes} bytes", cors)
        try:
            async with asyncio.timeout(limits.body_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is over {limits.max_body_bytes} bytes", cors)
        except TimeoutError:
            return _error(408, "the body did not arrive in time", cors)
        caller = Caller(
            authorization=request.headers.get("Authorization"),
            signature=request.headers.get(SIGNATURE_HEADER),
            store=request.headers.get(STORE_HEADER) or request.query.get("store"),
            pixel_key=request.query.get("key"),
            origin=origin,
        )
        try:
            store = authenticate(credentials, caller, body)
            items = read_batch(body, limits.max_events)
            verdicts = list(check_events(items, store, limits.max_record_bytes))
        except Refused as exc:
            return _error(401, exc.reason, {**cors, "WWW-Authenticate": "Bearer"})
        except BadBatch as exc:
            return _error(exc.status, exc.reason, cors)
        request_id = uuid.uuid4().hex
        try:
            seconds = await outbox.deliver(verdicts, f"collect:{store}:{request_id}")
        except KafkaUnavailable as exc:
            log.warning("answering 503: %s", exc)
            retry = {"Retry-After": str(max(1, round(exc.seconds)))}
            return _error(503, "Kafka is unavailable; send the request again", cors | retry)
        metrics.produce_seconds.observe(seconds)
        results: list[dict[str, object]] = []
        for verdict in verdicts:
            if isinstance(verdict, Accepted):
                metrics.events.labels("accepted", "none").inc()
                results.append({"index": verdict.index, "status": "accepted"})
            else:
                metrics.events.labels("rejected", verdict.kind).inc()
                results.append(
                    {"index": verdict.index, "status": "rejected", "reason": verdict.reason}
                )
        return web.Response(
            body=orjson.dumps({"request_id": request_id, "results": results}),
            content_type="application/json",
            headers=cors,
        )

    async def preflight(request: web.Request) -> web.Response:
        headers = preflight_headers(request.headers.get("Origin"), credentials.allowed_origins)
        return web.Response(status=204 if headers else 403, headers=headers)

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.request(exc.status)
            raise
        except Exception:
            metrics.request(500)
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal error; see the collector's log", {})
        metrics.request(response.status)
        return response

    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[count])
    app.router.add_post(EVENTS_PATH, events)
    app.router.add_route("OPTIONS", EVENTS_PATH, preflight)
    add_health(app, ready)
    return app


def make_metrics_app(registry: CollectorRegistry, ready: Ready) -> web.Application:
    """``/metrics``, ``/healthz`` and ``/readyz``, for the private metrics address."""
    app = web.Application()
    add_probes(app, registry, ready)
    return app
