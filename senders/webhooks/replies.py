"""What the webhooks answer (pure): TwiML for Twilio, small HTML pages for people, and the
open pixel for mail apps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Final, Literal
from xml.sax.saxutils import escape as xml_escape

Outcome = Literal[
    "ok",
    "duplicate",
    "ignored",
    "forbidden",
    "invalid",
    "too_large",
    "expired",
    "unavailable",
    "timeout",
    "hung_up",
]
TWIML: Final = "application/xml"
HTML: Final = "text/html"
NO_STORE: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
RETRY_LATER: Final = {"Retry-After": "5"}  # with a 503: ask again in 5 s (Twilio retries)
GIF: Final = "image/gif"
# The smallest transparent 1x1 GIF (43 bytes): a GIF89a with one transparent palette entry.
PIXEL: Final = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
# Never cached, by the mail app or a proxy on the way: each open reaches the service.
PIXEL_HEADERS: Final = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: str | bytes = ""  # bytes are sent as they are (the pixel), text as UTF-8
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=dict)
    outcome: Outcome = "ok"
    close: bool = False  # hang up after answering (the request was not read to its end)


@dataclass(frozen=True, slots=True)
class HelpReplies:
    """The answer to HELP per store sender identity (built by ``senders.webhooks.help``)."""

    default: str
    by_identity: Mapping[str, str] = field(default_factory=dict)  # our number or MG sid → text

    def for_message(self, to: str, messaging_service_sid: str) -> str:
        """The reply to a HELP sent to ``to`` (through ``messaging_service_sid``, if any)."""
        return (
            self.by_identity.get(messaging_service_sid) or self.by_identity.get(to) or self.default
        )


def twiml(message: str = "", outcome: Outcome = "ok") -> Reply:
    """A TwiML answer: ``<Message>`` when there is something to say, else an empty response."""
    inner = f"<Message>{xml_escape(message)}</Message>" if message else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return Reply(200, body, TWIML, outcome=outcome)


def page(status: int, title: str, text: str, form_action: str | None = None) -> Reply:
    button = ""
    if form_action is not None:
        button = (
            f'<form method="post" action="{escape(form_action)}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title></head><body><main><h1>{escape(title)}</h1>"
        f"<p>{escape(text)}</p>{button}</main></body></html>"
    )
    outcome: Outcome = "ok" if status < 400 else "invalid"
    return Reply(status, body, HTML, NO_STORE, outcome)


def plain(
    status: int, text: str, outcome: Outcome, headers: Mapping[str, str] | None = None
) -> Reply:
    return Reply(status, text + "\n", "text/plain", headers or {}, outcome)


def pixel(outcome: Outcome = "ok") -> Reply:
    """The open pixel: always a 200 with the image, so a mail app never shows a broken one;
    the outcome says what became of the open."""
    return Reply(200, PIXEL, GIF, PIXEL_HEADERS, outcome)
