"""Rescaling the cluster engine from a checkpoint (no Kafka): which state handles each new subtask is given, what
it keeps of them (offsets of its partitions, the key groups of its range, window state, the lowest watermark),
and which sink write-ahead logs it takes over when a scale-down leaves them without a successor."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import cast

import msgspec
import pytest

from engines.cluster import messages as m
from engines.cluster.graph import job_graph
from engines.cluster.jobmanager import checkpoint_parallelism, restore_handles
from engines.cluster.keygroups import inherited_sinks, key_group, subtask_for_key
from engines.cluster.sink import Epoch, SinkState, read_markers
from engines.cluster.taskmanager import Subtask, TaskManager, TMConfig
from harness.api import Guarantee
from harness.kafka.client import read_all
from scenarios.jobs import running_sum, windowed_count

TOPICS = {"input": "in", "output": "out", "late": "late-topic", "markers": "markers"}
KEYS = [f"k{i}" for i in range(200)]


class FakeTM:
    def __init__(self, job: str, pipeline, bootstrap: str = "unused:9092", topics: dict[str, str] = TOPICS,
                 app_id: str = "app") -> None:
        self.pipeline = pipeline
        self.cfg = TMConfig(tm_id="tm", jm_host="127.0.0.1", jm_port=0, slots=1, job=job, bootstrap=bootstrap,
                            topics=topics, guarantee=Guarantee.exactly_once, app_id=app_id, checkpoint_dir="unused",
                            transaction_timeout_ms=10_000)


def test_restore_handles_are_the_subtasks_own_at_the_same_parallelism_and_all_of_the_vertex_rescaled():
    handles = {f"v{v}-{s}": f"/c/v{v}-{s}" for v in (0, 1) for s in range(3)}
    assert checkpoint_parallelism(handles) == 3
    assert restore_handles(handles, 1, 2, 3) == [m.StateHandle(2, "/c/v1-2")]
    assert restore_handles(handles, 1, 4, 5) == [m.StateHandle(s, f"/c/v1-{s}") for s in range(3)]
    assert restore_handles(handles, 0, 0, 2) == [m.StateHandle(s, f"/c/v0-{s}") for s in range(3)]


def test_every_sink_left_without_a_successor_has_exactly_one_heir():
    for old in range(1, 9):
        for new in range(1, 9):
            heirs = [s for s in range(new) for _ in inherited_sinks(set(range(old)), s, new)]
            taken = sorted(j for s in range(new) for j in inherited_sinks(set(range(old)), s, new))
            assert taken == list(range(new, old)), (old, new)
            assert len(heirs) == max(0, old - new)
    assert inherited_sinks({0, 1, 2, 3, 4}, 0, 2) == {2, 4}
    assert inherited_sinks({0, 1, 2, 3, 4}, 1, 2) == {3}
    assert inherited_sinks({0, 1, 2}, 0, 5) == set()


def write_running_sum_checkpoint(root: Path, parallelism: int, output: str = "out") -> dict[str, str]:
    """A checkpoint of running_sum at ``parallelism``: source offsets per partition (q % p == s), each key's
    count in its owner's keyed state, and a pending sink epoch per subtask."""
    handles: dict[str, str] = {}
    for s in range(parallelism):
        source = {"offsets": {str(q): 100 + q for q in range(6) if q % parallelism == s}}
        groups: dict[str, dict] = {}
        for k in KEYS:
            if subtask_for_key(k, parallelism) == s:
                groups.setdefault(str(key_group(k)), {})[k] = {"n": int(k[1:]), "s": 0}
        sink = SinkState(epochs=[Epoch(7, [(f"key-of-{s}", b"v", None, output)])])
        keyed = {"offsets": {}, "keyed": groups, "sink": msgspec.msgpack.encode(sink)}
        for v, snap in ((0, source), (1, keyed)):
            path = root / f"v{v}-{s}.state"
            path.write_bytes(msgspec.msgpack.encode(snap))
            handles[f"v{v}-{s}"] = str(path)
    return handles


def subtask(job: str, pipeline, handles: dict[str, str], vertex: int, index: int, parallelism: int,
            partitions: list[int], tm: FakeTM | None = None) -> Subtask:
    td = m.TaskDeployment(vertex=vertex, subtask=index, parallelism=parallelism, n_inputs=0 if vertex == 0 else 1,
                          outputs=[], partitions=partitions, state=restore_handles(handles, vertex, index, parallelism))
    graph = job_graph(pipeline)
    return Subtask(cast(TaskManager, tm or FakeTM(job, pipeline)), 0, td, graph[vertex], last_vertex=len(graph) - 1)


