"""The event-time window operator of the cluster engine, as Flink's ``WindowOperator``.

Pure logic, no I/O. For a record with event time ``ts``, every window
``(ws, we)`` it belongs to is either *late* — ``we - 1 + grace <= watermark``:
the window has fired already, or would have — and the record goes to the late
side output for that window, or the record is added to the keyed window state
``(key, ws)``. When the watermark advances, every window with
``we - 1 + grace <= watermark`` fires: its result is emitted once and its
state dropped. ``we - 1`` is the window's last millisecond (Flink's
``TimeWindow.maxTimestamp``); the grace period is Flink's allowed lateness,
except that a window fires only once, at the end of its grace (emit-final).

In Kafka, a window result's record has key = the window's key and timestamp =
the window end ``we``; a late record has timestamp = its event time. Event
time is read from the event field (``EventTime.field``), not carried beside
the record, so a window result (which has no such field) cannot feed a
second window operator further down.

The operator's current watermark is part of its checkpointed state — a
deliberate deviation from Flink, which re-derives watermarks after a restore:
without it, a restored operator would take a record for a window that fired
before the checkpoint as on time and emit that window a second time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from engines.cluster.keygroups import key_group
from harness.api import Event, State, WindowAggregate
from harness.api.pipeline import late_record

LATE_REASON = "watermark passed"

WindowKey = tuple[str, int]
"""A window's state key: (record key, window start)."""


class EventTimeError(ValueError):
    """A record reached a window operator without a usable event time."""


@dataclass(frozen=True)
class Fired:
    """One window's final result: emitted once, when the watermark passes its end plus grace."""

    key: str
    start: int
    end: int
    result: Event


@dataclass(frozen=True)
class LateRecord:
    """A record for a window that has fired already: its late side output record and event time."""

    key: str
    record: Event
    timestamp: int


class WindowOperator:
    """Keyed event-time windows for one :class:`WindowAggregate`; event time is ``event[time_field]`` (ms)."""

    def __init__(self, op: WindowAggregate, time_field: str) -> None:
        self.op = op
        self.time_field = time_field
        self.size_ms = op.assigner.size_ms
        self.watermark: int | None = None
        self.windows: dict[WindowKey, State] = {}
        self._timers: dict[int, set[WindowKey]] = {}   # fire time -> windows (Flink's event-time timers)
        self._times: list[int] = []                     # heap of the fire times in _timers

    def fire_time(self, end: int) -> int:
        """The watermark at which a window ending at ``end`` fires (and after which it is late)."""
        return end - 1 + self.op.grace_ms

    def is_late(self, end: int) -> bool:
        """Whether the window ending at ``end`` has fired already (or would have)."""
        return self.watermark is not None and self.fire_time(end) <= self.watermark

    def event_time(self, event: Event) -> int:
        """The record's event time; raises :class:`EventTimeError` when it has none."""
        ts = event.get(self.time_field) if isinstance(event, dict) else None
        if not isinstance(ts, int) or isinstance(ts, bool):
            msg = (f"window {self.op.name!r}: a record has no integer event time in field "
                   f"{self.time_field!r} (found {ts!r})")
            raise EventTimeError(msg)
        return ts

    def process(self, key: str, event: Event) -> list[LateRecord]:
        """Add ``event`` to each of its windows that is still open; return a late record for every other."""
        ts = self.event_time(event)
        late: list[LateRecord] = []
        for start, end in self.op.windows_of(ts):
            if self.is_late(end):
                late.append(LateRecord(key, late_record(event, key, start, end, LATE_REASON), ts))
            else:
                self._add(key, start, event)
        return late

    def _add(self, key: str, start: int, event: Event) -> None:
        wkey = (key, start)
        state = self.windows.get(wkey)
        if state is None:
            self._register(wkey)
            state = self.op.init()
        self.windows[wkey] = self.op.step(state, event)

    def _register(self, wkey: WindowKey) -> None:
        at = self.fire_time(wkey[1] + self.size_ms)
        if at not in self._timers:
            self._timers[at] = set()
            heapq.heappush(self._times, at)
        self._timers[at].add(wkey)

    def advance(self, watermark: int) -> list[Fired]:
        """The watermark advanced to ``watermark``: fire (emit and drop) every window whose time has come.

        A watermark not above the current one changes nothing. Results come
        in fire-time order, then by key and start.
        """
        if self.watermark is not None and watermark <= self.watermark:
            return []
        self.watermark = watermark
        fired: list[Fired] = []
        while self._times and self._times[0] <= watermark:
            for key, start in sorted(self._timers.pop(heapq.heappop(self._times))):
                fired.append(self._fire(key, start))
        return fired

    def _fire(self, key: str, start: int) -> Fired:
        end = start + self.size_ms
        state = self.windows.pop((key, start))
        return Fired(key, start, end, self.op.emit(key, start, end, state))

    # -- checkpoints -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The operator's checkpoint state: its watermark and its open windows by key group.

        ``{"watermark": int | None, "groups": {"<key group>": [[key, ws, we, state], ...]}}``
        """
        groups: dict[str, list[list[Any]]] = {}
        for (key, start), state in self.windows.items():
            groups.setdefault(str(key_group(key)), []).append([key, start, start + self.size_ms, state])
        return {"watermark": self.watermark, "groups": groups}

    def restore(self, snap: dict[str, Any], merge: bool = False) -> None:
        """Replace the operator's state with :meth:`snapshot` output: its windows and its watermark. With
        ``merge``, add the snapshot's windows to those restored so far and leave the watermark alone (a rescaled
        restore reads several subtasks' snapshots and sets the watermark itself)."""
        if not merge:
            self.watermark = snap.get("watermark")
            self.windows, self._timers, self._times = {}, {}, []
        for entries in snap.get("groups", {}).values():
            for key, start, _end, state in entries:
                self.windows[(key, start)] = state
                self._register((key, start))
