"""SMS encoding and segment counting: the carrier rules, and properties over any text."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senders.messages.segments import GSM7_BASIC, GSM7_EXTENDED, encode_info, is_gsm7, smart_encode

GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC), max_size=1000)
ANY_TEXT = st.text(max_size=700)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # never split: 152 | 2+151 | 1
        ("é" * 160, "GSM-7", 160, 1),  # é is in the basic table
        ("ê" * 70, "UCS-2", 70, 1),  # ê is not
        ("ê" * 71, "UCS-2", 71, 2),
        ("ê" * 134, "UCS-2", 134, 2),
        ("ê" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # an emoji is a surrogate pair: two code units
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),  # the pair is never split: 66 | 2+65 | 1
        ("Hi Ann 👋 your cart", "UCS-2", 19, 1),
    ],
)
def test_carrier_rules(text: str, encoding: str, units: int, segments: int) -> None:
    info = encode_info(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


@given(GSM_TEXT)
def test_basic_gsm_text_needs_ceil_of_153(text: str) -> None:
    info = encode_info(text)
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert info.encoding == "GSM-7"
    assert info.segments == expected


@given(ANY_TEXT)
def test_segments_hold_the_text(text: str) -> None:
    info = encode_info(text)
    single, multi = (160, 153) if info.encoding == "GSM-7" else (70, 67)
    assert info.segments >= 1
    if info.units <= single:
        assert info.segments == 1
    else:  # enough room for every unit, and no wasted segment beyond one split pair each
        assert info.segments * multi >= info.units
        assert (info.segments - 1) * (multi - 1) < info.units


@given(ANY_TEXT, ANY_TEXT)
def test_appending_never_saves_segments(head: str, tail: str) -> None:
    assert encode_info(head + tail).segments >= encode_info(head).segments


@given(
    st.text(
        alphabet=sorted(GSM7_BASIC | GSM7_EXTENDED)
        + list("\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0"),
        max_size=200,
    )
)
def test_smart_encoding_keeps_look_alikes_in_gsm7(text: str) -> None:
    assert is_gsm7(smart_encode(text))


def test_smart_encoding_saves_segments() -> None:
    text = "It\u2019s still in your cart \u2013 don\u2019t miss it\u2026 " * 3
    assert encode_info(text).encoding == "UCS-2"
    assert encode_info(text).segments == 2
    assert encode_info(smart_encode(text)).encoding == "GSM-7"
    assert encode_info(smart_encode(text)).segments == 1
