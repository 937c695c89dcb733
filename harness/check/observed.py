"""What a run left behind for the checkers: the input and output topics as read after draining."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from harness.kafka.client import Record

Event = dict[str, Any]
Position = tuple[int, int]  # (partition, offset)
Offsets = dict[str, dict[int, tuple[int, int]]]  # topic -> partition -> (last stable offset, high watermark)


def parse_event(value: bytes | None) -> Event | None:
    """The JSON object in a record value, or None when the value is not one."""
    if value is None:
        return None
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def as_written(value: Any) -> Any:
    """``value`` as it reads back after a JSON round trip (tuples become lists, and so on)."""
    return orjson.loads(orjson.dumps(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _usable_id(event: Event | None) -> int | str | None:
    found = event.get("id") if event is not None else None
    return found if isinstance(found, (int, str)) and not isinstance(found, bool) else None


@dataclass(frozen=True, slots=True)
class Output:
    """One record of the output topic, parsed.

    ``event`` is None when the value is not a JSON object; ``id`` names the
    input the output reflects (None when it names none usable as an id).
    """

    partition: int
    offset: int
    key: bytes | None
    event: Event | None
    id: int | str | None

    @classmethod
    def of(cls, record: Record) -> Output:
        event = parse_event(record.value)
        return cls(record.partition, record.offset, record.key, event, _usable_id(event))

    @property
    def stated_key(self) -> str | None:
        """The key the output says it is under: its ``k`` field, else the record key."""
        if self.event is not None and "k" in self.event:
            return self.event["k"]
        return self.key.decode(errors="replace") if self.key is not None else None

    def where(self) -> dict[str, int]:
        """Where the output is, for examples."""
        return {"partition": self.partition, "offset": self.offset}

    @property
    def window(self) -> tuple[str | None, int, int] | None:
        """``(key, start, end)`` of a window output or late record (its ``k``, ``ws``, ``we``), None if it names none."""
        if self.event is None:
            return None
        start, end = self.event.get("ws"), self.event.get("we")
        if not (isinstance(start, int) and isinstance(end, int) and _is_int(start) and _is_int(end)):
            return None
        return (self.stated_key, start, end)


@dataclass
class Observed:
    """Everything the checkers judge.

    ``inputs`` is the input topic as actually written and ``committed`` /
    ``uncommitted`` the output topic read with each isolation level, all in
    (partition, offset) order. ``probe`` holds the (partition, offset) of
    every output the live read_committed probe consumer saw during the run.
    ``offsets`` maps topic -> partition -> (last stable offset, high
    watermark) measured after draining; ``offsets_later`` measures again.
    ``drained`` is False when the drain timed out before all outputs appeared.
    ``late`` is the late side output topic read_committed, in (partition,
    offset) order (empty when the job has none): one JSON record
    ``{"id", "k", "et", "ws", "we", "why"}`` per (input, window) declared late.
    """

    inputs: list[Record]
    committed: list[Record]
    uncommitted: list[Record]
    probe: Sequence[Position] = ()
    offsets: Offsets = field(default_factory=dict)
    offsets_later: Callable[[], Offsets] | None = None
    txn_timeout_s: float = 10.0
    drained: bool = True
    late: list[Record] = field(default_factory=list)
    #: False when the engine drops late records without writing them to the late topic (the checkers
    #: then derive which inputs were late, see :mod:`harness.check.lateness`)
    late_declared: bool = True
    #: what closes the engine's windows: stream_time (per task), watermark, or key_time (per key)
    window_time: str = "stream_time"
    #: the engine's own count of (input, window) pairs it dropped as late, when it keeps one
    late_metric: int | None = None
    #: partitions of the input topic (and of a repartition topic); 0 when unknown
    partitions: int = 0
    #: how many faults were injected during the run
    faults: int = 0

    @cached_property
    def committed_outputs(self) -> list[Output]:
        """``committed`` parsed once, shared by every checker."""
        return [Output.of(r) for r in self.committed]

    @cached_property
    def late_outputs(self) -> list[Output]:
        """``late`` parsed once, shared by every checker."""
        return [Output.of(r) for r in self.late]
