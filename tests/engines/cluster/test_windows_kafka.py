"""Event-time windows end to end on the cluster engine: watermarks, firing once, the late side output."""

from __future__ import annotations

import uuid
from collections import defaultdict

import orjson
import pytest
from confluent_kafka import Producer

from engines.cluster import ClusterEngine
from harness.api import DeploySpec, Guarantee, id_checksum
from harness.api.pipeline import CHECKSUM_MOD
from harness.kafka.client import Record, delete_topics, list_topics, read_all
from harness.proc import wait_until

pytestmark = pytest.mark.kafka

T0 = 1_700_000_000_000          # a multiple of the 5 s window size
SIZE, GRACE = 5000, 2000         # scenarios.jobs:windowed_count
KEYS = [f"k{i}" for i in range(5)]
PARTITIONS = 2


def on_time_events(n: int = 300) -> list[dict]:
    """Events over 30 s of event time, out of order by up to 1.5 s (within the 2 s bound): none is late."""
    return [{"id": i, "k": KEYS[i % len(KEYS)], "v": i % 7 + 1, "et": T0 + i * 100 - (i * 37 % 1500), "st": 10 * i}
            for i in range(n)]


def flush_events() -> list[dict]:
    """One event per partition far ahead in event time: the watermark passes every window of on_time_events."""
    return [{"id": 1000 + p, "k": "flush", "v": 0, "et": T0 + 60_000, "st": 0} for p in range(PARTITIONS)]


def definitely_late_events() -> list[dict]:
    """Events for the first window, which fires at T0 + 6999: ~50 s behind the watermark, far beyond size + grace."""
    return [{"id": 2000 + j, "k": KEYS[j % len(KEYS)], "v": 100, "et": T0 + 1000 + j * 100, "st": 0} for j in range(10)]


def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    """Write events round-robin over the partitions, in list order per partition, with CreateTime = et."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "log_level": 3})
    for i, event in enumerate(events):
        producer.produce(topic, key=event["k"].encode(), value=orjson.dumps(event), partition=i % PARTITIONS,
                         timestamp=event["et"])
    assert producer.flush(30) == 0


def decoded(records: list[Record]) -> list[dict]:
    return [orjson.loads(value_of(r)) for r in records]


def value_of(record: Record) -> bytes:
    """A record's value: the engine writes no tombstones to its output and late topics."""
    assert record.value is not None
    return record.value


def expected_windows(events: list[dict], late: set[tuple[int, int]]) -> dict[tuple[str, int], dict]:
    """(key, window start) -> the aggregate windowed_count must emit, leaving out the (id, start) pairs declared late."""
    windows: dict[tuple[str, int], dict] = defaultdict(lambda: {"n": 0, "s": 0, "h": 0, "st_max": 0})
    for e in events:
        ws = e["et"] - e["et"] % SIZE
        if (e["id"], ws) in late:
            continue
        w = windows[(e["k"], ws)]
        w["n"] += 1
        w["s"] += e["v"]
        w["h"] = (w["h"] + id_checksum(e["id"])) % CHECKSUM_MOD
        w["st_max"] = max(w["st_max"], e["st"])
    return dict(windows)


def test_windowed_count_fires_each_window_once_and_sends_late_events_aside(bootstrap, topic_factory, tmp_path):
    topics = {name: topic_factory(f"win-{name}", partitions=PARTITIONS) for name in ("input", "output", "late")}
    prefix = f"sg.test.win-{uuid.uuid4().hex[:8]}."
    on_time = on_time_events()
    produce(bootstrap, topics["input"], on_time + flush_events())
    spec = DeploySpec(job="scenarios.jobs:windowed_count", parallelism=2, guarantee=Guarantee.exactly_once,
                      bootstrap=bootstrap, topics=topics, prefix=prefix, partitions=PARTITIONS, run_dir=tmp_path,
                      config={"checkpoint_interval_ms": 300, "idle_timeout_ms": 15_000})
    deployment = None
    try:
        deployment = ClusterEngine().deploy(spec)
        deployment.wait_ready(60)

        def outputs() -> list[dict]:
            return decoded(read_all(bootstrap, topics["output"], timeout_s=20))

        def lates() -> list[dict]:
            return decoded(read_all(bootstrap, topics["late"], timeout_s=20))

        wait_until(lambda: sum(w["n"] for w in outputs()) + len(lates()) >= len(on_time), 40,
                   lambda: f"windows of {len(on_time)} events not all fired: {outputs()}", interval=0.5)
        late_ids = {e["id"] for e in definitely_late_events()}
        produce(bootstrap, topics["input"], definitely_late_events())  # the watermark has passed their window
        wait_until(lambda: late_ids <= {r["id"] for r in lates()}, 30,
                   lambda: f"late events {sorted(late_ids)} not in the late topic: {lates()}", interval=0.5)

        out_records = read_all(bootstrap, topics["output"], timeout_s=20)
        late = lates()
    finally:
        if deployment is not None:
            deployment.stop()
        delete_topics(bootstrap, list_topics(bootstrap, prefix))

    windows = decoded(out_records)
    fired = [(w["k"], w["ws"]) for w in windows]
    assert len(fired) == len(set(fired)), "a window was emitted twice"
    declared_late = {(r["id"], r["ws"]) for r in late}
    assert {r["id"] for r in late} == late_ids, "only the definitely-late events are late"
    assert all(r["why"] == "watermark passed" and r["we"] == r["ws"] + SIZE for r in late)
    expected = expected_windows(on_time + definitely_late_events(), declared_late)
    assert len(expected) >= 30  # 5 keys x 7 windows: every input counted in exactly one fired window
    assert {(w["k"], w["ws"]): {f: w[f] for f in ("n", "s", "h", "st_max")} for w in windows} == expected
    assert all(w["we"] == w["ws"] + SIZE for w in windows)
    assert all((r.key, r.timestamp_ms) == (w["k"].encode(), w["we"]) for r, w in zip(out_records, windows))
