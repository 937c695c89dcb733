"""The cluster engine's write-ahead sink against a real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from engines.cluster.sink import (
    Epoch,
    SinkFencedError,
    SinkState,
    WriteAheadSink,
    read_markers,
    wait_stable,
)
from harness.api import Guarantee
from harness.kafka.client import Record, read_all
from harness.proc import wait_until

pytestmark = pytest.mark.kafka

SINK = "out"


@pytest.fixture
def topics(topic_factory) -> tuple[str, str]:
    """(output topic, compacted marker topic)."""
    return topic_factory("sink-out", partitions=1), topic_factory("sink-markers", partitions=2,
                                                                  **{"cleanup.policy": "compact"})


@pytest.fixture
def sink_factory(bootstrap: str, topics: tuple[str, str]) -> Iterator[Callable[..., WriteAheadSink]]:
    """Make sink subtasks of one test-unique app; every one is closed after the test."""
    app_id = f"sg-test-{uuid.uuid4().hex[:8]}"
    made: list[WriteAheadSink] = []

    def make(subtask: int = 0, guarantee: Guarantee = Guarantee.exactly_once) -> WriteAheadSink:
        sink = WriteAheadSink(bootstrap=bootstrap, topic=topics[0], marker_topic=topics[1], app_id=app_id,
                              sink_name=SINK, subtask=subtask, guarantee=guarantee,
                              transaction_timeout_ms=10000)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


T0 = int(time.time() * 1000)
"""Record timestamps of the test records: ``T0 + 1000 * epoch + i``, in the present like a run's event times."""


def write_epoch(sink: WriteAheadSink, epoch: int, n: int = 3, tag: str = "") -> list[bytes]:
    """Write ``n`` records tagged with their epoch; returns their values in order."""
    values = [f"{tag}e{epoch}-{i}".encode() for i in range(n)]
    for i, value in enumerate(values):
        sink.write(f"k{i}" if i else None, value, T0 + 1_000 * epoch + i)
    return values


