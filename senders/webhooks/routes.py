"""The aiohttp application: HTTP in, the handlers' ``Reply`` out. No decisions here.

Routes: ``POST /twilio/sms`` (inbound messages), ``POST /twilio/status`` (status callbacks),
``GET|POST /unsubscribe?token=`` (confirmation page, RFC 8058 one-click), ``GET /c/{token}``
(click redirect), and ``/healthz``, ``/readyz``, ``/metrics``.

Every request body is capped (``webhooks_max_body_bytes`` → 413); a body that is not a
well-formed form is a 400 and a wrong content type a 415; Kafka or Redis trouble is a 503 with
``Retry-After`` (Twilio retries). No request can crash the service: anything unexpected is
logged and answered 500. Access logs are off: URLs carry tokens, forms carry phone numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry

from senders.http import add_probes
from senders.service import INFRA_ERRORS
from senders.webhooks.forms import is_form, parse_form
from senders.webhooks.links import LinkHooks, UnsubscribeRequest
from senders.webhooks.metrics import ROUTES, Route, WebhookMetrics
from senders.webhooks.replies import RETRY_LATER, Reply, plain
from senders.webhooks.signature import SIGNATURE_HEADER
from senders.webhooks.twilio import TwilioHooks, TwilioRequest
from streams.errors import InvalidRecord

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER: Final = "I-Twilio-Idempotency-Token"
ONE_CLICK_BODY: Final = "List-Unsubscribe=One-Click"
Handler = Callable[[web.Request], Awaitable[Reply]]
Ready = Callable[[], Awaitable[bool]]


def signed_url(request: web.Request, public_url: str | None) -> str:
    """The URL Twilio requested: ``public_url`` (behind a proxy) or this request's own
    scheme and host, then the path and query exactly as they came on the request line."""
    base = public_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}{request.raw_path}"


def make_app(
    twilio: TwilioHooks,
    links: LinkHooks,
    metrics: WebhookMetrics,
    registry: CollectorRegistry,
    ready: Ready,
    max_body_bytes: int,
    public_url: str | None = None,
) -> web.Application:
    async def twilio_request(request: web.Request) -> TwilioRequest:
        if not is_form(request.content_type):
            raise web.HTTPUnsupportedMediaType(text="expected a urlencoded form\n")
        form = parse_form(await request.read())
        return TwilioRequest(
            url=signed_url(request, public_url),
            form=form,
            signature=request.headers.get(SIGNATURE_HEADER),
            idempotency_token=request.headers.get(IDEMPOTENCY_HEADER),
            command_id=request.query.get("command_id"),
        )

    async def sms_inbound(request: web.Request) -> Reply:
        return await twilio.inbound(await twilio_request(request))

    async def sms_status(request: web.Request) -> Reply:
        return await twilio.status(await twilio_request(request))

    def unsubscribe_request(request: web.Request, one_click: bool) -> UnsubscribeRequest:
        return UnsubscribeRequest(
            token=request.query.get("token", ""),
            path=request.path,
            one_click=one_click,
            user_agent=request.headers.get("User-Agent", ""),
        )

    async def unsubscribe_get(request: web.Request) -> Reply:
        return links.confirm_page(unsubscribe_request(request, one_click=False))

    async def unsubscribe_post(request: web.Request) -> Reply:
        body = await request.read()  # capped; RFC 8058 allows a form or multipart body
        one_click = ONE_CLICK_BODY.encode() in body
        return await links.unsubscribe(unsubscribe_request(request, one_click))

    async def click(request: web.Request) -> Reply:
        return await links.click(request.match_info["token"], request.headers.get("User-Agent", ""))

    app = web.Application(client_max_size=max_body_bytes)
    routes: list[tuple[str, str, Route, Handler]] = [
        ("POST", "/twilio/sms", "sms_inbound", sms_inbound),
        ("POST", "/twilio/status", "sms_status", sms_status),
        ("GET", "/unsubscribe", "unsubscribe", unsubscribe_get),
        ("POST", "/unsubscribe", "unsubscribe", unsubscribe_post),
        ("GET", "/c/{token}", "click", click),
    ]
    for method, path, route, handler in routes:
        app.router.add_route(method, path, _answer(route, handler, metrics))
    add_probes(app, registry, ready)
    for route in ROUTES:  # every series exists from the start (alerts on rates need them)
        metrics.latency.labels(route)
    return app


def _answer(
    route: Route, handler: Handler, metrics: WebhookMetrics
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def view(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            reply = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            reply = plain(413, "request body too large", "too_large")
        except web.HTTPUnsupportedMediaType:
            reply = plain(415, "expected application/x-www-form-urlencoded", "invalid")
        except InvalidRecord as exc:
            reply = plain(400, exc.reason, "invalid")
        except INFRA_ERRORS as exc:
            log.warning("%s: Kafka or Redis unavailable (%r); asked to retry", route, exc)
            reply = plain(503, "temporarily unavailable", "unavailable", RETRY_LATER)
        finally:
            metrics.latency.labels(route).observe(time.perf_counter() - started)
        metrics.requests.labels(route, reply.outcome).inc()
        return web.Response(
            status=reply.status,
            text=reply.body,
            content_type=reply.content_type,
            charset="utf-8",
            headers=dict(reply.headers),
        )

    return view
