"""The webhooks' pure parts: signatures, keywords, forms, click tokens and redirects."""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from senders.core.clock import FakeClock
from senders.messages.tokens import (
    ClickToken,
    ExpiredToken,
    allowed_hosts,
    make_click_token,
    read_click_token,
    redirect_target,
)
from senders.messages.unsubscribe import UnsubscribeToken, make_token
from senders.webhooks.connections import ConnectionLimits
from senders.webhooks.forms import MAX_FIELDS, parse_form
from senders.webhooks.keywords import HELP, OPT_IN, OPT_OUT, Keywords, normalise
from senders.webhooks.lograte import LogBudget, ThrottledLog
from senders.webhooks.logs import MaskingFilter, mask_text
from senders.webhooks.signature import signature_valid
from streams.contract.errors import InvalidRecord
from streams.runtime.worker_logging import JsonFormatter
from tests.support.fuzz import examples
from tests.support.webhooks import sign

TOKEN = "auth-token"
URL = "https://hooks.example.com/twilio/status?command_id=c-1"
fields = st.dictionaries(
    st.text(min_size=1, max_size=12), st.text(max_size=40), min_size=0, max_size=8
)


# --- signatures -------------------------------------------------------------------------


@given(form=fields, url=st.sampled_from([URL, "http://x.example:8080/a?b=c%20d", "https://a/"]))
def test_a_signature_made_by_twilios_library_is_accepted(form: dict[str, str], url: str) -> None:
    ours = {k: (v,) for k, v in form.items()}
    assert signature_valid(url, ours, TOKEN, sign(url, form, TOKEN))
    assert not signature_valid(url, ours, "other-token", sign(url, form, TOKEN))
    added = {**ours, "AddedByAnAttacker": ("1",)}  # longer than any generated name
    assert not signature_valid(url, added, TOKEN, sign(url, form, TOKEN))


