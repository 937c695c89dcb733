"""Event-time watermarks of the cluster engine, as in Flink.

Pure logic, no I/O, so it is tested without Kafka:

- :class:`SourceWatermarks` — a source subtask's watermark: per Kafka
  partition bounded out-of-orderness (``max event time - bound - 1``, Flink's
  ``BoundedOutOfOrdernessWatermarks``), combined as the minimum over the
  partitions that are not idle (Flink's ``WatermarkOutputMultiplexer``); a
  partition without records for the idle timeout (wall clock) is idle, and
  when every partition is idle the subtask declares itself idle downstream.
- :class:`WatermarkValve` — a task with several input channels: its
  watermark is the minimum over the last watermarks of its non-idle channels
  (Flink's ``StatusWatermarkValve``); when every channel is idle the task is
  idle and its watermark does not advance.

Both only ever report a watermark that is larger than the last one they
reported: watermarks never go backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class WatermarkUpdate:
    """What a watermark source or valve has to announce downstream now.

    ``idle`` is the new status when it changed (True: idle, False: active
    again), else None; ``watermark`` is the new watermark when it advanced,
    else None. Announce the status first, then the watermark.
    """

    watermark: int | None = None
    idle: bool | None = None

    @property
    def empty(self) -> bool:
        """Nothing to announce."""
        return self.watermark is None and self.idle is None


NOTHING = WatermarkUpdate()


def _min_or_none(values: Iterable[int | None]) -> int | None:
    """The minimum, or None when there is no value or any value is still unknown (None)."""
    known = list(values)
    if not known or any(v is None for v in known):
        return None
    return min(known)  # type: ignore[type-var]


class _Monotonic:
    """The last watermark and status announced; turns candidate values into updates that never go backwards."""

    def __init__(self) -> None:
        self.watermark: int | None = None
        self.idle = False

    def update(self, candidate: int | None, idle: bool) -> WatermarkUpdate:
        status = idle if idle != self.idle else None
        self.idle = idle
        advanced = None
        if not idle and candidate is not None and (self.watermark is None or candidate > self.watermark):
            self.watermark = advanced = candidate
        return WatermarkUpdate(advanced, status) if (advanced is not None or status is not None) else NOTHING


@dataclass
class _Partition:
    max_ts: int | None = None
    last_record: float = 0.0


class SourceWatermarks:
    """The watermark of one source subtask over its Kafka partitions.

    ``bound_ms`` is the out-of-orderness bound (``BoundedOutOfOrder.ms``);
    ``idle_timeout_ms`` None means a partition never goes idle. The clock
    (seconds, monotonic) is the wall clock: idleness is about records not
    arriving, not about event time. Call :meth:`on_record` for every record
    before emitting it, and :meth:`poll` periodically.
    """

    def __init__(self, partitions: Iterable[int], bound_ms: int, idle_timeout_ms: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bound_ms = bound_ms
        self.idle_timeout_s = None if idle_timeout_ms is None else idle_timeout_ms / 1000
        self.clock = clock
        now = clock()
        self.partitions = {p: _Partition(last_record=now) for p in partitions}
        self._out = _Monotonic()

    def partition_watermark(self, partition: int) -> int | None:
        """``max event time - bound - 1`` of ``partition``, or None before its first record."""
        max_ts = self.partitions[partition].max_ts
        return None if max_ts is None else max_ts - self.bound_ms - 1

    def is_idle(self, partition: int, now: float | None = None) -> bool:
        """Whether ``partition`` has had no record for the idle timeout."""
        if self.idle_timeout_s is None:
            return False
        now = self.clock() if now is None else now
        return now - self.partitions[partition].last_record >= self.idle_timeout_s

    def on_record(self, partition: int, ts: int | None) -> bool:
        """A record of ``partition`` with event time ``ts`` (None: it has none) is about to be emitted.

        Returns True when the subtask had declared itself idle and must now
        announce that it is active again, before it emits the record.
        """
        part = self.partitions[partition]
        part.last_record = self.clock()
        if ts is not None and (part.max_ts is None or ts > part.max_ts):
            part.max_ts = ts
        if self._out.idle:
            self._out.idle = False
            return True
        return False

    def current(self) -> tuple[int | None, bool]:
        """(min watermark over the active partitions or None if one has none yet, all partitions idle)."""
        now = self.clock()
        active = [p for p in self.partitions if not self.is_idle(p, now)]
        return _min_or_none(self.partition_watermark(p) for p in active), not active

    def poll(self) -> WatermarkUpdate:
        """What to announce now: a watermark that advanced, and/or a change of the idle status."""
        candidate, idle = self.current()
        return self._out.update(candidate, idle)

    @property
    def watermark(self) -> int | None:
        """The last watermark announced (None before the first)."""
        return self._out.watermark


class WatermarkValve:
    """Combines the watermarks and idle statuses of a task's ``channels`` input channels.

    A channel's watermark never goes backwards (an older one is ignored). A
    channel that becomes active again with a watermark behind the combined
    one holds the combined watermark back until it catches up (it does not
    move it backwards) — more conservative than Flink, which leaves such a
    channel out of the minimum until it is aligned again.
    """

    def __init__(self, channels: int) -> None:
        if channels < 1:
            msg = "a watermark valve needs at least one input channel"
            raise ValueError(msg)
        self.watermarks: list[int | None] = [None] * channels
        self.idle = [False] * channels
        self._out = _Monotonic()

    def on_watermark(self, channel: int, ts: int) -> WatermarkUpdate:
        """Watermark ``ts`` arrived on ``channel``."""
        last = self.watermarks[channel]
        if last is None or ts > last:
            self.watermarks[channel] = ts
        return self._combine()

    def on_status(self, channel: int, idle: bool) -> WatermarkUpdate:
        """``channel`` declared itself idle (True) or active again (False)."""
        self.idle[channel] = idle
        return self._combine()

    def _combine(self) -> WatermarkUpdate:
        active = [wm for wm, idle in zip(self.watermarks, self.idle) if not idle]
        return self._out.update(_min_or_none(active), not active)

    @property
    def watermark(self) -> int | None:
        """The combined watermark announced last (None before the first)."""
        return self._out.watermark

    @property
    def all_idle(self) -> bool:
        """Every input channel is idle."""
        return self._out.idle
