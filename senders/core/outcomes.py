"""What a provider's answer means for a command (pure): send, retry, give up, or don't know.

The one rule behind every mapping: a command is retried only when the provider **certainly did
not** act on it (429 / 20429, connection refused, an SMTP 4xx reply). When the request may
have been acted on (a timeout after it went out, a dropped connection, a 5xx) the outcome is
``unknown`` and it is not retried: a duplicate message is worse than a missing one.

``unavailable`` is a retry whose cause is not the message but the channel: our credentials
or account refused (Twilio 401 / 403 / 404 on the Messages resource, SMTP 530 / 535 / 538),
or the provider not reachable before anything was sent (connection refused, SMTP 421 or a
login that never answers). It is never a reason to fail the command: the sender holds its
commands and retries them until they are sent or expire, and reports the fault
(``health.py``).

Beside the mappings: the back-off (``backoff``), a ``Retry-After`` header's seconds, and the
one loop not pure, ``retry_until_stopped`` (the consent mirror's and the erasure's retry of
Redis and Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from streams.contract.commands import is_undeliverable

OutcomeKind = Literal[
    "sent", "retry", "unavailable", "unknown", "failed", "undeliverable", "opted_out"
]
# Low-cardinality reasons, used as metric labels.
Reason = Literal[
    "ok",
    "rate_limited",
    "connection",
    "timeout",
    "disconnected",
    "server_error",
    "smtp_transient",
    "rejected",
    "auth",
    "opted_out",
    "undeliverable",
    "bad_response",
]

TWILIO_RATE_LIMITED: Final = frozenset({20429})
TWILIO_OPTED_OUT: Final = frozenset({21610})
# Authentication (20003), account suspended or closed (20005), account not found (20404).
TWILIO_ACCOUNT: Final = frozenset({20003, 20005, 20404})
SMTP_AUTH: Final = frozenset({530, 535, 538})
_ENHANCED: Final = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class ProviderOutcome:
    kind: OutcomeKind
    reason: Reason
    provider_id: str | None = None
    error_code: str | None = None
    retry_after: float | None = None  # the provider's hint, seconds
    segments: int | None = None


def twilio_outcome(
    status: int, body: Mapping[str, object] | None, retry_after: str | None = None
) -> ProviderOutcome:
    """Map one HTTP answer of ``POST …/Messages.json``."""
    body = body or {}
    raw_code = body.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    error = str(code) if code is not None else (None if status < 300 else f"http_{status}")
    if 200 <= status < 300:
        sid = body.get("sid")
        if not isinstance(sid, str) or not sid:
            return ProviderOutcome("unknown", "bad_response", error_code="no_sid")
        segments = body.get("num_segments")
        count = (
            int(segments) if isinstance(segments, str | int) and str(segments).isdigit() else None
        )
        return ProviderOutcome("sent", "ok", provider_id=sid, segments=count)
    if status == 429 or code in TWILIO_RATE_LIMITED:
        error = error or "20429"
        wait = retry_after_seconds(retry_after)
        return ProviderOutcome("retry", "rate_limited", error_code=error, retry_after=wait)
    if status >= 500:
        return ProviderOutcome("unknown", "server_error", error_code=error)
    if status in (401, 403, 404) or code in TWILIO_ACCOUNT:
        # Refused before the message was looked at: the same for every message until the
        # credentials or the account are fixed.
        return ProviderOutcome("unavailable", "auth", error_code=error)
    if code in TWILIO_OPTED_OUT:
        return ProviderOutcome("opted_out", "opted_out", error_code=error)
    if is_undeliverable("sms", error):
        return ProviderOutcome("undeliverable", "undeliverable", error_code=error)
    if 400 <= status < 500:
        return ProviderOutcome("failed", "rejected", error_code=error)
    return ProviderOutcome("unknown", "bad_response", error_code=error)


def smtp_outcome(code: int, message: str) -> ProviderOutcome:
    """Map an SMTP reply that refused the message (any stage: MAIL, RCPT, DATA)."""
    match = _ENHANCED.match(message or "")
    enhanced = ".".join(match.groups()) if match else None
    error = f"{code} {enhanced}" if enhanced else str(code)
    if 200 <= code < 300:
        return ProviderOutcome("sent", "ok")
    if code in SMTP_AUTH:
        return ProviderOutcome("unavailable", "auth", error_code=error)
    if code == 421:  # the relay is closing the session: nothing was accepted
        return ProviderOutcome("unavailable", "connection", error_code=error)
    if 400 <= code < 500:
        return ProviderOutcome("retry", "smtp_transient", error_code=error)
    if is_undeliverable("email", error):
        return ProviderOutcome("undeliverable", "undeliverable", error_code=error)
    if 500 <= code < 600:
        return ProviderOutcome("failed", "rejected", error_code=error)
    return ProviderOutcome("unknown", "bad_response", error_code=error)


def backoff(attempt: int, base: float, cap: float, rand: float | None = None) -> float:
    """Exponential back-off with equal jitter: in ``[d/2, d)`` for ``d = min(cap, base·2^n)``.

    ``attempt`` counts from 1. ``rand`` in ``[0, 1)`` makes it deterministic in tests.
    """
    if attempt < 1:
        return 0.0
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    jitter = random.random() if rand is None else rand  # noqa: S311 - jitter, not a secret
    return ceiling / 2 + ceiling / 2 * jitter


async def retry_until_stopped(
    attempt: Callable[[], Awaitable[object]],
    errors: tuple[type[BaseException], ...],
    stop: asyncio.Event,
    failed: Callable[[BaseException], None],
) -> bool:
    """Run ``attempt`` until it does not raise one of ``errors`` (Redis or Kafka not
    answering), telling ``failed`` of each and backing off between them; True once it ran,
    False when ``stop`` was set while it waited. Anything else it raises is raised."""
    failures = 0
    while True:
        try:
            await attempt()
        except errors as exc:
            failures += 1
            failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff(failures, 0.2, 10.0))
            if stop.is_set():
                return False
        else:
            return True


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, or ``None`` when there is none, it is not a
    number (its HTTP-date form is not read: the stores do not send it) or it is outside 0 to one
    day (the caller's own back-off applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


def error_label(code: str | None) -> str:
    """A bounded metric label for a provider error code (digits and dots, or 'other')."""
    if code is None:
        return "none"
    head = code.split(" ", 1)[0]
    return head if head.isdigit() and len(head) <= 5 else "other"
