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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property, partial
from operator import attrgetter
from typing import Any, TypeVar, cast

import orjson

from harness.api.pipeline import (
    STATELESS,
    Aggregate,
    Event,
    KeyBy,
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


def _not_an_object(record: Record) -> OracleError:
    return OracleError(f"input {record.topic}[{record.partition}]@{record.offset} is not a JSON object")


def _input_event(record: Record) -> Event:
    event = parse_event(record.value)
    if event is None:
        raise _not_an_object(record)
    return event


_POSITION = attrgetter("partition", "offset")
_T = TypeVar("_T")


def _hashed(value: Any) -> None:
    """Raise TypeError when ``value`` cannot key a dict (ints and strings, the usual ids and keys, always can)."""
    if type(value) is not int and type(value) is not str and value is not None:
        hash(value)


def _keyed_fn(ops: list[Op]) -> Callable[[str | None, Event], list[Keyed]]:
    """:func:`apply_ops` over ``ops`` as one function, direct for the shapes most jobs have."""
    if not ops:
        return lambda key, event: [(key, event)]
    name = _key_field_of(ops)
    if name is not None:  # KeyBy.key_of for a field name
        return lambda key, event: [(str(event[name]), event)]
    return partial(apply_ops, ops)


def _key_field_of(ops: list[Op]) -> str | None:
    """The field ``ops`` key by when they are exactly one key_by of a field name, else None."""
    if len(ops) == 1 and type(ops[0]) is KeyBy and isinstance(ops[0].key, str):
        return ops[0].key
    return None


class ExpectedRows:
    """The outputs the oracle expects, as columns: row ``j`` is the ``j``-th output it computed.

    ``inputs[j]`` is the index (in :attr:`Oracle.records`) of the input the
    output reflects. ``first`` maps each output id to its first row and
    ``more`` each id with several outputs to all its rows, in order.
    ``shared_origins`` is True when two outputs with one id reflect different
    inputs. ``by_key`` holds each key's rows, in order.
    """

    def __init__(self) -> None:
        self.ids: list[Any] = []
        self.keys: list[str | None] = []
        self.inputs: list[int] = []
        self.values: list[Event] = []
        self.first: dict[Any, int] = {}
        self.more: dict[Any, list[int]] = {}
        self.shared_origins = False
        #: row j is also the j-th contribution's row: each contribution gave one output, under its key
        self.one_per_contribution = False
        #: every output's id is an int or a string, and its "k" field is its key (a string): it reads back the same
        self.plain = False
        self._by_key: dict[str | None, list[int]] | None = None

    def add(self, output_id: Any, key: str | None, input_index: int, value: Event) -> None:
        row = len(self.ids)
        first = self.first.setdefault(output_id, row)
        if first != row:
            self.repeat(output_id, first, row, input_index)
        self.ids.append(output_id)
        self.keys.append(key)
        self.inputs.append(input_index)
        self.values.append(value)

    def repeat(self, output_id: Any, first: int, row: int, input_index: int) -> None:
        """Row ``row`` names ``output_id`` again (its first row is ``first``)."""
        self.more.setdefault(output_id, [first]).append(row)
        if self.inputs[first] != input_index:
            self.shared_origins = True

    def rows_of(self, output_id: Any) -> list[int]:
        """The rows of the outputs naming ``output_id`` (none for ids no output should carry)."""
        more = self.more.get(output_id)
        if more is not None:
            return more
        first = self.first.get(output_id)
        return [] if first is None else [first]

    def count(self, output_id: Any) -> int:
        """How many outputs name ``output_id``."""
        more = self.more.get(output_id)
        if more is not None:
            return len(more)
        return 1 if output_id in self.first else 0

    @property
    def by_key(self) -> dict[str | None, list[int]]:
        if self._by_key is None:
            by_key: dict[str | None, list[int]] = defaultdict(list)
            for row, key in enumerate(self.keys):
                by_key[key].append(row)
            self._by_key = dict(by_key)
        return self._by_key

    def share_keys_with(self, by_key: dict[str | None, list[int]]) -> None:
        """Use ``by_key``, the contributions' rows by key, as :attr:`by_key`: each contribution gave exactly one
        output, under its key, so row j of both is the same."""
        self._by_key = by_key
        self.one_per_contribution = True


class ContributionRows:
    """The contributions to a keyed aggregate, as columns: row ``r`` is the ``r``-th event that reached it.

    ``inputs[r]`` indexes :attr:`Oracle.records`; ``written[r]`` is what the
    pipeline wrote after the aggregate stepped on it, as JSON: the bytes of its
    one output, a tuple with the bytes of each when it wrote none or several,
    None when one cannot be written as JSON. ``by_key`` holds each key's rows
    in the order the oracle stepped them; ``restarted`` the keys whose state was
    falsy at some step, so the oracle restarted it from ``init()``.
    """

    def __init__(self) -> None:
        self.ids: list[Any] = []
        self.keys: list[str | None] = []
        self.inputs: list[int] = []
        self.events: list[Event] = []
        self.written: list[bytes | tuple[bytes, ...] | None] = []
        self.by_key: dict[str | None, list[int]] = {}
        self.restarted: set[str | None] = set()
        self._by_key_and_id: dict[tuple[str | None, Any], list[int]] | None = None

    @cached_property
    def row_of_written(self) -> dict[Any, int]:
        """The row whose one output was written as these bytes (the last such row, when several were).

        Keyed by :attr:`written`: a row with several or no outputs is under a
        tuple, which no record value equals; one that cannot be written as JSON
        is left out.
        """
        index: dict[Any, int] = dict(zip(self.written, range(len(self.written)), strict=True))
        index.pop(None, None)
        return index

    def rows_of(self, key: str | None, contribution_id: Any) -> list[int]:
        """The rows of the events with id ``contribution_id`` that reach the aggregate under ``key``."""
        if self._by_key_and_id is None:
            found: dict[tuple[str | None, Any], list[int]] = defaultdict(list)
            for row, pair in enumerate(zip(self.keys, self.ids, strict=True)):
                found[pair].append(row)
            self._by_key_and_id = dict(found)
        return self._by_key_and_id.get((key, contribution_id), [])


def _written(outputs: list[Keyed]) -> bytes | tuple[bytes, ...] | None:
    try:
        if len(outputs) == 1:
            return orjson.dumps(outputs[0][1])
        return tuple(orjson.dumps(out) for _, out in outputs)
    except orjson.JSONEncodeError:
        return None


class Oracle:
    """The expected outputs of ``pipeline`` for ``inputs`` (records of the input topic).

    The expected outputs and the contributions are kept as columns
    (:attr:`rows`, :attr:`contribution_rows`) that the checkers read directly;
    :attr:`expected`, :attr:`contributions` and :attr:`inputs` present them per
    id and key, built on first use. The replay checkers take the aggregate's
    ``init`` / ``step`` / ``emit`` to be deterministic, as the oracle does.
    """

    def __init__(self, pipeline: Pipeline, inputs: Iterable[Record]) -> None:
        self.pipeline = pipeline.validate()
        self.before, stateful_op, self.after = _split_at_aggregate(pipeline)
        self.aggregate: Aggregate | None = stateful_op if isinstance(stateful_op, Aggregate) else None
        self.window: WindowAggregate | None = stateful_op if isinstance(stateful_op, WindowAggregate) else None
        #: the input records in (partition, offset) order, and the id field of each
        self.records: list[Record] = sorted(inputs, key=_POSITION)
        self.input_ids: list[Any] = []
        self.rows = ExpectedRows()
        self.contribution_rows = ContributionRows()
        #: windowed jobs: the events of each window, in the oracle's (partition, offset) order
        self.windows: dict[WindowId, list[Contribution]] = defaultdict(list)
        #: windowed jobs: the inputs marked definitely late ("dl": 1), as they reach the window aggregate
        self.definitely_late: list[DefinitelyLate] = []
        self._max_ts: dict[int, int] = {}  # input partition -> max event time
        self._times: dict[int, tuple[array, array]] = defaultdict(lambda: (array("q"), array("q")))  # (st, ts)
        self._memo: dict[str, tuple[object, Any]] = {}
        if self.aggregate is not None:
            self._interpret_aggregate(self.aggregate)
        else:
            for index, record in enumerate(self.records):
                self._interpret(index, record)
        self.windows = dict(self.windows)
        self._times = dict(self._times)

    def memo(self, name: str, observation: object, build: Callable[[], _T]) -> _T:
        """``build()``, made once per ``name`` for the latest ``observation`` it was asked for: what several
        checkers derive from one observation of the run (``build`` must depend only on it and the oracle)."""
        found = self._memo.get(name)
        if found is not None and found[0] is observation:
            return cast(_T, found[1])  # stored by this method, for this name
        made = build()
        self._memo[name] = (observation, made)
        return made

    @cached_property
    def inputs(self) -> dict[Any, Position]:
        """Each input id's (partition, offset): its first input in (partition, offset) order."""
        found: dict[Any, Position] = {}
        for record, input_id in zip(self.records, self.input_ids, strict=True):
            found.setdefault(input_id, (record.partition, record.offset))
        return found

    @cached_property
    def expected(self) -> dict[Any, list[Expected]]:
        """Per output id, the outputs that name it, in the oracle's order."""
        rows = self.rows
        return {output_id: [self.expected_at(row) for row in rows.more.get(output_id, (first,))]
                for output_id, first in rows.first.items()}

    def expected_at(self, row: int) -> Expected:
        """The expected output in row ``row`` of :attr:`rows`."""
        rows = self.rows
        record = self.records[rows.inputs[row]]
        return Expected(rows.ids[row], rows.keys[row], record.partition, record.offset, rows.values[row])

    @cached_property
    def _contribution_list(self) -> list[Contribution]:
        c = self.contribution_rows
        return [Contribution(cid, self.records[index].partition, self.records[index].offset, event)
                for cid, index, event in zip(c.ids, c.inputs, c.events, strict=True)]

    @cached_property
    def contributions(self) -> dict[str | None, list[Contribution]]:
        """Per key, the events that reach the keyed aggregate under it, in the oracle's order."""
        every = self._contribution_list
        return {key: [every[row] for row in rows] for key, rows in self.contribution_rows.by_key.items()}

    @cached_property
    def _contributions_by_key_and_id(self) -> dict[tuple[str | None, Any], list[Contribution]]:
        every = self._contribution_list
        found: dict[tuple[str | None, Any], list[Contribution]] = defaultdict(list)
        for row, pair in enumerate(zip(self.contribution_rows.keys, self.contribution_rows.ids, strict=True)):
            found[pair].append(every[row])
        return dict(found)

    # -- queries used by the checkers --------------------------------------------------
    @property
    def stateful(self) -> bool:
        """True when the pipeline has a keyed aggregate (outputs depend on the order of a key's inputs)."""
        return self.aggregate is not None

    def expected_count(self, output_id: Any) -> int:
        """How many outputs name ``output_id`` (0 for ids no output should carry)."""
        return self.rows.count(output_id)

    def keys_of(self, output_id: Any) -> set[str | None]:
        """The keys the outputs naming ``output_id`` are under."""
        keys = self.rows.keys
        return {keys[row] for row in self.rows.rows_of(output_id)}

    def origin_of(self, output_id: Any) -> Position | None:
        """(source partition, offset) of the input that outputs naming ``output_id`` reflect."""
        first = self.rows.first.get(output_id)
        if first is None:
            return None
        record = self.records[self.rows.inputs[first]]
        return (record.partition, record.offset)

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

    def _prepare(self, record: Record) -> tuple[Event, list[Keyed]]:
        """The input's event, its id noted, and the keyed events the operators before the aggregate make."""
        event = _input_event(record)
        input_id = event.get("id")
        _hashed(input_id)
        self.input_ids.append(input_id)
        return event, apply_ops(self.before, _source_key(self.pipeline.source_op, record, event), event)

    def _interpret(self, index: int, record: Record) -> None:
        """One input of a job without a keyed aggregate (stateless, or windowed)."""
        event, keyed = self._prepare(record)
        if self.window is not None:
            self._window_input(record, event, keyed)
            return
        for key, out in keyed:
            self._expect(index, record, key, out)

    def _interpret_aggregate(self, aggregate: Aggregate) -> None:
        """Every input of a job with a keyed aggregate, in one loop.

        Per input: its event and id, its keyed events (the operators before
        the aggregate), then per keyed event its contribution, the step, the
        emitted output and that output's expected row — written out for the
        usual shape (one keyed event per input, nothing after the aggregate,
        each contribution's row also its output's row). Other inputs take
        :meth:`_aggregate_all`.
        """
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        dumps, encode_error = orjson.dumps, orjson.JSONEncodeError
        key_field = self.pipeline.source_op.key_field
        keyed_of = _keyed_fn(self.before)
        by_name = _key_field_of(self.before)
        single = not self.after
        init, step = aggregate.init, aggregate.step
        emit: Callable[..., Event] = aggregate.emit  # called with the key, which is None for unkeyed events
        c, e = self.contribution_rows, self.rows
        if single:  # each contribution gives one output, under its key: the rows coincide
            e.keys, e.inputs = c.keys, c.inputs
            e.one_per_contribution = True
        plain = True
        add_input_id = self.input_ids.append
        c_ids = c.ids
        add_id, add_key, add_input, add_event, add_written = (
            c_ids.append, c.keys.append, c.inputs.append, c.events.append, c.written.append)
        add_output_id, add_value, first_row = e.ids.append, e.values.append, e.first.setdefault
        by_key: dict[str | None, list[int]] = defaultdict(list)
        states: dict[str | None, State] = {}
        for index, record in enumerate(self.records):
            value = record.value
            try:
                event = loads(value) if value is not None else None
            except decode_error:
                event = None
            if type(event) is not dict:
                raise _not_an_object(record)
            input_id = event.get("id")
            if type(input_id) is not int and type(input_id) is not str and input_id is not None:
                hash(input_id)  # an id that cannot key a dict fails here, as for any input
            add_input_id(input_id)
            source_key: str | None
            if key_field is not None and key_field in event:
                source_key = str(event[key_field])
            else:
                source_key = record.key.decode() if record.key is not None else None
            key: str | None
            if by_name is not None and single:
                key, pre = str(event[by_name]), event  # the one keyed event of a key_by of a field
            else:
                keyed = keyed_of(source_key, event)
                if not single or len(keyed) != 1:
                    self._aggregate_all(index, record, keyed, aggregate, states, by_key)
                    plain = False
                    continue
                key, pre = keyed[0]
            contribution_id = input_id if pre is event else pre.get("id")
            row = len(c_ids)
            by_key[key].append(row)
            if pre is not event:
                _hashed(contribution_id)
            add_id(contribution_id)
            add_key(key)
            add_input(index)
            add_event(pre)
            state = states.get(key)
            if state is None:
                state = init()
            elif not state:
                c.restarted.add(key)
                state = init()
            state = step(state, pre)
            states[key] = state
            out = emit(key, state, pre)
            try:
                add_written(dumps(out))
            except encode_error:
                add_written(None)
            if not isinstance(out, dict) or "id" not in out:  # as in _expect_one
                raise self._no_id(record)
            output_id = out["id"]
            first = first_row(output_id, row)
            if first != row:
                e.repeat(output_id, first, row, index)
            add_output_id(output_id)
            add_value(out)
            if plain and ((type(output_id) is not int and type(output_id) is not str)
                          or type(key) is not str or out.get("k") != key):
                plain = False
        e.plain = plain
        c.by_key = dict(by_key)
        if single:
            e.share_keys_with(c.by_key)

    def _aggregate_all(self, index: int, record: Record, keyed: list[Keyed], aggregate: Aggregate,
                       states: dict[str | None, State], by_key: dict[str | None, list[int]]) -> None:
        """One input's keyed events through the aggregate and the operators after it, then their outputs."""
        c = self.contribution_rows
        emit: Callable[..., Event] = aggregate.emit  # called with the key, which is None for unkeyed events
        outputs: list[Keyed] = []
        for key, pre in keyed:
            contribution_id = pre.get("id")
            by_key[key].append(len(c.ids))
            _hashed(contribution_id)
            c.ids.append(contribution_id)
            c.keys.append(key)
            c.inputs.append(index)
            c.events.append(pre)
            state = states.get(key)
            if state is None:
                state = aggregate.init()
            elif not state:
                c.restarted.add(key)
                state = aggregate.init()
            state = aggregate.step(state, pre)
            states[key] = state
            emitted = emit(key, state, pre)
            written = apply_ops(self.after, key, emitted)
            c.written.append(_written(written))
            outputs += written
        for row, (key, out) in enumerate(outputs, start=len(self.rows.ids)):
            if self.rows.one_per_contribution:
                self._expect_one(index, record, row, out)
            else:
                self._expect(index, record, key, out)

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

    def _expect(self, index: int, record: Record, key: str | None, out: Event) -> None:
        if not isinstance(out, dict) or "id" not in out:
            raise self._no_id(record)
        self.rows.add(out["id"], key, index, out)

    def _expect_one(self, index: int, record: Record, row: int, out: Event) -> None:
        """:meth:`_expect` for the output of contribution ``row`` on a job where each contribution gives one
        output: its key and input are already in the shared columns."""
        if not isinstance(out, dict) or "id" not in out:
            raise self._no_id(record)
        rows = self.rows
        output_id = out["id"]
        first = rows.first.setdefault(output_id, row)
        if first != row:
            rows.repeat(output_id, first, row, index)
        rows.ids.append(output_id)
        rows.values.append(out)

    def _no_id(self, record: Record) -> OracleError:
        return OracleError(f"pipeline {self.pipeline.name!r} writes an output without an 'id' field for input "
                           f"{record.topic}[{record.partition}]@{record.offset}; the per-id checkers cannot judge it")
