"""The cluster engine's Kafka sink: exactly-once by write-ahead, at-least-once by writing through.

The Python Kafka client cannot resume another producer's transaction, so a
Flink-style two-phase-commit sink (pre-commit at the barrier, commit on
notify) is out of reach. This is Flink's write-ahead sink instead:

- epoch ``e`` = the records a sink subtask receives after barrier ``e - 1``
  and before barrier ``e``; they are staged in memory;
- at barrier ``e`` (:meth:`WriteAheadSink.snapshot`) the epoch is closed under
  id ``e`` and every closed, uncommitted epoch goes into the checkpoint;
- when checkpoint ``e`` is complete (:meth:`WriteAheadSink.notify_complete`)
  the records of every pending epoch ``<= e`` and a commit marker
  ``"{sink}-{subtask}" -> e`` are written in one Kafka transaction;
- on restore (:meth:`WriteAheadSink.open`) the sink fences its zombies, reads
  its latest marker ``m`` and re-commits the restored epochs with id ``> m``;
  the others are in Kafka already.

A sink subtask may write to more than its main topic (a window operator's late
side output): each staged record carries its topic, so every topic's records
of an epoch commit in the same transaction as the epoch's marker.

The transactional id is per subtask (``{app_id}-{sink_name}-{subtask}``), so
a newer incarnation of a subtask fences the older one wherever it runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from harness.api import Guarantee
from harness.api.toolkit import StreamgaugeError, admin, stable_and_end_offsets

StagedRecord = tuple[str | None, bytes, int | None, str]
"""One output record as staged: (key, value, timestamp in ms or None for "now", topic)."""
KeyValue = tuple[bytes | None, bytes | None]

FENCING_CODES = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
PRODUCER_CONFIG = {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                   "partitioner": "murmur2_random", "log_level": 3}
CLOSE_FLUSH_S = 10.0


class SinkError(StreamgaugeError):
    """The sink cannot go on (for example: its marker topic never became readable)."""


class SinkFencedError(SinkError):
    """A newer incarnation of the same sink subtask took over its transactional id: this one must stop."""


class Epoch(msgspec.Struct, frozen=True):
    """The records a sink subtask received between checkpoint barriers ``id - 1`` and ``id``, in order."""

    id: int
    records: list[StagedRecord]


class SinkState(msgspec.Struct):
    """A sink subtask's checkpointed state: its closed epochs not yet committed to Kafka, oldest first."""

    epochs: list[Epoch] = msgspec.field(default_factory=list)

    def to_bytes(self) -> bytes:
        """The state as msgpack."""
        return msgspec.msgpack.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SinkState:
        """The state from :meth:`to_bytes`'s msgpack."""
        return msgspec.msgpack.decode(data, type=cls)


def marker_key(sink_name: str, subtask: int) -> str:
    """The key of a sink subtask's commit markers in the marker topic."""
    return f"{sink_name}-{subtask}"


def is_fencing(err: KafkaError) -> bool:
    """Whether a failed transactional call means the producer is fenced (or otherwise dead for good)."""
    return err.code() in FENCING_CODES or err.fatal()


def wait_stable(bootstrap: str, topic: str, timeout_s: float) -> None:
    """Wait until every transaction that had written to ``topic`` when this was called is decided.

    A read_committed reader stops at the last stable offset (LSO), which an
    open transaction holds back; a record committed *after* that open
    transaction began sits beyond the LSO until it ends. Waiting until the
    LSO reaches the log end as it was at the call makes a following
    read_committed read see every record committed before the call.
    """
    ends = {p: hwm for p, (_, hwm) in stable_and_end_offsets(bootstrap, [topic]).get(topic, {}).items()}
    deadline = time.monotonic() + timeout_s
    while True:
        stable = {p: lso for p, (lso, _) in stable_and_end_offsets(bootstrap, [topic]).get(topic, {}).items()}
        behind = sorted(p for p, end in ends.items() if stable.get(p, -1) < end)
        if not behind:
            return
        if time.monotonic() >= deadline:
            msg = (f"open transactions on {topic} partitions {behind} did not end within {timeout_s:.0f} s "
                   f"(a hanging transaction?)")
            raise SinkError(msg)
        time.sleep(0.05)


