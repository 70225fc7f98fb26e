"""Which offset of a partition may be committed while records finish out of order (pure).

Records of a partition are started in offset order and may finish in any order; the committable
offset is one past the longest finished prefix, so a crash redelivers exactly the records whose
outcome may not be recorded yet (and the ledger answers those that were).
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    def __init__(self) -> None:
        self._started: deque[int] = deque()
        self._finished: set[int] = set()
        self._committable: int | None = None

    def start(self, offset: int) -> None:
        if self._started and offset <= self._started[-1]:
            raise ValueError(f"offset {offset} started out of order after {self._started[-1]}")
        self._started.append(offset)

    def finish(self, offset: int) -> None:
        self._finished.add(offset)
        while self._started and self._started[0] in self._finished:
            done = self._started.popleft()
            self._finished.discard(done)
            self._committable = done + 1

    def committable(self) -> int | None:
        """The next offset to commit (one past the finished prefix), or None if none yet."""
        return self._committable

    @property
    def pending(self) -> int:
        return len(self._started)
