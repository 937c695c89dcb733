"""The oracle: a single-threaded reference interpreter of the Pipeline DSL.

It reads the input topic as actually written, in (partition, offset) order,
and runs every event through the pipeline's operators one at a time. For each
output id it records the key the output is under, where its input came from,
and the output it computes. For keyed aggregates it also records, per key,
the events that reach the aggregate (the *contributions*), and it exposes the
aggregate's ``init`` / ``step`` / ``emit`` so a checker can replay a key's
state in the order the engine actually produced it — for re-keyed jobs the
oracle's own order is only one of many valid interleavings.

For a windowed aggregate (:class:`WindowAggregate`) it records, per window
``(key, start, end)``, the events that belong to it (after the operators
before it and its key_by); an event's time is its source event's timestamp
field, or the record timestamp when the source has no event time. It also
keeps, per input partition, how far event time got, which says which windows
every engine must have closed (:meth:`Oracle.surely_closed`), and the inputs
marked definitely late (``"dl": 1``).

An operator the oracle does not know raises :class:`OracleError`, which makes
the checkers that need the oracle report ``unknown`` rather than pass.
"""

from __future__ import annotations

import bisect
from array import array
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from harness.api.pipeline import (
    STATELESS,
    Aggregate,
    Event,
    Keyed,
    Op,
    Pipeline,
    Sink,
    Source,
    State,
    WindowAggregate,
    apply_stateless,
)
from harness.check.observed import Position, parse_event
from harness.errors import StreamgaugeError
from harness.kafka.client import Record


class OracleError(StreamgaugeError):
    """The oracle cannot interpret this pipeline or these inputs."""


@dataclass(frozen=True, slots=True)
class Contribution:
    """One event's part in a keyed aggregate: which input it came from and the event as the aggregate sees it.

    ``ts`` is the event time windows are assigned by (None outside windowed jobs).
    """

    id: Any
    partition: int
    offset: int
    event: Event
    ts: int | None = None


#: A window of one key: (key, start ms, end ms).
WindowId = tuple[str | None, int, int]


@dataclass(frozen=True, slots=True)
class DefinitelyLate:
    """An input marked ``"dl": 1`` as it reaches the window aggregate under ``key``; ``st`` is its send time (µs)."""

    key: str | None
    contribution: Contribution
    st: int | None

    @property
    def id(self) -> Any:
        return self.contribution.id


@dataclass(frozen=True, slots=True)
class Expected:
    """One output the oracle expects.

    ``key`` is the key the output is under (the last key_by's key, or the
    source key when nothing re-keys); ``partition`` / ``offset`` locate the
    input it reflects; ``value`` is the output as the oracle computes it — for
    aggregates that is the value in the oracle's own processing order.
    """

    id: Any
    key: str | None
    partition: int
    offset: int
    value: Event

    @property
    def origin(self) -> Position:
        return (self.partition, self.offset)


def _split_at_aggregate(pipeline: Pipeline) -> tuple[list[Op], Aggregate | WindowAggregate | None, list[Op]]:
    """The operators between source and sink: those before the aggregate, the aggregate, those after it."""
    middle: list[Op] = [op for op in pipeline.ops if not isinstance(op, (Source, Sink))]
    aggregates = [i for i, op in enumerate(middle) if isinstance(op, (Aggregate, WindowAggregate))]
    if not aggregates:
        return middle, None, []
    if len(aggregates) > 1:
        msg = f"pipeline {pipeline.name!r}: the oracle interprets at most one aggregate, found {len(aggregates)}"
        raise OracleError(msg)
    at = aggregates[0]
    return middle[:at], middle[at], middle[at + 1:]  # type: ignore[return-value]


def _apply_op(op: Op, items: list[Keyed]) -> list[Keyed]:
    if not isinstance(op, STATELESS):
        msg = f"the oracle does not interpret {type(op).__name__} operators yet"
        raise OracleError(msg)
    return apply_stateless(op, items)


def apply_ops(ops: Iterable[Op], key: str | None, event: Event) -> list[Keyed]:
    """Run one keyed event through stateless operators; the result may be empty (filter) or many (flat_map)."""
    items: list[Keyed] = [(key, event)]
    for op in ops:
        items = _apply_op(op, items)
    return items


def _source_key(source: Source, record: Record, event: Event) -> str | None:
    if source.key_field is not None and source.key_field in event:
        return str(event[source.key_field])
    return record.key.decode() if record.key is not None else None


def _event_time(source: Source, record: Record, event: Event) -> int:
    """The time windows are assigned by: the source's event-time field, else the record timestamp."""
    if source.timestamps is None:
        return int(record.timestamp_ms)
    ts = event.get(source.timestamps.field)
    if not isinstance(ts, int) or isinstance(ts, bool):
        msg = (f"input {record.topic}[{record.partition}]@{record.offset} has no integer event time "
               f"{source.timestamps.field!r} (found {ts!r})")
        raise OracleError(msg)
    return ts


