"""The Pipeline DSL: one logical dataflow that every engine runs.

A job is an importable ``module:function`` reference returning a
:class:`Pipeline`, so every worker process can rebuild it (functions in a
pipeline need not be picklable).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError

Event = dict[str, Any]
State = dict[str, Any]


@dataclass(frozen=True)
class EventTime:
    """Event time is read from ``field`` (ms)."""

    field: str = "et"


@dataclass(frozen=True)
class BoundedOutOfOrder:
    """Watermark = max event time seen - ``ms``."""

    ms: int = 2000


@dataclass(frozen=True)
class Source:
    topic: str
    key_field: str | None = "k"  # the record key is this field of the event
    timestamps: EventTime | None = None
    watermark: BoundedOutOfOrder | None = None


@dataclass(frozen=True)
class Map:
    fn: Callable[[Event], Event]


@dataclass(frozen=True)
class Filter:
    fn: Callable[[Event], bool]


@dataclass(frozen=True)
class FlatMap:
    fn: Callable[[Event], Iterable[Event]]


@dataclass(frozen=True)
class KeyBy:
    """Key the stream by a field name, or by a function of the event.

    ``repartition`` is true when the new key may differ from the record key the
    data is partitioned by (a function, or another field), so the data must be
    redistributed before a keyed operator.
    """

    key: str | Callable[[Event], str]
    repartition: bool = True

    def key_of(self, event: Event) -> str:
        return str(event[self.key]) if isinstance(self.key, str) else str(self.key(event))


def per_record(key: str, state: State, event: Event) -> Event:
    """Emit one output per input: the input's id, the key, the state so far, and the input's times."""
    return {"id": event["id"], "k": key, **state, "et": event.get("et"), "st": event.get("st")}


@dataclass(frozen=True)
class Aggregate:
    """Keyed aggregate: ``state = step(state or init(), event)``, then ``emit(key, state, event)``."""

    init: Callable[[], State]
    step: Callable[[State, Event], State]
    emit: Callable[[str, State, Event], Event] = per_record
    name: str = "agg"


@dataclass(frozen=True)
class Tumbling:
    """Fixed, non-overlapping windows of ``size_ms``: each timestamp is in exactly one."""

    size_ms: int

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        start = ts - ts % self.size_ms
        return [(start, start + self.size_ms)]


@dataclass(frozen=True)
class Sliding:
    """Windows of ``size_ms`` starting every ``slide_ms``: each timestamp is in size/slide of them."""

    size_ms: int
    slide_ms: int

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        last = ts - ts % self.slide_ms
        return [(start, start + self.size_ms)
                for start in range(last, ts - self.size_ms, -self.slide_ms)][::-1]


WindowAssigner = Tumbling | Sliding


def per_window(key: str, start: int, end: int, state: State) -> Event:
    """Emit one output per window when it closes: its key, bounds and final state."""
    return {"k": key, "ws": start, "we": end, **state}


@dataclass(frozen=True)
class WindowAggregate:
    """Keyed, windowed aggregate with emit-final.

    Each event is added (``step``) to every window of its key it belongs to;
    a window is emitted once (``emit(key, start, end, state)``) when it
    closes: when the engine's notion of time (stream-time, or the watermark)
    reaches ``end + grace_ms``. An event for a window already closed is late:
    it goes to the late side output instead.
    """

    assigner: WindowAssigner
    grace_ms: int
    init: Callable[[], State]
    step: Callable[[State, Event], State]
    emit: Callable[[str, int, int, State], Event] = per_window
    name: str = "win"

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        return self.assigner.windows_of(ts)


def late_record(event: Event, key: str | None, start: int, end: int, why: str) -> Event:
    """The late side output's record for one (event, window) pair."""
    return {"id": event.get("id"), "k": key, "et": event.get("et"), "ws": start, "we": end, "why": why}


