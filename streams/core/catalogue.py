"""The product catalogue as the journeys see it: every product's recent versions, by time.

A journey step is judged with the catalogue *as it was at the step's due moment*
(``as_of``), not as it is when the worker happens to run the step. That is why versions are
kept, not only the latest one: the worker reads the ``products`` topic from the beginning and
may learn of a later version before it runs an earlier step (a replay, a restart, a lagging
partition), while ``cartpulse journeys --products`` reads the whole file before it starts.
Judged as of the due moment, both decide the same, whatever they read first.

Pure: no I/O and no clock. Not thread-safe (one event loop owns it).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Final

from streams.contract.products import ProductVersion

MAX_VERSIONS: Final = 16


class Catalogue:
    """product_id → its newest ``max_versions`` versions, sorted by ``updated_ms``.

    Older versions fall out as newer ones arrive, so ``as_of`` a moment before the oldest kept
    version answers ``None``, as for a product not known yet.
    """

    __slots__ = ("_max_versions", "_versions")

    def __init__(self, max_versions: int = MAX_VERSIONS) -> None:
        if max_versions < 1:
            raise ValueError("a catalogue keeps at least one version per product")
        self._max_versions = max_versions
        self._versions: dict[str, list[ProductVersion]] = {}

    def add(self, version: ProductVersion) -> bool:
        """Keep ``version``; True when the catalogue changed.

        False for a duplicate (a version equal to one kept) and for a version older than every
        kept one when the history is full. A different version of the same ``updated_ms``
        replaces the kept one: the later record wins, as compaction would decide.
        """
        versions = self._versions.get(version.product_id)
        if versions is None:
            self._versions[version.product_id] = [version]
            return True
        at = bisect.bisect_left(versions, version.updated_ms, key=_updated_ms)
        if at < len(versions) and versions[at].updated_ms == version.updated_ms:
            if versions[at] == version:
                return False
            versions[at] = version
            return True
        if at == 0 and len(versions) >= self._max_versions:
            return False
        versions.insert(at, version)
        if len(versions) > self._max_versions:
            del versions[0]
        return True

    def as_of(self, product_id: str, at_ms: int) -> ProductVersion | None:
        """The newest version with ``updated_ms <= at_ms``; None when there is none (the
        product is unknown, or every kept version is newer)."""
        versions = self._versions.get(product_id)
        if versions is None:
            return None
        at = bisect.bisect_right(versions, at_ms, key=_updated_ms)
        return versions[at - 1] if at else None

    def latest(self, product_id: str) -> ProductVersion | None:
        """The newest kept version of the product, or None when it is unknown."""
        versions = self._versions.get(product_id)
        return versions[-1] if versions else None

    def history(self, product_id: str) -> tuple[ProductVersion, ...]:
        """The kept versions of the product, oldest first (empty when it is unknown)."""
        return tuple(self._versions.get(product_id, ()))

    def versions(self) -> Iterator[ProductVersion]:
        """Every kept version: product by product (in the order they became known), each
        product's oldest first."""
        for versions in self._versions.values():
            yield from versions

    def __len__(self) -> int:
        """How many products are known."""
        return len(self._versions)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._versions


def _updated_ms(version: ProductVersion) -> int:
    return version.updated_ms
