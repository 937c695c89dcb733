"""Event-time windows of the embedded engine, without a broker.

First the pure window operator (stream-time, lateness, emit-final, restore),
then the instance wired to fake clients: what it writes where, in which
transaction, and for a re-keyed windowed job.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pytest

from engines.embedded import instance as instance_module
from engines.embedded import internal_topics
from engines.embedded.config import check_late_topic, late_topic_of
from engines.embedded.instance import (
    STREAM_TIME_KEY,
    Instance,
    InstanceConfig,
    Task,
    WindowOperator,
    parse_window_store_key,
    window_store_key,
)
from harness.api import (
    EventTime,
    Guarantee,
    Pipeline,
    Tumbling,
    WindowAggregate,
    id_checksum,
    load_job,
)
from harness.api.pipeline import CHECKSUM_MOD
from harness.errors import ConfigError
from scenarios.jobs import group_of

SIZE, GRACE = 5000, 2000  # windowed_count: 5 s tumbling, 2 s grace


def window_op(job: str) -> WindowAggregate:
    return next(op for op in load_job(job).ops if isinstance(op, WindowAggregate))


def tumbling() -> WindowOperator:
    return WindowOperator(window_op("scenarios.jobs:windowed_count"))


def sliding() -> WindowOperator:
    return WindowOperator(window_op("scenarios.jobs:sliding_sum"))  # 10 s by 5 s, 2 s grace


def ev(i: int, et: int, k: str = "a", v: int = 1) -> dict[str, Any]:
    return {"id": i, "k": k, "v": v, "et": et, "st": 1000 + i}


def feed(op: WindowOperator, events: list[dict[str, Any]]):
    """Process events in order; collect (outputs, late, changelog) over all of them."""
    outputs, late, changelog = [], [], []
    for e in events:
        r = op.process(e["k"], e, e["et"])
        outputs += r.outputs
        late += r.late
        changelog += r.changelog
    return outputs, late, changelog


def checksum(*ids: int) -> int:
    return sum(id_checksum(i) for i in ids) % CHECKSUM_MOD


def windows_emitted(outputs) -> dict[tuple[str, int, int], dict[str, Any]]:
    return {(k, v["ws"], v["we"]): v for k, v, _ in outputs}


# -- the window operator ------------------------------------------------------------------------
def test_tumbling_counts_each_event_in_its_one_window():
    op = tumbling()
    outputs, late, _ = feed(op, [ev(1, 100), ev(2, 4999, v=2), ev(3, 5000, v=4), ev(4, 9000), ev(5, 20_000)])
    got = windows_emitted(outputs)
    assert set(got) == {("a", 0, 5000), ("a", 5000, 10_000)}
    assert (got[("a", 0, 5000)]["n"], got[("a", 0, 5000)]["s"]) == (2, 3)
    assert got[("a", 0, 5000)]["h"] == checksum(1, 2)
    assert got[("a", 0, 5000)]["st_max"] == 1002
    assert (got[("a", 5000, 10_000)]["n"], got[("a", 5000, 10_000)]["s"]) == (2, 5)
    assert late == []
    assert [ts for _, _, ts in outputs] == [5000, 10_000]  # an output's timestamp is its window end


def test_windows_are_per_key():
    op = tumbling()
    outputs, _, _ = feed(op, [ev(1, 100, "a"), ev(2, 200, "b"), ev(3, 300, "a"), ev(4, 7000, "c")])
    got = windows_emitted(outputs)
    assert {k: v["n"] for (k, _, _), v in got.items()} == {"a": 2, "b": 1}


def test_sliding_puts_each_event_in_size_over_slide_windows():
    op = sliding()
    r = op.process("a", ev(1, 7000), 7000)
    assert [c[0] for c in r.changelog] == [window_store_key("a", 0), window_store_key("a", 5000)]
    outputs, _, _ = feed(op, [ev(2, 12_000), ev(3, 40_000)])
    got = windows_emitted(outputs)
    assert {w: v["n"] for w, v in got.items()} == {("a", 0, 10_000): 1, ("a", 5000, 15_000): 2,
                                                    ("a", 10_000, 20_000): 1}


def test_a_window_is_emitted_once_when_stream_time_reaches_end_plus_grace():
    op = tumbling()
    assert feed(op, [ev(1, 1000), ev(2, SIZE + GRACE - 1, "b")])[0] == []
    outputs, _, changelog = feed(op, [ev(3, SIZE + GRACE, "b")])
    assert list(windows_emitted(outputs)) == [("a", 0, SIZE)]
    assert (window_store_key("a", 0), None) in changelog  # the emitted window's state is deleted
    assert window_store_key("a", 0) not in op.windows
    assert feed(op, [ev(4, 8000, "b"), ev(5, 9000, "c")])[0] == []


def test_an_event_behind_a_closed_window_goes_to_late_not_into_the_window():
    op = tumbling()
    feed(op, [ev(1, 1000), ev(2, SIZE + GRACE)])  # closes [0, 5000)
    outputs, late, changelog = feed(op, [ev(3, 4999)])
    assert outputs == [] and changelog == []
    assert [(k, rec) for k, rec, _ in late] == [
        ("a", {"id": 3, "k": "a", "et": 4999, "ws": 0, "we": SIZE, "why": "window closed"})]
    assert late[0][2] == 4999  # a late record keeps its event time as timestamp


def test_an_event_within_grace_still_counts():
    op = tumbling()
    outputs, late, _ = feed(op, [ev(1, 1000), ev(2, SIZE + GRACE - 1), ev(3, 4000), ev(4, 30_000)])
    assert late == []
    assert windows_emitted(outputs)[("a", 0, SIZE)]["n"] == 2


def test_only_the_closed_windows_of_a_sliding_assignment_are_late():
    op = sliding()
    feed(op, [ev(1, 1000), ev(2, 12_000)])  # stream-time 12 s closes [0, 10 s), not [5 s, 15 s)
    outputs, late, _ = feed(op, [ev(3, 7000)])
    assert [(rec["ws"], rec["we"]) for _, rec, _ in late] == [(0, 10_000)]
    outputs, late, _ = feed(op, [ev(4, 60_000)])
    assert windows_emitted(outputs)[("a", 5000, 15_000)]["h"] == checksum(2, 3)  # 3 counts where not late
    assert late == []


def test_stream_time_never_decreases_and_is_advanced_before_lateness():
    op = tumbling()
    feed(op, [ev(1, 10_000)])
    feed(op, [ev(2, 3000)])
    assert op.stream_time == 10_000
    # the record that advances stream-time is never late for its own window, even far ahead
    _, late, _ = feed(op, [ev(3, 1_000_000)])
    assert late == [] and op.stream_time == 1_000_000


def test_stream_time_record_is_written_once_per_advance():
    op = tumbling()
    assert op.stream_time_record() is None
    feed(op, [ev(1, 1000), ev(2, 3000)])
    assert op.stream_time_record() == (STREAM_TIME_KEY, 3000)
    assert op.stream_time_record() is None
    feed(op, [ev(3, 2000)])
    assert op.stream_time_record() is None


def test_window_store_keys_are_unambiguous():
    for key in ["a", "a@b", "@", "k@123", ""]:
        assert parse_window_store_key(window_store_key(key, 15_000)) == (key, 15_000)
    assert "@" not in STREAM_TIME_KEY


def _changelog(op: WindowOperator, events) -> list[tuple[str, Any]]:
    """The changelog an instance would write: window updates, and stream-time at each 'commit' (every 3 events)."""
    log: list[tuple[str, Any]] = []
    for i in range(0, len(events), 3):
        _, _, changelog = feed(op, events[i:i + 3])
        log += changelog
        if (record := op.stream_time_record()) is not None:
            log.append(record)
    return [(k, orjson.loads(orjson.dumps(v))) for k, v in log]  # through JSON, as on the wire


def restored(op: WindowAggregate, log: list[tuple[str, Any]]) -> WindowOperator:
    again = WindowOperator(op)
    for key, value in log:
        again.restore(key, value)
    return again


EVENTS = [ev(1, 1000), ev(2, 2000, "b"), ev(3, 6000), ev(4, 8000, "b"), ev(5, 4000), ev(6, 12_500),
          ev(7, 11_000, "b"), ev(8, 9000)]


def test_restore_reproduces_state_and_stream_time():
    op = tumbling()
    log = _changelog(op, EVENTS)
    again = restored(op.op, log)
    assert again.windows == op.windows
    assert again.stream_time == op.stream_time == 12_500
    assert again.stream_time_record() is None  # nothing new to write after a restore


def test_restore_does_not_reopen_an_emitted_window():
    op = tumbling()
    log = _changelog(op, [ev(1, 1000), ev(2, 7000)])  # [0, 5 s) emitted and deleted, stream-time 7 s
    again = restored(op.op, log)
    assert list(again.windows) == [window_store_key("a", 5000)] and again.stream_time == 7000
    outputs, late, _ = feed(again, [ev(3, 500), ev(4, 100_000)])
    assert [rec["id"] for _, rec, _ in late] == [3]
    assert ("a", 0, SIZE) not in windows_emitted(outputs)  # not emitted a second time


def test_a_restored_task_carries_on_exactly_like_the_one_that_never_stopped():
    more = [ev(9, 3000), ev(10, 14_000), ev(11, 13_000, "b"), ev(12, 50_000)]
    straight = tumbling()
    feed(straight, EVENTS)
    expected = feed(straight, more)
    interrupted = tumbling()
    again = restored(interrupted.op, _changelog(interrupted, EVENTS))
    assert feed(again, more) == expected


def test_a_window_updated_and_deleted_in_the_changelog_is_emitted_at_most_once_after_restore():
    op = tumbling()
    key = window_store_key("a", 0)
    state = {"n": 1, "s": 1, "h": 0, "st_max": 0}
    again = restored(op.op, [(key, state), (key, None), (key, state), (key, {**state, "n": 2})])
    outputs, _, _ = feed(again, [ev(1, 100_000)])
    assert [(k, v["ws"], v["n"]) for k, v, _ in outputs] == [("a", 0, 2)]


# -- the instance, with fake clients ----------------------------------------------------------------
class FakeMsg:
    def __init__(self, topic: str, partition: int, offset: int, key: str | None, value: Any, ts: int) -> None:
        self._t, self._p, self._o, self._k, self._v, self._ts = topic, partition, offset, key, value, ts

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes | None:
        return self._k.encode() if self._k is not None else None

    def value(self) -> bytes:
        return orjson.dumps(self._v)

    def timestamp(self) -> tuple[int, int]:
        return 1, self._ts

    def error(self) -> None:
        return None


class FakeProducer:
    """Records produce calls and transaction boundaries, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def produce(self, topic: str, key=None, value=None, timestamp=None, partition=None) -> None:
        self.calls.append(("produce", topic, key.decode() if key is not None else None, orjson.loads(value),
                           timestamp, partition))

    def send_offsets_to_transaction(self, offsets, metadata, timeout) -> None:
        self.calls.append(("offsets", sorted((tp.topic, tp.partition, tp.offset) for tp in offsets)))

    def commit_transaction(self, timeout) -> None:
        self.calls.append(("commit",))

    def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    def flush(self, timeout) -> int:
        return 0

    def poll(self, timeout) -> int:
        return 0

    def produced(self, topic: str) -> list[tuple]:
        return [c[2:] for c in self.calls if c[0] == "produce" and c[1] == topic]


