"""What a run left behind for the checkers: the input and output topics as read after draining."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter, methodcaller
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


_VALUE = attrgetter("value")
_GET_ID = methodcaller("get", "id")
_ID_TYPES = {int, str}


class Decoded:
    """A topic's records with each value decoded once (on first use), shared by every checker.

    ``records``, ``values``, ``events`` and ``ids`` are parallel: row ``i`` is
    ``records[i]``, its value, that value's JSON object (None when it is not
    one) and the id it names (as :attr:`Output.id`).
    """

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records
        self.values: list[bytes | None] = list(map(_VALUE, records))

    @cached_property
    def events(self) -> list[Event | None]:
        """Each value's JSON object, None when it is not one (:func:`parse_event`)."""
        return _decode_all(self.values)

    @cached_property
    def ids(self) -> list[int | str | None]:
        """The id each row names, None when it names none usable as one (:attr:`Output.id`)."""
        events = self.events
        if None in events:
            return [_usable_id(event) for event in events]
        found = list(map(_GET_ID, events))
        if set(map(type, found)) <= _ID_TYPES:
            return found
        return [i if type(i) is int or type(i) is str else None for i in found]  # JSON ids: no subclasses

    def __len__(self) -> int:
        return len(self.records)

    @cached_property
    def id_counts(self) -> Counter[Any]:
        """How many rows name each id, in order of first appearance (rows naming none are not counted)."""
        counts = Counter(self.ids)
        counts.pop(None, None)
        return counts

    @cached_property
    def outputs(self) -> list[Output]:
        """Every row as an :class:`Output`."""
        return [Output(r.partition, r.offset, r.key, event, found)
                for r, event, found in zip(self.records, self.events, self.ids, strict=True)]

    def output(self, row: int) -> Output:
        """Row ``row`` as an :class:`Output`."""
        r = self.records[row]
        return Output(r.partition, r.offset, r.key, self.events[row], self.ids[row])

    def stated_key(self, row: int) -> str | None:
        """:attr:`Output.stated_key` of row ``row``."""
        event = self.events[row]
        if event is not None and "k" in event:
            return event["k"]
        key = self.records[row].key
        return key.decode(errors="replace") if key is not None else None

    def where(self, row: int) -> dict[str, int]:
        """:meth:`Output.where` of row ``row``."""
        r = self.records[row]
        return {"partition": r.partition, "offset": r.offset}


def _decode_all(values: list[bytes | None]) -> list[Event | None]:
    """:func:`parse_event` of every value: all at once while every value is JSON, else value by value."""
    loads: Callable[[Any], Any] = orjson.loads  # raises JSONDecodeError on None as on other non-JSON
    try:
        decoded = list(map(loads, values))
    except orjson.JSONDecodeError:  # some value is None or not JSON
        return [parse_event(value) for value in values]
    return [event if type(event) is dict else None for event in decoded]


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
    def committed_view(self) -> Decoded:
        """``committed`` decoded once, shared by every checker."""
        return Decoded(self.committed)

    @cached_property
    def committed_outputs(self) -> list[Output]:
        """``committed`` parsed once, shared by every checker."""
        return self.committed_view.outputs

    @cached_property
    def late_outputs(self) -> list[Output]:
        """``late`` parsed once, shared by every checker."""
        return [Output.of(r) for r in self.late]
