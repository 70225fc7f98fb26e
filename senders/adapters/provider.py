"""The port every provider adapter implements (Twilio SMS, SMTP email).

Everything the send loop (``service.py``) does differently for a channel is asked of its
adapter through this port: the request's timeout, the limits, what must be stored before a
message goes out (SMS: its short links and the number's customer, for a STOP in reply), and
what a sent message's result reports as its segments. The loop itself has no channel branch.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from senders.adapters.ratelimit import Limit
from senders.core.outcomes import ProviderOutcome
from streams.contract.commands import Channel, SendCommand


class Prepared(Protocol):
    """A rendered message, ready to send; ``cost`` is what the rate limiter charges."""

    @property
    def cost(self) -> int: ...


P = TypeVar("P", bound=Prepared)


class Provider(Protocol[P]):
    """One channel's provider. ``send`` never raises for provider trouble: it maps it."""

    @property
    def channel(self) -> Channel: ...

    @property
    def request_timeout(self) -> float:
        """Seconds one ``send`` may take at most, its own timeouts included; the loop cuts a
        request off a second later (``unknown``, ``timeout``)."""
        ...

    def limits(self, command: SendCommand) -> list[Limit]:
        """The rate limits sending ``command`` is charged against (its store's sender
        identity, the account)."""
        ...

    def prepare(self, command: SendCommand, now: float) -> P:
        """Render and check the message; raises ``InvalidRecord`` when it cannot be built."""
        ...

    async def stage(self, message: P, command: SendCommand, now: float) -> None:
        """Make durable what ``message`` relies on once delivered (the SMS's short links, and
        the number's customer for a STOP in reply: ``phonebook.py``), before anything is sent;
        a dry run stages nothing. Idempotent; Redis trouble raises as redis-py raises it
        (nothing was sent: the command is retried), ``InvalidRecord`` when the message cannot
        be staged."""
        ...

    def segments(self, message: P, outcome: ProviderOutcome) -> int | None:
        """What the result of ``message``, sent with ``outcome``, reports as its segments
        (an SMS's as billed, else as counted), or None where the channel has none."""
        ...

    async def warm(self) -> ProviderOutcome | None:
        """Make sure a request can go out (open and log in a connection) without sending
        anything; ``None`` when it can, else why not (an ``unavailable`` outcome). May be
        cancelled at any point: nothing is sent before ``send``."""
        ...

    async def send(self, message: P, command: SendCommand, now: float) -> ProviderOutcome:
        """One request to the provider, no retries; the outcome says what happened."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