class FakeConsumer:
    def consumer_group_metadata(self) -> str:
        return "metadata"

    def commit(self, offsets, asynchronous) -> None:
        pass


TOPICS = {"input": "in", "output": "out", "late": "late", "changelog-win": "cl-win",
          "repartition-0": "rep-0", "changelog-sum": "cl-sum"}


def make_instance(job: str, guarantee: Guarantee = Guarantee.exactly_once) -> tuple[Instance, FakeProducer]:
    cfg = InstanceConfig(bootstrap="unused:9092", app_id="app", instance_id="instance-0", job=job,
                         guarantee=guarantee, topics=TOPICS, commit_interval_ms=100, session_timeout_ms=10_000,
                         heartbeat_interval_ms=1000, max_poll_interval_ms=300_000, transaction_timeout_ms=10_000)
    inst = Instance(cfg)
    producer = FakeProducer()
    inst.producer, inst.consumer = producer, FakeConsumer()  # type: ignore[assignment]
    return inst, producer


def add_task(inst: Instance, topic: str, partition: int) -> Task:
    """A task as on assignment, its stores restored from an empty changelog."""
    task = Task(inst.segment_of_topic[topic], partition)
    inst.tasks[(topic, partition)] = task
    inst._restore_targets([task])  # creates the stateful operators and names their changelogs
    return task


