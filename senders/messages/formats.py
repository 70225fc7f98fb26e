"""Money, dates and colours for email templates, in the shopper's locale and time zone (pure).

The Jinja filters ``money``, ``datetime`` and ``date`` (docs/templates.md) call these with the
locale the message is written in and the recipient's IANA zone. Formatting is Babel's (CLDR
data): ``$129.00`` in ``en``, ``129,00 €`` in ``de``; no number or date pattern is written here.

A value that cannot be formatted raises ``ValueError`` (``TypeError`` for a value of the wrong
kind) with what was wrong; the renderer turns it into ``InvalidRecord`` (a message with a wrong
price is never sent).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time, get_timezone_name
from babel.numbers import format_currency, format_percent

CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
HEX_COLOR: Final = re.compile(r"^#[0-9a-fA-F]{6}$")
# A short zone name CLDR has no abbreviation for comes back as an offset ("+0200", "GMT+2").
_OFFSET_NAME: Final = re.compile(r"^(GMT|UTC)?[+\-\u2212]\d")


def babel_locale(locale: str, fallback: str = "en") -> Locale:
    """The Babel locale for ``de-AT`` / ``de_AT``; ``fallback`` when CLDR does not know it."""
    for candidate in (locale, locale.replace("_", "-").split("-", 1)[0], fallback):
        try:
            return Locale.parse(candidate.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


def zone(name: object) -> tzinfo:
    """The IANA zone ``name``, or UTC when it is missing or unknown (the time then says UTC)."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def money(value: object, currency: object, locale: Locale, quantity: object = 1) -> str:
    """``value`` (times ``quantity``) as an amount of ``currency``: ``$129.00``, ``129,00 €``."""
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise ValueError(f"money needs an ISO 4217 currency code like 'USD', not {currency!r}")
    amount = _decimal(value) * _decimal(quantity)
    return format_currency(amount, currency, locale=locale)


def percent(value: object, locale: Locale) -> str:
    """A whole percentage as the locale writes it: ``10%`` (en), ``10 %`` (de, fr, es)."""
    return format_percent(_decimal(value) / 100, locale=locale, decimal_quantization=False)


def moment(value: object) -> datetime:
    """An aware datetime from an RFC 3339 string (``2025-06-07T14:05:00.000Z``) or a datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an RFC 3339 time") from None
    else:
        raise TypeError(f"{value!r} is not a time")
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset: the moment it means is unknown")
    return parsed


def local_datetime(value: object, locale: Locale, tz: tzinfo) -> str:
    """Weekday, day, month, time and zone as the shopper reads them.

    ``Sat, June 7, 10:05 AM EDT`` (en, New York); ``Sa., 7. Juni, 16:05 MESZ`` (de, Berlin).
    The zone is its short name when the locale has one, else its long name ("heure d'été
    d'Europe centrale"), never a bare offset.
    """
    at = moment(value).astimezone(tz)
    day = format_skeleton("MMMMEd", at, locale=locale)
    time = format_time(at, "short", locale=locale)
    name = get_timezone_name(at, width="short", locale=locale)
    if _OFFSET_NAME.match(name):
        name = get_timezone_name(at, width="long", locale=locale)
    pattern = str(locale.datetime_formats["long"])
    return pattern.replace("{1}", day).replace("{0}", f"{time} {name}")


def local_date(value: object, locale: Locale, tz: tzinfo, style: str = "long") -> str:
    """The calendar day in ``tz``: ``June 7, 2025`` (en), ``7. Juni 2025`` (de)."""
    if style not in ("short", "medium", "long", "full"):
        raise ValueError(f"date style must be short, medium, long or full, not {style!r}")
    return format_date(moment(value).astimezone(tz), style, locale=locale)


def text_on(background: object) -> str:
    """Black or white, whichever reads better on ``background`` (``#rrggbb``).

    WCAG 2 contrast: white when it reaches 4.5:1 (AA for text) against the background's
    relative luminance, as brand buttons usually are; else whichever of the two contrasts more.
    A button's label never disappears into a store's accent colour.
    """
    if not isinstance(background, str) or not HEX_COLOR.match(background):
        raise ValueError(f"a colour must look like '#1a73e8', not {background!r}")
    channels = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    on_white = 1.05 / (luminance + 0.05)
    on_black = (luminance + 0.05) / 0.05
    return "#ffffff" if on_white >= 4.5 or on_white >= on_black else "#000000"


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"{value!r} is not an amount")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    return number
