"""A TaskManager of the cluster engine (the Flink model): slots that run subtasks.

One asyncio loop runs every subtask deployed on this TaskManager. Subtasks
talk to the JobManager over the control connection and to each other over
the data plane: one TCP connection per channel (upstream subtask -> downstream
subtask), with credit-based flow control, so a slow consumer stops its
producers and backpressure reaches the Kafka sources.

Event time: a source subtask tracks per-partition watermarks
(:mod:`engines.cluster.watermarks`) and sends its watermark and idle status
in-band on every output channel; a subtask with inputs combines its channels'
watermarks in a valve, fires its window operators
(:mod:`engines.cluster.windows`) and forwards the watermark. Watermarks and
statuses are events: like barriers they need no credit, and they wait behind
the records sent before them.

Run as ``python -m engines.cluster.taskmanager CONFIG.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from engines.cluster import messages as m
from engines.cluster.aligner import BarrierAligner
from engines.cluster.graph import Vertex, job_graph, late_topic_of, time_field
from engines.cluster.ha import read_lease
from engines.cluster.keygroups import inherited_sinks, key_group, operator_index, subtask_for_key
from engines.cluster.sink import SinkFencedError, SinkState, WriteAheadSink
from engines.cluster.watermarks import SourceWatermarks, WatermarkUpdate, WatermarkValve
from engines.cluster.windows import LateRecord, WindowOperator
from harness.api import Aggregate, Guarantee, KeyBy, Pipeline, WindowAggregate, load_job
from harness.api.pipeline import STATELESS, Event, Keyed, apply_stateless

INITIAL_CREDITS = 4      # buffers a receiver grants each channel up front
BUFFER_RECORDS = 256     # records per network buffer
FLUSH_INTERVAL_S = 0.01  # a partly filled buffer goes out after this long


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


@dataclass(frozen=True)
class TMConfig:
    tm_id: str
    jm_host: str
    jm_port: int
    slots: int
    job: str
    bootstrap: str
    topics: dict[str, str]         # input, output, markers
    guarantee: Guarantee
    app_id: str
    checkpoint_dir: str
    heartbeat_interval_ms: int = 500
    transaction_timeout_ms: int = 60_000
    idle_timeout_ms: int | None = 5000   # a source partition without records this long is idle
    watermark_interval_ms: int = 200     # how often a source announces its watermark
    status_path: str = ""
    data_host: str = "127.0.0.1"         # where its data plane listens, as other TaskManagers reach it
    bounded: bool = False                # sources read to the end offsets taken at their start, then report
    ha_dir: str | None = None            # high availability: follow the leader the lease there names

    @classmethod
    def load(cls, path: str) -> TMConfig:
        raw = json.loads(Path(path).read_text())
        raw["guarantee"] = Guarantee(raw["guarantee"])
        return cls(**raw)


class Cancelled(Exception):
    """The subtask's attempt was cancelled."""