def process(inst: Instance, topic: str, partition: int, events: list[dict[str, Any]], first_offset: int = 0,
            record_ts=lambda e: e["et"] + 7) -> None:
    for i, e in enumerate(events):
        inst._process(FakeMsg(topic, partition, first_offset + i, e["k"], e, record_ts(e)))


def test_instance_writes_windows_late_records_and_changelog_to_their_topics():
    inst, producer = make_instance("scenarios.jobs:windowed_count")
    add_task(inst, "in", 1)
    process(inst, "in", 1, [ev(1, 1000), ev(2, 2000, v=5), ev(3, 8000), ev(4, 500)])
    assert producer.produced("out") == [("a", {"k": "a", "ws": 0, "we": 5000, "n": 2, "s": 6,
                                               "h": checksum(1, 2), "st_max": 1002}, 5000, None)]
    assert producer.produced("late") == [("a", {"id": 4, "k": "a", "et": 500, "ws": 0, "we": 5000,
                                                "why": "window closed"}, 500, None)]
    changelog = producer.produced("cl-win")
    assert {partition for *_, partition in changelog} == {1}  # the task's own changelog partition
    assert [(k, v is None) for k, v, *_ in changelog] == [
        ("a@0", False), ("a@0", False), ("a@5000", False), ("a@0", True)]
    assert inst.late_records == 1 and inst.windows_emitted == 1


