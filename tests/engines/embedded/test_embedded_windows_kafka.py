"""The embedded engine's windows end to end on a real broker, across a crash of the instance.

A sliding-window job (10 s by 5 s, 2 s grace) runs under exactly_once. Each
partition gets a known event-time sequence: mostly in order with a little
disorder, some events behind stream-time by far more than size + grace. Half
way the instance is SIGKILLed and restarted; the second half starts with such
a late event, which only stays late if the task's stream-time survived the
crash. The outputs must equal, window for window, what an independent
reference computes from the inputs in partition order.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from engines.embedded import EmbeddedEngine
from harness.api import DeploySpec, Guarantee, id_checksum
from harness.api.pipeline import CHECKSUM_MOD
from harness.kafka.client import Record, delete_topics, list_topics, read_all
from harness.proc import wait_until

pytestmark = pytest.mark.kafka

SIZE, SLIDE, GRACE = 10_000, 5000, 2000  # scenarios.jobs:sliding_sum
PARTITIONS = 2
PER_PARTITION = 150
FIRST_HALF = 100
Event = dict[str, Any]


def event_of(record: Record) -> Event:
    """A record's JSON value: the engine writes no tombstones to its output and late topics."""
    assert record.value is not None
    return orjson.loads(record.value)


def is_definitely_late(i: int) -> bool:
    return i % 30 == 29 or i == FIRST_HALF  # the first event after the crash is one of them


def event_times(seed: int, t0: int) -> dict[int, list[Event]]:
    """Per partition, the events in the order they are written: et mostly rising, some far behind."""
    rng = random.Random(seed)
    out: dict[int, list[Event]] = {}
    next_id = 1
    for p in range(PARTITIONS):
        clock, events = t0, []
        for i in range(PER_PARTITION):
            clock += 150
            behind = 20_000 + rng.randrange(5000) if is_definitely_late(i) else rng.randrange(1500)
            events.append({"id": next_id, "k": f"{'abc'[i % 3]}{p}", "v": rng.randrange(100),
                           "et": clock - behind, "st": next_id})
            next_id += 1
        events.append({"id": next_id, "k": f"z{p}", "v": 0, "et": clock + 60_000, "st": next_id})  # closes the rest
        next_id += 1
        out[p] = events
    return out


def windows_containing(et: int) -> list[tuple[int, int]]:
    starts = range(et - et % SLIDE, et - SIZE, -SLIDE)
    return [(ws, ws + SIZE) for ws in starts]


def reference(per_partition: dict[int, list[Event]]) -> tuple[dict[tuple[str, int], dict], set[tuple[int, int]]]:
    """Closed windows (key, start) -> {n, s, h, we}, and the late (id, window start) pairs; stream-time per partition."""
    closed: dict[tuple[str, int], dict] = {}
    late: set[tuple[int, int]] = set()
    for events in per_partition.values():
        stream_time = max(e["et"] for e in events)  # the last event is the partition's maximum
        seen = -(1 << 62)
        members: dict[tuple[str, int, int], list[Event]] = {}
        for e in events:
            seen = max(seen, e["et"])
            for ws, we in windows_containing(e["et"]):
                if we + GRACE <= seen:
                    late.add((e["id"], ws))
                else:
                    members.setdefault((e["k"], ws, we), []).append(e)
        for (k, ws, we), evs in members.items():
            if we + GRACE <= stream_time:
                closed[(k, ws)] = {"we": we, "n": len(evs), "s": sum(e["v"] for e in evs),
                                   "h": sum(id_checksum(e["id"]) for e in evs) % CHECKSUM_MOD,
                                   "st_max": max(e["st"] for e in evs)}
    return closed, late


def produce(bootstrap: str, topic: str, batches: dict[int, list[Event]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "log_level": 0})
    for partition, events in batches.items():
        for e in events:
            p.produce(topic, key=e["k"].encode(), value=orjson.dumps(e), timestamp=e["et"], partition=partition)
    assert p.flush(30) == 0


def test_sliding_windows_are_exact_across_a_crash(bootstrap, topic_factory, tmp_path):
    topics = {name: topic_factory(name, partitions=PARTITIONS) for name in ("input", "output", "late")}
    prefix = f"sg.test.win.{uuid.uuid4().hex[:8]}."
    t0 = (int(time.time() * 1000) // SIZE) * SIZE - 600_000  # the past: brokers bound future timestamps
    events = event_times(seed=11, t0=t0)
    closed, late = reference(events)
    definitely_late = {e["id"] for evs in events.values() for i, e in enumerate(evs[:PER_PARTITION])
                       if is_definitely_late(i)}
    spec = DeploySpec(job="scenarios.jobs:sliding_sum", parallelism=1, guarantee=Guarantee.exactly_once,
                      bootstrap=bootstrap, topics=topics, prefix=prefix, partitions=PARTITIONS, run_dir=tmp_path,
                      config={"session_timeout_ms": 6000})
    deployment = EmbeddedEngine().deploy(spec)
    try:
        deployment.wait_ready(60)
        produce(bootstrap, topics["input"], {p: evs[:FIRST_HALF] for p, evs in events.items()})
        wait_until(lambda: deployment.lag() == 0, 30, "the first half was not committed")
        deployment.kill("instance-0")
        deployment.restart("instance-0")
        produce(bootstrap, topics["input"], {p: evs[FIRST_HALF:] for p, evs in events.items()})

        # under exactly_once the outputs of every committed input are committed with it
        wait_until(lambda: deployment.lag() == 0, 45,
                   f"the restarted instance did not commit all input (see {tmp_path}/embedded/*.log)")
        got = [(r, event_of(r)) for r in read_all(bootstrap, topics["output"])]
        declared = [event_of(r) for r in read_all(bootstrap, topics["late"])]
        assert [w for w, n in Counter((v["k"], v["ws"]) for _, v in got).items() if n > 1] == []  # no window twice
        assert all(r.key is not None and r.key.decode() == v["k"] and r.timestamp_ms == v["we"] for r, v in got)
        assert {(v["k"], v["ws"]): {f: v[f] for f in ("we", "n", "s", "h", "st_max")} for _, v in got} == closed
        assert Counter((d["id"], d["ws"]) for d in declared) == Counter(late)  # each late pair once
        assert definitely_late <= {d["id"] for d in declared}
    finally:
        deployment.stop()
        delete_topics(bootstrap, list_topics(bootstrap, prefix))
