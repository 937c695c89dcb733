"""The probe: a read_committed consumer that stamps every output on receipt."""

from __future__ import annotations

import threading
import time
import uuid
from array import array

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


class Probe(threading.Thread):
    """Reads the output topic from the beginning while a run goes on.

    For each output it keeps the receipt time (µs), the scheduled send time
    of the input it reflects (``st``; for a window, its latest input's
    ``st_max``), its id, the window end (``we``) of a window output, and its
    (partition, offset).
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(name="probe", daemon=True)
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.receipt_us = array("q")
        self.st_us = array("q")
        self.ids = array("q")
        self.positions: list[tuple[int, int]] = []
        self.window_end_ms = array("q")     # per output: the window end ("we"), -1 for non-window outputs
        self.ids_seen: set[int] = set()
        self.last_receipt = 0.0
        self.error: str | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"sg-probe-{uuid.uuid4().hex[:8]}",
                             "isolation.level": "read_committed", "enable.auto.commit": False,
                             "fetch.wait.max.ms": 20, "log_level": 3})
        try:
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            while not self._stop_event.is_set():
                msgs = consumer.consume(num_messages=5000, timeout=0.1)
                now_us = int(time.time() * 1_000_000)
                with self._lock:
                    for m in msgs:
                        err = m.error()
                        if err is not None:
                            if err.code() != KafkaError._PARTITION_EOF:
                                self.error = err.str()
                            continue
                        value, partition, offset = m.value(), m.partition(), m.offset()
                        assert value is not None and partition is not None and offset is not None  # a consumed record
                        out = orjson.loads(value)
                        self.receipt_us.append(now_us)
                        st = out.get("st", out.get("st_max"))
                        self.st_us.append(int(st) if isinstance(st, int) else -1)
                        we = out.get("we")
                        self.window_end_ms.append(int(we) if isinstance(we, int) else -1)
                        oid = out.get("id")
                        self.ids.append(int(oid) if isinstance(oid, int) else -1)
                        if isinstance(oid, int):
                            self.ids_seen.add(oid)
                        self.positions.append((partition, offset))
                    if msgs:
                        self.last_receipt = time.monotonic()
        except Exception as e:  # noqa: BLE001 - reported in results, never silently passing
            self.error = f"probe failed: {e}"
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def seen_count(self) -> int:
        """Outputs received so far (duplicates and windows included)."""
        with self._lock:
            return len(self.receipt_us)

    def has_all(self, expected: set[int]) -> bool:
        with self._lock:
            return expected <= self.ids_seen
