"""Hypothesis over the form parser through the real routes: no body makes the service fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from senders.webhooks.forms import parse_form
from streams.errors import InvalidRecord
from tests.support.webhooks import PUBLIC_URL, World, sign, world

CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
]
FIELDS = ["Body", "From", "MessageSid", "MessageStatus", "OptOutType", "ErrorCode", "To"]
VALUES = ["STOP", " start ", "help", "+14155550100", "delivered", "failed", "x", "", "30005"]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[asyncio.AbstractEventLoop, World]]:
    """One app on a loop of its own for every example (hypothesis runs them synchronously).

    The loop is never made the thread's current loop, so pytest-asyncio's loops are left alone.
    """
    loop = asyncio.new_event_loop()
    context: AbstractAsyncContextManager[World] = world()
    try:
        w = loop.run_until_complete(context.__aenter__())
        try:
            yield loop, w
        finally:
            loop.run_until_complete(context.__aexit__(None, None, None))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


bodies = st.one_of(
    st.binary(max_size=6000),
    st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=8).map(
        lambda d: urlencode(d).encode()
    ),
    st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(VALUES)).map(
        lambda d: urlencode(d).encode()
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    body=bodies,
    path=st.sampled_from(
        ["/twilio/sms", "/twilio/status?command_id=c1", "/twilio/status", "/unsubscribe?token=a.b"]
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
    signed=st.booleans(),
)
def test_no_body_crashes_the_service(
    served: tuple[asyncio.AbstractEventLoop, World],
    body: bytes,
    path: str,
    content_type: str,
    signed: bool,
) -> None:
    loop, w = served
    headers = {"Content-Type": content_type} if content_type else {}
    if signed:  # a valid signature takes the body past the signature check, into the handlers
        try:
            form = {name: values[0] for name, values in parse_form(body).items()}
        except InvalidRecord:
            form = {}
        headers["X-Twilio-Signature"] = sign(f"{PUBLIC_URL}{path}", form)

    async def post() -> int:
        answer = await w.client.post(path, data=body, headers=headers)
        await answer.read()
        return answer.status

    status = loop.run_until_complete(post())
    assert status in (200, 400, 403, 413, 415, 503), status
    assert status != 503  # the in-memory ports never fail
