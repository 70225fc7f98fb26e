"""Short SMS links, the pure part: ids, the rewrite of a body, the record behind an id."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senders.messages.short_links import (
    MAX_LINK_CHARS,
    LinkRecord,
    Shortener,
    id_length,
    is_short_id,
    short_id,
)
from streams.contract.errors import ConfigurationError, InvalidRecord

SECRET = b"click-test-secret"
BASE = "https://s.shop.example/c/"
SHORT = re.compile(re.escape(BASE) + r"[0-9A-Za-z]{10}")
CART = "https://shop.example.com/cart/recover?token=8f2c1e9a7b3d4c5e6f708192a3b4c5d6&utm_source=sms"

shortener = Shortener(BASE, SECRET)


def test_an_id_is_base62_deterministic_and_keyed() -> None:
    first = short_id(SECRET, "cmd-1", CART)
    assert re.fullmatch(r"[0-9A-Za-z]{10}", first)
    assert short_id(SECRET, "cmd-1", CART) == first
    assert short_id(SECRET, "cmd-2", CART) != first  # per command
    assert short_id(SECRET, "cmd-1", CART + "x") != first  # per link
    assert short_id(b"other key", "cmd-1", CART) != first  # nobody derives it without the key
    # no ambiguity between the two parts: ("a", "b:c") and ("a:b", "c") differ
    assert short_id(SECRET, "a", "b:c") != short_id(SECRET, "a:b", "c")
    assert len(short_id(SECRET, "cmd-1", CART, 8)) == 8


def test_ids_do_not_collide_on_a_realistic_batch() -> None:
    ids = {
        short_id(SECRET, f"cmd-{n}", f"https://shop.example.com/cart/{n}") for n in range(20_000)
    }
    assert len(ids) == 20_000


def test_the_id_fills_what_the_base_leaves_of_40_characters() -> None:
    assert id_length(BASE) == 10
    assert id_length("https://go.example/") == 10
    assert id_length("https://links.example-shop.com/") == 40 - 31
    with pytest.raises(ConfigurationError, match="short_link_base"):
        id_length("https://links.a-very-long-shop.example/c/")
    with pytest.raises(ConfigurationError):
        Shortener("https://links.a-very-long-shop.example/c/", SECRET)
    with pytest.raises(ConfigurationError, match="CARTPULSE_CLICK_SECRET"):
        Shortener(BASE, b"")


def test_every_url_is_shortened_once_and_the_sentence_keeps_its_punctuation() -> None:
    product = "https://shop.example.com/p/nonstop-espresso-maker?variant=42"
    text = f"Finish your order: {CART}. Or see {product}, ({CART}) and http://shop.example.com/x!"
    out, links = shortener.shorten(text, "cmd-1")
    assert "shop.example.com" not in out
    assert [link.url for link in links] == [CART, product, "http://shop.example.com/x"]
    cart = links[0].short_url
    assert out == (
        f"Finish your order: {cart}. Or see {links[1].short_url}, ({cart}) and "
        f"{links[2].short_url}!"
    )
    assert all(len(link.short_url) <= MAX_LINK_CHARS for link in links)
    assert all(link.short_url == f"{BASE}{link.link_id}" for link in links)


def test_a_url_that_opened_its_own_bracket_keeps_it() -> None:
    url = "https://shop.example.com/p/mug_(blue)"
    _, [link] = shortener.shorten(f"See {url}.", "cmd-1")
    assert link.url == url


@pytest.mark.parametrize(
    "text",
    [
        "Hi Ann, your cart is waiting.",
        "Reply STOP to opt out.",
        "https:// is not a link, nor is http://., nor shop.example.com without a scheme",
        "",
    ],
)
def test_a_body_without_urls_is_unchanged(text: str) -> None:
    assert shortener.shorten(text, "cmd-1") == (text, ())


def test_rewriting_is_idempotent_and_the_same_for_a_redelivered_command() -> None:
    text = f"Finish your order: {CART}"
    once, links = shortener.shorten(text, "cmd-1")
    assert shortener.shorten(text, "cmd-1") == (once, links)  # a redelivery: same short URL
    assert shortener.shorten(once, "cmd-1") == (once, ())  # already short: left alone


urls = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9/_?=&%.-]{0,80}", fullmatch=True),
)
words = st.from_regex(r"[A-Za-z0-9 ,!?'-]{0,30}", fullmatch=True)


@given(st.lists(st.tuples(words, urls), max_size=4), words, st.text(max_size=12))
def test_any_body_comes_out_with_only_short_links(
    parts: list[tuple[str, str]], tail: str, command_id: str
) -> None:
    text = "".join(f"{words} {url} " for words, url in parts) + tail
    out, links = shortener.shorten(text, command_id)
    found = re.findall(r"https?://\S+", out)
    assert len(found) == len(parts)
    assert all(SHORT.match(url) for url in found)
    assert all(len(SHORT.match(url).group(0)) <= MAX_LINK_CHARS for url in found)  # type: ignore[union-attr]
    assert shortener.shorten(out, command_id) == (out, ())
    assert {link.url for link in links} == {url.rstrip(".,;:!?'\")]}") for _, url in parts}


def test_a_short_id_is_never_a_sealed_click_token() -> None:
    assert is_short_id(short_id(SECRET, "cmd-1", CART))
    for text in ("abc", "a" * 11, "abcdefgh.ijk", "abcd-efgh", "", "../../etc", "abcdefgh\n"):
        assert not is_short_id(text), text


def test_a_link_record_round_trips_and_refuses_what_it_is_not() -> None:
    record = LinkRecord(CART, "cust-1", "store-1", "cmd-1", "sms", 1_900_000_000_000)
    assert LinkRecord.from_json(record.to_json()) == record
    assert record.same_link(LinkRecord(CART, "cust-1", "store-1", "cmd-1", "sms", 1))
    assert not record.same_link(LinkRecord(CART + "x", "cust-1", "store-1", "cmd-1", "sms", 1))
    as_text = record.to_json().replace(b"1900000000000", b'"1900000000000"')
    for raw in (b"nope", b"[]", b'{"url": "x"}', as_text):
        with pytest.raises(InvalidRecord):
            LinkRecord.from_json(raw)
