"""The Jinja filters templates format money, times and colours with (docs/templates.md).

Each filter reads the message's ``locale`` (set by the renderer: the language the template is
written in, with the shopper's region when it is the same language) and the recipient's
``timezone`` (an IANA name from the command; UTC when absent) from the template context, and
calls ``senders.messages.formats``:

- ``{{ item.price | money(cart_currency) }}`` → ``$12.00``; ``money(cart_currency, quantity=2)``
  is the price of two.
- ``{{ coupon.percent | percent }}`` → ``10%`` (en), ``10 %`` (de, fr, es).
- ``{{ coupon | discount }}`` → what the coupon takes off: ``10%``, or its ``amount`` in its
  ``currency`` (``$5.00``, ``5,00 €``).
- ``{{ coupon.expires_at | datetime }}`` → ``Sat, June 7, 10:05 AM EDT``.
- ``{{ coupon.expires_at | date }}`` → ``June 7, 2025``; ``date("short")`` → ``6/7/25``.
- ``{{ accent | text_on }}`` → ``#ffffff`` or ``#000000``, whichever reads on ``accent``.

An undefined argument fails like any undefined variable (the command is refused, never sent
with a hole in it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from babel import Locale
from jinja2 import Undefined, pass_context
from jinja2.runtime import Context

from senders.messages import formats


@lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    return formats.babel_locale(name)


def _defined(*values: object) -> None:
    for value in values:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()


def _context_locale(context: Context) -> Locale:
    name = context.get("locale")
    return _locale(name if isinstance(name, str) and name else "en")


@pass_context
def money(context: Context, value: object, currency: object, quantity: object = 1) -> str:
    _defined(value, currency, quantity)
    return formats.money(value, currency, _context_locale(context), quantity)


@pass_context
def percent(context: Context, value: object) -> str:
    _defined(value)
    return formats.percent(value, _context_locale(context))


@pass_context
def discount(context: Context, coupon: object) -> str:
    """A coupon's discount: its ``percent``, else its ``amount`` in its ``currency``."""
    _defined(coupon)
    if not isinstance(coupon, dict):
        raise TypeError(f"discount needs a coupon (a mapping), not {type(coupon).__name__}")
    locale = _context_locale(context)
    if coupon.get("percent") is not None:
        return formats.percent(coupon["percent"], locale)
    return formats.money(coupon.get("amount"), coupon.get("currency"), locale)


@pass_context
def local_datetime(context: Context, value: object) -> str:
    _defined(value)
    zone = formats.zone(context.get("timezone"))
    return formats.local_datetime(value, _context_locale(context), zone)


@pass_context
def local_date(context: Context, value: object, style: str = "long") -> str:
    _defined(value)
    zone = formats.zone(context.get("timezone"))
    return formats.local_date(value, _context_locale(context), zone, style)


def text_on(background: object) -> str:
    _defined(background)
    return formats.text_on(background)


FILTERS: Final[dict[str, Callable[..., Any]]] = {
    "money": money,
    "percent": percent,
    "discount": discount,
    "datetime": local_datetime,
    "date": local_date,
    "text_on": text_on,
}


def message_locale(requested: str, written_in: str) -> str:
    """The locale a message formats in: the shopper's (``de-AT``) when the template is in the
    shopper's language, else the template's own (a ``pt-BR`` shopper reading the English
    fallback gets English dates and numbers, so one message never mixes two languages)."""
    if requested.replace("_", "-").split("-", 1)[0] == written_in.split("-", 1)[0]:
        return requested
    return written_in
