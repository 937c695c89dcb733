"""One application instance of the embedded engine: the Kafka Streams model in one OS process.

All instances share ``application.id`` as their consumer group. The pipeline
splits into sub-topologies at re-keying points, joined by internal
repartition topics; a task is (sub-topology, partition) and owns a state store
per aggregate, backed by a compacted changelog topic and restored from it
(read_committed) before the task processes anything.

Windows: each task keeps a stream-time per window
operator (the max event time it has seen, never decreasing). A record whose
window closed (``end + grace <= stream-time``) goes to the late side output;
a window is emitted once, with emit-final, when stream-time reaches
``end + grace``. The window store's changelog holds ``"<key>@<start>"`` ->
state (a tombstone once emitted) and the task's stream-time under
:data:`STREAM_TIME_KEY`, written in the same transaction as the state it goes
with, so a restarted task neither re-opens nor re-emits a closed window.

exactly_once (KIP-447 "v2"): one transactional producer per instance; every
commit interval one transaction carries the outputs, changelog and
repartition writes, and the consumed offsets. A fenced, failed or abortable
commit closes every task dirty, drops local state, recreates the producer and
the consumer, and rejoins. at_least_once: produce, flush, then commit offsets.
at_most_once: commit offsets before processing.

Run as ``python -m engines.embedded.instance CONFIG.json``.
"""

from __future__ import annotations

import heapq
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from engines.embedded.config import late_topic_of
from harness.api import Aggregate, Event, Guarantee, Pipeline, Segment, State, WindowAggregate, load_job
from harness.api.pipeline import STATELESS, apply_stateless, late_record

QUIET = {"log_level": 3}
STATUS_FIELDS = ("commits", "rejoins", "revocations", "fenced", "fenced_by", "last_rejoin_reason",
                 "windows_emitted", "late_records")
"""The counters an instance writes to its status file, and a restarted one carries on from."""
STATUS_EVERY_S = 1.0  # commits write the counters at most this often (a SIGKILLed instance writes none at exit)


class Rejoin(Exception):
    """The instance lost its right to commit: drop state, recreate clients, rejoin.

    ``fencing`` says what fenced it, when it was fenced: ``producer`` (a newer
    producer epoch for its transactional id, e.g. after the coordinator
    aborted its timed-out transaction) or ``generation`` (the group moved on:
    its offsets carry a stale member id or generation).
    """

    def __init__(self, why: str, fencing: str | None = None) -> None:
        super().__init__(why)
        self.fencing = fencing


PRODUCER_FENCING = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
GENERATION_FENCING = {KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.FENCED_INSTANCE_ID}


def fencing_kind(err: KafkaError) -> str | None:
    """What fenced a failed commit, if fencing it was (by error code, else by the broker's words)."""
    code, text = err.code(), err.str().lower()
    if code in PRODUCER_FENCING or "fenced by a newer" in text or "producer epoch" in text:
        return "producer"
    if code in GENERATION_FENCING or "unknown member" in text or "generation" in text:
        return "generation"
    return None


def _topic_partition(m: Message) -> tuple[str, int]:
    """Where a consumed record or end-of-partition event comes from (both always set there)."""
    topic, partition = m.topic(), m.partition()
    assert topic is not None and partition is not None
    return topic, partition


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


# -- windows -------------------------------------------------------------------------------
# Reserved changelog key of a task's stream-time; window keys always end in "@<start>", so it cannot collide.
STREAM_TIME_KEY = "\u0000stream_time"

Item = tuple[str | None, Event, int]  # (key, event, timestamp) flowing between operators
KeyedItem = tuple[str, Event, int]    # an item of a keyed operator (after a key_by), whose key is always set


def window_store_key(key: str, start: int) -> str:
    """The window store's (and its changelog's) key of ``key``'s window starting at ``start``."""
    return f"{key}@{start}"


def parse_window_store_key(store_key: str) -> tuple[str, int]:
    """Inverse of :func:`window_store_key`: the start is after the last ``@`` (keys may contain ``@``)."""
    key, _, start = store_key.rpartition("@")
    return key, int(start)


@dataclass
class WindowResult:
    """What one record did to a task's windows.

    ``outputs``: ``(key, emitted value, timestamp = window end)`` for each window
    that closed; ``late``: ``(key, late record, timestamp = event time)`` for each
    closed window the record belonged to; ``changelog``: ``(store key, state or
    None)`` to write to the store's changelog, in order.
    """

    outputs: list[KeyedItem] = field(default_factory=list)
    late: list[KeyedItem] = field(default_factory=list)
    changelog: list[tuple[str, State | None]] = field(default_factory=list)