def _send_time(event: Event) -> int | None:
    st = event.get("st")
    return st if isinstance(st, int) and not isinstance(st, bool) else None


def _input_event(record: Record) -> Event:
    event = parse_event(record.value)
    if event is None:
        msg = f"input {record.topic}[{record.partition}]@{record.offset} is not a JSON object"
        raise OracleError(msg)
    return event


class Oracle:
    """The expected outputs of ``pipeline`` for ``inputs`` (records of the input topic)."""

    def __init__(self, pipeline: Pipeline, inputs: Iterable[Record]) -> None:
        self.pipeline = pipeline.validate()
        self.before, stateful_op, self.after = _split_at_aggregate(pipeline)
        self.aggregate: Aggregate | None = stateful_op if isinstance(stateful_op, Aggregate) else None
        self.window: WindowAggregate | None = stateful_op if isinstance(stateful_op, WindowAggregate) else None
        self.inputs: dict[Any, Position] = {}
        self.expected: dict[Any, list[Expected]] = defaultdict(list)
        self.contributions: dict[str | None, list[Contribution]] = defaultdict(list)
        self._contributions_by_key_and_id: dict[tuple[str | None, Any], list[Contribution]] = defaultdict(list)
        self._states: dict[str | None, State] = {}
        #: windowed jobs: the events of each window, in the oracle's (partition, offset) order
        self.windows: dict[WindowId, list[Contribution]] = defaultdict(list)
        #: windowed jobs: the inputs marked definitely late ("dl": 1), as they reach the window aggregate
        self.definitely_late: list[DefinitelyLate] = []
        self._max_ts: dict[int, int] = {}  # input partition -> max event time
        self._times: dict[int, tuple[array, array]] = defaultdict(lambda: (array("q"), array("q")))  # (st, ts)
        for record in sorted(inputs, key=lambda r: (r.partition, r.offset)):
            self._interpret(record)
        self._states.clear()  # only needed while interpreting
        self.expected = dict(self.expected)
        self.contributions = dict(self.contributions)
        self._contributions_by_key_and_id = dict(self._contributions_by_key_and_id)
        self.windows = dict(self.windows)
        self._times = dict(self._times)

    # -- queries used by the checkers --------------------------------------------------
    @property
    def stateful(self) -> bool:
        """True when the pipeline has a keyed aggregate (outputs depend on the order of a key's inputs)."""
        return self.aggregate is not None

    def expected_count(self, output_id: Any) -> int:
        """How many outputs name ``output_id`` (0 for ids no output should carry)."""
        return len(self.expected.get(output_id, ()))

    def keys_of(self, output_id: Any) -> set[str | None]:
        """The keys the outputs naming ``output_id`` are under."""
        return {e.key for e in self.expected.get(output_id, ())}

    def origin_of(self, output_id: Any) -> Position | None:
        """(source partition, offset) of the input that outputs naming ``output_id`` reflect."""
        expected = self.expected.get(output_id)
        return expected[0].origin if expected else None

    def contributions_of(self, key: str | None, output_id: Any) -> list[Contribution]:
        """The events with id ``output_id`` that reach the aggregate under ``key``."""
        return self._contributions_by_key_and_id.get((key, output_id), [])

    def initial_state(self) -> State:
        """A fresh aggregate state (``aggregate.init()``)."""
        return self._require_aggregate().init()

    def step(self, state: State, event: Event) -> State:
        """The aggregate state after ``event`` (``aggregate.step``)."""
        return self._require_aggregate().step(state, event)

    def emit(self, key: str | None, state: State, event: Event) -> list[Event]:
        """What the pipeline writes after the aggregate reached ``state`` on ``event``.

        ``aggregate.emit`` followed by any operators between the aggregate and the sink.
        """
        emitted = self._require_aggregate().emit(key, state, event)  # type: ignore[arg-type]
        return [out for _, out in apply_ops(self.after, key, emitted)]

    # -- windows --------------------------------------------------------------------------
    @property
    def windowed(self) -> bool:
        """True when the pipeline has a windowed aggregate (one output per window, not per input)."""
        return self.window is not None

    @property
    def watermark_bound_ms(self) -> int:
        """The source's bounded out-of-orderness (ms), 0 when it declares none."""
        watermark = self.pipeline.source_op.watermark
        return watermark.ms if watermark is not None else 0

    @property
    def grace_ms(self) -> int:
        """The window operator's grace (ms)."""
        return self._require_window().grace_ms

    def windows_of(self, key: str | None, ts: int) -> list[WindowId]:
        """The windows of ``key`` an event at time ``ts`` belongs to."""
        return [(key, start, end) for start, end in self._require_window().windows_of(ts)]

    @property
    def horizon_ms(self) -> int | None:
        """How far every engine's time surely got: min over input partitions of (max event time) - bound - 1.

        Partitions without inputs do not hold it back. None without inputs.
        """
        if not self._max_ts:
            return None
        return min(self._max_ts.values()) - self.watermark_bound_ms - 1

    def surely_closed(self, window: WindowId) -> bool:
        """The window's ``end + grace`` is at or before the horizon: every engine must have emitted it."""
        horizon = self.horizon_ms
        return horizon is not None and window[2] + self.grace_ms <= horizon

    def surely_closed_windows(self) -> list[WindowId]:
        """The windows every engine must have closed by the end of the input (emitted, unless all inputs were late)."""
        return [w for w in self.windows if self.surely_closed(w)] if self.windowed else []

    def horizon_before(self, st_us: int) -> int | None:
        """The horizon over the inputs sent before ``st_us`` (µs): min over partitions of their max event time
        among inputs with a smaller send time ``st``, - bound - 1; None while some partition had none."""
        horizon = None
        for sends, prefix_max in self._time_index.values():
            i = bisect.bisect_left(sends, st_us)
            if i == 0:
                return None
            horizon = prefix_max[i - 1] if horizon is None else min(horizon, prefix_max[i - 1])
        return None if horizon is None else horizon - self.watermark_bound_ms - 1

    def window_output(self, window: WindowId, contributions: Iterable[Contribution]) -> list[Event]:
        """What the pipeline writes for ``window`` when exactly ``contributions`` were counted in it.

        ``init`` then ``step`` over the events, ``emit``, then the operators after the aggregate.
        """
        op = self._require_window()
        key, start, end = window
        state = op.init()
        for c in contributions:
            state = op.step(state, c.event)
        return [out for _, out in apply_ops(self.after, key, op.emit(key, start, end, state))]  # type: ignore[arg-type]

    @cached_property
    def _time_index(self) -> dict[int, tuple[list[int], list[int]]]:
        """Per input partition: send times (sorted) and the running max of event time in that order."""
        index = {}
        for partition, (sends, times) in self._times.items():
            pairs = sorted(zip(sends, times))
            running, prefix_max = None, []
            for _, ts in pairs:
                running = ts if running is None else max(running, ts)
                prefix_max.append(running)
            index[partition] = ([st for st, _ in pairs], prefix_max)
        return index

    # -- interpretation ---------------------------------------------------------------
    def _require_window(self) -> WindowAggregate:
        if self.window is None:
            msg = f"pipeline {self.pipeline.name!r} has no window"
            raise OracleError(msg)
        return self.window

    def _require_aggregate(self) -> Aggregate:
        if self.aggregate is None:
            msg = f"pipeline {self.pipeline.name!r} has no aggregate"
            raise OracleError(msg)
        return self.aggregate

    def _interpret(self, record: Record) -> None:
        event = _input_event(record)
        input_id = event.get("id")
        self.inputs.setdefault(input_id, (record.partition, record.offset))
        keyed = apply_ops(self.before, _source_key(self.pipeline.source_op, record, event), event)
        if self.window is not None:
            self._window_input(record, event, keyed)
            return
        if self.aggregate is not None:
            keyed = [out for key, pre in keyed for out in self._aggregate(record, key, pre)]
        for key, out in keyed:
            self._expect(record, key, out)

    def _window_input(self, record: Record, event: Event, keyed: list[Keyed]) -> None:
        """Put the input's events in their windows and note how far its partition's event time got."""
        ts = _event_time(self.pipeline.source_op, record, event)
        st = _send_time(event)
        self._max_ts[record.partition] = max(ts, self._max_ts.get(record.partition, ts))
        if st is not None:
            sends, times = self._times[record.partition]
            sends.append(st)
            times.append(ts)
        definitely_late = event.get("dl") == 1
        spans = self._require_window().windows_of(ts)
        for key, pre in keyed:
            contribution = Contribution(pre.get("id"), record.partition, record.offset, pre, ts)
            for start, end in spans:
                self.windows[(key, start, end)].append(contribution)
            if definitely_late:
                self.definitely_late.append(DefinitelyLate(key, contribution, st))

    def _aggregate(self, record: Record, key: str | None, event: Event) -> list[Keyed]:
        contribution = Contribution(event.get("id"), record.partition, record.offset, event)
        self.contributions[key].append(contribution)
        self._contributions_by_key_and_id[(key, contribution.id)].append(contribution)
        state = self.step(self._states.get(key) or self.initial_state(), event)
        self._states[key] = state
        return apply_ops(self.after, key, self._require_aggregate().emit(key, state, event))  # type: ignore[arg-type]

    def _expect(self, record: Record, key: str | None, out: Event) -> None:
        if not isinstance(out, dict) or "id" not in out:
            msg = (f"pipeline {self.pipeline.name!r} writes an output without an 'id' field for input "
                   f"{record.topic}[{record.partition}]@{record.offset}; the per-id checkers cannot judge it")
            raise OracleError(msg)
        self.expected[out["id"]].append(Expected(out["id"], key, record.partition, record.offset, out))
