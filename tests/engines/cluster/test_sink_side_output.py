"""The write-ahead sink with a side-output topic: both topics in the epoch's one transaction."""

from __future__ import annotations

import uuid

import pytest

from engines.cluster.sink import SinkState, WriteAheadSink, read_markers, wait_stable
from harness.api import Guarantee
from harness.kafka.client import Record, read_all

pytestmark = pytest.mark.kafka


def committed_values(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[bytes]:
    wait_stable(bootstrap, topic, 30)
    return [value_of(r) for r in read_all(bootstrap, topic, isolation=isolation, timeout_s=30)]


def value_of(record: Record) -> bytes:
    """A record's value: the sink writes no tombstones."""
    assert record.value is not None
    return record.value


def test_side_output_records_share_the_epochs_transaction_and_its_restore(bootstrap, topic_factory):
    out, late = topic_factory("side-out"), topic_factory("side-late")
    markers = topic_factory("side-markers", partitions=1, **{"cleanup.policy": "compact"})
    app_id = f"sg-test-{uuid.uuid4().hex[:8]}"

    def make() -> WriteAheadSink:
        return WriteAheadSink(bootstrap=bootstrap, topic=out, marker_topic=markers, app_id=app_id,
                              sink_name="sink", subtask=0, guarantee=Guarantee.exactly_once,
                              transaction_timeout_ms=10000)

    crashed = make()
    try:
        crashed.open()
        crashed.write("k", b"main-1", 10)
        crashed.write("k", b"late-1", 11, topic=late)
        state = crashed.snapshot(1)
        assert state.epochs[0].records == [("k", b"main-1", 10, out), ("k", b"late-1", 11, late)]
        assert committed_values(bootstrap, late, "read_uncommitted") == []  # staged, not written
        assert crashed.notify_complete(1) == 2
        crashed.write(None, b"late-2", 12, topic=late)
        saved = crashed.snapshot(2).to_bytes()
    finally:
        crashed.close()  # dies before checkpoint 2's notification
    assert committed_values(bootstrap, out) == [b"main-1"]
    assert committed_values(bootstrap, late) == [b"late-1"]

    restarted = make()
    try:
        assert restarted.open(SinkState.from_bytes(saved)) == 1
    finally:
        restarted.close()
    assert committed_values(bootstrap, late) == [b"late-1", b"late-2"]
    assert committed_values(bootstrap, out) == [b"main-1"]
    assert read_markers(bootstrap, markers) == {"sink-0": 2}
