"""Hypothesis over the form parser through the real routes (no body makes the service fail)
and over the keyword matcher (no text crashes it; a keyword stays one however it is written).

Marked ``fuzz`` and sized with ``examples``: bounded in ``make test``, longer in ``make fuzz``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from senders.webhooks.forms import parse_form
from senders.webhooks.keywords import HELP, OPT_IN, OPT_OUT, Keywords, normalise
from streams.contract.errors import InvalidRecord
from tests.support.fuzz import examples
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
PATHS = ["/twilio/sms", "/twilio/status?command_id=c1", "/twilio/status", "/unsubscribe?token=a.b"]
TWILIO_PATHS = PATHS[:3]
FORM_TYPES = CONTENT_TYPES[:2]
# What the handlers need to act (From for a message; MessageSid and a MessageStatus for a
# callback), with well-formed values: a signed form of these is answered 200, whatever else.
handled_forms = st.fixed_dictionaries(
    {
        "From": st.sampled_from(["+14155550100", "+447700900123"]),
        "MessageSid": st.sampled_from(["SM" + "a" * 32, "SM" + "b" * 32, "SM1"]),
        "MessageStatus": st.sampled_from(["delivered", "undelivered", "failed", "sent", "queued"]),
    },
    optional={
        "Body": st.sampled_from(["STOP", " start ", "help", "Hi there", "", "unstop", "QUIT"]),
        "OptOutType": st.sampled_from(["STOP", "START", "HELP", ""]),
        "ErrorCode": st.sampled_from(["30003", "30005", "30006", ""]),
        "To": st.sampled_from(["+15005550006", "+14155550100"]),
    },
)


@dataclass(frozen=True)
class Post:
    body: bytes
    path: str
    content_type: str
    signed: bool
    handled: bool = False  # a signed form of ``handled_forms`` on a Twilio route: must be 200


posts = st.one_of(
    st.builds(
        Post,
        body=bodies,
        path=st.sampled_from(PATHS),
        content_type=st.sampled_from(CONTENT_TYPES),
        signed=st.booleans(),
    ),
    st.builds(
        Post,
        body=handled_forms.map(lambda form: urlencode(form).encode()),
        path=st.sampled_from(TWILIO_PATHS),
        content_type=st.sampled_from(FORM_TYPES),
        signed=st.just(True),
        handled=st.just(True),
    ),
)
STOP_FORM = {"From": "+14155550100", "MessageSid": "SM" + "f" * 32, "Body": "STOP"}
UNDELIVERED = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"}
FIXED = [
    Post(urlencode(STOP_FORM).encode(), "/twilio/sms", FORM_TYPES[0], True, True),
    Post(
        urlencode(UNDELIVERED).encode(), "/twilio/status?command_id=c1", FORM_TYPES[1], True, True
    ),
]


def answer(served: tuple[asyncio.AbstractEventLoop, World], post: Post) -> int:
    """The status the app answers ``post`` with."""
    loop, w = served
    headers = {"Content-Type": post.content_type} if post.content_type else {}
    if post.signed:  # a valid signature takes the body past the signature check, into the handlers
        try:
            form = {name: values[0] for name, values in parse_form(post.body).items()}
        except InvalidRecord:
            form = {}
        headers["X-Twilio-Signature"] = sign(f"{PUBLIC_URL}{post.path}", form)

    async def send() -> int:
        response = await w.client.post(post.path, data=post.body, headers=headers)
        await response.read()
        return response.status

    return loop.run_until_complete(send())


@pytest.mark.fuzz
@settings(max_examples=examples(200), deadline=None)
@example(FIXED[0])
@example(FIXED[1])
@given(post=posts)
def test_no_body_crashes_the_service(
    served: tuple[asyncio.AbstractEventLoop, World], post: Post
) -> None:
    status = answer(served, post)
    event(f"{'handled' if post.handled else 'any'} form answered {status}")
    assert status in (200, 400, 403, 413, 415, 503), status
    assert status != 503  # the in-memory ports never fail
    if post.handled:  # the handlers ran, and took the form
        assert status == 200, (post, status)


def test_the_fixed_forms_reach_the_handlers(
    served: tuple[asyncio.AbstractEventLoop, World],
) -> None:
    """What the fuzz test's handled forms stand for: through the handlers into the outbox."""
    _, w = served
    consents, results = len(w.outbox.consents), len(w.outbox.results)
    opt_outs = w.metric("cartpulse_webhook_keywords_total", {"kind": "opt_out"})
    fresh = [  # new message ids and sender: the fuzz test may have sent the fixed ones already
        Post(
            post.body.replace(b"f" * 32, b"9" * 32).replace(b"14155550100", b"14155550177"),
            post.path,
            post.content_type,
            True,
            True,
        )
        for post in FIXED
    ]
    assert [answer(served, post) for post in fresh] == [200, 200]
    assert w.metric("cartpulse_webhook_keywords_total", {"kind": "opt_out"}) == opt_outs + 1
    assert len(w.outbox.consents) > consents  # the STOP was recorded
    assert len(w.outbox.results) == results + 1
    assert (w.outbox.results[-1].command_id, w.outbox.results[-1].status) == ("c1", "undelivered")
    assert w.outbox.results[-1].error_code == "30003"


