"""The Redis mirror of the ``consents`` topic, and the undeliverable-address marks.

``consents`` is compacted and keyed ``customer_id:channel``; the mirror consumer
(``senders.runtime.mirror``) keeps one hash per key in Redis so a sender can check, right before it
sends, that consent was not withdrawn since the journey scheduled the message. A write only
lands when its ``recorded_at`` is not older than what Redis holds, so a replay from the start
of the topic or two writers (the mirror, and a sender recording a 21610 opt-out) never move a
consent backwards. A tombstone deletes the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Protocol, cast

from redis.asyncio import Redis

from senders.core.keys import Keys, address_hash, mask_address
from streams.contract.commands import CHANNELS, Channel
from streams.contract.consent_history import ConsentEntry, ConsentStatus
from streams.contract.consent_record import parse_consent_value
from streams.contract.erasure import ERASED_PREFIX, SUPPRESSED_PREFIX
from streams.contract.errors import InvalidRecord
from streams.contract.privacy import Pseudonyms

UNDELIVERABLE_TTL: Final = timedelta(days=180)

PUT_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'at'))
if current and current > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'at', ARGV[2], 'source', ARGV[3])
return 1
"""

DELETE_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'at'))
if current and ARGV[1] ~= '' and current > tonumber(ARGV[1]) then
  return 0
end
return redis.call('DEL', KEYS[1])
"""


@dataclass(frozen=True, slots=True)
class Consent:
    status: ConsentStatus
    recorded_at_ms: int
    source: str = ""


@dataclass(frozen=True, slots=True)
class ConsentUpdate:
    """One record of ``consents``: a consent, or ``None`` for a tombstone."""

    customer_id: str
    channel: Channel
    consent: Consent | None


def parse_consent_record(key: bytes | None, value: bytes | None) -> ConsentUpdate:
    """Decode a ``consents`` record; raises ``InvalidRecord`` for anything malformed."""
    if not key:
        raise InvalidRecord("a consent record needs its key customer_id:channel")
    customer_id, sep, channel = key.decode("utf-8", errors="replace").rpartition(":")
    if not sep or not customer_id or channel not in CHANNELS:
        raise InvalidRecord("consent key must be customer_id:channel with channel sms or email")
    if value is None:
        return ConsentUpdate(customer_id, channel, None)
    record = parse_consent_value(value)
    return ConsentUpdate(
        customer_id, channel, Consent(record.status, record.recorded_at_ms, record.source)
    )


def address_subject(address: str) -> str:
    """The ledger's subject for a bare address (a phone number no customer is known for).

    A STOP from a number is recorded under ``addr:<hash>:sms`` as well as under each customer
    the number resolves to, so an opt-out is never lost; the SMS sender checks both. The number
    is hashed like every address in a Redis key; the record's evidence holds it in clear.
    """
    return f"addr:{address_hash(address)}"


def newest(first: Consent | None, second: Consent | None) -> Consent | None:
    """The later of two consents; an opt-out wins a tie."""
    if first is None or second is None:
        return first or second
    if first.recorded_at_ms != second.recorded_at_ms:
        return first if first.recorded_at_ms > second.recorded_at_ms else second
    return first if first.status == "opted_out" else second


def deciding(
    customer: Consent | None,
    number: Consent | None,
    suppressed: Consent | None,
    erased: Consent | None,
) -> Consent | None:
    """The consent a send obeys. An erased customer id (``erased:<subject>``, docs/
    compliance.md, Erasure) is retired whatever else is known, a command queued before the
    erasure included. Otherwise the newest statement of the customer's own, the number's
    (SMS: a STOP from the number itself) and the suppression list's (``suppressed:<hash>``)
    wins, an opt-out a tie: a consent recorded before the erasure (a re-import of the old
    data) never lifts the suppression; one the person gives after it does."""
    if erased is not None and erased.status == "opted_out":
        return erased
    return newest(newest(customer, number), suppressed)


def erased_subject(pseudonyms: Pseudonyms, customer_id: str) -> str:
    return f"{ERASED_PREFIX}{pseudonyms.customer(customer_id)}"


def suppressed_subject(pseudonyms: Pseudonyms, address: str) -> str:
    return f"{SUPPRESSED_PREFIX}{pseudonyms.address(address)}"


class Consents(Protocol):
    """What a sender asks and tells about consent and reachability (``ConsentStore``)."""

    async def standing(
        self, customer_id: str, channel: Channel, address: str
    ) -> tuple[Consent | None, bool]:
        """The consent that decides a send to ``address``, and whether the address is known
        to be undeliverable: all a send needs to know. For SMS a STOP from the number itself
        (``address_subject``, recorded when no customer was known for it) counts too: the
        ``newest`` of the customer's and the number's statements decides."""
        ...

    async def apply(self, update: ConsentUpdate, tombstone_at_ms: int | None = None) -> bool: ...

    async def mark_undeliverable(self, channel: Channel, address: str, code: str) -> None: ...


Step = Callable[[], Awaitable[object]]


async def _run_once(step: Step) -> object:
    """Run ``step`` once: its failure is the caller's."""
    return await step()