def test_event_time_comes_from_the_declared_field_not_the_record_timestamp():
    inst, producer = make_instance("scenarios.jobs:windowed_count")
    add_task(inst, "in", 0)
    process(inst, "in", 0, [ev(1, 1000), ev(2, 9000)], record_ts=lambda e: 1)
    assert [v["we"] for _, v, *_ in producer.produced("out")] == [5000]


def test_stream_time_goes_into_the_commit_transaction_before_the_offsets():
    inst, producer = make_instance("scenarios.jobs:windowed_count")
    add_task(inst, "in", 0)
    add_task(inst, "in", 1)
    process(inst, "in", 0, [ev(1, 1000), ev(2, 3000)])
    inst._commit()
    kinds = [c[0] if c[0] != "produce" else c[1] for c in producer.calls]
    assert kinds[-4:] == ["cl-win", "offsets", "commit", "begin"]  # task 1 saw nothing: no stream-time
    assert producer.calls[-4][2:] == (STREAM_TIME_KEY, 3000, None, 0)
    producer.calls.clear()
    inst._commit()
    assert [c for c in producer.calls if c[0] == "produce"] == []  # unchanged stream-time is not rewritten


def test_at_least_once_writes_stream_time_before_committing_offsets():
    inst, producer = make_instance("scenarios.jobs:windowed_count", Guarantee.at_least_once)
    add_task(inst, "in", 0)
    process(inst, "in", 0, [ev(1, 1000)])
    inst._commit()
    assert producer.produced("cl-win")[-1] == (STREAM_TIME_KEY, 1000, None, 0)


def rekeyed_windowed() -> Pipeline:
    zero = {"n": 0, "s": 0}
    return (Pipeline("rekeyed-windowed")
            .source("input", timestamps=EventTime("et"))
            .key_by(group_of)
            .window(Tumbling(size_ms=SIZE), grace_ms=GRACE)
            .aggregate(init=lambda: dict(zero), step=lambda s, e: {"n": s["n"] + 1, "s": s["s"] + e["v"]})
            .sink("output")
            .late("late"))


