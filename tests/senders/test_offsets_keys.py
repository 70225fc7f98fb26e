"""Offset bookkeeping and Redis key layout (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from senders.core.keys import Keys, mask_address
from senders.core.offsets import PartitionOffsets
from streams.contract.errors import ConfigurationError


@given(st.permutations(list(range(30))), st.integers(0, 30))
def test_commit_only_the_finished_prefix(order: list[int], finished: int) -> None:
    offsets = PartitionOffsets()
    for offset in range(100, 130):
        offsets.start(offset)
    done = order[:finished]
    for index in done:
        offsets.finish(100 + index)
    prefix = 0
    while prefix in done:
        prefix += 1
    assert offsets.committable() == (100 + prefix if prefix else None)
    assert offsets.pending == 30 - prefix


def test_offsets_must_start_in_order() -> None:
    offsets = PartitionOffsets()
    offsets.start(5)
    with pytest.raises(ValueError, match="out of order"):
        offsets.start(5)


def test_limiter_keys_of_one_account_share_a_cluster_slot() -> None:
    keys = Keys("prod:")
    same = {
        key_slot(keys.limiter("sms", "AC1", "sender", identity).encode())
        for identity in ("+15005550006", "MG" + "0" * 32, "+44700900000")
    }
    same.add(key_slot(keys.limiter("sms", "AC1", "account", "all").encode()))
    assert len(same) == 1


def test_keys_do_not_carry_addresses_or_stray_hash_tags() -> None:
    keys = Keys("p:")
    assert "+1415" not in keys.undeliverable("sms", "+14155550100")
    assert keys.undeliverable("email", "Ann@Example.com") == keys.undeliverable(
        "email", "ann@example.com"
    )
    assert "{" not in keys.ledger("a{b}c")
    with pytest.raises(ConfigurationError, match="braces"):
        Keys("{p}:")


@pytest.mark.parametrize(
    ("address", "masked"),
    [("+14155550123", "+1415*****23"), ("ann@example.com", "a**@example.com"), ("+123", "+1*23")],
)
def test_masking(address: str, masked: str) -> None:
    assert mask_address(address) == masked
