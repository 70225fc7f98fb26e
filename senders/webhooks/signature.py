"""Twilio's ``X-Twilio-Signature`` (pure): HMAC-SHA1 of the URL and the sorted form fields.

The same algorithm as ``twilio.request_validator.RequestValidator`` (a test holds them equal):
the full URL Twilio requested (query string included), then each field name in sorted order
followed by each of its distinct values sorted, keyed with the auth token, base64. Twilio may
sign the URL with or without the default port, so both are accepted.
"""

from __future__ import annotations

import base64
import hmac
from hashlib import sha1
from urllib.parse import urlsplit, urlunsplit

from senders.webhooks.forms import Form

SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(url: str, form: Form, auth_token: str) -> str:
    text = url + "".join(name + value for name in sorted(form) for value in sorted(set(form[name])))
    mac = hmac.new(auth_token.encode(), text.encode(), sha1).digest()
    return base64.b64encode(mac).decode()


def signature_valid(url: str, form: Form, auth_token: str, signature: str | None) -> bool:
    """True when ``signature`` signs ``url`` (with or without its default port) and ``form``."""
    if not signature or not auth_token:
        return False
    given = signature.strip().encode()
    return any(
        hmac.compare_digest(twilio_signature(candidate, form, auth_token).encode(), given)
        for candidate in _port_variants(url)
    )


def _port_variants(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    host = parts.netloc.rsplit(":", 1)[0] if port else parts.netloc
    default = 443 if parts.scheme == "https" else 80
    without = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{port or default}"))
    return list(dict.fromkeys([url, without, with_port]))
