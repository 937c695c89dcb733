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
class Sink:
    topic: str


Op = Source | Map | Filter | FlatMap | KeyBy | Aggregate | Sink
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

    def aggregate(self, init: Callable[[], State], step: Callable[[State, Event], State],
                  emit: Callable[[str, State, Event], Event] = per_record, name: str = "agg") -> Pipeline:
        return self._add(Aggregate(init, step, emit, name))

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
            elif isinstance(op, Aggregate) and not keyed:
                problems.append("aggregate() needs a key_by() before it")
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