def read_markers(bootstrap: str, marker_topic: str, timeout_s: float = 120.0) -> dict[str, int]:
    """The latest committed epoch of every sink subtask key in ``marker_topic`` (read_committed)."""
    wait_stable(bootstrap, marker_topic, timeout_s)
    latest: dict[str, int] = {}
    for key, value in _read_committed(bootstrap, marker_topic, timeout_s):
        if key is None or value is None:  # a tombstone: nobody writes them, compaction may
            continue
        name, epoch = key.decode(), int(value)
        latest[name] = max(epoch, latest.get(name, epoch))  # epoch ids only grow, so max = latest
    return latest


def _read_committed(bootstrap: str, topic: str, timeout_s: float) -> list[KeyValue]:
    """(key, value) of every record of ``topic`` up to its last stable offset.

    Like :func:`harness.kafka.client.read_all`, tuned for latency: a restore
    waits on this, and recovery time is measured (short fetch waits, polling
    one message at a time instead of half-second batches).
    """
    md = admin(bootstrap).list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error is not None:
        msg = f"marker topic {topic} does not exist (the engine creates it, compacted, before deploying sinks)"
        raise SinkError(msg)
    parts = sorted(md.topics[topic].partitions)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sg-markers-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True, "fetch.wait.max.ms": 10, "log_level": 3})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        return _poll_to_end(consumer, topic, len(parts), timeout_s)
    finally:
        consumer.close()


def _poll_to_end(consumer: Consumer, topic: str, partitions: int, timeout_s: float) -> list[KeyValue]:
    out: list[KeyValue] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(at_end) < partitions:
        if time.monotonic() >= deadline:
            msg = f"reading {topic} (read_committed) did not reach its end within {timeout_s:.0f} s"
            raise SinkError(msg)
        rec = consumer.poll(0.05)
        if rec is None:
            continue
        err = rec.error()
        if err is not None and err.code() == KafkaError._PARTITION_EOF:
            partition = rec.partition()
            assert partition is not None  # an end-of-partition event names its partition
            at_end.add(partition)
        elif err is not None:
            raise KafkaException(err)
        else:
            at_end.discard(rec.partition())
            out.append((rec.key(), rec.value()))
    return out


