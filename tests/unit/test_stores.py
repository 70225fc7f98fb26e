"""The policy's store tables: every key, valid and refused, with the field named."""

from __future__ import annotations

import pytest

from streams.contract.errors import ConfigurationError
from streams.core.policy import parse_policy
from streams.runtime.policy_file import default_policy_text


def _store(extra: str):  # type: ignore[no-untyped-def]
    text = default_policy_text().replace("[stores.default]", f"[stores.default]\n{extra}", 1)
    return parse_policy(text, "p.toml").store("default")


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        (
            'short_link_base = "https://s.shop.example/c/"',
            "short_link_base",
            "https://s.shop.example/c/",
        ),
        ('sms_from = "+14155550100"', "sms_from", "+14155550100"),
        ('sms_from = "Mugs Co"', "sms_from", "Mugs Co"),
        (
            'sms_messaging_service_sid = "MG' + "a" * 32 + '"',
            "sms_messaging_service_sid",
            "MG" + "a" * 32,
        ),
        (
            'email_from = "Mugs & Co <hello@mugs.example>"',
            "email_from",
            "Mugs & Co <hello@mugs.example>",
        ),
        ('email_reply_to = "help@mugs.example"', "email_reply_to", "help@mugs.example"),
        ('locale = "de-AT"', "locale", "de-AT"),
        ("low_stock_threshold = 0", "low_stock_threshold", 0),
        ("low_stock_threshold = 12", "low_stock_threshold", 12),
    ],
)
def test_store_keys_are_read(line: str, field: str, value: object) -> None:
    text = default_policy_text().replace('short_link_base = "https://s.shop.example.com/c/"', "")
    text = text.replace("[stores.default]", f"[stores.default]\n{line}", 1)
    assert getattr(parse_policy(text, "p.toml").store("default"), field) == value


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('short_link_base = "http://s.example/c/"', "https:// URL ending in '/'"),
        ('short_link_base = "https://s.example/c"', "https:// URL ending in '/'"),
        ('short_link_base = "https://links.a-rather-long-shop.example/c/"', "at most 30"),
        ('sms_from = "12"', "neither an E.164 number"),
        ('sms_from = "Twelve Chars"', "neither an E.164 number"),
        ('sms_messaging_service_sid = "MG123"', "MG \\+ 32 hex digits"),
        ('email_from = "shop"', "not an address"),
        ('email_from = "A <a@b.example>\\nBcc: x@y.example"', "not an address"),
        ("email_reply_to = 7", "not an address"),
        ('locale = "english"', "not a locale"),
        ('templates = " "', "non-empty string"),
        ("low_stock_threshold = -1", "-1 must be an integer >= 0"),
        ('low_stock_threshold = "5"', "'5' must be an integer >= 0"),
        ("low_stock_threshold = true", "True must be an integer >= 0"),
        ("low_stock_threshold = 2.5", "2.5 must be an integer >= 0"),
        ('colour = "red"', "unknown field"),
    ],
)
def test_bad_store_keys_are_refused_with_the_field(line: str, message: str) -> None:
    key = line.split(" = ", 1)[0]
    text = default_policy_text().replace('short_link_base = "https://s.shop.example.com/c/"', "")
    text = text.replace("[stores.default]", f"[stores.default]\n{line}", 1)
    with pytest.raises(
        ConfigurationError, match=rf"p\.toml:\d+: stores\.default\.{key}: .*{message}"
    ):
        parse_policy(text, "p.toml")


def test_a_store_marks_low_stock_at_five_unless_it_says_otherwise() -> None:
    assert _store("").low_stock_threshold == 5


def test_the_shipped_store_has_a_short_link_base_within_the_limit() -> None:
    store = parse_policy(default_policy_text(), "default.toml").store("default")
    assert store.short_link_base == "https://s.shop.example.com/c/"
    assert len(store.short_link_base) + 10 <= 40