def id_checksum(event_id: int) -> int:
    """An id's contribution to a window's order-independent checksum ``h`` (53 bits, JSON-safe)."""
    return ((int(event_id) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 11


CHECKSUM_MOD = 1 << 53


@dataclass(frozen=True)
class Sink:
    topic: str


Op = Source | Map | Filter | FlatMap | KeyBy | Aggregate | WindowAggregate | Sink
Keyed = tuple[str | None, Event]
STATELESS = (Map, Filter, FlatMap, KeyBy)


def apply_stateless(op: Op, items: list[Keyed]) -> list[Keyed]:
    """Run (key, event) pairs through one stateless operator (map, filter, flat_map, key_by).

    The one interpretation of these operators that every engine and the oracle share.
    """
    if isinstance(op, Map):
        return [(key, op.fn(event)) for key, event in items]
    if isinstance(op, Filter):
        return [(key, event) for key, event in items if op.fn(event)]
    if isinstance(op, FlatMap):
        return [(key, out) for key, event in items for out in op.fn(event)]
    if isinstance(op, KeyBy):
        return [(op.key_of(event), event) for _, event in items]
    msg = f"{type(op).__name__} is not a stateless operator"
    raise TypeError(msg)


@dataclass(frozen=True)
class Segment:
    """A chain of operators between two data exchanges (a Kafka Streams sub-topology).

    ``input`` is the source topic name or ``repartition-<n>``; ``output`` is the
    sink topic name or the next repartition; ``key_by`` is the re-keying that
    ends this segment (None when it ends in the sink).
    """

    index: int
    input: str
    ops: tuple[Op, ...]
    output: str
    key_by: KeyBy | None = None

    @property
    def stateful(self) -> bool:
        return any(isinstance(o, Aggregate) for o in self.ops)


@dataclass
class Pipeline:
    """A logical dataflow: ``source`` first, ``sink`` last."""

    name: str
    ops: list[Op] = field(default_factory=list)
    late_topic: str | None = None          # logical topic of the late-data side output
    _window: tuple[WindowAssigner, int] | None = None

    def _add(self, op: Op) -> Pipeline:
        self.ops.append(op)
        return self

    def source(self, topic: str = "input", *, key_field: str | None = "k",
               timestamps: EventTime | None = None, watermark: BoundedOutOfOrder | None = None) -> Pipeline:
        return self._add(Source(topic, key_field, timestamps, watermark))

    def map(self, fn: Callable[[Event], Event]) -> Pipeline:
        return self._add(Map(fn))

    def filter(self, fn: Callable[[Event], bool]) -> Pipeline:
        return self._add(Filter(fn))

    def flat_map(self, fn: Callable[[Event], Iterable[Event]]) -> Pipeline:
        return self._add(FlatMap(fn))

    def key_by(self, key: str | Callable[[Event], str]) -> Pipeline:
        current = self._current_key_field()
        return self._add(KeyBy(key, repartition=not (isinstance(key, str) and key == current)))

    def window(self, assigner: WindowAssigner, grace_ms: int = 0) -> Pipeline:
        """Window the keyed stream; the next ``aggregate`` is per window, emitted once when it closes."""
        self._window = (assigner, grace_ms)
        return self

    def aggregate(self, init: Callable[[], State], step: Callable[[State, Event], State],
                  emit: Callable | None = None, name: str | None = None) -> Pipeline:
        if self._window is not None:
            assigner, grace = self._window
            self._window = None
            return self._add(WindowAggregate(assigner, grace, init, step, emit or per_window, name or "win"))
        return self._add(Aggregate(init, step, emit or per_record, name or "agg"))

    def late(self, topic: str = "late") -> Pipeline:
        """Send late records (for windows already closed) to ``topic`` instead of dropping them silently."""
        self.late_topic = topic
        return self

    def sink(self, topic: str = "output") -> Pipeline:
        return self._add(Sink(topic))

    def _current_key_field(self) -> str | None:
        key_field = None
        for op in self.ops:
            if isinstance(op, Source):
                key_field = op.key_field
            elif isinstance(op, KeyBy):
                key_field = op.key if isinstance(op.key, str) else None
            elif isinstance(op, (Map, FlatMap)):
                key_field = key_field  # a map may change fields; keys follow the last key_by
        return key_field

    # -- structure -------------------------------------------------------------------
    @property
    def source_op(self) -> Source:
        return self.ops[0]  # type: ignore[return-value]

    @property
    def sink_op(self) -> Sink:
        return self.ops[-1]  # type: ignore[return-value]

    def validate(self) -> Pipeline:
        """Raise ConfigError when the operators do not form a runnable pipeline."""
        problems = []
        if not self.ops or not isinstance(self.ops[0], Source):
            problems.append("it must start with source()")
        if not self.ops or not isinstance(self.ops[-1], Sink):
            problems.append("it must end with sink()")
        if sum(isinstance(o, Source) for o in self.ops) > 1 or sum(isinstance(o, Sink) for o in self.ops) > 1:
            problems.append("it must have exactly one source() and one sink()")
        keyed = False
        for op in self.ops:
            if isinstance(op, KeyBy):
                keyed = True
            elif isinstance(op, (Map, FlatMap)):
                pass
            elif isinstance(op, (Aggregate, WindowAggregate)) and not keyed:
                problems.append("aggregate() needs a key_by() before it")
            if isinstance(op, WindowAggregate):
                problems += _window_problems(op)
        if self._window is not None:
            problems.append("window() must be followed by aggregate()")
        if problems:
            msg = f"pipeline {self.name!r}: " + "; ".join(problems)
            raise ConfigError(msg)
        return self

    def segments(self) -> list[Segment]:
        """Split at re-keying points: each repartitioning key_by ends a segment."""
        self.validate()
        segs: list[Segment] = []
        current_input = self.source_op.topic
        ops: list[Op] = []
        for op in self.ops[1:-1]:
            if isinstance(op, KeyBy) and op.repartition:
                out = f"repartition-{len(segs)}"
                segs.append(Segment(len(segs), current_input, tuple(ops), out, op))
                current_input, ops = out, []
            else:
                ops.append(op)
        segs.append(Segment(len(segs), current_input, tuple(ops), self.sink_op.topic, None))
        return segs

    @property
    def rekeyed(self) -> bool:
        return len(self.segments()) > 1


def _window_problems(op: WindowAggregate) -> list[str]:
    a = op.assigner
    problems = []
    if a.size_ms <= 0 or op.grace_ms < 0:
        problems.append(f"window size must be > 0 and grace >= 0 (found size {a.size_ms} ms, grace {op.grace_ms} ms)")
    if isinstance(a, Sliding) and (a.slide_ms <= 0 or a.size_ms % a.slide_ms):
        problems.append(f"a sliding window's size must be a multiple of its slide (found {a.size_ms}/{a.slide_ms} ms)")
    return problems


def load_job(ref: str) -> Pipeline:
    """Import ``module:function`` and call it; the result must be a valid Pipeline."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        msg = f"job {ref!r} is not a reference of the form module:function (e.g. scenarios.jobs:running_sum)"
        raise ConfigError(msg)
    module_name, func_name = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        msg = f"job {ref!r}: module {module_name!r} cannot be imported ({e})"
        raise ConfigError(msg) from e
    func = getattr(module, func_name, None)
    if not callable(func):
        msg = f"job {ref!r}: {module_name} has no function {func_name!r}"
        raise ConfigError(msg)
    pipeline = func()
    if not isinstance(pipeline, Pipeline):
        msg = f"job {ref!r} returned {type(pipeline).__name__}, expected a Pipeline"
        raise ConfigError(msg)
    return pipeline.validate()