def read(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[Record]:
    """All of ``topic`` under ``isolation``, once every transaction begun so far is decided."""
    wait_stable(bootstrap, topic, 30)
    return read_all(bootstrap, topic, isolation=isolation, timeout_s=30)


def visible(bootstrap: str, topic: str, expected: list[bytes], isolation: str = "read_committed",
            timeout_s: float = 30.0) -> list[bytes]:
    """The values of ``topic`` once they are ``expected`` (in any order), else as last read after ``timeout_s``.

    A commit returns before the transaction's markers are in the partitions;
    on a loaded machine a read right after it can still stop short of them.
    """
    last: list[bytes] = []

    def seen() -> bool:
        last[:] = values(read(bootstrap, topic, isolation))
        return sorted(last) == sorted(expected)

    try:
        wait_until(seen, timeout_s, "")
    except TimeoutError:
        pass
    return last


def values(records: list[Record]) -> list[bytes]:
    return [value_of(r) for r in records]


def value_of(record: Record) -> bytes:
    """A record's value: the sink writes no tombstones."""
    assert record.value is not None
    return record.value


def test_completed_epochs_are_committed_in_order_and_the_open_one_is_not(bootstrap, topics, sink_factory):
    sink = sink_factory()
    assert sink.open() == 0
    first = write_epoch(sink, 1)
    assert [e.id for e in sink.snapshot(1).epochs] == [1]
    second = write_epoch(sink, 2)
    assert [e.id for e in sink.snapshot(2).epochs] == [1, 2]
    third = write_epoch(sink, 3)
    assert read(bootstrap, topics[0], "read_uncommitted") == []  # write-ahead: nothing before a notify

    assert sink.notify_complete(1) == 3
    assert sink.notify_complete(2) == 3

    assert visible(bootstrap, topics[0], first + second) == first + second
    committed = read(bootstrap, topics[0])
    assert values(committed) == first + second
    assert [(r.key, r.timestamp_ms) for r in committed[:3]] == [(None, T0 + 1000), (b"k1", T0 + 1001), (b"k2", T0 + 1002)]
    assert not set(third) & set(values(read(bootstrap, topics[0], "read_uncommitted")))
    assert read_markers(bootstrap, topics[1]) == {f"{SINK}-0": 2}
    assert sink.last_committed == 2
    assert sink.snapshot(3).epochs[0].records[0] == (None, b"e3-0", T0 + 3000, topics[0])


def test_crash_before_commit_recommits_the_restored_epoch_once(bootstrap, topics, sink_factory):
    crashed = sink_factory()
    crashed.open()
    first = write_epoch(crashed, 1)
    saved = crashed.snapshot(1).to_bytes()  # as the checkpoint stores it
    crashed.close()  # dies before checkpoint 1's notification
    assert read(bootstrap, topics[0], "read_uncommitted") == []

    restarted = sink_factory()
    assert restarted.open(SinkState.from_bytes(saved)) == 3

    assert visible(bootstrap, topics[0], first) == first
    assert read_markers(bootstrap, topics[1]) == {f"{SINK}-0": 1}
    assert restarted.last_committed == 1


def test_crash_after_commit_recommits_nothing(bootstrap, topics, sink_factory):
    crashed = sink_factory()
    crashed.open()
    first = write_epoch(crashed, 1)
    state = crashed.snapshot(1)
    assert crashed.notify_complete(1) == 3
    crashed.close()

    restarted = sink_factory()
    assert restarted.open(state) == 0

    assert visible(bootstrap, topics[0], first) == first
    assert visible(bootstrap, topics[0], first, "read_uncommitted") == first
    assert restarted.last_committed == 1


def test_restore_skips_committed_epochs_and_recommits_the_rest(bootstrap, topics, sink_factory):
    crashed = sink_factory()
    crashed.open()
    first = write_epoch(crashed, 1)
    crashed.snapshot(1)
    second = write_epoch(crashed, 2)
    state = crashed.snapshot(2)  # checkpoint 2 completes, but its notification is lost with the crash
    assert crashed.notify_complete(1) == 3
    crashed.close()

    restarted = sink_factory()
    assert restarted.open(state) == 3

    assert visible(bootstrap, topics[0], first + second) == first + second
    assert read_markers(bootstrap, topics[1]) == {f"{SINK}-0": 2}


@pytest.mark.parametrize("restore", [False, True], ids=["fresh", "restored"])
def test_a_new_incarnation_fences_the_zombie(bootstrap, topics, sink_factory, restore):
    zombie = sink_factory()
    zombie.open()
    first = write_epoch(zombie, 1)
    state = zombie.snapshot(1)

    successor = sink_factory()
    assert successor.open(state if restore else None) == (3 if restore else 0)
    with pytest.raises(SinkFencedError):
        zombie.notify_complete(1)
    assert visible(bootstrap, topics[0], first if restore else []) == (first if restore else [])

    second = write_epoch(successor, 2, tag="new-")
    successor.snapshot(2)
    assert successor.notify_complete(2) == 3
    assert visible(bootstrap, topics[0], (first if restore else []) + second) == (first if restore else []) + second
    zombie.close()  # a fenced sink still closes quietly


def test_at_least_once_writes_through_and_ignores_notifications(bootstrap, topics, sink_factory):
    sink = sink_factory(guarantee=Guarantee.at_least_once)
    assert sink.open() == 0
    first = write_epoch(sink, 1)

    assert sink.snapshot(1) == SinkState(epochs=[])
    assert visible(bootstrap, topics[0], first) == first  # flushed by the snapshot
    assert sink.notify_complete(1) == 0
    assert visible(bootstrap, topics[0], first) == first
    assert read_markers(bootstrap, topics[1]) == {}
    assert sink.last_committed is None


def test_subtask_markers_are_independent(bootstrap, topics, sink_factory):
    ahead, behind = sink_factory(subtask=0), sink_factory(subtask=1)
    ahead.open()
    behind.open()
    expected = write_epoch(ahead, 1, tag="a-") + write_epoch(behind, 1, tag="b-")
    for sink in (ahead, behind):
        sink.snapshot(1)
        sink.notify_complete(1)
    expected += write_epoch(ahead, 2, tag="a-")
    ahead.snapshot(2)
    ahead.notify_complete(2)
    lost_notify = write_epoch(behind, 2, tag="b-")
    state = behind.snapshot(2)
    behind.close()
    assert read_markers(bootstrap, topics[1]) == {f"{SINK}-0": 2, f"{SINK}-1": 1}

    restarted = sink_factory(subtask=1)
    assert restarted.open(state) == 3  # subtask 0's marker 2 says nothing about subtask 1's epoch 2

    assert sorted(visible(bootstrap, topics[0], expected + lost_notify)) == sorted(expected + lost_notify)
    assert read_markers(bootstrap, topics[1]) == {f"{SINK}-0": 2, f"{SINK}-1": 2}


def test_empty_epochs_cost_no_transaction(bootstrap, topics, sink_factory):
    sink = sink_factory()
    sink.open()
    assert sink.snapshot(1) == SinkState(epochs=[])
    assert sink.notify_complete(1) == 0
    assert read_markers(bootstrap, topics[1]) == {}
    assert sink.last_committed is None


def test_epoch_ids_must_grow(sink_factory):
    sink = sink_factory()  # staging needs no broker: not opened
    sink.snapshot(2)
    with pytest.raises(ValueError, match="must only grow"):
        sink.snapshot(2)


def test_state_survives_msgpack():
    state = SinkState(epochs=[Epoch(4, [(None, b"v", None, "out"), ("k", b"\x00", 7, "late")]), Epoch(5, [])])
    assert SinkState.from_bytes(state.to_bytes()) == state
