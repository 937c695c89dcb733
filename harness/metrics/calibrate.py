"""The ceiling: raw Kafka client limits on the broker a run uses, measured in the same invocation.

Three phases, each as fast as one client process of the harness can go on
this machine and broker: produce (acks=all, idempotent), consume (the
records just produced, read_committed), and a transactional copy
(consume, produce, offsets in the transaction, a commit every 100 ms — what
an exactly-once engine does at the least). Engine figures are reported as a
fraction of these, and the gate compares runs from different machines by
them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from harness.errors import ProcessError
from harness.kafka.client import QUIET, create_topics, delete_topics

PARTITIONS = 6
KEYS = 1000
COMMIT_INTERVAL_S = 0.1
JOIN_TIMEOUT_S = 60.0


def _produce(bootstrap: str, topic: str, seconds: float, payload: bytes) -> tuple[int, float]:
    """Produce for ``seconds``; returns (records acknowledged, seconds including the final flush)."""
    acked = 0
    failed: list[str] = []

    def on_delivery(err, _msg) -> None:
        nonlocal acked
        if err is None:
            acked += 1
        elif len(failed) < 3:
            failed.append(err.str())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "partitioner": "murmur2_random", **QUIET})
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        for _ in range(1000):
            try:
                producer.produce(topic, key=str(i % KEYS).encode(), value=payload, on_delivery=on_delivery)
                i += 1
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(60) or failed:
        msg = f"calibration: produce to {topic} failed: {failed or 'records still unacknowledged after 60 s'}"
        raise ProcessError(msg)
    return acked, time.monotonic() - start


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "isolation.level": "read_committed", "auto.offset.reset": "earliest", **QUIET})


def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 120.0) -> float:
    """Read ``expected`` records from the beginning; returns the seconds it took."""
    consumer = _consumer(bootstrap, f"sg.calibrate.{uuid.uuid4().hex[:6]}")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    start = time.monotonic()
    seen = 0
    try:
        while seen < expected:
            if time.monotonic() - start > timeout_s:
                msg = f"calibration: read {seen} of {expected} records from {topic} in {timeout_s:.0f} s"
                raise ProcessError(msg)
            seen += sum(1 for m in consumer.consume(1000, 0.1) if m.error() is None)
        return time.monotonic() - start
    finally:
        consumer.close()


def _copy(bootstrap: str, source: str, sink: str, seconds: float, available: int) -> tuple[int, float]:
    """Transactional consume-produce from ``source`` to ``sink`` for ``seconds`` (or until all is copied)."""
    group = f"sg.calibrate.copy.{uuid.uuid4().hex[:6]}"
    consumer = _consumer(bootstrap, group)
    consumer.subscribe([source])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": group, "linger.ms": 5,
                         "partitioner": "murmur2_random", **QUIET})
    producer.init_transactions(30)
    producer.begin_transaction()
    copied = committed = 0
    start: float | None = None  # set with last_commit on the first record
    last_commit = 0.0
    joined = time.monotonic()
    try:
        while committed < available:
            msgs = consumer.consume(1000, 0.1)
            if msgs and start is None:
                start = last_commit = time.monotonic()  # from the first record: the group join is not copying
            for m in msgs:
                if m.error() is None:
                    producer.produce(sink, key=m.key(), value=m.value())
                    copied += 1
            producer.poll(0)
            now = time.monotonic()
            if start is not None and (now - last_commit >= COMMIT_INTERVAL_S or copied >= available):
                producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                     consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
                committed, last_commit = copied, time.monotonic()
                if now - start >= seconds:
                    break
                producer.begin_transaction()
            elif start is None and now - joined > JOIN_TIMEOUT_S:
                msg = f"calibration: the copy consumer got nothing from {source} in {JOIN_TIMEOUT_S:.0f} s"
                raise ProcessError(msg)
        assert start is not None  # the loop commits only after a first record, and runs while available > 0
        return committed, time.monotonic() - start
    finally:
        consumer.close()


def calibrate(bootstrap: str, *, seconds: float = 3.0, payload_bytes: int = 100, replication: int = 1,
              log: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Measure the three ceilings; returns them in events/s, with how they were measured."""
    prefix = f"sg.calibrate-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}."
    source, sink = f"{prefix}input", f"{prefix}output"
    create_topics(bootstrap, {source: PARTITIONS, sink: PARTITIONS}, replication=replication)
    try:
        payload = b"x" * payload_bytes
        log(f"calibrating: produce for {seconds:g} s...")
        produced, produce_s = _produce(bootstrap, source, seconds, payload)
        log("calibrating: consume...")
        consume_s = _consume(bootstrap, source, produced)
        log(f"calibrating: transactional copy for {seconds:g} s...")
        copied, copy_s = _copy(bootstrap, source, sink, seconds, produced)
    except KafkaException as e:
        msg = f"calibration failed: {e.args[0].str() if e.args else e}"
        raise ProcessError(msg) from e
    finally:
        delete_topics(bootstrap, [source, sink])
    return {"produce_eps": round(produced / produce_s, 1), "consume_eps": round(produced / consume_s, 1),
            "txn_copy_eps": round(copied / copy_s, 1), "seconds": seconds, "payload_bytes": payload_bytes,
            "records": produced, "partitions": PARTITIONS}
