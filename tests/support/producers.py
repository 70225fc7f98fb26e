"""An in-memory ``streams.runtime.kafka.Producer`` (unit tests of the collector and the importer)."""

from __future__ import annotations

import asyncio
from typing import NamedTuple


class Sent(NamedTuple):
    """A record the producer acknowledged."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


class FakeProducer:
    """Records what it is sent in ``sent`` and acknowledges it at once, or never when ``down``.

    A subclass refuses records its own way by overriding ``deliver``.
    """

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.sent: list[Sent] = []

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.deliver(Sent(topic, key, value, dict(headers or [])), future)
        return future

    def deliver(self, record: Sent, future: asyncio.Future[object]) -> None:
        """Acknowledge ``record`` (unless ``down``); raise to refuse it at send, or fail
        ``future`` to refuse it at delivery."""
        if not self.down:
            self.sent.append(record)
            future.set_result(None)

    async def flush(self) -> None:
        return None
