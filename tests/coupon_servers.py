"""Local stand-ins for the stores' coupon endpoints, each refusing what the real one would.

* ``WebhookTestServer``: a store's coupon webhook (senders/coupons/webhook.py's contract).
  Checks the signature (``t=…,v1=…`` over ``"<t>.<body>"``, at most 5 minutes old), the
  ``Idempotency-Key`` (the body's code), and the body: the ``coupons`` record of an issued
  coupon (code, customer, journey, store, percent xor amount, currency with an amount,
  single_use true, expires_at after issued_at). A code seen before is answered 200 again and
  created once. ``fail_next`` answers the next requests 503 with a ``Retry-After``.
* ``ShopifyTestServer``: the Admin GraphQL API's ``discountCodeBasicCreate``. Checks the
  access token (401), parses the query and validates it and its variables against
  tests/fixtures/shopify_discounts.graphql (Shopify's published types; a request that does not
  match is answered ``{"errors": [...]}`` as Shopify does), then the rules the schema cannot
  say: the fields required when creating (code, customerSelection, customerGets, startsAt,
  title), a percentage in (0, 1], a positive amount, ``DateTime`` and ``Decimal`` spellings.
  A taken code gets the user error ``TAKEN`` on ``["basicCodeDiscount", "code"]``.
  ``throttle_next`` answers ``THROTTLED`` like Shopify's cost limiter.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    GraphQLError,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

SCHEMA_FILE = Path(__file__).parent / "fixtures" / "shopify_discounts.graphql"
SHOPIFY_PATH = "/admin/api/{version}/graphql.json"


class _Server:
    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp's private server, bound by now

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class WebhookTestServer(_Server):
    def __init__(self, secret: str, path: str = "/coupons") -> None:
        super().__init__()
        self.secret = secret.encode()
        self.path = path
        self.coupons: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[int, dict[str, Any] | None]] = []  # (status, body)
        self.refused: list[str] = []  # why each refused request was refused
        self.fail_next = 0
        self.refuse_codes: set[str] = set()
        self.app.router.add_post(path, self._post)

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    def _answer(self, status: int, body: dict[str, Any] | None, why: str = "") -> web.Response:
        self.requests.append((status, body))
        if why:
            self.refused.append(why)
        return web.json_response({"status": status, "why": why}, status=status)

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.content_type != "application/json":
            return self._answer(415, None, "not JSON")
        signature = request.headers.get("X-Cartpulse-Signature", "")
        parts = dict(p.split("=", 1) for p in signature.split(",") if "=" in p)
        try:
            stamp = int(parts.get("t", ""))
        except ValueError:
            return self._answer(401, None, "no signature timestamp")
        expected = hmac.new(self.secret, b"%d." % stamp + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            return self._answer(401, None, "bad signature")
        if abs(time.time() - stamp) > 300:
            return self._answer(401, None, "stale signature")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._answer(400, None, "body is not JSON")
        if problem := _coupon_problem(body):
            return self._answer(422, body, problem)
        if request.headers.get("Idempotency-Key") != body["code"]:
            return self._answer(400, body, "Idempotency-Key is not the code")
        if self.fail_next > 0:
            self.fail_next -= 1
            self.requests.append((503, body))
            return web.json_response({}, status=503, headers={"Retry-After": "0.2"})
        if body["code"] in self.refuse_codes:
            return self._answer(422, body, "the store refuses this code")
        self.coupons.setdefault(body["code"], body)
        return self._answer(200, body)


def _coupon_problem(body: object) -> str:
    if not isinstance(body, dict):
        return "body is not an object"
    for key in ("code", "customer_id", "journey_id", "store_id", "expires_at", "issued_at"):
        if not isinstance(body.get(key), str) or not body[key]:
            return f"{key} is required"
    if body.get("status") != "issued" or body.get("single_use") is not True:
        return "an issued, single-use coupon is expected"
    if ("percent" in body) == ("amount" in body):
        return "percent xor amount"
    if "amount" in body and not body.get("currency"):
        return "an amount needs its currency"
    if datetime.fromisoformat(body["expires_at"]) <= datetime.fromisoformat(body["issued_at"]):
        return "expires_at must come after issued_at"
    return ""


def _datetime(value: object) -> str:
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO 8601 string")
    try:
        if datetime.fromisoformat(value).tzinfo is None:
            raise GraphQLError("DateTime needs an offset")
    except ValueError:
        raise GraphQLError(f"{value!r} is not an ISO 8601 DateTime") from None
    return value


def _decimal(value: object) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise GraphQLError("Decimal must be a string or number")
    try:
        Decimal(str(value))
    except InvalidOperation:
        raise GraphQLError(f"{value!r} is not a Decimal") from None
    return str(value)


def shopify_schema() -> GraphQLSchema:
    schema = build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))
    for name, check in (("DateTime", _datetime), ("Decimal", _decimal)):
        scalar = schema.type_map[name]
        assert isinstance(scalar, GraphQLScalarType)
        scalar.parse_value = check  # type: ignore[method-assign]  # graphql-core's hook for custom scalars
    return schema


class ShopifyTestServer(_Server):
    def __init__(self, token: str, version: str = "2025-07") -> None:
        super().__init__()
        self.token = token
        self.schema = shopify_schema()
        self.discounts: dict[str, dict[str, Any]] = {}  # code (upper) → the input
        self.requests: list[dict[str, Any]] = []  # each answer's body
        self.throttle_next = 0
        self.app.router.add_post(SHOPIFY_PATH.format(version=version), self._graphql)

    def _reply(self, body: dict[str, Any], status: int = 200) -> web.Response:
        self.requests.append(body)
        return web.json_response(body, status=status)

    async def _graphql(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return self._reply({"errors": "[API] Invalid API key or access token"}, 401)
        try:
            body = orjson.loads(await request.read())
            document = parse(body["query"])
        except (orjson.JSONDecodeError, KeyError, TypeError, GraphQLError) as exc:
            return self._reply({"errors": [{"message": f"bad request: {exc}"}]})
        problems = validate(self.schema, document)
        operation = next(
            (d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None
        )
        if problems or operation is None:
            return self._reply({"errors": [{"message": str(p)} for p in problems]})
        values = get_variable_values(
            self.schema, operation.variable_definitions or [], body.get("variables") or {}
        )
        if isinstance(values, list):  # variables the schema refuses
            return self._reply({"errors": [{"message": e.message} for e in values]})
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return self._reply(
                {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
            )
        return self._reply({"data": {"discountCodeBasicCreate": self._create(values)}})

    def _create(self, values: dict[str, Any]) -> dict[str, Any]:
        data = values["basicCodeDiscount"]

        def error(field: str, code: str, message: str) -> dict[str, Any]:
            return {
                "codeDiscountNode": None,
                "userErrors": [
                    {"field": ["basicCodeDiscount", field], "code": code, "message": message}
                ],
            }

        for field in ("code", "title", "startsAt", "customerGets", "customerSelection"):
            if data.get(field) is None:
                return error(field, "BLANK", f"{field} can't be blank")
        value = data["customerGets"].get("value") or {}
        percentage, amount = value.get("percentage"), value.get("discountAmount")
        if (percentage is None) == (amount is None):
            return error("customerGets", "INVALID", "give a percentage or a discountAmount")
        if percentage is not None and not 0 < percentage <= 1:
            return error("customerGets", "VALUE_OUTSIDE_RANGE", "percentage is within (0, 1]")
        if amount is not None and Decimal(str(amount.get("amount"))) <= 0:
            return error("customerGets", "GREATER_THAN", "amount must be greater than 0")
        if not (data["customerGets"].get("items") or {}).get("all"):
            return error("customerGets", "BLANK", "items can't be blank")
        code = data["code"].upper()
        if code in self.discounts:
            return error("code", "TAKEN", "Code must be unique. Please try a different code.")
        self.discounts[code] = data
        return {
            "codeDiscountNode": {"id": f"gid://shopify/DiscountCodeNode/{len(self.discounts)}"},
            "userErrors": [],
        }
