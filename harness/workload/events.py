"""Seeded event content: the same scenario produces the same events on every engine."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class KeySkew:
    """``uniform``, or Zipf with exponent ``s`` over the key ranks."""

    kind: str = "uniform"
    s: float = 0.0


class EventSource:
    """Event i's content (id, key, value) from the seed alone; times come from the schedule."""

    def __init__(self, seed: int, keys: int, skew: KeySkew = KeySkew()) -> None:
        self._rng = random.Random(seed)
        self.keys = keys
        self._cdf: list[float] | None = None
        if skew.kind == "zipf":
            weights = [1.0 / (rank ** skew.s) for rank in range(1, keys + 1)]
            total = sum(weights)
            acc, cdf = 0.0, []
            for w in weights:
                acc += w / total
                cdf.append(acc)
            self._cdf = cdf

    def _key_index(self) -> int:
        if self._cdf is None:
            return self._rng.randrange(self.keys)
        return min(bisect.bisect_left(self._cdf, self._rng.random()), self.keys - 1)

    def next(self, event_id: int, scheduled_us: int) -> dict:
        """The event with id ``event_id``, scheduled at ``scheduled_us`` (µs since the epoch)."""
        return {"id": event_id, "k": f"k{self._key_index()}", "v": self._rng.randint(1, 100),
                "et": scheduled_us // 1000, "st": scheduled_us}
