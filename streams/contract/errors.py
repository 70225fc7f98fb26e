"""The one exception tree of cartpulse.

Every error says what the caller should do with it:

* ``InvalidRecord`` — the input is bad; send it to the dead-letter topic with ``reason`` and go on.
* ``RetryAfter`` — slow down; the same work may succeed after ``seconds``.
* ``ConfigurationError`` — a setting or a policy file is wrong; fix it and restart.
* ``Unreachable`` — Kafka or Redis did not answer; check the address setting it names.

``retriable`` tells a generic handler whether repeating the same call can succeed.
"""

from __future__ import annotations


class CartpulseError(Exception):
    """Root of every error cartpulse raises on purpose."""

    retriable: bool = False


class InvalidRecord(CartpulseError):
    """A record that violates the event contract; goes to ``<topic>.dlq`` with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(InvalidRecord):
    """A well-formed record of a ``type`` cartpulse does not know.

    The stream counts and ignores these (storefronts may add types before we do); the importer
    reports them, because a file being imported is expected to hold contract events only.
    """


class RetryAfter(CartpulseError):
    """Back-pressure: try the same work again after ``seconds``."""

    retriable = True

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"{reason}; retry after {seconds:.3f}s")
        self.seconds = seconds
        self.reason = reason


class ConfigurationError(CartpulseError):
    """A setting, flag or policy file is wrong; the message names it and the fix."""


class Unreachable(CartpulseError):
    """A service cartpulse needs (Kafka, Redis) did not answer; the message names the setting
    that says where it is. Retriable: the same call may succeed once the service is back."""

    retriable = True
