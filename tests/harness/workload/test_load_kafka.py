"""The load against a real broker: generator processes sharing a schedule, and locust (a master and two
workers) writing the same input for the same seed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.kafka.client import read_all
from harness.workload.load import GeneratorProcesses, LocustLoad

pytestmark = pytest.mark.kafka

PARTITIONS = 4


def _config(bootstrap: str, topic: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap": bootstrap, "topic": topic, "rate": 4000.0, "duration_s": 3.0, "keys": 200, "seed": 42,
            "t0": time.time() + 3.0, "max_schedule_lag_s": 2.0, "partitions": PARTITIONS,
            "event_epoch_ms": 1_767_225_600_000, **extra}


def _input(bootstrap: str, topic: str) -> dict[int, list[tuple[bytes | None, dict]]]:
    """Per partition, in offset order: each record's key and event without its send time (a run's own)."""
    out: dict[int, list[tuple[bytes | None, dict]]] = {}
    for r in read_all(bootstrap, topic, isolation="read_uncommitted"):
        assert r.value is not None
        event = orjson.loads(r.value)
        event.pop("st")
        out.setdefault(r.partition, []).append((r.key, event))
    return out


def _run(load: GeneratorProcesses | LocustLoad, t0: float) -> dict[str, Any]:
    load.start()
    try:
        return load.wait(t0 + 120)
    finally:
        load.stop()


def test_locust_workers_write_the_input_the_generator_writes_for_the_same_seed(bootstrap, topic_factory,
                                                                               tmp_path: Path):
    built_in, by_locust = topic_factory("gen", PARTITIONS), topic_factory("locust", PARTITIONS)
    (tmp_path / "g").mkdir()
    (tmp_path / "l").mkdir()
    cfg = _config(bootstrap, built_in)
    generated = _run(GeneratorProcesses(cfg, 2, tmp_path / "g"), cfg["t0"])
    cfg = _config(bootstrap, by_locust)
    located = _run(LocustLoad(cfg, 2, tmp_path / "l"), cfg["t0"])

    assert generated["valid"] and located["valid"], (generated["reason"], located["reason"])
    assert generated["sent"] == located["sent"] == 12_000
    assert located["processes"] == 2 and sorted(s["process"] for s in located["spread"]) == [0, 1]
    expected = _input(bootstrap, built_in)
    assert sum(len(v) for v in expected.values()) == 12_000 and len(expected) == PARTITIONS
    assert _input(bootstrap, by_locust) == expected
    stats = (tmp_path / "l" / "locust_stats.csv").read_text()
    assert "produce" in stats and by_locust in stats  # locust's own statistics saw the sends


def test_generator_processes_split_the_schedule_by_partition(bootstrap, topic_factory, tmp_path: Path):
    """Each process sends only its partitions' events: two carry about half the schedule each."""
    topic = topic_factory("spread", PARTITIONS)
    cfg = _config(bootstrap, topic, rate=20_000.0, duration_s=2.0)
    summary = _run(GeneratorProcesses(cfg, 2, tmp_path), cfg["t0"])
    assert summary["valid"], summary["reason"]
    sent = [s["sent"] for s in summary["spread"]]
    assert sum(sent) == 40_000 and all(10_000 < n < 30_000 for n in sent)
