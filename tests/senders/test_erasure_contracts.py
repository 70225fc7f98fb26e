"""What an erasure leaves for the send-time check, against the fake and the real Redis alike:
an erased customer id is retired, an opted-out address stays suppressed against any older
consent (docs/compliance.md, Erasure)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from senders.adapters.consents import (
    Consent,
    Consents,
    ConsentStore,
    ConsentUpdate,
    erased_subject,
    suppressed_subject,
)
from senders.core.keys import Keys
from streams.contract.privacy import Pseudonyms
from tests.support.fakes import MemoryConsents

NAMES = Pseudonyms(b"contract-key")
ERASED_AT = 5_000
KEPT = Consent("opted_out", ERASED_AT, "erasure")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def consents(request: pytest.FixtureRequest, key_prefix: str) -> Consents:
    if request.param == "memory":
        return MemoryConsents(pseudonyms=NAMES)
    redis: Redis = request.getfixturevalue("redis")  # the local Redis, cleaned up after
    return ConsentStore(redis, Keys(key_prefix), NAMES)


async def test_an_erased_customer_id_is_retired_whatever_else_is_known(
    consents: Consents,
) -> None:
    later = Consent("opted_in", ERASED_AT + 1_000, "checkout")
    assert await consents.apply(ConsentUpdate("c1", "email", later))
    for channel in ("sms", "email"):
        assert await consents.apply(ConsentUpdate(erased_subject(NAMES, "c1"), channel, KEPT))
    assert await consents.standing("c1", "email", "ann@example.com") == (KEPT, False)
    assert await consents.standing("c1", "sms", "+14155550100") == (KEPT, False)
    assert await consents.standing("c2", "email", "ann@example.com") == (None, False)


async def test_a_suppressed_address_outweighs_older_consents_only(consents: Consents) -> None:
    address = "ann@example.com"
    suppressed = suppressed_subject(NAMES, address)
    assert await consents.apply(ConsentUpdate(suppressed, "email", KEPT))
    # a re-import under another id, its consent recorded before the erasure: suppressed
    old = Consent("opted_in", ERASED_AT - 1_000, "import")
    assert await consents.apply(ConsentUpdate("c7", "email", old))
    assert await consents.standing("c7", "email", " Ann@Example.com ") == (KEPT, False)
    # a consent the person gives after the erasure lifts it
    new = Consent("opted_in", ERASED_AT + 1_000, "checkout")
    assert await consents.apply(ConsentUpdate("c7", "email", new))
    assert await consents.standing("c7", "email", address) == (new, False)
    # the suppression is of this address on this channel only
    assert await consents.standing("c7", "email", "bob@example.com") == (new, False)
    assert await consents.standing("c7", "sms", address) == (None, False)


async def test_a_tie_with_the_suppression_goes_to_the_opt_out(consents: Consents) -> None:
    number = "+14155550100"
    assert await consents.apply(ConsentUpdate(suppressed_subject(NAMES, number), "sms", KEPT))
    same = Consent("opted_in", ERASED_AT, "import")
    assert await consents.apply(ConsentUpdate("c8", "sms", same))
    assert await consents.standing("c8", "sms", number) == (KEPT, False)
