"""Building the email itself (pure): multipart text + HTML with the headers inboxes expect.

``Message-ID`` is derived from the ``command_id``, so a message that somehow went out twice
carries the same id and receivers can fold the copies. ``List-Unsubscribe`` (https and mailto)
and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` follow RFC 2369 and RFC 8058, which
Gmail and Yahoo require of bulk senders.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from senders.messages.templates import RenderedEmail
from senders.messages.unsubscribe import list_unsubscribe
from streams.contract.commands import SendCommand

# Long header lines rather than folding: a folded List-Unsubscribe URL breaks some clients.
POLICY = policy.SMTP.clone(max_line_length=998)
_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def message_id(command_id: str, domain: str) -> str:
    safe = _ID_SAFE.sub("_", command_id)[:64]
    digest = hashlib.sha256(command_id.encode()).hexdigest()[:12]
    return f"<{safe}.{digest}@{domain}>"


def build_email(
    command: SendCommand,
    rendered: RenderedEmail,
    *,
    sender: str,
    domain: str,
    unsubscribe_https: str,
    unsubscribe_mailto: str,
    now: datetime,
    reply_to: str | None = None,
) -> EmailMessage:
    """The message for ``command``: text part first, HTML as the preferred alternative."""
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    if reply_to is not None:
        message["Reply-To"] = reply_to
    message["To"] = command.to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(command.command_id, domain)
    for name, value in list_unsubscribe(unsubscribe_https, unsubscribe_mailto).items():
        message[name] = value
    message["X-Cartpulse-Command"] = command.command_id
    if command.variant:
        message["X-Cartpulse-Variant"] = command.variant
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
