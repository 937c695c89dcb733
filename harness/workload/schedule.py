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

Several generator processes share one schedule by Kafka partition: slice j of
n holds the sends to the partitions p with ``p % n == j``, so every key's
events keep their order and the slices together are the schedule
(:meth:`Schedule.sends`). A schedule without transforms is also given as
:class:`Batch` es of ready-to-produce payloads (:meth:`Schedule.batches`):
the cheap path that load at a benchmark's rates takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.kafka.partitioner import partition_for
from harness.workload.events import BLOCK, EventSource, KeySkew
from harness.workload.transforms import Disorder, EventTimeTransforms, Idle, Lagging, Late

UNIFORM = KeySkew()

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """One event to send at ``at_us`` (µs since the epoch) to ``partition`` (None: the producer chooses)."""

    at_us: int
    event: Event
    partition: int | None


#: an event's value on the wire: the JSON ``orjson.dumps`` writes for the event dict, byte for byte
PAYLOAD = b'{"id":%d,"k":"k%d","v":%d,"et":%d,"st":%d}'


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive sends of one slice, in send order, ready to produce: their scheduled times (µs), partitions,
    keys, values and timestamps (the event time, ms), and the second of the schedule each falls in."""

    at_us: list[int]
    partitions: list[int]
    keys: list[bytes]
    values: list[bytes]
    timestamps: list[int]
    seconds: np.ndarray

    def __len__(self) -> int:
        return len(self.at_us)


def check_slice(index: int, count: int, partitions: int | None) -> None:
    """Raise ConfigError unless slice ``index`` of ``count`` can be cut from a topic with ``partitions``."""
    if count < 1 or not 0 <= index < count:
        msg = f"slice {index} of {count}: expected 0 <= index < count"
        raise ConfigError(msg)
    if count > 1 and partitions is None:
        msg = "a schedule is sliced over generator processes by partition, so it needs the topic's partition count"
        raise ConfigError(msg)


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

    @property
    def plain(self) -> bool:
        """No transform: event i is sent at its scheduled time with its scheduled event time."""
        return self.disorder is None and self.late is None and self.lagging is None and self.idle is None

    def sends(self, index: int = 0, count: int = 1) -> Iterator[Send]:
        """Slice ``index`` of ``count`` of the sends: those to partitions p with ``p % count == index``."""
        check_slice(index, count, None if self.partitions is None else self.partitions.count)
        return iter(self) if count == 1 else (s for s in self if s.partition is not None and s.partition % count == index)

    def batches(self, index: int = 0, count: int = 1) -> Iterator[Batch]:
        """Slice ``index`` of ``count`` of a plain schedule with partitions, one :class:`Batch` per block of ids:
        the same sends as :meth:`sends`, drawn as arrays and formatted at once."""
        if not self.plain or self.partitions is None:
            msg = "batches need a schedule without transforms and with the topic's partition count"
            raise ConfigError(msg)
        check_slice(index, count, self.partitions.count)
        source = EventSource(self.seed, self.keys, self.skew)
        of_key = np.array([self.partitions.of(f"k{k}") for k in range(self.keys)], dtype=np.int64)
        key_bytes = [f"k{k}".encode() for k in range(self.keys)]
        for number in range((self.total + BLOCK - 1) // BLOCK):
            ids = np.arange(number * BLOCK, min((number + 1) * BLOCK, self.total), dtype=np.int64)
            keys, values = source.block(number)
            keys, values = keys[: len(ids)], values[: len(ids)]
            partitions = of_key[keys]
            mine = partitions % count == index
            ids, keys, values, partitions = ids[mine], keys[mine], values[mine], partitions[mine]
            at_us = ((self.t0 + ids * self.period) * 1_000_000).astype(np.int64)  # as scheduled_us, to the µs
            if self.event_epoch_ms is None:
                et = at_us // 1000
            else:
                et = self.event_epoch_ms + (ids * 1000 / self.rate).astype(np.int64)
            at, ts, key_list = at_us.tolist(), et.tolist(), keys.tolist()
            payloads = [PAYLOAD % row for row in zip(ids.tolist(), key_list, values.tolist(), ts, at)]
            seconds = np.maximum(0, (at_us / 1_000_000 - self.t0).astype(np.int64))  # as the sends' own
            yield Batch(at, partitions.tolist(), [key_bytes[k] for k in key_list], payloads, ts, seconds)

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
