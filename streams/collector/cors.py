"""Which browsers may call the collector (CORS). Pure: an ``Origin`` in, headers out.

Only origins in ``CARTPULSE_COLLECT_ALLOWED_ORIGINS`` get ``Access-Control-Allow-Origin``; a
preflight from any other origin is answered without it, so the browser refuses to send.
(``navigator.sendBeacon`` with a text body sends no preflight: the pixel key's origin check in
``auth`` covers that case.)
"""

from __future__ import annotations

from typing import Final

ALLOWED_METHODS: Final = "POST, OPTIONS"
ALLOWED_HEADERS: Final = "Content-Type, Authorization, X-Cartpulse-Signature, X-Cartpulse-Store"
PREFLIGHT_MAX_AGE: Final = "600"  # seconds a browser may reuse a preflight's answer


def cors_headers(origin: str | None, allowed: frozenset[str]) -> dict[str, str]:
    """Headers for any answer to ``origin``: empty unless it is allowed."""
    if origin is None or origin not in allowed:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def preflight_headers(origin: str | None, allowed: frozenset[str]) -> dict[str, str]:
    """Headers of a preflight's answer: the methods and headers a listed origin may use."""
    headers = cors_headers(origin, allowed)
    if headers:
        headers |= {
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        }
    return headers
