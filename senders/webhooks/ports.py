"""What the webhook handlers need from the outside world, as Protocols (fakes in tests)."""

from __future__ import annotations

from typing import Protocol

from streams.contract.commands import SendResult
from streams.contract.consent_history import ConsentEntry


class Outbox(Protocol):
    """Kafka: each call returns once the broker has acknowledged the record."""

    async def consent(self, entry: ConsentEntry) -> None:
        """The change on the consent ledger: ``consents.history``, then ``consents``."""
        ...

    async def result(self, result: SendResult) -> None: ...

    async def engagement(self, key: bytes, value: bytes) -> None: ...


class Directory(Protocol):
    """Who a phone number belongs to (``senders.adapters.phonebook.PhoneBook``)."""

    async def customers(self, address: str) -> list[str]: ...
