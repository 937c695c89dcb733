"""The oracle: a single-threaded reference interpreter of the Pipeline DSL (DESIGN §9).

It reads the input topic as actually written, in (partition, offset) order,
and runs every event through the pipeline's operators one at a time. For each
output id it records the key the output is under, where its input came from,
and the output it computes. For keyed aggregates it also records, per key,
the events that reach the aggregate (the *contributions*), and it exposes the
aggregate's ``init`` / ``step`` / ``emit`` so a checker can replay a key's
state in the order the engine actually produced it — for re-keyed jobs the
oracle's own order is only one of many valid interleavings.

Windows are not interpreted yet: an operator the oracle does not know raises
:class:`OracleError`, which makes the checkers that need the oracle report
``unknown`` rather than pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.api.pipeline import STATELESS, Aggregate, Event, Keyed, Op, Pipeline, Sink, Source, State, apply_stateless
from harness.check.observed import Position, parse_event
from harness.errors import StreamgaugeError
from harness.kafka.client import Record


class OracleError(StreamgaugeError):
    """The oracle cannot interpret this pipeline or these inputs."""


@dataclass(frozen=True, slots=True)
class Contribution:
    """One event's part in a keyed aggregate: which input it came from and the event as the aggregate sees it."""

    id: Any
    partition: int
    offset: int
    event: Event


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


def _split_at_aggregate(pipeline: Pipeline) -> tuple[list[Op], Aggregate | None, list[Op]]:
    """The operators between source and sink: those before the aggregate, the aggregate, those after it."""
    middle = [op for op in pipeline.ops if not isinstance(op, (Source, Sink))]
    aggregates = [i for i, op in enumerate(middle) if isinstance(op, Aggregate)]
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
        self.before, self.aggregate, self.after = _split_at_aggregate(pipeline)
        self.inputs: dict[Any, Position] = {}
        self.expected: dict[Any, list[Expected]] = defaultdict(list)
        self.contributions: dict[str | None, list[Contribution]] = defaultdict(list)
        self._contributions_by_key_and_id: dict[tuple[str | None, Any], list[Contribution]] = defaultdict(list)
        self._states: dict[str | None, State] = {}
        for record in sorted(inputs, key=lambda r: (r.partition, r.offset)):
            self._interpret(record)
        self._states.clear()  # only needed while interpreting
        self.expected = dict(self.expected)
        self.contributions = dict(self.contributions)
        self._contributions_by_key_and_id = dict(self._contributions_by_key_and_id)

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

    # -- interpretation ---------------------------------------------------------------
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
        if self.aggregate is not None:
            keyed = [out for key, pre in keyed for out in self._aggregate(record, key, pre)]
        for key, out in keyed:
            self._expect(record, key, out)

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
