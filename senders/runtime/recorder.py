"""Recording a command's outcome once (the send loop's last step, ``service.py``).

The order is what makes a result exactly-once: the ledger's final entry first (a redelivery
finds it and republishes or says ``duplicate``), then the result on ``send.results``, then the
ledger's ``published`` mark. After a request went out every step must happen: Redis and Kafka
failures are retried in place (``durable``) until it does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from aiokafka.errors import KafkaError

from senders.adapters.consents import Consents, record_consent
from senders.adapters.errors import INFRA_ERRORS
from senders.adapters.ledger import Ledger
from senders.core.clock import Clock
from senders.core.dispositions import Disposition, Done, Work
from senders.core.keys import mask_address
from senders.core.ledger_states import Finished
from senders.core.outcomes import backoff
from senders.runtime.metrics import Metrics
from streams.contract.commands import Channel, ResultStatus, SendCommand, SendResult
from streams.contract.consent_history import ConsentEntry

log = logging.getLogger(__name__)

T = TypeVar("T")


class Emitter(Protocol):
    async def result(self, result: SendResult) -> None:
        """Put ``result`` on ``send.results``; returns once the broker acknowledged it."""
        ...

    async def consent(self, entry: ConsentEntry) -> None:
        """Write a consent change to the ledger (``consents.history``, then ``consents``);
        returns once the broker acknowledged both."""
        ...


class Recorder:
    """One sender's outcomes: the ledger, ``send.results`` and what a provider's answer says
    about an address (an opt-out, an undeliverable address)."""

    def __init__(
        self,
        channel: Channel,
        ledger: Ledger,
        consents: Consents,
        emitter: Emitter,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._channel = channel
        self._ledger = ledger
        self._consents = consents
        self._emitter = emitter
        self._metrics = metrics
        self._clock = clock

    def result(
        self,
        command: SendCommand,
        status: ResultStatus,
        work: Work,
        *,
        provider_id: str | None = None,
        error_code: str | None = None,
        segments: int | None = None,
    ) -> SendResult:
        return SendResult(
            command_id=command.command_id,
            status=status,
            provider_id=provider_id,
            error_code=error_code,
            attempts=work.attempts,
            at=datetime.fromtimestamp(self._clock.now(), tz=UTC),
            channel=command.channel,
            journey_id=command.journey_id,
            customer_id=command.customer_id,
            segments=segments,
        )

    async def finish(
        self,
        command: SendCommand,
        work: Work,
        status: ResultStatus,
        *,
        provider_id: str | None = None,
        error_code: str | None = None,
        segments: int | None = None,
    ) -> Disposition:
        """Record ``status`` unless the ledger says another owner took the command (then
        ``Done(None)``) or it was finished before (answered as a redelivery)."""
        result = self.result(
            command, status, work, provider_id=provider_id, error_code=error_code, segments=segments
        )
        cid = command.command_id
        outcome = await self.durable(
            lambda: self._ledger.finish(cid, work.owner, ledger_copy(result))
        )
        if outcome == "ok":
            return await self.publish(result)
        if isinstance(outcome, Finished):
            return await self.redelivered(command, outcome)
        log.warning("command %s is owned by another task; it records the outcome", cid)
        return Done(None)

    async def take_over(self, command: SendCommand, work: Work, grace: float) -> Done | None:
        """Finish a command whose request (another owner's) has ended unrecorded: ``unknown``,
        ``interrupted``. None when the ledger moved on meanwhile (look at it again)."""
        cid = command.command_id
        result = self.result(command, "unknown", work, error_code="interrupted")
        if not await self._ledger.take_over(cid, work.owner, grace, ledger_copy(result)):
            return None
        log.warning("command %s was interrupted mid-request: unknown", cid)
        return await self.publish(result)

    async def publish(self, result: SendResult) -> Done:
        await self.durable(lambda: self._emitter.result(result))
        await self.durable(lambda: self._ledger.mark_published(result.command_id))
        self._metrics.outcomes.labels(self._channel, result.status).inc()
        return Done(result.status)

    async def redelivered(self, command: SendCommand, state: Finished) -> Done:
        """A command already decided: republish an unrecorded result, else say ``duplicate``."""
        original = SendResult.from_json(state.result)
        if original.customer_id is None:  # the ledger keeps none: the command has it
            original = original.model_copy(update={"customer_id": command.customer_id})
        if not state.published:
            return await self.publish(original)
        duplicate = original.model_copy(
            update={"status": "duplicate", "at": datetime.fromtimestamp(self._clock.now(), tz=UTC)}
        )
        await self.durable(lambda: self._emitter.result(duplicate))
        self._metrics.outcomes.labels(self._channel, "duplicate").inc()
        return Done("duplicate")

    async def record_opt_out(self, command: SendCommand, error_code: str | None) -> None:
        """The provider refused the address as opted out: record it as the recipient's."""
        at_ms = int(self._clock.now() * 1000)
        evidence = {"command_id": command.command_id, "error_code": error_code}
        entry = ConsentEntry(
            command.customer_id,
            self._channel,
            "opted_out",
            f"provider:{error_code}",
            at_ms,
            evidence,
            address=command.to,
        )
        await record_consent(
            self._emitter.consent,
            self._consents,
            entry,
            run=self.durable,  # the ledger entries and the Redis copy, each retried alone
        )
        log.info("recipient %s opted out at the provider", mask_address(command.to))

    async def mark_undeliverable(self, command: SendCommand, code: str) -> None:
        """The provider says the address does not receive: skip it from now on."""
        await self.durable(
            lambda: self._consents.mark_undeliverable(self._channel, command.to, code)
        )

    async def durable(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run a step that must happen (after a send): retry Redis/Kafka failures in place."""
        failures = 0
        while True:
            try:
                return await step()
            except INFRA_ERRORS as exc:
                failures += 1
                component = "kafka" if isinstance(exc, KafkaError) else "redis"
                self._metrics.infra_errors.labels(self._channel, component).inc()
                log.warning("%s failed (%s); retrying", component, exc)
                await asyncio.sleep(backoff(failures, 0.1, 5.0))


def ledger_copy(result: SendResult) -> bytes:
    """What the ledger keeps of a result: all but the customer id, so Redis holds no id an
    erasure would have to find (docs/compliance.md, Erasure); a redelivery takes it from
    the command again."""
    return result.model_copy(update={"customer_id": None}).to_json()