async def record_consent(
    ledger: Callable[[ConsentEntry], Awaitable[object]],
    mirror: Consents,
    entry: ConsentEntry,
    run: Callable[[Step], Awaitable[object]] = _run_once,
) -> None:
    """Record one consent change the one way cartpulse does: on the ledger first (its
    ``consents.history`` entry, then its ``consents`` record: ``streams.runtime.consent_ledger``,
    the
    record of truth, durable before anyone is answered), then the Redis copy the senders read.
    Repeating it repeats the entries and rewrites the same copy.

    ``run`` runs each of the two steps; a caller that retries in place passes its retry, so a
    Redis failure is retried alone and does not produce the ledger entries again.
    """
    consent = Consent(entry.status, entry.recorded_at_ms, entry.source)
    await run(lambda: ledger(entry))
    await run(lambda: mirror.apply(ConsentUpdate(entry.subject, entry.channel, consent)))


class ConsentStore:
    """Reads and writes the mirror; also remembers addresses a provider called undeliverable."""

    def __init__(self, redis: Redis, keys: Keys, pseudonyms: Pseudonyms | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._pseudonyms = pseudonyms or Pseudonyms()  # the deployment's, for standing()
        self._put = redis.register_script(PUT_LUA)
        self._delete = redis.register_script(DELETE_LUA)

    async def get(self, customer_id: str, channel: Channel) -> Consent | None:
        key = self._keys.consent(customer_id, channel)
        return _consent(await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(key)))

    async def standing(
        self, customer_id: str, channel: Channel, address: str
    ) -> tuple[Consent | None, bool]:
        """See ``Consents.standing``: the consent(s) and the address's deliverability, in
        one Redis round trip."""
        sms = channel == "sms"
        names = self._pseudonyms
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.consent(customer_id, channel))
            pipe.hgetall(self._keys.consent(erased_subject(names, customer_id), channel))
            pipe.hgetall(self._keys.consent(suppressed_subject(names, address), channel))
            if sms:
                pipe.hgetall(self._keys.consent(address_subject(address), channel))
            pipe.exists(self._keys.undeliverable(channel, address))
            replies = await pipe.execute()
        number = _consent(replies[3]) if sms else None
        erased, suppressed = _consent(replies[1]), _consent(replies[2])
        consent = deciding(_consent(replies[0]), number, suppressed, erased)
        return consent, bool(replies[-1])

    async def apply(self, update: ConsentUpdate, tombstone_at_ms: int | None = None) -> bool:
        """Write one update unless Redis already holds a newer one. True when it landed."""
        key = self._keys.consent(update.customer_id, update.channel)
        if update.consent is None:
            at = "" if tombstone_at_ms is None else str(tombstone_at_ms)
            return bool(await self._delete(keys=[key], args=[at]))
        consent = update.consent
        args = [consent.status, consent.recorded_at_ms, consent.source]
        return bool(await self._put(keys=[key], args=args))

    async def mark_undeliverable(self, channel: Channel, address: str, code: str) -> None:
        key = self._keys.undeliverable(channel, address)
        ttl = int(UNDELIVERABLE_TTL.total_seconds())
        await self._redis.set(key, f"{code} {mask_address(address)}", ex=ttl)


def _consent(raw: dict[bytes, bytes]) -> Consent | None:
    status = raw.get(b"status", b"").decode()
    if status not in ("opted_in", "opted_out"):
        return None
    at = int(raw.get(b"at", b"0"))
    return Consent(cast(ConsentStatus, status), at, raw.get(b"source", b"").decode())
