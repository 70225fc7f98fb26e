"""A Twilio-compatible Messages API for tests and the demo (aiohttp).

Answers ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` like Twilio does, checked
against Twilio's OpenAPI spec (``api.v2010.account.message``) and its error dictionary:

* HTTP basic auth with the account SID and auth token (401 / 20003), and the path's account must
  be the authenticated one (404 / 20404);
* form validation: ``To`` required (21604), ``From`` or ``MessagingServiceSid`` (21603),
  ``Body`` (21602) of at most 1,600 characters (21617), ``To`` in E.164 (21211),
  ``ValidityPeriod`` 1..36000 (90007), ``StatusCallback`` a URL (21609);
* 201 with a message resource: ``sid`` ``SM`` + 32 hex, ``status`` ``queued``, ``num_segments``
  counted here independently of the code under test (GSM-7 160/153, UCS-2 70/67);
* a configurable rate (segments per second, with a burst), enforced with 429 / code 20429;
* injectable failures, for one recipient or the next N requests: ``timeout`` (the message is
  created, the answer comes after the client gave up), ``reset`` (connection dropped after the
  request was read), ``500`` / ``503``, ``429``, ``21610``, ``21211``, ``21614``;
* an outage, switched on and off while it runs (``outage``, or ``POST /_test/outage``): every
  request is answered ``401`` / 20003 (the credentials refused), ``500`` / 20500 or ``503`` /
  20503, before anything else is looked at and without creating a message;
* a record of every request (``requests``), also served as JSON on ``GET /_test/requests``.

Run it on its own for the demo: ``python -m tests.twilio_server --port 8099 --rate 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

API = "/2010-04-01/Accounts/{account_sid}/Messages.json"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class Failure:
    kind: str  # "error" (answer status/code), "timeout" (created, answer late), "reset"
    status: int = 400
    code: int | None = None
    message: str = ""


FAILURES: dict[str, Failure] = {
    "401": Failure("error", 401, 20003, "Authenticate"),
    "timeout": Failure("timeout"),
    "reset": Failure("reset"),
    "500": Failure("error", 500, 20500, "Internal Server Error"),
    "503": Failure("error", 503, 20503, "Service Unavailable"),
    "429": Failure("error", 429, 20429, "Too Many Requests"),
    "21610": Failure("error", 400, 21610, "Attempt to send to unsubscribed recipient"),
    "21211": Failure("error", 400, 21211, "Invalid 'To' Phone Number"),
    "21614": Failure("error", 400, 21614, "'To' number is not a valid mobile number"),
}


@dataclass
class Request:
    """One request as the server saw it; ``created`` when a message resource was made."""

    at: float
    account_sid: str
    form: dict[str, str]
    status: int
    code: int | None = None
    sid: str | None = None
    segments: int = 0
    created: bool = False


def segments(body: str) -> int:
    if all(ch in GSM7 or ch in GSM7_EXT for ch in body):
        units = [2 if ch in GSM7_EXT else 1 for ch in body]
        single, multi = 160, 153
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for unit in units:
        if used + unit > multi:
            count, used = count + 1, 0
        used += unit
    return count


@dataclass
class _Rate:
    """GCRA on the server's monotonic clock: ``rate`` segments/s, ``burst`` at once."""

    rate: float
    burst: int
    tat: float = 0.0

    def allow(self, cost: int, now: float) -> bool:
        interval = 1.0 / self.rate
        tat = max(self.tat, now)
        if tat + cost * interval - self.burst * interval > now + 1e-9:
            return False
        self.tat = tat + cost * interval
        return True


