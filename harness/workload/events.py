"""Seeded event content: the same scenario produces the same events on every engine.

Event ids are taken in blocks of :data:`BLOCK` (8192); each block's keys and
values are drawn, as arrays, from a random generator seeded with the scenario
seed and the block's number. So any event's content follows from the seed and
its id alone, and a generator process that sends only some partitions draws
the same events as one that sends them all, without the others' draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 8192
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class KeySkew:
    """``uniform``, or Zipf with exponent ``s`` over the key ranks."""

    kind: str = "uniform"
    s: float = 0.0


class EventSource:
    """Event i's content (id, key, value) from the seed alone; times come from the schedule."""

    def __init__(self, seed: int, keys: int, skew: KeySkew = KeySkew()) -> None:
        self.seed, self.keys = seed, keys
        self._cdf: np.ndarray | None = None
        if skew.kind == "zipf":
            weights = 1.0 / np.arange(1, keys + 1, dtype=np.float64) ** skew.s
            self._cdf = np.cumsum(weights / weights.sum())
        self._cached: tuple[int, list[int], list[int]] | None = None

    def block(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """Key indexes and values of the events with ids ``number * BLOCK`` to ``(number + 1) * BLOCK - 1``."""
        rng = np.random.default_rng([self.seed & _U64, number])
        if self._cdf is None:
            keys = rng.integers(0, self.keys, BLOCK, dtype=np.int64)
        else:
            keys = np.minimum(np.searchsorted(self._cdf, rng.random(BLOCK), side="left"), self.keys - 1)
        values = rng.integers(1, 101, BLOCK, dtype=np.int64)
        return keys, values

    def content(self, event_id: int) -> tuple[int, int]:
        """Event ``event_id``'s key index and value (a block is drawn once and kept while its ids are asked for)."""
        number, offset = divmod(event_id, BLOCK)
        if self._cached is None or self._cached[0] != number:
            keys, values = self.block(number)
            self._cached = (number, keys.tolist(), values.tolist())
        return self._cached[1][offset], self._cached[2][offset]

    def next(self, event_id: int, scheduled_us: int) -> dict:
        """The event with id ``event_id``, scheduled at ``scheduled_us`` (µs since the epoch)."""
        key, value = self.content(event_id)
        return {"id": event_id, "k": f"k{key}", "v": value, "et": scheduled_us // 1000, "st": scheduled_us}