def test_a_rekeyed_windowed_job_windows_in_the_downstream_sub_topology(monkeypatch):
    monkeypatch.setattr(instance_module, "load_job", lambda ref: rekeyed_windowed().validate())
    inst, producer = make_instance("test:rekeyed_windowed")
    add_task(inst, "in", 0)
    down = add_task(inst, "rep-0", 2)
    assert list(down.windows) == ["win"]
    events = [ev(1, 1000, "x"), ev(2, 2000, "y"), ev(3, 9000, "x"), ev(4, 1500, "y")]
    process(inst, "in", 0, events)
    repartitioned = producer.produced("rep-0")
    assert [(k, ts) for k, _, ts, _ in repartitioned] == [(group_of(e), e["et"] + 7) for e in events]
    assert producer.produced("out") == []  # nothing is windowed upstream of the repartition
    for offset, (k, e, ts, _) in enumerate(repartitioned):
        inst._process(FakeMsg("rep-0", 2, offset, k, e, ts))
    out = producer.produced("out")
    assert sum(v["n"] for _, v, *_ in out) == 2  # the windows [0, 5 s) of ids 1 and 2
    assert [rec["id"] for _, rec, *_ in producer.produced("late")] == [4]
    assert down.windows["win"].stream_time == 9000
    assert {p for *_, p in producer.produced("cl-win")} == {2}


def test_internal_topics_include_a_changelog_for_each_window_aggregate():
    topics = internal_topics(rekeyed_windowed().validate(), "app", 4)
    assert topics.names == {"repartition-0": "app-repartition-0", "changelog-win": "app-win-changelog"}
    assert topics.compacted == {"app-win-changelog": 4} and topics.repartition == {"app-repartition-0": 4}
    plain = internal_topics(load_job("scenarios.jobs:sliding_sum"), "app", 2)
    assert plain.names == {"changelog-win": "app-win-changelog"} and plain.repartition == {}


def test_existing_jobs_keep_their_internal_topics():
    assert internal_topics(load_job("scenarios.jobs:running_sum"), "app", 3).names == {
        "changelog-sum": "app-sum-changelog"}
    assert internal_topics(load_job("scenarios.jobs:echo"), "app", 3).names == {}


def test_a_windowed_job_without_a_late_topic_is_refused_by_the_deployer():
    pipeline = load_job("scenarios.jobs:windowed_count")
    with pytest.raises(ConfigError, match=r"topics\['late'\]"):
        check_late_topic(pipeline, {"input": "i", "output": "o"})
    check_late_topic(pipeline, {"input": "i", "output": "o", "late": "l"})
    assert late_topic_of(pipeline, {"late": "l"}) == "l"
    assert late_topic_of(load_job("scenarios.jobs:running_sum"), {"late": "l"}) is None



def test_commits_write_the_counters_at_most_once_a_second(tmp_path):
    """A SIGKILLed instance cannot write its counters on the way out, so commits write them as it runs."""
    inst, _ = make_instance("scenarios.jobs:running_sum")
    status = tmp_path / "instance-0.status.json"
    inst.cfg = dataclasses.replace(inst.cfg, status_path=str(status))

    def commits_written() -> int:
        return json.loads(status.read_text())["commits"]

    inst._commit()
    assert commits_written() == 1
    inst._commit()
    assert commits_written() == 1  # within the second: not written again
    inst._status_written -= instance_module.STATUS_EVERY_S
    inst._commit()
    assert commits_written() == 3


def test_a_restarted_instance_carries_on_from_its_predecessors_counters(tmp_path):
    first, _ = make_instance("scenarios.jobs:running_sum")
    status = str(tmp_path / "instance-0.status.json")
    first.cfg = dataclasses.replace(first.cfg, status_path=status)
    first.commits, first.rejoins, first.revocations, first.fenced = 7, 2, 3, 1
    first.fenced_by["generation"] = 1
    first.last_rejoin_reason, first.windows_emitted, first.late_records = "partitions lost", 5, 4
    first._write_status()

    cfg = dataclasses.replace(first.cfg, status_path=status)
    again = instance_module.Instance(cfg)
    assert {name: getattr(again, name) for name in instance_module.STATUS_FIELDS} == {
        "commits": 7, "rejoins": 2, "revocations": 3, "fenced": 1, "fenced_by": {"producer": 0, "generation": 1},
        "last_rejoin_reason": "partitions lost", "windows_emitted": 5, "late_records": 4}