class TwilioMultiDict(dict[str, list[str]]):
    """A form with repeated fields as Twilio's validator reads one (``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def test_repeated_fields_are_checked_like_twilios_multidict() -> None:
    form = {"b": ("2", "1", "2"), "a": ("x",)}
    signature = RequestValidator(TOKEN).compute_signature(
        URL, TwilioMultiDict({k: list(v) for k, v in form.items()})
    )
    assert signature_valid(URL, form, TOKEN, signature)
    assert signature_valid(URL, {"a": ("x",), "b": ("1", "2", "2")}, TOKEN, signature)  # order
    assert not signature_valid(URL, {**form, "b": ("2", "1", "3")}, TOKEN, signature)
    assert not signature_valid(URL, {**form, "b": ("2",)}, TOKEN, signature)
    assert not signature_valid(URL, {**form, "a": ("x", "y")}, TOKEN, signature)


def test_signature_rejects_tampering_wrong_url_wrong_key_and_absence() -> None:
    signed = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    form = {k: (v,) for k, v in signed.items()}
    good = sign(URL, signed, TOKEN)
    assert signature_valid(URL, form, TOKEN, good)
    assert not signature_valid(URL, {**form, "MessageStatus": ("failed",)}, TOKEN, good)
    assert not signature_valid(URL, {**form, "Extra": ("1",)}, TOKEN, good)
    assert not signature_valid(URL.replace("c-1", "c-2"), form, TOKEN, good)
    assert not signature_valid(
        "https://evil.example/twilio/status?command_id=c-1", form, TOKEN, good
    )
    assert not signature_valid(URL, form, "other-token", good)
    assert not signature_valid(URL, form, TOKEN, None)
    assert not signature_valid(URL, form, TOKEN, "")
    assert not signature_valid(URL, form, "", sign(URL, signed, ""))  # no token: never


def test_signature_accepts_the_url_with_or_without_its_default_port() -> None:
    signed = {"a": "1"}
    form = {"a": ("1",)}
    with_port = "https://hooks.example.com:443/twilio/sms"
    without = "https://hooks.example.com/twilio/sms"
    assert signature_valid(without, form, TOKEN, sign(with_port, signed, TOKEN))
    assert signature_valid(with_port, form, TOKEN, sign(without, signed, TOKEN))
    other_port = "https://hooks.example.com:8443/twilio/sms"
    assert not signature_valid(other_port, form, TOKEN, sign(with_port, signed, TOKEN))


# --- keywords ---------------------------------------------------------------------------


def casings(word: str) -> list[str]:
    return [word, word.lower(), word.capitalize(), f"  {word.lower()}\n", f"\t{word}. ", f"{word}!"]


@pytest.mark.parametrize(
    ("words", "kind"), [(OPT_OUT, "opt_out"), (OPT_IN, "opt_in"), (HELP, "help")]
)
def test_every_keyword_in_every_casing(words: frozenset[str], kind: str) -> None:
    keywords = Keywords()
    for word in sorted(words):
        for body in casings(word):
            found = keywords.classify(body)
            assert found is not None and (found.kind, found.word) == (kind, word), body


ZWSP, BOM, WORD_JOINER, SOFT_HYPHEN = "\u200b", "\ufeff", "\u2060", "\u00ad"

# How people (and their phones) write a keyword: each must be matched, as the word it stands for.
WRITTEN = [
    ("REVOKE", "opt_out", "REVOKE"),
    ("revoke", "opt_out", "REVOKE"),
    ("OPTOUT", "opt_out", "OPTOUT"),
    ("OPT OUT", "opt_out", "OPTOUT"),
    ("opt-out", "opt_out", "OPTOUT"),
    ("Opt_Out", "opt_out", "OPTOUT"),
    ("opt  out", "opt_out", "OPTOUT"),
    ("STOP ALL", "opt_out", "STOPALL"),
    ("stop-all", "opt_out", "STOPALL"),
    ("Stop All!", "opt_out", "STOPALL"),
    ("un-subscribe", "opt_out", "UNSUBSCRIBE"),
    ("stop stop", "opt_out", "STOP"),
    ("STOP STOP STOP", "opt_out", "STOP"),
    ("stop, quit", "opt_out", "STOP"),
    ("Stop?", "opt_out", "STOP"),
    ("STOP?!", "opt_out", "STOP"),
    ('"STOP"', "opt_out", "STOP"),
    ("\u201cStop\u201d", "opt_out", "STOP"),  # curly quotes, as phones type them
    ("'stop'", "opt_out", "STOP"),
    ("(stop)", "opt_out", "STOP"),
    ("...stop...", "opt_out", "STOP"),
    ("S.T.O.P.", "opt_out", "STOP"),
    ("S T O P", "opt_out", "STOP"),
    ("\uff33\uff34\uff2f\uff30", "opt_out", "STOP"),  # full-width
    ("\uff53\uff54\uff4f\uff50", "opt_out", "STOP"),
    (f"STOP{ZWSP}", "opt_out", "STOP"),
    (f"{ZWSP}STOP", "opt_out", "STOP"),
    (f"ST{ZWSP}OP", "opt_out", "STOP"),
    (f"{BOM}STOP", "opt_out", "STOP"),
    (f"STOP{WORD_JOINER}", "opt_out", "STOP"),
    (f"ST{SOFT_HYPHEN}OP", "opt_out", "STOP"),
    ("\u3000STOP\u3000", "opt_out", "STOP"),  # ideographic spaces
    ("\u00a0stop\u00a0", "opt_out", "STOP"),  # no-break spaces
    ("STOP\r\n", "opt_out", "STOP"),
    ("STOP \U0001f6d1", "opt_out", "STOP"),  # with the stop-sign emoji
    ("\u017ftop", "opt_out", "STOP"),  # long s: NFKC makes it an s
    ("stop help", "opt_out", "STOP"),  # an opt-out word among keywords: stop
    ("START STOP", "opt_out", "STOP"),
    ("un stop", "opt_in", "UNSTOP"),
    ("Yes!", "opt_in", "YES"),
    ("\uff39\uff25\uff33", "opt_in", "YES"),
    ("yes yes", "opt_in", "YES"),
    (f"START{ZWSP}", "opt_in", "START"),
    ("help?", "help", "HELP"),
    ("Info.", "help", "INFO"),
    ("yes help", "help", "HELP"),  # no clear opt-in: the help text, no consent change
]


@pytest.mark.parametrize(("body", "kind", "word"), WRITTEN)
def test_keywords_written_any_reasonable_way(body: str, kind: str, word: str) -> None:
    found = Keywords().classify(body)
    assert found is not None, body
    assert (found.kind, found.word) == (kind, word)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "  ",
        ZWSP,
        "?!",
        "stop texting me",
        "please stop",
        "I don't want to stop getting these",
        "STOPP",
        "$TOP",
        "yes please",
        "hello",
        "stop1",
        "all stop",
        "opt in",
        "don't stop",
        "help me stop",
    ],
)
def test_ordinary_messages_are_no_keyword(body: str) -> None:
    assert Keywords().classify(body) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (" Stop. ", "stop"),
        ("OPT-OUT", "opt out"),
        (f"S{ZWSP}TOP{BOM}", "stop"),
        ("\uff33\uff34\uff2f\uff30", "stop"),
        ("  a \t b\n", "a b"),
        ("\u201cyes\u201d", "yes"),
        ("Stra\u00dfe", "strasse"),
    ],
)
def test_normalise(body: str, expected: str) -> None:
    assert normalise(body) == expected


def test_configured_opt_outs_and_twilios_opt_out_type() -> None:
    keywords = Keywords.with_extra_opt_outs(["arret", " Stopp ", "", "help"])
    assert keywords.classify("ARRÊT") is None
    assert keywords.classify("Arret").kind == "opt_out"  # type: ignore[union-attr]
    assert keywords.classify("stopp").kind == "opt_out"  # type: ignore[union-attr]
    assert keywords.classify("Stopp!").kind == "opt_out"  # type: ignore[union-attr]
    assert Keywords.with_extra_opt_outs(["no more"]).classify("NO-MORE").kind == "opt_out"  # type: ignore[union-attr]
    assert keywords.classify("HELP").kind == "opt_out"  # type: ignore[union-attr]  # opt-out wins
    assert Keywords().classify("HALT", "STOP").kind == "opt_out"  # type: ignore[union-attr]
    assert Keywords().classify("go on", "start").kind == "opt_in"  # type: ignore[union-attr]
    assert Keywords().classify("hi", "") is None


# --- forms ------------------------------------------------------------------------------


@pytest.mark.fuzz
@settings(max_examples=examples(300))
@example(b"a=%")  # a lone percent sign is kept as it is, not an error
@example(b"&&=&=" * 50)
@given(st.binary(max_size=2048))
def test_any_bytes_parse_or_raise_invalid_record(body: bytes) -> None:
    try:
        form = parse_form(body)
    except InvalidRecord as exc:
        assert exc.reason
    else:
        assert all(isinstance(v, tuple) and v for v in form.values())


@given(fields)
def test_forms_round_trip(form: dict[str, str]) -> None:
    parsed = parse_form(urlencode(form).encode())
    assert parsed == {k: (v,) for k, v in form.items()}


def test_form_limits_and_encodings() -> None:
    assert parse_form(b"a=1&a=2&b=") == {"a": ("1", "2"), "b": ("",)}
    with pytest.raises(InvalidRecord, match="ASCII"):
        parse_form("Body=stöp".encode())
    with pytest.raises(InvalidRecord, match="UTF-8"):
        parse_form(b"Body=%ff%fe")
    with pytest.raises(InvalidRecord, match="fields"):
        parse_form("&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)).encode())


# --- click tokens and redirects ---------------------------------------------------------

SECRET = b"click-secret"
CLICK = ClickToken("cust-1", "store-1", "cmd-1", "https://shop.example.com/cart/1", 2_000)


def test_click_tokens_round_trip_and_expire() -> None:
    text = make_click_token(SECRET, CLICK)
    assert read_click_token(SECRET, text, 1_999) == CLICK
    with pytest.raises(ExpiredToken):
        read_click_token(SECRET, text, 2_000)


def test_forged_and_swapped_click_tokens_are_rejected() -> None:
    text = make_click_token(SECRET, CLICK)
    payload, mac = text.split(".")
    other = make_click_token(SECRET, ClickToken("cust-2", "store-1", "cmd-1", CLICK.url, 2_000))
    evil = make_click_token(
        SECRET, ClickToken("cust-1", "store-1", "cmd-1", "https://evil.example", 2_000)
    )
    for forged in (
        f"{other.split('.')[0]}.{mac}",  # another customer's payload under this MAC
        f"{evil.split('.')[0]}.{mac}",  # another URL under this MAC
        f"{payload}.{mac[:-2]}AA",
        f"{payload}.",
        payload,
        "",
        "a.b.c",
        "%%%.%%%",
        "ä.ö",
        make_click_token(b"other-secret", CLICK),
    ):
        with pytest.raises(InvalidRecord):
            read_click_token(SECRET, forged, 1_000)
    with pytest.raises(InvalidRecord):
        read_click_token(b"", make_click_token(b"", CLICK), 1_000)


def test_an_unsubscribe_token_is_no_click_token() -> None:
    unsub = make_token(SECRET, UnsubscribeToken("cust-1", "email", "store-1", 2_000))
    with pytest.raises(InvalidRecord):
        read_click_token(SECRET, unsub, 1_000)


ALLOWED = allowed_hosts({"store-1": ("Shop.Example.com",), "*": ("cdn.example.com",)}, "store-1")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/cart/1?x=1#top",
        "http://shop.example.com/",
        "https://SHOP.example.com./p",
        "https://cdn.example.com/img.png",
        "https://shop.example.com:8443/cart",
    ],
)
def test_redirects_to_allowed_hosts(url: str) -> None:
    assert redirect_target(url, ALLOWED) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/",
        "https://shop.example.com.evil.example/",
        "https://evil.example/shop.example.com",
        "https://shop.example.com@evil.example/",
        "https://user:pw@shop.example.com/",
        "//evil.example/",
        "/cart",
        "javascript:alert(1)//shop.example.com",
        "data:text/html,hi",
        "https://evil.example\\@shop.example.com/",
        "https:\\\\evil.example",
        "https://shop.example.com\t.evil.example/",
        "https://shop.example.com /",
        "https://shop.example.com:99999/",
        "https://[::1/",
        "ftp://shop.example.com/",
        "https://shop.example.com/" + "a" * 3000,
        "",
    ],
)
def test_no_open_redirect(url: str) -> None:
    with pytest.raises(InvalidRecord):
        redirect_target(url, ALLOWED)


def test_hosts_are_per_store() -> None:
    other = allowed_hosts({"store-1": ("shop.example.com",), "*": ("cdn.example.com",)}, "store-2")
    assert other == frozenset({"cdn.example.com"})
    with pytest.raises(InvalidRecord):
        redirect_target("https://shop.example.com/", other)


# Redirect URLs built from parts, each part either harmless (first) or one of the tricks above
# (second); whether the whole must be accepted follows from the parts (see ``urls``).
SCHEMES = (("https://", "http://"), ("javascript:", "", "//", "ftp://"))
USERINFO = (("",), ("user@", "user:pw@", "shop.example.com@", ":@"))
HOSTS = (
    ("shop.example.com", "SHOP.Example.COM.", "cdn.example.com"),
    (
        "evil.example",
        "example.com",
        "shop.example.com.evil.example",
        "evil.example\\@shop.example.com",
        "evil.example#@shop.example.com",
        "evil.example?@shop.example.com",
        "shop.example.com\t.evil.example",
        "shop.example.com%2eevil.example",
    ),
)
PORTS = (("", ":443", ":8443"), (":99999", ":x", ":-1"))
PATH_PARTS = (("/", "cart", "@", "evil.example", "?x=1", "#top", "%2F"), ("\\", "\t", " "))


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, bool]:
    """A URL and whether ``redirect_target`` must accept it: each part is harmless three times
    in four, so that both accepted and refused URLs are common."""

    def part(table: tuple[tuple[str, ...], tuple[str, ...]]) -> tuple[str, bool]:
        harmless = draw(st.integers(0, 3)) > 0
        return draw(st.sampled_from(table[0] if harmless else table[1])), harmless

    drawn = [part(table) for table in (SCHEMES, USERINFO, HOSTS, PORTS)]
    if draw(st.booleans()):  # a path starts with "/": else it would run on into the host
        drawn += [("/", True), *(part(PATH_PARTS) for _ in range(draw(st.integers(0, 4))))]
    return "".join(text for text, _ in drawn), all(harmless for _, harmless in drawn)


@example(("https://shop.example.com/cart", True))
@example(("https://shop.example.com.evil.example/cart", False))
@given(urls())
def test_a_redirect_only_ever_lands_on_an_allowed_host(drawn: tuple[str, bool]) -> None:
    url, ok = drawn
    try:
        target = redirect_target(url, ALLOWED)
    except InvalidRecord:
        event("refused")
        assert not ok, f"refused an allowed URL: {url!r}"
        return
    event("accepted")
    assert ok, f"accepted a URL it must refuse: {url!r}"
    assert target == url
    assert (urlsplit(target).hostname or "").rstrip(".") in ALLOWED


def test_built_urls_reach_both_branches() -> None:
    """The URLs above are no all-refused stream: the redirect accepts and refuses plenty."""
    accepted: list[bool] = []

    @settings(max_examples=300, database=None)
    @given(urls())
    def collect(drawn: tuple[str, bool]) -> None:
        try:
            redirect_target(drawn[0], ALLOWED)
        except InvalidRecord:
            accepted.append(False)
        else:
            accepted.append(True)

    collect()
    assert accepted.count(True) >= 30 and accepted.count(False) >= 30, accepted.count(True)


# --- logs -------------------------------------------------------------------------------


def test_logs_mask_numbers_and_addresses() -> None:
    line = mask_text("STOP from +14155550123 for ann@example.com (cust-1)")
    assert "+14155550123" not in line and "ann@example.com" not in line
    assert "+1415*****23" in line and "a**@example.com" in line and "cust-1" in line
    assert mask_text("listening on 127.0.0.1:8080") == "listening on 127.0.0.1:8080"
    assert "555" not in mask_text("from (415) 555-0123")


def test_the_log_filter_masks_formatted_messages() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "STOP from %s (%s)", ("+14155550123", "a@b.example"), None
    )
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "STOP from +1415*****23 (a**@b.example)"


def test_json_log_lines_mask_exception_text_too() -> None:
    error = ValueError("no route to +14155550123")
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "send failed", None, (ValueError, error, None)
    )
    assert MaskingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "+14155550123" not in line and "+1415*****23" in line


# --- log budget -------------------------------------------------------------------------


def test_the_log_budget_admits_one_line_per_kind_per_interval_and_counts_the_rest() -> None:
    budget = LogBudget(interval=60.0)
    assert budget.admit("over_limit", 0.0) == 0
    assert [budget.admit("over_limit", t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert budget.admit("slow_headers", 1.0) == 0  # kinds have budgets of their own
    assert budget.admit("over_limit", 60.0) == 3  # the next line tells what was left out
    assert budget.admit("over_limit", 61.0) is None
    assert budget.admit("over_limit", 500.0) == 1
    assert budget.admit("over_limit", 560.0) == 0


def test_a_throttled_log_writes_the_suppressed_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    throttled = ThrottledLog(logging.getLogger("test.throttled"), clock, interval=60.0)
    with caplog.at_level(logging.INFO, "test.throttled"):
        for _ in range(1000):
            throttled.log(logging.WARNING, "flood", "refused %s", "one")
        clock.advance(60.0)
        throttled.log(logging.WARNING, "flood", "refused %s", "one")
    assert [r.getMessage() for r in caplog.records] == [
        "refused one",
        "refused one (and 999 more like it in the last 60 s, not logged)",
    ]


@pytest.mark.parametrize(
    "limits",
    [
        (0.0, 1.0, 1.0, 1),
        (1.0, -1.0, 1.0, 1),
        (1.0, 1.0, 0.0, 1),
        (1.0, 1.0, 1.0, 0),
    ],
)
def test_connection_limits_must_be_positive(limits: tuple[float, float, float, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ConnectionLimits(*limits)