class WindowOperator:
    """One task's windowed aggregate with emit-final (Kafka Streams' window aggregate + "until window closes").

    Stream-time is the max event time this operator has seen; it never
    decreases and is advanced by a record *before* its lateness is decided. A
    window ``[start, end)`` is closed once ``end + grace <= stream_time``: a
    record for it is late, and its final state is emitted exactly once and
    deleted. Open windows are indexed by end (a heap, pruned lazily) so the
    per-record check for due windows is O(1) when none is due.
    """

    def __init__(self, op: WindowAggregate) -> None:
        self.op = op
        self.windows: dict[str, State] = {}            # window store key -> state of an open window
        self._by_end: list[tuple[int, str, int]] = []   # heap of (end, key, start); may hold emitted windows
        self.stream_time: int | None = None
        self._persisted_stream_time: int | None = None

    def is_closed(self, end: int) -> bool:
        """Whether the window ending at ``end`` is closed at the current stream-time."""
        return self.stream_time is not None and end + self.op.grace_ms <= self.stream_time

    def process(self, key: str, event: Event, ts: int) -> WindowResult:
        """Add one record with event time ``ts`` to its windows, or declare it late; emit windows now due."""
        self._advance(ts)
        result = WindowResult()
        for start, end in self.op.windows_of(ts):
            if self.is_closed(end):
                result.late.append((key, late_record(event, key, start, end, "window closed"), ts))
            else:
                result.changelog.append(self._add(key, start, end, event))
        self._emit_due(result)
        return result

    def stream_time_record(self) -> tuple[str, int] | None:
        """The changelog record of stream-time when it advanced since the last call (None otherwise).

        The caller writes it in the transaction that commits the state it goes with.
        """
        if self.stream_time is None or self.stream_time == self._persisted_stream_time:
            return None
        self._persisted_stream_time = self.stream_time
        return STREAM_TIME_KEY, self.stream_time

    def restore(self, store_key: str, value: Any) -> None:
        """Apply one changelog record (in changelog order), before the task processes anything."""
        if store_key == STREAM_TIME_KEY:
            if value is not None:
                self._advance(int(value))
                self._persisted_stream_time = self.stream_time
        elif value is None:
            self.windows.pop(store_key, None)
        else:
            if store_key not in self.windows:
                key, start = parse_window_store_key(store_key)
                heapq.heappush(self._by_end, (start + self.op.assigner.size_ms, key, start))
            self.windows[store_key] = value

    def _advance(self, ts: int) -> None:
        if self.stream_time is None or ts > self.stream_time:
            self.stream_time = ts

    def _add(self, key: str, start: int, end: int, event: Event) -> tuple[str, State]:
        store_key = window_store_key(key, start)
        state = self.windows.get(store_key)
        if state is None:
            heapq.heappush(self._by_end, (end, key, start))
        state = self.op.step(state or self.op.init(), event)
        self.windows[store_key] = state
        return store_key, state

    def _emit_due(self, result: WindowResult) -> None:
        while self._by_end and self.is_closed(self._by_end[0][0]):
            end, key, start = heapq.heappop(self._by_end)
            store_key = window_store_key(key, start)
            state = self.windows.pop(store_key, None)
            if state is None:  # already emitted: a stale index entry
                continue
            result.outputs.append((key, self.op.emit(key, start, end, state), end))
            result.changelog.append((store_key, None))


@dataclass
class Task:
    """(sub-topology, partition) with its state stores: one dict per aggregate, one operator per window aggregate."""

    segment: Segment
    partition: int
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    windows: dict[str, WindowOperator] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceConfig:
    bootstrap: str
    app_id: str
    instance_id: str
    job: str
    guarantee: Guarantee
    topics: dict[str, str]          # logical name -> real topic: input, output, late, repartition-<n>, changelog-<op>
    commit_interval_ms: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    transaction_timeout_ms: int
    group_protocol: str = "classic"
    poll_batch: int = 500
    linger_ms: int = 5
    static_membership: bool = False
    status_path: str = ""
    task_timeout_ms: int = 300_000
    record_cost_us: int = 0

    @classmethod
    def load(cls, path: str) -> InstanceConfig:
        with open(path) as f:
            raw = json.load(f)
        raw["guarantee"] = Guarantee(raw["guarantee"])
        return cls(**raw)


