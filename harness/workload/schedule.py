"""The explicit, seeded send schedule of a load: what to send, when, and to which partition.

Event i is scheduled at ``t0 + i / rate``; its content comes from the seed
(:class:`EventSource`) and its event time is the scheduled time (or, with
``event_epoch_ms``, that fixed epoch plus ``i / rate``, the same on every
run), then moved by the event-time transforms (:class:`EventTimeTransforms`). An ``idle``
partition's events are then held back and released in one burst: they are
sent later, with ``st`` = their new send time, and keep their event times.

The schedule is a plain iterator of :class:`Send` in send order, computed
lazily (only held-back events are buffered), so it is the same on every run of
a scenario and testable without Kafka.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.kafka.partitioner import partition_for
from harness.workload.events import EventSource, KeySkew
from harness.workload.transforms import Disorder, EventTimeTransforms, Idle, Lagging, Late

UNIFORM = KeySkew()

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """One event to send at ``at_us`` (µs since the epoch) to ``partition`` (None: the producer chooses)."""

    at_us: int
    event: Event
    partition: int | None


class Partitions:
    """Kafka's default partition of each key, cached (a run has few keys and many events)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._cache: dict[str, int] = {}

    def of(self, key: str) -> int:
        """``partition_for(key, count)``."""
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = partition_for(key, self.count)
        return found


def check_partition(name: str, partition: int, partitions: int | None) -> None:
    """Raise ConfigError unless ``partition`` is a partition of a topic with ``partitions`` partitions."""
    if partitions is None:
        msg = f"{name} names partition {partition}, so the generator needs the topic's partition count (partitions)"
        raise ConfigError(msg)
    if not 0 <= partition < partitions:
        msg = f"{name}.partition must be below the topic's {partitions} partitions, found {partition}"
        raise ConfigError(msg)


class Schedule:
    """The sends of one load, in send order (see the module docstring).

    ``partitions`` (the input topic's partition count) makes every send name
    Kafka's default partition of its key; it is required by ``lagging`` and
    ``idle``, which name a partition.
    """

    def __init__(self, *, seed: int, keys: int, rate: float, duration_s: float, t0: float,
                 skew: KeySkew = UNIFORM, partitions: int | None = None, disorder: Disorder | None = None,
                 late: Late | None = None, lagging: Lagging | None = None, idle: Idle | None = None,
                 event_epoch_ms: int | None = None) -> None:
        if lagging is not None:
            check_partition("lagging", lagging.partition, partitions)
        if idle is not None:
            check_partition("idle", idle.partition, partitions)
        self.seed, self.keys, self.skew = seed, keys, skew
        self.rate, self.t0 = rate, t0
        self.period = 1.0 / rate
        self.total = int(rate * duration_s)
        self.partitions = Partitions(partitions) if partitions is not None else None
        self.disorder, self.late, self.lagging, self.idle = disorder, late, lagging, idle
        self.event_epoch_ms = event_epoch_ms

    def scheduled_us(self, i: int) -> int:
        """Event i's scheduled send time before any transform (µs since the epoch)."""
        return int((self.t0 + i * self.period) * 1_000_000)

    def __iter__(self) -> Iterator[Send]:
        sends = self._in_id_order()
        return sends if self.idle is None else _hold_idle(sends, self.idle, int(self.t0 * 1_000_000))

    def _in_id_order(self) -> Iterator[Send]:
        source = EventSource(self.seed, self.keys, self.skew)
        transforms = EventTimeTransforms(self.seed, self.disorder, self.late, self.lagging)
        for i in range(self.total):
            at_us = self.scheduled_us(i)
            event = source.next(i, at_us)
            if self.event_epoch_ms is not None:  # the same event times on every run, whenever it starts
                event["et"] = self.event_epoch_ms + int(i * 1000 / self.rate)
            partition = self.partitions.of(event["k"]) if self.partitions is not None else None
            elapsed_ms = (at_us - self.scheduled_us(0)) // 1000
            yield Send(at_us, transforms.apply(event, partition, elapsed_ms), partition)


def _hold_idle(sends: Iterator[Send], idle: Idle, t0_us: int) -> Iterator[Send]:
    """Hold ``idle.partition``'s sends due in [at, at + for) and release them, in order, at at + for."""
    start_us, end_us = t0_us + idle.at_ms * 1000, t0_us + idle.end_ms * 1000
    held: list[Send] = []
    for send in sends:
        if held and send.at_us >= end_us:
            yield from _released(held, end_us)
            held = []
        if send.partition == idle.partition and start_us <= send.at_us < end_us:
            held.append(send)
        else:
            yield send
    yield from _released(held, end_us)


def _released(held: list[Send], at_us: int) -> Iterator[Send]:
    for send in held:
        send.event["st"] = at_us  # the scheduled send time is now the burst's; et stays as it was
        yield Send(at_us, send.event, send.partition)
