"""Small Kafka client helpers shared by the harness: topics, and reading a topic to its end."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness.errors import ProcessError

QUIET = {"log_level": 0}


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **QUIET})


RUN_TOPIC_CONFIG = {"retention.ms": "-1"}
"""Config of every topic streamgauge creates, unless the caller overrides it.

Record timestamps are event times, which a scenario may put far in
the past (late data, lagging partitions). With the broker's time retention a
segment whose newest timestamp is older than ``retention.ms`` is deleted at
the next retention pass (the first one runs 30 s after a broker starts), inputs
and outputs alike: the oracle would lose ground truth and the checkers would
report outputs lost. A run deletes its topics when it ends, so they never
need time retention.
"""


def create_topics(bootstrap: str, topics: dict[str, int], *, replication: int = 1,
                  config: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
    """Create ``{name: partitions}`` with :data:`RUN_TOPIC_CONFIG` plus ``config``.

    An existing topic is an error (every run has its own prefix).
    """
    client = admin(bootstrap)  # must outlive the futures
    futures = client.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=replication, config={**RUN_TOPIC_CONFIG, **(config or {})})
         for t, n in topics.items()], operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as e:
            msg = f"could not create topic {name}: {e.args[0].str() if e.args else e}"
            raise ProcessError(msg) from e
    _wait_topics_visible(bootstrap, set(topics), timeout_s)


def _wait_topics_visible(bootstrap: str, names: set[str], timeout_s: float) -> None:
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout_s
    while True:
        md = a.list_topics(timeout=10)
        ready = {t for t in names if t in md.topics and md.topics[t].error is None
                 and all(p.leader >= 0 for p in md.topics[t].partitions.values())}
        if ready == names:
            return
        if time.monotonic() >= deadline:
            msg = f"topics {sorted(names - ready)} did not get partition leaders within {timeout_s:.0f} s"
            raise ProcessError(msg)
        time.sleep(0.1)


def delete_topics(bootstrap: str, names: list[str], timeout_s: float = 30.0) -> None:
    """Delete topics; missing ones are ignored."""
    if not names:
        return
    client = admin(bootstrap)  # must outlive the futures
    futures = client.delete_topics(list(names), operation_timeout=timeout_s)
    for fut in futures.values():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as e:
            if e.args and e.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def list_topics(bootstrap: str, prefix: str = "") -> list[str]:
    md = admin(bootstrap).list_topics(timeout=10)
    return sorted(t for t in md.topics if t.startswith(prefix))


def read_all(bootstrap: str, topic: str, *, isolation: str = "read_committed",
             timeout_s: float = 60.0) -> list[Record]:
    """Every record of ``topic`` visible under ``isolation``, from the start to the current end.

    The end is measured first (the last stable offset for read_committed, the
    high watermark otherwise); a partition is done when the consumer reports
    end-of-partition at or past it, so an early end-of-partition report (before
    the first fetch caught up) cannot cut the read short. Raises when that
    takes longer than ``timeout_s``.
    """
    client = admin(bootstrap)
    md = client.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error is not None:
        msg = f"topic {topic} does not exist"
        raise ProcessError(msg)
    parts = sorted(md.topics[topic].partitions)
    target = _end_offsets(client, topic, parts, isolation)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"sg-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "isolation.level": isolation,
        "enable.partition.eof": True, "auto.offset.reset": "earliest", **QUIET,
    })
    out: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(parts):
            if time.monotonic() >= deadline:
                msg = (f"reading {topic} ({isolation}) did not reach the end of partitions "
                       f"{sorted(set(parts) - at_end)} within {timeout_s:.0f} s")
                raise ProcessError(msg)
            for m in consumer.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        partition, offset = _position(m)
                        if offset >= target[partition]:
                            at_end.add(partition)
                        continue
                    raise KafkaException(err)
                partition, offset = _position(m)
                at_end.discard(partition)
                out.append(Record(topic, partition, offset, m.key(), m.value(), m.timestamp()[1]))
    finally:
        consumer.close()
    return out


def _position(m: Message) -> tuple[int, int]:
    """The partition and offset of a consumed record or end-of-partition event (both always set there)."""
    partition, offset = m.partition(), m.offset()
    assert partition is not None and offset is not None
    return partition, offset


def _end_offsets(client: AdminClient, topic: str, parts: list[int], isolation: str,
                 timeout_s: float = 15.0) -> dict[int, int]:
    """partition -> end offset as ``isolation`` sees it (LSO for read_committed, else the high watermark)."""
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import OffsetSpec

    level = IsolationLevel.READ_COMMITTED if isolation == "read_committed" else IsolationLevel.READ_UNCOMMITTED
    futures = client.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in parts},
                                  isolation_level=level, request_timeout=timeout_s)
    return {tp.partition: fut.result(timeout=timeout_s).offset for tp, fut in futures.items()}


def stable_and_end_offsets(bootstrap: str, topics: list[str], timeout_s: float = 15.0) -> dict[str, dict[int, tuple[int, int]]]:
    """topic -> partition -> (last stable offset, high watermark).

    The two differ while a transaction is open on the partition; a hanging
    transaction keeps them apart past the transaction timeout.
    """
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import OffsetSpec

    if not topics:
        return {}
    client = admin(bootstrap)
    md = client.list_topics(timeout=10)
    tps = [TopicPartition(t, p) for t in topics if t in md.topics for p in md.topics[t].partitions]
    if not tps:
        return {}
    out: dict[str, dict[int, tuple[int, int]]] = {}
    stable = client.list_offsets({tp: OffsetSpec.latest() for tp in tps},
                                 isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout_s)
    end = client.list_offsets({tp: OffsetSpec.latest() for tp in tps},
                              isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=timeout_s)
    for tp, fut in stable.items():
        lso = fut.result(timeout=timeout_s).offset
        hwm = end[tp].result(timeout=timeout_s).offset
        out.setdefault(tp.topic, {})[tp.partition] = (lso, hwm)
    return out
