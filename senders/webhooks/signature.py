"""Twilio's ``X-Twilio-Signature``: checked by the twilio library's own ``RequestValidator``.

HMAC-SHA1 of the full URL Twilio requested (query string included), then each field name in
sorted order followed by each of its distinct values sorted, keyed with the auth token,
base64; Twilio may sign the URL with or without the default port, and the validator accepts
both. Here the form (a mapping of each field to its values) becomes the multi-dict it reads.
"""

from __future__ import annotations

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from senders.webhooks.forms import Form

SIGNATURE_HEADER = "X-Twilio-Signature"


def signature_valid(url: str, form: Form, auth_token: str, signature: str | None) -> bool:
    """True when ``signature`` signs ``url`` (with or without its default port) and ``form``."""
    if not signature or not auth_token:
        return False
    try:
        return bool(RequestValidator(auth_token).validate(url, _params(form), signature.strip()))
    except ValueError:  # a URL whose port is not a number
        return False


def _params(form: Form) -> MultiDict[str]:
    return MultiDict((name, value) for name, values in form.items() for value in values)