# -- data plane: sending side ------------------------------------------------------------------
class OutputChannel:
    """One channel to a downstream subtask; sends a buffer only when the receiver granted credit."""

    def __init__(self, target: m.Channel, attempt: int, sender: int) -> None:
        self.target, self.attempt, self.sender = target, attempt, sender
        self.credits = 0
        self.credit_event = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.closed = False
        self.waited_s = 0.0          # time spent without credit: backpressure
        self._reader_task: asyncio.Task | None = None

    async def open(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)
        await m.send(self.writer, m.OpenChannel(self.attempt, self.target.vertex, self.target.subtask, self.sender))
        self._reader_task = asyncio.create_task(self._read_credits(reader))

    async def _read_credits(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                msg = await m.recv(reader)
                if isinstance(msg, m.Credit):
                    self.credits += msg.buffers
                    self.credit_event.set()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.closed = True
            self.credit_event.set()

    async def send_buffer(self, records: list) -> None:
        if self.credits <= 0:
            started = time.monotonic()
            while self.credits <= 0:
                if self.closed:
                    raise ConnectionError(f"channel to {self.target.vertex}-{self.target.subtask} closed")
                self.credit_event.clear()
                await self.credit_event.wait()
            self.waited_s += time.monotonic() - started
        self.credits -= 1
        assert self.writer is not None
        await m.send(self.writer, m.Buffer(records))

    async def send_event(self, event: m.Msg) -> None:
        """Send an in-band event (barrier, watermark, status): events need no credit."""
        assert self.writer is not None
        await m.send(self.writer, event)

    def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self.writer is not None:
            self.writer.close()


class RecordWriter:
    """Hash-partitions records by key group over the channels to the next vertex."""

    def __init__(self, channels: list[OutputChannel], key_by: KeyBy) -> None:
        self.channels, self.key_by = channels, key_by
        self.pending: list[list] = [[] for _ in channels]
        self.last_flush = time.monotonic()

    async def emit(self, event: dict) -> None:
        key = self.key_by.key_of(event)
        j = subtask_for_key(key, len(self.channels))
        self.pending[j].append([key, event])
        if len(self.pending[j]) >= BUFFER_RECORDS:
            await self._flush_one(j)

    async def _flush_one(self, j: int) -> None:
        records, self.pending[j] = self.pending[j], []
        await self.channels[j].send_buffer(records)

    async def flush(self) -> None:
        for j, records in enumerate(self.pending):
            if records:
                await self._flush_one(j)
        self.last_flush = time.monotonic()

    async def maybe_flush(self) -> None:
        if time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S:
            await self.flush()

    async def broadcast_event(self, event: m.Msg) -> None:
        """Send ``event`` on every channel, behind every record emitted before it."""
        await self.flush()
        for ch in self.channels:
            await ch.send_event(event)

    async def broadcast_barrier(self, checkpoint_id: int) -> None:
        await self.broadcast_event(m.Barrier(checkpoint_id))

    @property
    def backpressure_s(self) -> float:
        return sum(ch.waited_s for ch in self.channels)


# -- data plane: receiving side ------------------------------------------------------------------
class InputGate:
    """The input channels of one subtask: a queue each, credits returned as buffers are consumed."""

    def __init__(self, n: int) -> None:
        self.queues: list[deque] = [deque() for _ in range(n)]
        self.writers: list[asyncio.StreamWriter | None] = [None] * n
        self.event = asyncio.Event()
        self._next = 0
        self.failed: str | None = None

    async def attach(self, sender: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers[sender] = writer
        await m.send(writer, m.Credit(INITIAL_CREDITS))
        try:
            while True:
                msg = await m.recv(reader)
                self.queues[sender].append(msg)
                self.event.set()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.failed = f"input channel {sender} closed"
            self.event.set()

    async def next(self, aligner: BarrierAligner) -> tuple[int, Any]:
        n = len(self.queues)
        while True:
            for i in range(n):
                ch = (self._next + i) % n
                if self.queues[ch] and aligner.readable(ch):
                    self._next = (ch + 1) % n
                    return ch, self.queues[ch].popleft()
            if self.failed:
                raise ConnectionError(self.failed)
            self.event.clear()
            await self.event.wait()

    async def consumed(self, ch: int) -> None:
        writer = self.writers[ch]
        if writer is not None:
            await m.send(writer, m.Credit(1))


# -- subtasks --------------------------------------------------------------------------------------
class Subtask:
    """One parallel instance of a vertex, with its chained operators, keyed state and sink."""

    def __init__(self, tm: TaskManager, attempt: int, td: m.TaskDeployment, vertex: Vertex,
                 last_vertex: int) -> None:
        self.tm, self.attempt, self.td, self.vertex = tm, attempt, td, vertex
        self.cfg = tm.cfg
        self.name = f"v{vertex.index}-{td.subtask}"
        self.state: dict[str, Any] = {}
        self.offsets: dict[int, int] = {}
        self.ends: dict[int, int] | None = None  # a bounded source's end offsets, taken at its start
        self.ended = False
        self.sink: WriteAheadSink | None = None
        self.writer: RecordWriter | None = None
        self.gate = InputGate(td.n_inputs) if td.n_inputs else None
        self.aligner = BarrierAligner(td.n_inputs) if td.n_inputs else None
        self.triggers: asyncio.Queue[int] = asyncio.Queue()
        self.consumer: Consumer | None = None
        self.aggregates = [op for op in vertex.ops if isinstance(op, Aggregate)]
        self.is_last = vertex.index == last_vertex
        pipeline = tm.pipeline
        self.time_field = time_field(pipeline)
        self.windows = {i: WindowOperator(op, self.time_field)   # op index -> its window operator
                        for i, op in enumerate(vertex.ops) if isinstance(op, WindowAggregate)}
        self.late_topic = late_topic_of(pipeline, self.cfg.topics)
        self.late_uncounted = 0   # late records (written or, without a late output, dropped) not yet in the counters
        self.valve = WatermarkValve(td.n_inputs) if td.n_inputs else None
        self.source_watermarks = self._source_watermarks(pipeline)
        self._next_watermark_poll = 0.0

    def _source_watermarks(self, pipeline: Pipeline) -> SourceWatermarks | None:
        strategy = pipeline.source_op.watermark
        if not self.vertex.is_source or strategy is None:
            return None
        return SourceWatermarks(self.td.partitions, strategy.ms, self.cfg.idle_timeout_ms)

    # -- setup and teardown --
    def _restore(self) -> dict[int, SinkState]:
        """Restore from the deployment's state handles what this subtask owns at its parallelism: the offsets of
        its partitions, the key groups in its range (keyed and window state; the windows' watermark is the
        lowest restored), and the sink states by the subtask that wrote them."""
        td = self.td
        sinks: dict[int, SinkState] = {}
        watermarks: dict[int, list[int]] = {}
        for handle in td.state:
            snap = msgspec.msgpack.decode(Path(handle.path).read_bytes())
            for p, o in snap.get("offsets", {}).items():
                if int(p) in td.partitions:
                    self.offsets[int(p)] = o
            for group, keys in snap.get("keyed", {}).items():
                if operator_index(int(group), td.parallelism) == td.subtask:
                    self.state.update(keys)
            for index, window_snap in snap.get("windows", {}).items():
                groups = {g: entries for g, entries in window_snap.get("groups", {}).items()
                          if operator_index(int(g), td.parallelism) == td.subtask}
                self.windows[int(index)].restore({"groups": groups}, merge=True)
                if window_snap.get("watermark") is not None:
                    watermarks.setdefault(int(index), []).append(window_snap["watermark"])
            sink = snap.get("sink")
            if sink:
                sinks[handle.subtask] = msgspec.msgpack.decode(sink, type=SinkState)
        for index, marks in watermarks.items():
            self.windows[index].watermark = min(marks)
        return sinks

    async def setup(self) -> None:
        restored_sinks = self._restore()
        if self.vertex.has_sink:
            loop = asyncio.get_running_loop()
            restored_from = {h.subtask for h in self.td.state}
            for old in sorted(inherited_sinks(restored_from, self.td.subtask, self.td.parallelism)):
                # a subtask gone with a rescale: its zombies fenced, its completed epochs committed, by its heir
                heir = self._sink(old)
                try:
                    done = await loop.run_in_executor(None, heir.open, restored_sinks.get(old))
                finally:
                    heir.close()
                log(f"{self.name}: took over the sink of subtask {old} at the old parallelism "
                    f"(re-committed {done} records)")
            self.sink = self._sink(self.td.subtask)
            recommitted = await loop.run_in_executor(None, self.sink.open, restored_sinks.get(self.td.subtask))
            if recommitted:
                log(f"{self.name}: re-committed {recommitted} records of completed checkpoints on restore")
        else:
            channels = [OutputChannel(c, self.attempt, self.td.subtask) for c in self.td.outputs]
            await asyncio.gather(*(c.open() for c in channels))
            assert self.vertex.out_key is not None
            self.writer = RecordWriter(channels, self.vertex.out_key)
        if self.vertex.is_source:
            self.consumer = Consumer({
                "bootstrap.servers": self.cfg.bootstrap, "group.id": f"{self.cfg.app_id}-source",
                "enable.auto.commit": False, "isolation.level": "read_committed",
                "fetch.wait.max.ms": 20, "log_level": 3})
            self.consumer.assign([TopicPartition(self.cfg.topics["input"], p, self.offsets.get(p, OFFSET_BEGINNING))
                                  for p in self.td.partitions])
            if self.cfg.bounded:
                self.ends = {p: self.consumer.get_watermark_offsets(
                    TopicPartition(self.cfg.topics["input"], p), timeout=30)[1] for p in self.td.partitions}

    def _sink(self, subtask: int) -> WriteAheadSink:
        return WriteAheadSink(
            bootstrap=self.cfg.bootstrap, topic=self.cfg.topics["output"], marker_topic=self.cfg.topics["markers"],
            app_id=self.cfg.app_id, sink_name="sink", subtask=subtask, guarantee=self.cfg.guarantee,
            transaction_timeout_ms=self.cfg.transaction_timeout_ms)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self.writer is not None:
            for ch in self.writer.channels:
                ch.close()

    # -- processing --
    def _run_ops(self, items: list[Keyed], start: int = 0) -> tuple[list[Keyed], list[LateRecord]]:
        """Run (key, event) pairs through the vertex's operators from index ``start``: (outputs, late records)."""
        late: list[LateRecord] = []
        ops = self.vertex.ops
        for i in range(start, len(ops)):
            op = ops[i]
            if isinstance(op, STATELESS):
                items = apply_stateless(op, items)
            elif isinstance(op, Aggregate):
                items = self._aggregate(op, items)
            elif isinstance(op, WindowAggregate):
                window = self.windows[i]
                for k, e in items:
                    assert k is not None  # keyed: a key_by exchange precedes every window
                    late.extend(window.process(k, e))
                items = []  # a window emits when it fires, on the watermark
        return items, late

    def _aggregate(self, op: Aggregate, items: list[Keyed]) -> list[Keyed]:
        out: list[Keyed] = []
        for k, e in items:
            assert k is not None  # keyed: a key_by exchange precedes every aggregate
            state = op.step(self.state.get(k) or op.init(), e)
            self.state[k] = state
            out.append((k, op.emit(k, state, e)))
        return out

    async def _process(self, key: str | None, event: Event, timestamp: int | None) -> None:
        """One input record through the chain, to the next vertex or the sink (and the late side output)."""
        items, late = self._run_ops([(key, event)])
        if late:
            self._emit_late(late)
        if items:
            await self._emit(items, timestamp)

    async def _emit(self, items: list[Keyed], timestamp: int | None) -> None:
        for key, event in items:
            if self.writer is not None:
                await self.writer.emit(event)
            else:
                assert self.sink is not None
                self.sink.write(key, orjson.dumps(event), timestamp)

    def _emit_late(self, late: list[LateRecord]) -> None:
        """Late records go to the late side output, through the sink (the same epoch as the main output)."""
        self.late_uncounted += len(late)
        if self.late_topic is None or self.sink is None:
            return  # no side output: dropped
        for rec in late:
            self.sink.write(rec.key, orjson.dumps(rec.record), rec.timestamp, topic=self.late_topic)

    # -- event time --
    async def _on_watermark_update(self, update: WatermarkUpdate) -> None:
        """Announce a status change downstream, then apply and forward a watermark that advanced."""
        if update.idle is not None and self.writer is not None:
            await self.writer.broadcast_event(m.WatermarkStatus(update.idle))
        if update.watermark is not None:
            await self._advance_watermark(update.watermark)

    async def _advance_watermark(self, watermark: int) -> None:
        """Fire this vertex's windows up to ``watermark`` (results go on down the chain), then forward it."""
        for index, window in self.windows.items():
            for fired in window.advance(watermark):
                items, late = self._run_ops([(fired.key, fired.result)], index + 1)
                self._emit_late(late)
                await self._emit(items, fired.end)  # a window result's record timestamp is its end
        if self.writer is not None:
            await self.writer.broadcast_event(m.Watermark(watermark))

    def _source_event_time(self, event: Event) -> int | None:
        ts = event.get(self.time_field) if isinstance(event, dict) else None
        return ts if isinstance(ts, int) and not isinstance(ts, bool) else None

    async def _poll_source_watermark(self) -> None:
        """Every watermark interval: announce the source's watermark if it advanced, and idleness changes."""
        if self.source_watermarks is None:
            return
        now = time.monotonic()
        if now < self._next_watermark_poll:
            return
        self._next_watermark_poll = now + self.cfg.watermark_interval_ms / 1000
        update = self.source_watermarks.poll()
        if not update.empty:
            await self._on_watermark_update(update)

    async def run(self) -> None:
        if self.vertex.is_source:
            await self._run_source()
        else:
            await self._run_inputs()

    async def _end_of_input(self) -> None:
        """A bounded source at its end offsets: its output out, then the JobManager told (once per attempt)."""
        if self.ends is None or self.ended or any(self.offsets.get(p, 0) < end for p, end in self.ends.items()):
            return
        if self.writer is not None:
            await self.writer.flush()
        self.ended = True
        log(f"{self.name}: end of input at {self.ends}")
        await self.tm.to_jm(m.EndOfInput(self.attempt, self.vertex.index, self.td.subtask))

    async def _run_source(self) -> None:
        assert self.consumer is not None
        loop_count = 0
        while True:
            while not self.triggers.empty():
                await self._checkpoint(self.triggers.get_nowait(), 0.0)
            await self._poll_source_watermark()
            await self._end_of_input()
            msgs = self.consumer.consume(num_messages=BUFFER_RECORDS, timeout=0)
            if not msgs:
                if self.writer is not None:
                    await self.writer.flush()
                try:
                    n = await asyncio.wait_for(self.triggers.get(), timeout=0.005)
                    await self._checkpoint(n, 0.0)
                except TimeoutError:
                    pass
                continue
            for msg in msgs:
                if msg.error() is not None:
                    continue
                raw_key, value, partition, offset = msg.key(), msg.value(), msg.partition(), msg.offset()
                assert value is not None and partition is not None and offset is not None  # a consumed record
                key = raw_key.decode() if raw_key is not None else None
                event = orjson.loads(value)
                if self.source_watermarks is not None and self.source_watermarks.on_record(
                        partition, self._source_event_time(event)):
                    await self._on_watermark_update(WatermarkUpdate(idle=False))  # before its first record
                await self._process(key, event, msg.timestamp()[1])
                self.offsets[partition] = offset + 1
            if self.writer is not None:
                await self.writer.maybe_flush()
            loop_count += 1
            if loop_count % 8 == 0:
                await asyncio.sleep(0)

    async def _run_inputs(self) -> None:
        assert self.gate is not None and self.aligner is not None and self.valve is not None
        while True:
            ch, item = await self.gate.next(self.aligner)
            if isinstance(item, m.Buffer):
                for key, event in item.records:
                    await self._process(key, event, event.get("et") if isinstance(event, dict) else None)
                await self.gate.consumed(ch)
                if self.writer is not None:
                    await self.writer.maybe_flush()
            elif isinstance(item, m.Barrier):
                aligned = self.aligner.on_barrier(ch, item.checkpoint_id)
                if aligned is not None:
                    await self._checkpoint(aligned.checkpoint_id, aligned.alignment_s)
            elif isinstance(item, m.Watermark):
                await self._on_watermark_update(self.valve.on_watermark(ch, item.timestamp))
            elif isinstance(item, m.WatermarkStatus):
                await self._on_watermark_update(self.valve.on_status(ch, item.idle))

    # -- checkpoints --
    async def _checkpoint(self, checkpoint_id: int, alignment_s: float) -> None:
        snap: dict[str, Any] = {"offsets": {str(p): o for p, o in self.offsets.items()}}
        if self.aggregates:
            groups: dict[str, dict[str, Any]] = {}
            for k, v in self.state.items():
                groups.setdefault(str(key_group(k)), {})[k] = v
            snap["keyed"] = groups
        if self.windows:
            snap["windows"] = {str(index): window.snapshot() for index, window in self.windows.items()}
        if self.sink is not None:
            snap["sink"] = msgspec.msgpack.encode(self.sink.snapshot(checkpoint_id))
        data = msgspec.msgpack.encode(snap)  # the synchronous part: a copy of the state
        if self.writer is not None:
            await self.writer.broadcast_barrier(checkpoint_id)
        path = Path(self.cfg.checkpoint_dir) / f"chk-{checkpoint_id}" / f"{self.name}.state"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        await self.tm.to_jm(m.AckCheckpoint(self.attempt, checkpoint_id, self.vertex.index, self.td.subtask,
                                            str(path), alignment_s * 1000, len(data)))
        if self.late_uncounted:  # counted at checkpoints, not per record: the counters are a file
            self.tm.count("late_records", self.late_uncounted)
            self.late_uncounted = 0

    def notify_complete(self, checkpoint_id: int) -> None:
        if self.sink is not None:
            self.sink.notify_complete(checkpoint_id)


# -- the TaskManager -------------------------------------------------------------------------------
class TaskManager:
    def __init__(self, cfg: TMConfig) -> None:
        self.cfg = cfg
        self.pipeline = load_job(cfg.job)
        self.vertices = job_graph(self.pipeline)
        self.incarnation = uuid.uuid4().hex[:8]
        self.attempt = -1
        self.subtasks: list[Subtask] = []
        self.tasks: list[asyncio.Task] = []
        self.gates: dict[tuple[int, int, int], asyncio.Future] = {}
        self.jm_writer: asyncio.StreamWriter | None = None
        self.data_port = 0
        self.stopping = asyncio.Event()
        self.jm_registered = False
        self.counters = {"deployments": 0, "disconnected": 0, "fenced_commits": 0, "failed_commits": 0,
                         "late_records": 0}
        self._load_counters()

    def _load_counters(self) -> None:
        """A restarted TaskManager carries on its predecessor's counters."""
        try:
            self.counters.update(json.loads(Path(self.cfg.status_path).read_text()))
        except (OSError, ValueError):
            pass

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` and write the counters to the status file."""
        self.counters[name] += n
        if self.cfg.status_path:
            tmp = self.cfg.status_path + ".tmp"
            Path(tmp).write_text(json.dumps(self.counters))
            os.replace(tmp, self.cfg.status_path)

    async def to_jm(self, msg: m.Msg) -> None:
        if self.jm_writer is not None:
            try:
                await m.send(self.jm_writer, msg)
            except (ConnectionError, OSError):
                pass

    # -- data server --
    def _gate_future(self, attempt: int, vertex: int, subtask: int) -> asyncio.Future:
        key = (attempt, vertex, subtask)
        if key not in self.gates:
            self.gates[key] = asyncio.get_running_loop().create_future()
        return self.gates[key]

    async def _on_data_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await m.recv(reader)
            if not isinstance(hello, m.OpenChannel) or hello.attempt < self.attempt:
                writer.close()
                return
            gate = await asyncio.wait_for(self._gate_future(hello.attempt, hello.vertex, hello.subtask), 30)
            await gate.attach(hello.sender, reader, writer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.CancelledError):
            writer.close()

    # -- deployment --
    async def _deploy(self, msg: m.Deploy) -> None:
        await self._cancel_all()
        self.attempt = msg.attempt
        last = self.vertices[-1].index
        self.subtasks = [Subtask(self, msg.attempt, td, self.vertices[td.vertex], last) for td in msg.tasks]
        for st in self.subtasks:
            if st.gate is not None:
                fut = self._gate_future(msg.attempt, st.vertex.index, st.td.subtask)
                if not fut.done():
                    fut.set_result(st.gate)
        try:
            await asyncio.gather(*(st.setup() for st in self.subtasks))
        except Exception as e:  # noqa: BLE001 - reported to the JM, which restarts the job
            log(f"deploy of attempt {msg.attempt} failed: {e}")
            await self.to_jm(m.TaskFailed(msg.attempt, -1, -1, f"setup failed: {e}"))
            return
        self.tasks = [asyncio.create_task(self._run(st)) for st in self.subtasks]
        self.count("deployments")
        log(f"attempt {msg.attempt}: running {[st.name for st in self.subtasks]} "
            f"(restored from checkpoint {msg.checkpoint_id})")
        await self.to_jm(m.TasksRunning(self.cfg.tm_id, msg.attempt))

    async def _run(self, st: Subtask) -> None:
        try:
            await st.run()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log(f"{st.name} failed: {e}\n{traceback.format_exc()}")
            await self.to_jm(m.TaskFailed(st.attempt, st.vertex.index, st.td.subtask, str(e)))

    async def _cancel_all(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for st in self.subtasks:
            try:
                st.close()
            except Exception as e:  # noqa: BLE001
                log(f"closing {st.name}: {e}")
        self.tasks, self.subtasks = [], []
        self.gates = {k: f for k, f in self.gates.items() if k[0] > self.attempt}

    # -- control plane --
    async def _handle(self, msg: Any) -> None:
        if isinstance(msg, m.Deploy):
            await self._deploy(msg)
        elif isinstance(msg, m.Cancel):
            await self._cancel_all()
            await self.to_jm(m.Cancelled(self.cfg.tm_id, msg.attempt))
        elif isinstance(msg, m.TriggerCheckpoint):
            if msg.attempt == self.attempt:
                for st in self.subtasks:
                    if st.vertex.is_source:
                        st.triggers.put_nowait(msg.checkpoint_id)
        elif isinstance(msg, m.NotifyComplete):
            if msg.attempt == self.attempt:
                loop = asyncio.get_running_loop()
                for st in self.subtasks:
                    try:
                        # a sink commit is a blocking round trip to the transaction coordinator: off the loop,
                        # so heartbeats and the data plane go on while it waits (checkpoints stay in order:
                        # each commit is awaited before the next message is handled)
                        await loop.run_in_executor(None, st.notify_complete, msg.checkpoint_id)
                    except Exception as e:  # noqa: BLE001 - e.g. fenced: the JM restarts the job
                        log(f"{st.name}: commit of checkpoint {msg.checkpoint_id} failed: {e}")
                        self.count("fenced_commits" if isinstance(e, SinkFencedError) else "failed_commits")
                        await self.to_jm(m.TaskFailed(msg.attempt, st.vertex.index, st.td.subtask, str(e)))
        elif isinstance(msg, m.Disconnect):
            raise ConnectionResetError(f"the JobManager disconnected us: {msg.reason}")

    async def _heartbeats(self) -> None:
        while True:
            await self.to_jm(m.Heartbeat(self.cfg.tm_id, self.incarnation))
            await asyncio.sleep(self.cfg.heartbeat_interval_ms / 1000)

    async def _leader(self) -> tuple[str, int, int | None]:
        """Where the JobManager is: the configured address, or (high availability) the lease holder's, waited
        for while there is none: (host, port, its epoch)."""
        if self.cfg.ha_dir is None:
            return self.cfg.jm_host, self.cfg.jm_port, None
        while True:
            lease = read_lease(self.cfg.ha_dir)
            if lease and not lease.get("released"):
                return str(lease["host"]), int(lease["port"]), int(lease["epoch"])
            await asyncio.sleep(0.1)

    async def _follow_lease(self, epoch: int, writer: asyncio.StreamWriter) -> None:
        """End the session when the lease names another leader (ours is gone, maybe paused: not waited for)."""
        assert self.cfg.ha_dir is not None
        while True:
            await asyncio.sleep(0.25)
            lease = read_lease(self.cfg.ha_dir)
            if lease.get("epoch") != epoch:
                log(f"the lease names a new leader, {lease.get('holder')} (epoch {lease.get('epoch')})")
                writer.close()
                return

    async def _session(self) -> None:
        """One registration with the JobManager, until the connection breaks."""
        host, port, epoch = await self._leader()
        reader, self.jm_writer = await asyncio.open_connection(host, port)
        await m.send(self.jm_writer, m.Register(self.cfg.tm_id, self.incarnation, self.cfg.slots,
                                               self.cfg.data_host, self.data_port))
        self.jm_registered = True
        log(f"registered with the JobManager at {host}:{port}" + (f" (leader epoch {epoch})" if epoch else ""))
        background = [asyncio.create_task(self._heartbeats())]
        if epoch is not None:
            background.append(asyncio.create_task(self._follow_lease(epoch, self.jm_writer)))
        try:
            while True:
                await self._handle(await m.recv(reader))
        finally:
            for task in background:
                task.cancel()
            self.jm_writer.close()
            self.jm_writer = None

    async def main(self) -> None:
        server = await asyncio.start_server(self._on_data_connection, self.cfg.data_host, 0)
        self.data_port = server.sockets[0].getsockname()[1]
        log(f"taskmanager {self.cfg.tm_id} ({self.cfg.slots} slots), data port {self.data_port}")
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        while not self.stopping.is_set():
            session = asyncio.create_task(self._session())
            stop = asyncio.create_task(self.stopping.wait())
            done, _ = await asyncio.wait({session, stop}, return_when=asyncio.FIRST_COMPLETED)
            if session in done:
                err = session.exception()
                if self.subtasks or self.jm_registered:
                    log(f"lost the JobManager ({err!r}): cancelling all tasks")
                    self.count("disconnected")
                    await self._cancel_all()
                    self.incarnation = uuid.uuid4().hex[:8]
                self.jm_registered = False  # attempts to reach a JobManager that is gone are not counted
                await asyncio.sleep(0.2)
            else:
                session.cancel()
        await self._cancel_all()
        server.close()
        log("stopped")


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    asyncio.run(TaskManager(TMConfig.load(args[0])).main())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