def spin(us: int) -> None:
    """Use ``us`` microseconds of CPU (the ``record_cost_us`` slowdown)."""
    end = time.perf_counter_ns() + us * 1000
    while time.perf_counter_ns() < end:
        pass


class Instance:
    """The processing loop of one instance."""

    def __init__(self, cfg: InstanceConfig) -> None:
        self.cfg = cfg
        self.pipeline: Pipeline = load_job(cfg.job)
        self.segments = self.pipeline.segments()
        self.segment_of_topic = {cfg.topics[s.input]: s for s in self.segments}
        self.eos = cfg.guarantee is Guarantee.exactly_once
        timestamps = self.pipeline.source_op.timestamps
        self.event_time_field = timestamps.field if timestamps is not None else None
        self.late_topic = late_topic_of(self.pipeline, cfg.topics)
        self.tasks: dict[tuple[str, int], Task] = {}
        self.pending: dict[tuple[str, int], int] = {}   # consumed, not yet committed: (topic, p) -> next offset
        self.stopping = False
        self.in_callback_error: Exception | None = None
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.restorer: Consumer | None = None
        self.last_commit = time.monotonic()
        self.commits = 0
        self.rejoins = 0
        self.revocations = 0    # rebalances that took partitions away while processing (not at its own stop)
        self.processed_any = False
        self.fenced = 0
        self.fenced_by: dict[str, int] = {"producer": 0, "generation": 0}
        self.last_rejoin_reason = ""
        self.windows_emitted = 0
        self.late_records = 0   # (event, window) pairs declared late, written to the late topic if there is one
        self._status_written = 0.0  # time.monotonic() of the last status write
        self._load_status()  # a restarted instance carries on its predecessor's counters

    # -- clients ----------------------------------------------------------------------
    def _producer(self) -> Producer:
        conf = {"bootstrap.servers": self.cfg.bootstrap, "acks": "all", "enable.idempotence": True,
                "linger.ms": self.cfg.linger_ms, "partitioner": "murmur2_random", "queue.buffering.max.messages": 200_000,
                "client.id": f"{self.cfg.app_id}-{self.cfg.instance_id}", **QUIET}
        if self.eos:
            conf["transactional.id"] = f"{self.cfg.app_id}-{self.cfg.instance_id}"
            conf["transaction.timeout.ms"] = self.cfg.transaction_timeout_ms
        p = Producer(conf)
        if self.eos:
            p.init_transactions(60)  # fences an earlier incarnation with the same transactional id
            p.begin_transaction()
        return p

    def _consumer(self) -> Consumer:
        conf = {"bootstrap.servers": self.cfg.bootstrap, "group.id": self.cfg.app_id,
                "client.id": f"{self.cfg.app_id}-{self.cfg.instance_id}",
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "isolation.level": "read_committed" if self.eos else "read_uncommitted",
                "session.timeout.ms": self.cfg.session_timeout_ms,
                "max.poll.interval.ms": self.cfg.max_poll_interval_ms, **QUIET}
        if self.cfg.static_membership:  # a restart under the same name takes its partitions back, no rebalance
            conf["group.instance.id"] = f"{self.cfg.app_id}-{self.cfg.instance_id}"
        if self.cfg.group_protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["heartbeat.interval.ms"] = self.cfg.heartbeat_interval_ms
            conf["partition.assignment.strategy"] = "range"
        c = Consumer(conf)
        c.subscribe(list(self.segment_of_topic), on_assign=self._on_assign, on_revoke=self._on_revoke,
                    on_lost=self._on_lost)
        return c

    def _restore_consumer(self) -> Consumer:
        """Reads changelogs by assignment (no group); kept for the life of the clients."""
        return Consumer({"bootstrap.servers": self.cfg.bootstrap,
                         "group.id": f"{self.cfg.app_id}-restore-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "fetch.wait.max.ms": 10, "fetch.error.backoff.ms": 10,
                         "isolation.level": "read_committed" if self.eos else "read_uncommitted", **QUIET})

    # -- rebalance callbacks (run inside consumer.consume) ------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            new = [(tp.topic, tp.partition) for tp in partitions if (tp.topic, tp.partition) not in self.tasks]
            for topic, p in new:
                self.tasks[(topic, p)] = Task(self.segment_of_topic[topic], p)
            self._restore([self.tasks[t] for t in new])
            log(f"assigned {sorted(f'{self._short(t)}-{p}' for t, p in new)}")
        except Exception as e:  # noqa: BLE001 - surfaced after consume returns
            self.in_callback_error = e

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.processed_any and not self.stopping and partitions:
            self.revocations += 1
        try:
            if self.producer is not None:
                self._commit(reason="revoke")
        except Exception as e:  # noqa: BLE001
            self.in_callback_error = e
        self._drop([(tp.topic, tp.partition) for tp in partitions])
        log(f"revoked {len(partitions)} partitions")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log(f"lost {len(partitions)} partitions: closing their tasks dirty")
        self.in_callback_error = Rejoin("partitions lost (session expired: the group moved on)", "generation")
        self._drop([(tp.topic, tp.partition) for tp in partitions])

    def _drop(self, keys: list[tuple[str, int]]) -> None:
        for k in keys:
            self.tasks.pop(k, None)
            self.pending.pop(k, None)

    @staticmethod
    def _short(topic: str) -> str:
        return topic.rsplit(".", 1)[-1]

    # -- state restore ---------------------------------------------------------------------
    def _restore_targets(self, tasks: list[Task]) -> dict[tuple[str, int], Callable[[str, Any], None]]:
        """Fresh, empty stores for the tasks' stateful operators: (changelog, partition) -> apply(key, value)."""
        targets: dict[tuple[str, int], Callable[[str, Any], None]] = {}
        for task in tasks:
            for op in task.segment.ops:
                if isinstance(op, Aggregate):
                    task.stores[op.name] = {}
                    apply = _store_applier(task.stores[op.name])
                elif isinstance(op, WindowAggregate):
                    task.windows[op.name] = WindowOperator(op)
                    apply = task.windows[op.name].restore
                else:
                    continue
                targets[(self.cfg.topics[f"changelog-{op.name}"], task.partition)] = apply
        return targets

    def _restore(self, tasks: list[Task]) -> None:
        targets = self._restore_targets(tasks)
        if not targets:
            return
        started = time.monotonic()
        if self.restorer is None:
            self.restorer = self._restore_consumer()
        restorer = self.restorer
        try:
            restorer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in targets])
            at_end: set[tuple[str, int]] = set()
            count = 0
            progress = time.monotonic()
            while len(at_end) < len(targets):
                messages = restorer.consume(num_messages=10_000, timeout=0.05)
                if messages:
                    progress = time.monotonic()
                elif time.monotonic() - progress > self.cfg.task_timeout_ms / 1000:
                    waiting = sorted(f"{self._short(t)}-{p}" for t, p in set(targets) - at_end)
                    msg = (f"restore made no progress for {self.cfg.task_timeout_ms} ms (task.timeout.ms) on "
                           f"{', '.join(waiting)}: giving the tasks up and rejoining")
                    raise Rejoin(msg)
                for m in messages:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            at_end.add(_topic_partition(m))
                            continue
                        raise KafkaException(err)
                    key = _topic_partition(m)
                    at_end.discard(key)
                    value, store_key = m.value(), m.key()
                    assert store_key is not None  # changelog records are always keyed
                    targets[key](store_key.decode(), None if value is None else orjson.loads(value))
                    count += 1
        finally:
            restorer.unassign()
        log(f"restored {count} changelog records for {len(targets)} stores in {time.monotonic() - started:.2f}s")

    # -- processing ------------------------------------------------------------------------
    def _produce(self, topic: str, key: str | None, value: Any, timestamp: int | None,
                 partition: int | None = None) -> None:
        assert self.producer is not None
        kwargs: dict[str, Any] = {"key": key.encode() if key is not None else None, "value": orjson.dumps(value)}
        if timestamp:
            kwargs["timestamp"] = int(timestamp)
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _process(self, msg) -> None:
        topic, partition = msg.topic(), msg.partition()
        task = self.tasks.get((topic, partition))
        if task is None:  # a record of a partition we no longer own (revoked in this very poll)
            return
        seg = task.segment
        if self.cfg.record_cost_us:
            spin(self.cfg.record_cost_us)
        key = msg.key().decode() if msg.key() is not None else None
        items: list[Item] = [(key, orjson.loads(msg.value()), msg.timestamp()[1])]
        for op in seg.ops:
            items = self._apply(op, task, items)
        for k, event, timestamp in items:
            if seg.key_by is not None:
                self._produce(self.cfg.topics[seg.output], seg.key_by.key_of(event), event, timestamp)
            else:
                self._produce(self.cfg.topics[seg.output], k, event, timestamp)
        self.pending[(topic, partition)] = msg.offset() + 1
        self.processed_any = True

    def _apply(self, op, task: Task, items: list[Item]) -> list[Item]:
        """Run (key, event, timestamp) items through one operator of the task's sub-topology."""
        if isinstance(op, STATELESS):  # each result keeps the timestamp of the item it came from
            return [(k2, e2, ts) for k, e, ts in items for k2, e2 in apply_stateless(op, [(k, e)])]
        if isinstance(op, Aggregate):
            return self._aggregate(op, task, items)
        if isinstance(op, WindowAggregate):
            return self._window_aggregate(op, task, items)
        msg = f"operator {type(op).__name__} is not supported by the embedded engine"
        raise NotImplementedError(msg)

    def _aggregate(self, op: Aggregate, task: Task, items: list[Item]) -> list[Item]:
        store = task.stores.setdefault(op.name, {})
        out: list[Item] = []
        for k, e, ts in items:
            assert k is not None  # Pipeline.validate puts a key_by before every aggregate
            state = op.step(store.get(k) or op.init(), e)
            store[k] = state
            self._produce(self.cfg.topics[f"changelog-{op.name}"], k, state, None, partition=task.partition)
            out.append((k, op.emit(k, state, e), ts))
        return out

    def _window_aggregate(self, op: WindowAggregate, task: Task, items: list[Item]) -> list[Item]:
        """Windowed aggregate: changelog and late records are written here; emitted windows flow on."""
        windows = task.windows.get(op.name)
        if windows is None:
            windows = task.windows[op.name] = WindowOperator(op)
        changelog = self.cfg.topics[f"changelog-{op.name}"]
        out: list[Item] = []
        for k, e, ts in items:
            result = windows.process(str(k), e, self._event_time(e, ts))
            for store_key, state in result.changelog:
                self._produce(changelog, store_key, state, None, partition=task.partition)
            for late_key, record, late_ts in result.late:
                self._write_late(late_key, record, late_ts)
            out += result.outputs
            self.windows_emitted += len(result.outputs)
        return out

    def _event_time(self, event: Event, record_ts: int) -> int:
        """The source's event-time field when it declares one (and the event has it), else the record timestamp."""
        if self.event_time_field is not None:
            value = event.get(self.event_time_field)
            if value is not None:
                return int(value)
        return int(record_ts)

    def _write_late(self, key: str, record: Event, ts: int) -> None:
        self.late_records += 1
        if self.late_topic is not None:
            self._produce(self.late_topic, key, record, ts)

    def _write_stream_times(self) -> None:
        """Each window operator's advanced stream-time to its changelog partition, in the transaction being committed."""
        for task in self.tasks.values():
            for name, windows in task.windows.items():
                record = windows.stream_time_record()
                if record is not None:
                    self._produce(self.cfg.topics[f"changelog-{name}"], record[0], record[1], None,
                                  partition=task.partition)

    # -- commits ----------------------------------------------------------------------------
    def _offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.pending.items()]

    def _commit(self, reason: str = "interval") -> None:
        assert self.producer is not None and self.consumer is not None
        self._write_stream_times()
        if self.eos:
            offsets = self._offsets()
            try:
                if offsets:
                    self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), 30)
                self.producer.commit_transaction(30)
            except KafkaException as e:
                err = e.args[0]
                log(f"commit ({reason}) failed: {err.str()} (fatal={err.fatal()}, abortable={err.txn_requires_abort()})")
                raise Rejoin(f"transaction commit failed: {err.str()}", fencing_kind(err)) from e
            self.producer.begin_transaction()
        elif self.cfg.guarantee is Guarantee.at_least_once:
            remaining = self.producer.flush(60)
            if remaining:
                raise Rejoin(f"{remaining} records not acknowledged; not committing offsets")
            offsets = self._offsets()
            if offsets:
                try:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
                except KafkaException as e:
                    raise Rejoin(f"offset commit failed: {e.args[0].str()}", fencing_kind(e.args[0])) from e
        self.pending.clear()
        self.commits += 1
        self.last_commit = time.monotonic()
        if self.last_commit - self._status_written >= STATUS_EVERY_S:
            self._write_status()

    def _commit_before_processing(self, msgs) -> None:
        """at_most_once: offsets of a batch are committed before any of it is processed."""
        assert self.consumer is not None
        latest: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error() is None:
                latest[(m.topic(), m.partition())] = m.offset() + 1
        if latest:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in latest.items()],
                                 asynchronous=False)

    # -- lifecycle ----------------------------------------------------------------------------
    def _start_clients(self) -> None:
        self.producer = self._producer()
        self.consumer = self._consumer()
        self.last_commit = time.monotonic()

    def _rejoin(self, why: str, fencing: str | None = None) -> None:
        """Close all tasks dirty, drop local state, recreate producer and consumer, rejoin the group."""
        self.rejoins += 1
        self.last_rejoin_reason = why
        if fencing is not None:
            self.fenced += 1
            self.fenced_by[fencing] = self.fenced_by.get(fencing, 0) + 1
        log(f"rejoining ({why}): closing all tasks dirty")
        self._write_status()
        consumer, producer, restorer = self.consumer, self.producer, self.restorer
        self.consumer = self.producer = self.restorer = None  # callbacks during close must not commit
        if restorer is not None:
            restorer.close()
        self.tasks.clear()
        self.pending.clear()
        if producer is not None and self.eos:
            try:
                producer.abort_transaction(10)
            except KafkaException:
                pass
        if consumer is not None:
            try:
                consumer.close()
            except KafkaException:
                pass
        self.in_callback_error = None
        self._start_clients()

    def run(self) -> int:
        self._start_clients()
        log(f"instance {self.cfg.instance_id} started ({self.cfg.guarantee.value}, "
            f"commit every {self.cfg.commit_interval_ms} ms)")
        interval = self.cfg.commit_interval_ms / 1000
        while not self.stopping:
            try:
                assert self.consumer is not None and self.producer is not None
                msgs = self.consumer.consume(num_messages=self.cfg.poll_batch, timeout=0.05)
                if self.in_callback_error is not None:
                    error = self.in_callback_error
                    raise Rejoin(str(error), getattr(error, "fencing", None))
                if self.cfg.guarantee is Guarantee.at_most_once:
                    self._commit_before_processing(msgs)
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.fatal():
                            raise Rejoin(err.str(), fencing_kind(err))
                        continue
                    self._process(m)
                self.producer.poll(0)
                if time.monotonic() - self.last_commit >= interval:
                    self._commit()
            except Rejoin as e:
                self._rejoin(str(e), e.fencing)
            except KafkaException as e:
                err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
                self._rejoin(f"client error: {err.str() if err else e}", fencing_kind(err) if err else None)
        self._shutdown()
        return 0

    def _shutdown(self) -> None:
        log("stopping: final commit")
        try:
            if self.producer is not None and self.consumer is not None:
                self._commit(reason="shutdown")
        except Rejoin as e:
            log(f"final commit failed: {e}")
            if self.eos and self.producer is not None:
                try:
                    self.producer.abort_transaction(10)
                except KafkaException:
                    pass
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            consumer.close()
        if self.producer is not None:
            self.producer.flush(10)
        if self.restorer is not None:
            self.restorer.close()
        log(f"stopped after {self.commits} commits and {self.rejoins} rejoins")
        self._write_status()

    def _load_status(self) -> None:
        try:
            with open(self.cfg.status_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            return
        for name in STATUS_FIELDS:
            if name not in old:
                continue
            current = getattr(self, name)
            if isinstance(current, dict):
                current.update(old[name])
            else:
                setattr(self, name, old[name])

    def _write_status(self) -> None:
        """Counters for the deployer's status (how often this instance was fenced or rejoined).

        Written on every rejoin, at stop, and by commits at most every
        :data:`STATUS_EVERY_S`, so a killed instance's counters lag by about that much.
        """
        if not self.cfg.status_path:
            return
        self._status_written = time.monotonic()
        tmp = self.cfg.status_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({name: getattr(self, name) for name in STATUS_FIELDS}, f)
        os.replace(tmp, self.cfg.status_path)


def _store_applier(store: dict[str, Any]) -> Callable[[str, Any], None]:
    """Restore into a key-value store: a value sets the key, a tombstone (None) deletes it."""

    def apply(key: str, value: Any) -> None:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value

    return apply


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    instance = Instance(InstanceConfig.load(args[0]))

    def _stop(_signum, _frame) -> None:
        instance.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return instance.run()


if __name__ == "__main__":
    sys.exit(main())
