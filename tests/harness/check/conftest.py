"""Factories for checker tests: input and output topics built as Records, no Kafka needed."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pytest

from harness.check import Observed
from harness.kafka.client import Record

Event = dict[str, Any]
InputSpec = tuple[int, int, str, int]  # (source partition, id, key, value)


def _record(topic: str, partition: int, offset: int, event: Event, key: str | None) -> Record:
    return Record(topic, partition, offset, key.encode() if key is not None else None,
                  orjson.dumps(event), 1_000 + offset)


def event_of(record: Record) -> Event:
    assert record.value is not None  # _record always sets a value
    return orjson.loads(record.value)


def input_topic(specs: Iterable[InputSpec]) -> list[Record]:
    """The input topic: each partition gets offsets 0, 1, ... in the order given; (partition, offset) order."""
    next_offset: dict[int, int] = defaultdict(int)
    records = []
    for partition, input_id, key, value in specs:
        event = {"id": input_id, "k": key, "v": value, "et": 10 * input_id, "st": 100 * input_id}
        records.append(_record("input", partition, next_offset[partition], event, key))
        next_offset[partition] += 1
    return sorted(records, key=lambda r: (r.partition, r.offset))


def input_events(placed: Iterable[tuple[int, Event]]) -> list[Record]:
    """The input topic from (partition, event) pairs: offsets 0, 1, ... per partition in the order given."""
    next_offset: dict[int, int] = defaultdict(int)
    records = []
    for partition, event in placed:
        records.append(_record("input", partition, next_offset[partition], event, event.get("k")))
        next_offset[partition] += 1
    return sorted(records, key=lambda r: (r.partition, r.offset))


def running_sums(inputs: Iterable[Record], key_of: Callable[[Event], str] = lambda e: e["k"]) -> list[Event]:
    """What a correct running-sum engine emits when it processes ``inputs`` in the order given."""
    state: dict[str, tuple[int, int]] = {}
    outputs = []
    for record in inputs:
        event = event_of(record)
        key = key_of(event)
        n, s = state.get(key, (0, 0))
        n, s = n + 1, s + event["v"]
        state[key] = (n, s)
        outputs.append({"id": event["id"], "k": key, "n": n, "s": s, "et": event["et"], "st": event["st"]})
    return outputs


def output_topic(events: Iterable[Event], partitions: int = 3, topic: str = "output") -> list[Record]:
    """The output topic (or another one the job writes): each event goes to its key's partition, in the order given."""
    next_offset: dict[int, int] = defaultdict(int)
    records = []
    for event in events:
        partition = zlib.crc32(event["k"].encode()) % partitions
        records.append(_record(topic, partition, next_offset[partition], event, event["k"]))
        next_offset[partition] += 1
    return sorted(records, key=lambda r: (r.partition, r.offset))


def observe(inputs: list[Record], outputs: list[Record], **overrides: Any) -> Observed:
    """A clean run: everything committed, the probe saw every output, no partition behind."""
    ends: dict[int, int] = defaultdict(int)
    for record in outputs:
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    fields: dict[str, Any] = {
        "inputs": inputs, "committed": outputs, "uncommitted": outputs,
        "probe": [(r.partition, r.offset) for r in outputs],
        "offsets": {"output": {p: (end, end) for p, end in ends.items()}},
    }
    fields.update(overrides)
    return Observed(**fields)


class Factories:
    """The helpers above, handed to tests as one fixture."""

    input_topic = staticmethod(input_topic)
    input_events = staticmethod(input_events)
    running_sums = staticmethod(running_sums)
    output_topic = staticmethod(output_topic)
    observe = staticmethod(observe)
    event_of = staticmethod(event_of)


@pytest.fixture
def make() -> Factories:
    """Factories for input topics, correct running-sum outputs, output topics and observations."""
    return Factories()


@pytest.fixture
def three_keys() -> list[Record]:
    """30 inputs: keys a, b, c; a and b both in partition 0, c in partition 1; v = id."""
    specs = [(0 if key in "ab" else 1, i, key, i) for i, key in enumerate("abc" * 10, start=1)]
    return input_topic(specs)
