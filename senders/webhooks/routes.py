"""The aiohttp application: HTTP in, the handlers' ``Reply`` out. No decisions here.

Routes: ``POST /twilio/sms`` (inbound messages), ``POST /twilio/status`` (status callbacks),
``GET|POST /unsubscribe?token=`` (confirmation page, RFC 8058 one-click), ``GET /c/{token}``
(click redirect: an email's sealed token or a short SMS link's id), ``GET /o/{token}`` (an
email's open pixel: always the image), and the probes
``/healthz``, ``/readyz``. ``/metrics`` is not here: it is served by ``make_metrics_app`` on
its own, private address.

Every request body is capped (``webhooks_max_body_bytes`` → 413) and must arrive within the
body timeout (→ 408, and the connection is closed); a body that is not a well-formed form is a
400 and a wrong content type a 415; Kafka or Redis trouble is a 503 with ``Retry-After``
(Twilio retries). No request can crash the service: anything unexpected is logged and
answered 500. Access logs are off: URLs carry tokens, forms carry phone numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CollectorRegistry

from senders.adapters.errors import INFRA_ERRORS
from senders.webhooks.connections import ConnectionGuard
from senders.webhooks.forms import is_form, parse_form
from senders.webhooks.links import LinkHooks, UnsubscribeRequest
from senders.webhooks.logs import bounded
from senders.webhooks.metrics import OPEN_OUTCOMES, ROUTES, Route, WebhookMetrics
from senders.webhooks.replies import RETRY_LATER, Reply, plain
from senders.webhooks.server import guard_middleware
from senders.webhooks.signature import SIGNATURE_HEADER
from senders.webhooks.twilio import TwilioHooks, TwilioRequest
from streams.contract.errors import CartpulseError, InvalidRecord
from streams.runtime.serving import Ready, add_health, add_probes

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER: Final = "I-Twilio-Idempotency-Token"
ONE_CLICK_BODY: Final = "List-Unsubscribe=One-Click"
Handler = Callable[[web.Request], Awaitable[Reply]]
DEFAULT_BODY_TIMEOUT: Final = 10.0  # seconds


class ClientGoneError(CartpulseError):
    """The client hung up before its request body arrived: nobody to answer, nothing to log
    but a line (clients and networks drop connections all the time)."""


class BodyTimeoutError(CartpulseError):
    """The request body did not arrive within the body timeout (the client may send again)."""

    retriable = True


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_body_bytes: int
    body_timeout: float = DEFAULT_BODY_TIMEOUT


def signed_url(request: web.Request, public_url: str | None) -> str:
    """The URL Twilio requested: ``public_url`` (behind a proxy) or this request's own
    scheme and host, then the path and query exactly as they came on the request line."""
    base = public_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}{request.raw_path}"


def public_prefix(public_url: str | None) -> str:
    """The path prefix of the public URL (a proxy strips it before passing requests on), ``""``
    for none: links the service writes into its pages must carry it."""
    return urlsplit(public_url).path.rstrip("/") if public_url else ""


def make_app(
    twilio: TwilioHooks,
    links: LinkHooks,
    metrics: WebhookMetrics,
    ready: Ready,
    limits: HttpLimits,
    public_url: str | None = None,
    guard: ConnectionGuard | None = None,
) -> web.Application:
    """The public application; ``guard`` (when given) is told where each request stands."""

    async def read_body(request: web.Request) -> bytes:
        try:
            async with asyncio.timeout(limits.body_timeout):
                return await request.read()
        except TimeoutError:
            raise BodyTimeoutError from None
        except ConnectionResetError:
            raise ClientGoneError from None

    async def twilio_request(request: web.Request) -> TwilioRequest:
        if not is_form(request.content_type):
            raise web.HTTPUnsupportedMediaType(text="expected a urlencoded form\n")
        form = parse_form(await read_body(request))
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

    prefix = public_prefix(public_url)

    def unsubscribe_request(request: web.Request, one_click: bool) -> UnsubscribeRequest:
        return UnsubscribeRequest(
            token=request.query.get("token", ""),
            path=f"{prefix}{request.path}",
            one_click=one_click,
            user_agent=request.headers.get("User-Agent", ""),
        )

    async def unsubscribe_get(request: web.Request) -> Reply:
        return links.confirm_page(unsubscribe_request(request, one_click=False))

    async def unsubscribe_post(request: web.Request) -> Reply:
        body = await read_body(request)  # capped; RFC 8058 allows a form or multipart body
        one_click = ONE_CLICK_BODY.encode() in body
        return await links.unsubscribe(unsubscribe_request(request, one_click))

    async def click(request: web.Request) -> Reply:
        return await links.click(request.match_info["token"], request.headers.get("User-Agent", ""))

    async def opened(request: web.Request) -> Reply:
        return await links.open(request.match_info["token"], request.headers.get("User-Agent", ""))

    middlewares = [guard_middleware(guard)] if guard is not None else []
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=middlewares)
    routes: list[tuple[str, str, Route, Handler]] = [
        ("POST", "/twilio/sms", "sms_inbound", sms_inbound),
        ("POST", "/twilio/status", "sms_status", sms_status),
        ("GET", "/unsubscribe", "unsubscribe", unsubscribe_get),
        ("POST", "/unsubscribe", "unsubscribe", unsubscribe_post),
        ("GET", "/c/{token}", "click", click),
        ("GET", "/o/{token}", "open", opened),
    ]
    for method, path, route, handler in routes:
        app.router.add_route(method, path, _answer(route, handler, metrics))
    add_health(app, ready)
    for route in ROUTES:  # every series exists from the start (alerts on rates need them)
        metrics.latency.labels(route)
    for outcome in OPEN_OUTCOMES:
        metrics.opens.labels(outcome)
    return app


def make_metrics_app(registry: CollectorRegistry, ready: Ready) -> web.Application:
    """The private application: ``/metrics`` (and the probes, for a scraper's convenience)."""
    app = web.Application()
    add_probes(app, registry, ready)
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
        except ClientGoneError:
            log.debug("%s: the client hung up before its request was read", route)
            reply = replace(plain(400, "incomplete request", "hung_up"), close=True)
        except BodyTimeoutError:
            reply = replace(plain(408, "request body not received in time", "timeout"), close=True)
        except InvalidRecord as exc:
            reply = plain(400, exc.reason, "invalid")
        except INFRA_ERRORS as exc:
            log.warning(
                "%s: Kafka or Redis unavailable (%s); asked to retry",
                route,
                bounded(repr(exc), 200),
            )
            reply = plain(503, "temporarily unavailable", "unavailable", RETRY_LATER)
        finally:
            metrics.latency.labels(route).observe(time.perf_counter() - started)
        metrics.requests.labels(route, reply.outcome).inc()
        if isinstance(reply.body, bytes):
            response = web.Response(
                status=reply.status,
                body=reply.body,
                content_type=reply.content_type,
                headers=dict(reply.headers),
            )
        else:
            response = web.Response(
                status=reply.status,
                text=reply.body,
                content_type=reply.content_type,
                charset="utf-8",
                headers=dict(reply.headers),
            )
        if reply.close:
            response.force_close()
        return response

    return view
