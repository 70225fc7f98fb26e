"""Log lines about requests: masked (phone numbers, email addresses) and bounded.

The webhooks see raw numbers and addresses in every request; code masks what it logs with
``mask_address``, and ``MaskingFilter`` is the net under that: any E.164-looking number or
email address left in a formatted message is masked before a handler writes it. Every field
taken from a request is logged through ``bounded``, so a 10,000-digit "phone number" makes a
short line, not a 10 kB one.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from senders.core.keys import mask_address

_ADDRESS: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
    r"|\+?\b[0-9][0-9 ()-]{6,18}[0-9]\b"  # no dots: IP addresses and versions stay readable
)


MAX_FIELD: Final = 64  # characters of one request field in a log line


def bounded(text: str, limit: int = MAX_FIELD) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def mask_text(text: str) -> str:
    """``text`` with every email address and phone-number-like run masked."""
    return _ADDRESS.sub(lambda m: mask_address(m.group(0)), text)


class MaskingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) with ``mask_text``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True