class WriteAheadSink:
    """One sink subtask writing to a Kafka topic (and side-output topics) under ``guarantee``.

    Calls are blocking. ``write`` and ``snapshot`` must come in stream order
    (a record written after ``snapshot(e)`` belongs to epoch ``e + 1``);
    ``notify_complete`` may come from another thread: staging is guarded by a
    lock and transactions run one at a time. Call :meth:`open` before
    anything else and :meth:`close` at the end, also after an error.

    exactly_once: writes nothing until a checkpoint completes, then commits
    the completed epochs and a marker atomically. at_least_once (and
    at_most_once, which a sink cannot weaken further): writes straight
    through with an idempotent producer; ``snapshot`` flushes.
    """

    def __init__(self, *, bootstrap: str, topic: str, marker_topic: str, app_id: str, sink_name: str,
                 subtask: int, guarantee: Guarantee, transaction_timeout_ms: int = 60000) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.marker_topic = marker_topic
        self.transactional_id = f"{app_id}-{sink_name}-{subtask}"
        self.marker_key = marker_key(sink_name, subtask)
        self.guarantee = guarantee
        self.transaction_timeout_ms = transaction_timeout_ms
        self._eos = guarantee is Guarantee.exactly_once
        self._timeout_s = transaction_timeout_ms / 1000
        self._producer: Producer | None = None
        self._lock = threading.Lock()  # guards the staged records, epochs and ids below
        self._commit_lock = threading.Lock()  # one transaction at a time
        self._current: list[StagedRecord] = []
        self._pending: list[Epoch] = []
        self._last_closed: int | None = None
        self._last_committed: int | None = None
        self._delivery_error: KafkaError | None = None
        self._fenced = False

    @property
    def last_committed(self) -> int | None:
        """The newest epoch id known committed for this subtask (its marker); None if none (or not exactly_once)."""
        return self._last_committed

    # -- lifecycle -----------------------------------------------------------------------
    def open(self, restored: SinkState | None = None) -> int:
        """Start the producer; under exactly_once fence zombies and re-commit ``restored``'s uncommitted epochs.

        Returns the number of records re-committed. Raises :class:`SinkFencedError`
        when a newer incarnation of this subtask fenced this one meanwhile.
        """
        if self._producer is not None:
            msg = f"sink {self.transactional_id} is already open"
            raise RuntimeError(msg)
        self._producer = Producer(self._config())
        if not self._eos:
            return 0
        epochs = restored.epochs if restored is not None else []
        with self._commit_lock:
            # Fence first: after this no older incarnation can commit, so the markers read next are final.
            self._transactional("init_transactions", lambda p: p.init_transactions(self._timeout_s))
            committed = read_markers(self.bootstrap, self.marker_topic, self._timeout_s * 2).get(self.marker_key)
            todo = _uncommitted(epochs, committed)
            written = self._commit(todo, todo[-1].id) if todo else 0
            with self._lock:
                self._last_committed = todo[-1].id if todo else committed
                self._last_closed = _max_id(self._last_committed, *(ep.id for ep in epochs))
        return written

    def close(self) -> None:
        """Release the producer. Never commits staged epochs; at_least_once flushes what it wrote (bounded).
        A commit in flight on another thread finishes first (its own timeout bounds it)."""
        with self._commit_lock:
            producer, self._producer = self._producer, None
            if producer is None:
                return
            if not self._eos:
                producer.flush(CLOSE_FLUSH_S)
            producer.purge()
            if self._fenced:  # nothing to abort: the broker did that when it fenced us
                return
            try:
                producer.close()  # aborts a transaction left open by a failed call
            except KafkaException:
                pass

    # -- the stream ----------------------------------------------------------------------
    def write(self, key: str | None, value: bytes, timestamp_ms: int | None = None, topic: str | None = None) -> None:
        """Add one output record for ``topic`` (default: the main topic).

        Staged in the current epoch (exactly_once) or produced now.
        """
        topic = topic or self.topic
        if self._eos:
            with self._lock:
                self._current.append((key, value, timestamp_ms, topic))
            return
        self._produce(topic, key, value, timestamp_ms)
        self._live().poll(0)

    def snapshot(self, checkpoint_id: int) -> SinkState:
        """At barrier ``checkpoint_id``: close the current epoch and return the state to checkpoint.

        at_least_once: flush (raising if a record was not acknowledged) and return an empty state.
        """
        if not self._eos:
            self._flush_through()
            return SinkState()
        with self._lock:
            self._check_grows(checkpoint_id)
            if self._current:  # an empty epoch needs no transaction and no marker
                self._pending.append(Epoch(checkpoint_id, self._current))
                self._current = []
            self._last_closed = checkpoint_id
            return SinkState(epochs=list(self._pending))

    def notify_complete(self, checkpoint_id: int) -> int:
        """Checkpoint ``checkpoint_id`` is complete: commit every pending epoch ``<=`` it, with its marker.

        Returns the number of records committed (0 when nothing was pending,
        and always under at_least_once). Raises :class:`SinkFencedError` when
        fenced; other Kafka errors propagate with the epochs still pending.
        """
        if not self._eos:
            return 0
        with self._commit_lock:
            with self._lock:
                due = [ep for ep in self._pending if ep.id <= checkpoint_id]
            if not due:
                return 0
            written = self._commit(due, checkpoint_id)
            with self._lock:
                self._pending = [ep for ep in self._pending if ep.id > checkpoint_id]
                self._last_committed = max(checkpoint_id, self._last_committed or checkpoint_id)
        return written

    # -- internals -----------------------------------------------------------------------
    def _config(self) -> dict:
        conf = {"bootstrap.servers": self.bootstrap, "client.id": self.transactional_id, **PRODUCER_CONFIG}
        if self._eos:
            conf.update({"transactional.id": self.transactional_id,
                         "transaction.timeout.ms": self.transaction_timeout_ms})
        else:
            conf["on_delivery"] = self._on_delivery
        return conf

    def _live(self) -> Producer:
        if self._producer is None:
            msg = f"sink {self.transactional_id} is not open"
            raise RuntimeError(msg)
        return self._producer

    def _check_grows(self, checkpoint_id: int) -> None:
        # An epoch id at or below a committed marker would be taken as committed on restore: lost data.
        floor = _max_id(self._last_closed, self._last_committed)
        if floor is not None and checkpoint_id <= floor:
            msg = (f"sink {self.transactional_id}: checkpoint id {checkpoint_id} does not exceed {floor}; "
                   f"epoch ids must only grow")
            raise ValueError(msg)

    def _commit(self, epochs: list[Epoch], marker_epoch: int) -> int:
        """One transaction: the records of ``epochs`` in order, then the marker ``marker_epoch``."""
        def run(producer: Producer) -> None:
            producer.begin_transaction()
            try:
                for epoch in epochs:
                    for key, value, ts, topic in epoch.records:
                        self._produce(topic, key, value, ts)
                self._produce(self.marker_topic, self.marker_key, str(marker_epoch).encode(), None)
                _commit_transaction(producer, self._timeout_s)
            except KafkaException as e:
                _abort_if_abortable(producer, e, self._timeout_s)
                raise

        self._transactional("commit", run)
        return sum(len(ep.records) for ep in epochs)

    def _transactional(self, what: str, call: Callable[[Producer], object]) -> None:
        try:
            call(self._live())
        except KafkaException as e:
            err = _kafka_error(e)
            if err is not None and is_fencing(err):
                self._fenced = True
                msg = f"sink {self.transactional_id}: {what} failed, fenced by a newer incarnation: {err.str()}"
                raise SinkFencedError(msg) from e
            raise

    def _produce(self, topic: str, key: str | None, value: bytes, timestamp_ms: int | None) -> None:
        producer = self._live()
        kwargs: dict = {"key": key.encode() if key is not None else None, "value": value}
        if timestamp_ms is not None:
            kwargs["timestamp"] = int(timestamp_ms)
        while True:
            try:
                producer.produce(topic, **kwargs)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)

    def _on_delivery(self, err: KafkaError | None, _msg) -> None:
        if err is not None and self._delivery_error is None:
            self._delivery_error = err

    def _flush_through(self) -> None:
        remaining = self._live().flush(self._timeout_s)
        err = self._delivery_error
        if err is not None:
            if is_fencing(err):
                self._fenced = True
                msg = f"sink {self.transactional_id}: producer failed for good: {err.str()}"
                raise SinkFencedError(msg)
            raise KafkaException(err)
        if remaining:
            msg = f"sink {self.transactional_id}: {remaining} records not acknowledged within {self._timeout_s:.0f} s"
            raise SinkError(msg)