# --- keywords ---------------------------------------------------------------------------

KEYWORDS = Keywords()
KINDS = {
    **dict.fromkeys(OPT_OUT, "opt_out"),
    **dict.fromkeys(OPT_IN, "opt_in"),
    **dict.fromkeys(HELP, "help"),
}
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"]
DECORATION = [
    " ",
    "  ",
    "\t",
    "\n",
    ".",
    "!",
    "?",
    '"',
    "'",
    "\u201c",
    "\u201d",
    "*",
    "-",
    "\u3000",
]


@pytest.mark.fuzz
@settings(max_examples=examples(500), deadline=None)
@example("\u0345")  # casefolds to a letter NFKC would change again
@example("\ufb06")  # a ligature: NFKC makes two letters of it
@example("\u1e9e" * 3)  # capital sharp s
@given(st.text(max_size=200))
def test_any_text_is_classified_without_error(body: str) -> None:
    found = KEYWORDS.classify(body)
    event("keyword" if found else "ordinary")
    if found is not None:
        assert found.kind in ("opt_out", "opt_in", "help")
        assert found.word == found.word.upper()
    assert normalise(normalise(body)) == normalise(body)  # one pass is enough
    assert KEYWORDS.classify(normalise(body)) == found


@pytest.mark.fuzz
@settings(max_examples=examples(300), deadline=None)
@given(
    word=st.sampled_from(sorted(KINDS)),
    case=st.sampled_from([str.upper, str.lower, str.title, str.swapcase]),
    before=st.lists(st.sampled_from(DECORATION + INVISIBLE), max_size=4),
    after=st.lists(st.sampled_from(DECORATION + INVISIBLE), max_size=4),
    inside=st.lists(st.tuples(st.integers(0, 12), st.sampled_from(INVISIBLE)), max_size=3),
    full_width=st.booleans(),
)
def test_a_keyword_stays_one_however_it_is_written(
    word: str,
    case: Callable[[str], str],
    before: list[str],
    after: list[str],
    inside: list[tuple[int, str]],
    full_width: bool,
) -> None:
    text = case(word)
    if full_width:
        text = "".join(chr(ord(c) + 0xFEE0) for c in text)
    for at, char in inside:
        at = at % (len(text) + 1)
        text = text[:at] + char + text[at:]
    body = "".join(before) + text + "".join(after)
    found = KEYWORDS.classify(body)
    assert found is not None, repr(body)
    assert (found.kind, found.word) == (KINDS[word], word), repr(body)


@pytest.mark.fuzz
@settings(max_examples=examples(300), deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["please", "don't", "I", "want", "to", "texting", "me"]),
        min_size=1,
        max_size=4,
    ),
    keyword=st.sampled_from(sorted(KINDS)),
)
def test_a_sentence_around_a_keyword_is_no_keyword(words: list[str], keyword: str) -> None:
    """Whole-message matching: a keyword inside ordinary words is an ordinary message."""
    assert KEYWORDS.classify(" ".join([*words, keyword])) is None
    assert KEYWORDS.classify(" ".join([keyword, *words])) is None