def restored(job: str, pipeline, handles: dict[str, str], vertex: int, index: int, parallelism: int,
             partitions: list[int]) -> tuple[Subtask, dict[int, SinkState]]:
    st = subtask(job, pipeline, handles, vertex, index, parallelism, partitions)
    return st, st._restore()


def test_scaling_three_subtasks_to_two_and_to_five_keeps_every_key_once_and_every_offset(tmp_path):
    handles = write_running_sum_checkpoint(tmp_path, 3)
    for new in (2, 5):
        owners: dict[str, int] = {}
        offsets: dict[int, int] = {}
        for s in range(new):
            parts = [q for q in range(6) if q % new == s]
            source, _ = restored("scenarios.jobs:running_sum", running_sum(), handles, 0, s, new, parts)
            assert set(source.offsets) <= set(parts)
            offsets.update(source.offsets)
            sink_task, sinks = restored("scenarios.jobs:running_sum", running_sum(), handles, 1, s, new, [])
            for k, value in sink_task.state.items():
                assert k not in owners, f"{k} restored twice"
                assert subtask_for_key(k, new) == s
                assert value == {"n": int(k[1:]), "s": 0}
                owners[k] = s
            assert set(sinks) == {0, 1, 2}  # every old sink's log is read; the heirs commit theirs
        assert sorted(owners) == sorted(KEYS)
        assert offsets == {q: 100 + q for q in range(6)}


def test_a_rescaled_window_operator_gets_its_key_groups_windows_and_the_lowest_watermark(tmp_path):
    pipeline = windowed_count()
    handles: dict[str, str] = {}
    for s, watermark in enumerate((9000, 4000, 7000)):
        groups: dict[str, list] = {}
        for k in KEYS:
            if subtask_for_key(k, 3) == s:
                groups.setdefault(str(key_group(k)), []).append([k, 5000, 10_000, {"n": 1}])
        for v in (0, 1):
            path = tmp_path / f"v{v}-{s}.state"
            snap = {"offsets": {}} if v == 0 else {"windows": {"0": {"watermark": watermark, "groups": groups}}}
            path.write_bytes(msgspec.msgpack.encode(snap))
            handles[f"v{v}-{s}"] = str(path)
    seen: list[str] = []
    for s in range(2):
        st, _ = restored("scenarios.jobs:windowed_count", pipeline, handles, 1, s, 2, [])
        window = st.windows[0]
        assert window.watermark == 4000
        keys = [key for key, _start in window.windows]
        assert all(subtask_for_key(k, 2) == s for k in keys)
        seen.extend(keys)
    assert sorted(seen) == sorted(KEYS)


@pytest.mark.kafka
def test_scaled_down_sinks_commit_the_epochs_of_the_subtasks_they_inherit(tmp_path, bootstrap, topic_factory):
    """Five sink subtasks checkpointed an epoch each and none committed it; at parallelism 2, subtask 0 commits
    its own and those of old subtasks 2 and 4, subtask 1 its own and 3's: every record once, none lost."""
    topics = {"input": "in", "output": topic_factory("rescale-out", partitions=1),
              "markers": topic_factory("rescale-markers", partitions=1, **{"cleanup.policy": "compact"})}
    tm = FakeTM("scenarios.jobs:running_sum", running_sum(), bootstrap, topics, f"sg-test-{uuid.uuid4().hex[:8]}")
    handles = write_running_sum_checkpoint(tmp_path, 5, topics["output"])
    subtasks = [subtask("scenarios.jobs:running_sum", running_sum(), handles, 1, s, 2, [], tm) for s in range(2)]
    try:
        for st in subtasks:
            asyncio.run(st.setup())
    finally:
        for st in subtasks:
            st.close()
    keys = sorted((r.key or b"").decode() for r in read_all(bootstrap, topics["output"], isolation="read_committed"))
    assert keys == [f"key-of-{s}" for s in range(5)]
    markers = read_markers(bootstrap, topics["markers"], 10)
    assert markers == {f"sink-{s}": 7 for s in range(5)}