def _uncommitted(epochs: Iterable[Epoch], committed: int | None) -> list[Epoch]:
    """The epochs a restore must re-commit, oldest first: those newer than the latest marker."""
    return sorted((ep for ep in epochs if committed is None or ep.id > committed), key=lambda ep: ep.id)


def _max_id(*ids: int | None) -> int | None:
    known = [i for i in ids if i is not None]
    return max(known) if known else None


def _kafka_error(exc: KafkaException) -> KafkaError | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None


def _commit_transaction(producer: Producer, timeout_s: float, attempts: int = 3) -> None:
    """Commit, calling again on a retriable error (a timed-out commit may have gone through: never abort it)."""
    for attempt in range(1, attempts + 1):
        try:
            producer.commit_transaction(timeout_s)
            return
        except KafkaException as e:
            err = _kafka_error(e)
            if attempt == attempts or err is None or not err.retriable():
                raise


def _abort_if_abortable(producer: Producer, exc: KafkaException, timeout_s: float) -> None:
    """Abort the open transaction when the error calls for it, so the producer can try again later."""
    err = _kafka_error(exc)
    if err is None or not err.txn_requires_abort():
        return
    try:
        producer.abort_transaction(timeout_s)
    except KafkaException:
        pass  # the original error is the one worth reporting
