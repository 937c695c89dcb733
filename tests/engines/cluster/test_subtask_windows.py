"""A windowed sink subtask driven through its input gate, checkpointed and restored (no Kafka).

The sink and the TaskManager are stand-ins; the subtask, its valve, window
operator, checkpoint file and restore are the real ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import msgspec
import orjson
import pytest

from engines.cluster import messages as m
from engines.cluster.graph import job_graph
from engines.cluster.sink import SinkState, WriteAheadSink
from engines.cluster.taskmanager import Subtask, TaskManager, TMConfig
from harness.api import Guarantee
from scenarios.jobs import windowed_count

T0 = 1_700_000_000_000
TOPICS = {"input": "in", "output": "out", "late": "late-topic", "markers": "markers"}


class FakeSink:
    """Collects what the subtask writes: (topic, key, value, timestamp)."""

    def __init__(self) -> None:
        self.records: list[tuple] = []

    def write(self, key, value, timestamp_ms=None, topic=None) -> None:
        self.records.append((topic or "out", key, orjson.loads(value), timestamp_ms))

    def snapshot(self, _checkpoint_id: int) -> SinkState:
        return SinkState()


class FakeTM:
    def __init__(self, checkpoint_dir: Path) -> None:
        self.pipeline = windowed_count()
        self.cfg = TMConfig(tm_id="tm", jm_host="127.0.0.1", jm_port=0, slots=1, job="scenarios.jobs:windowed_count",
                            bootstrap="unused:9092", topics=TOPICS, guarantee=Guarantee.exactly_once, app_id="app",
                            checkpoint_dir=str(checkpoint_dir))
        self.acks: list[m.AckCheckpoint] = []
        self.counters: dict[str, int] = {}

    async def to_jm(self, msg) -> None:
        self.acks.append(msg)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


def windowed_subtask(tm: FakeTM, state_path: str | None = None) -> tuple[Subtask, FakeSink]:
    """The real sink subtask of the windowed job on the stand-in TaskManager, and the stand-in sink it writes to."""
    vertex = job_graph(tm.pipeline)[1]
    td = m.TaskDeployment(vertex=1, subtask=0, parallelism=1, n_inputs=2, outputs=[], partitions=[],
                          state=[] if state_path is None else [m.StateHandle(0, state_path)])
    st = Subtask(cast(TaskManager, tm), 0, td, vertex, last_vertex=1)  # the stand-ins have what a Subtask uses
    st._restore()  # what setup() does before it opens the (here: fake) sink
    sink = FakeSink()
    st.sink = cast(WriteAheadSink, sink)
    return st, sink


def feed(st: Subtask, channels: dict[int, list]) -> None:
    """Queue the items on the subtask's input channels and run it until they are all consumed."""
    assert st.gate is not None
    for ch, items in channels.items():
        st.gate.queues[ch].extend(items)
    st.gate.failed = "end of test input"  # raised once nothing readable is left

    async def run() -> None:
        with pytest.raises(ConnectionError, match="end of test input"):
            await st._run_inputs()

    asyncio.run(run())
    st.gate.failed = None


def rec(i: int, et: int, k: str = "a", v: int = 1) -> list:
    return [k, {"id": i, "k": k, "v": v, "et": T0 + et, "st": i}]


def test_a_windowed_subtask_fires_on_the_min_watermark_and_restores_without_refiring(tmp_path):
    tm = FakeTM(tmp_path)
    st, sink = windowed_subtask(tm)
    feed(st, {0: [m.Buffer([rec(1, 1000, v=3)]), m.Watermark(T0 + 9000)],
              1: [m.Buffer([rec(2, 2000, v=4)]), m.Watermark(T0 + 6000)]})
    assert sink.records == []  # min watermark 6000 < [0, 5000) fires at 6999

    feed(st, {1: [m.WatermarkStatus(True)]})  # channel 1 idle: channel 0's 9000 rules
    assert sink.records == [("out", "a", {"k": "a", "ws": T0, "we": T0 + 5000, "n": 2, "s": 7,
                                          "h": sink.records[0][2]["h"], "st_max": 2}, T0 + 5000)]

    feed(st, {0: [m.Buffer([rec(3, 4000), rec(4, 6000, k="b")]), m.Barrier(1)], 1: [m.Barrier(1)]})
    assert sink.records[-1][:2] == ("late-topic", "a")  # id 3's window has fired
    assert sink.records[-1][2]["why"] == "watermark passed" and sink.records[-1][3] == T0 + 4000
    ack = tm.acks[-1]
    assert tm.counters == {"late_records": 1}
    snap = msgspec.msgpack.decode(Path(ack.state_path).read_bytes())
    assert snap["windows"]["0"]["watermark"] == T0 + 9000
    assert [e[:3] for entries in snap["windows"]["0"]["groups"].values() for e in entries] == [
        ["b", T0 + 5000, T0 + 10_000]]

    restored, restored_sink = windowed_subtask(tm, ack.state_path)
    # records after the checkpoint; the valve starts afresh, so it waits for both channels' watermarks
    feed(restored, {0: [m.Buffer([rec(5, 1500), rec(6, 7000, k="b", v=5)]), m.Watermark(T0 + 30_000)],
                    1: [m.Watermark(T0 + 20_000)]})
    written = [(r[0], r[2].get("id"), r[2].get("n"), r[2].get("s")) for r in restored_sink.records]
    # the restored watermark makes id 5 late: window [0, 5000) fired before the checkpoint, never again
    assert written == [("late-topic", 5, None, None), ("out", None, 2, 6)]