@dataclass
class TwilioTestServer:
    account_sid: str = "AC" + "0" * 31 + "1"
    auth_token: str = "test-auth-token"
    rate: float | None = None
    burst: int = 1
    timeout_hang: float = 30.0
    requests: list[Request] = field(default_factory=list)
    rate_limited: int = 0
    outage: str | None = None  # a key of FAILURES (an "error" kind) answered to every request
    _by_recipient: dict[str, list[Any]] = field(default_factory=dict)  # [failure, times left]
    _next: list[Failure] = field(default_factory=list)
    _limit: _Rate | None = None
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""

    def fail_recipient(self, to: str, failure: str, times: int | None = None) -> None:
        """Answer requests to ``to`` with ``failure`` (forever, or the next ``times``)."""
        self._by_recipient[to] = [FAILURES[failure], times]

    def fail_next(self, failure: str, count: int = 1) -> None:
        self._next.extend([FAILURES[failure]] * count)

    @property
    def created(self) -> list[Request]:
        return [r for r in self.requests if r.created]

    async def wait_created(self, count: int, within: float) -> None:
        """Until ``count`` messages were created (or ``within`` seconds passed)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while len(self.created) < count:
                    self._changed.clear()
                    await self._changed.wait()

    def app(self) -> web.Application:
        if self.rate is not None:
            self._limit = _Rate(self.rate, self.burst)
        app = web.Application()
        app.router.add_post(API, self._messages)
        app.router.add_get("/_test/requests", self._dump)
        app.router.add_get("/_test/stats", self._stats)
        app.router.add_post("/_test/fail", self._fail)
        app.router.add_post("/_test/outage", self._outage)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _error(self, request: Request, status: int, code: int, message: str) -> web.Response:
        request.status, request.code = status, code
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return web.json_response(body, status=status)

    async def _messages(self, http: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        account = http.match_info["account_sid"]
        form = {k: str(v) for k, v in (await http.post()).items()}
        record = Request(time.time(), account, form, 0)
        self.requests.append(record)
        self._changed.set()
        if self.outage is not None:
            failure = FAILURES[self.outage]
            return self._error(record, failure.status, failure.code or 0, failure.message)
        if not self._authorized(http.headers.get("Authorization", "")):
            return self._error(record, 401, 20003, "Authenticate")
        if account != self.account_sid:
            return self._error(
                record, 404, 20404, f"The requested resource {http.path} was not found"
            )
        record.segments = segments(form.get("Body", "")) if form.get("Body") else 1
        if self._limit is not None and not self._limit.allow(record.segments, now):
            self.rate_limited += 1
            return self._error(record, 429, 20429, "Too Many Requests")
        if (invalid := self._validate(form)) is not None:
            return self._error(record, *invalid)
        failure = self._failure(form["To"])
        if failure is not None and failure.kind == "error":
            return self._error(record, failure.status, failure.code or 0, failure.message)
        if failure is not None and failure.kind == "reset":
            record.created = True
            record.sid = _sid()
            if http.transport is not None:
                http.transport.abort()
            return web.Response(status=500)
        resource = self._resource(form, record.segments)
        record.status, record.sid, record.created = 201, resource["sid"], True
        if failure is not None and failure.kind == "timeout":
            await asyncio.sleep(self.timeout_hang)
        return web.json_response(resource, status=201)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    @staticmethod
    def _validate(form: dict[str, str]) -> tuple[int, int, str] | None:
        to = form.get("To")
        if not to:
            return 400, 21604, "A 'To' phone number is required."
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return (
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
            )
        service = form.get("MessagingServiceSid")
        if service and not re.fullmatch(r"MG[0-9a-fA-F]{32}", service):
            return 400, 21603, "MessagingServiceSid must match ^MG[0-9a-fA-F]{32}$."
        body = form.get("Body")
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            return 400, 21602, "Message body is required."
        if body and len(body) > 1600:
            return 400, 21617, "The concatenated message body exceeds the 1600 character limit."
        if not E164.match(to):
            return 400, 21211, f"Invalid 'To' Phone Number: {to[:4]}…"
        validity = form.get("ValidityPeriod")
        if validity is not None and not (validity.isdigit() and 1 <= int(validity) <= 36_000):
            return 400, 90007, "Invalid validity period value"
        callback = form.get("StatusCallback")
        if callback is not None and not re.match(r"^https?://\S+$", callback):
            return 400, 21609, "Invalid StatusCallback"
        return None

    def _failure(self, to: str) -> Failure | None:
        if self._next:
            return self._next.pop(0)
        planned = self._by_recipient.get(to)
        if planned is None:
            return None
        failure, left = planned
        if left is not None:
            if left <= 0:
                return None
            planned[1] = left - 1
        return failure  # type: ignore[no-any-return]

    def _resource(self, form: dict[str, str], count: int) -> dict[str, Any]:
        sid = _sid()
        now = format_datetime(datetime.now(UTC), usegmt=False)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(count),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": form["To"],
            "uri": f"{uri}.json",
        }

    async def _stats(self, _: web.Request) -> web.Response:
        created = sum(1 for r in self.requests if r.created)
        return web.json_response(
            {"requests": len(self.requests), "created": created, "rate_limited": self.rate_limited}
        )

    async def _dump(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"rate_limited": self.rate_limited, "requests": [asdict(r) for r in self.requests]}
        )

    async def _fail(self, http: web.Request) -> web.Response:
        data = await http.json()
        if "to" in data:
            self.fail_recipient(data["to"], data["failure"], data.get("times"))
        else:
            self.fail_next(data["failure"], int(data.get("count", 1)))
        return web.json_response({"ok": True})

    async def _outage(self, http: web.Request) -> web.Response:
        failure = (await http.json()).get("failure")
        if failure is not None and FAILURES[failure].kind != "error":
            raise web.HTTPBadRequest(text="an outage answers an error status")
        self.outage = failure
        return web.json_response({"ok": True})

    def answered(self, status: int) -> int:
        """How many requests were answered ``status``."""
        return sum(1 for r in self.requests if r.status == status)


def _sid() -> str:
    return "SM" + secrets.token_hex(16)


def main() -> None:
    parser = argparse.ArgumentParser(description="Twilio-compatible test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--account-sid", default=TwilioTestServer.account_sid)
    parser.add_argument("--auth-token", default=TwilioTestServer.auth_token)
    parser.add_argument("--rate", type=float, help="segments per second (default: unlimited)")
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument("--timeout-hang", type=float, default=30.0)
    args = parser.parse_args()
    server = TwilioTestServer(
        args.account_sid, args.auth_token, args.rate, args.burst, args.timeout_hang
    )
    web.run_app(server.app(), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
