"""The generator's config (as the runner writes it) and its send loop, with a fake producer (no Kafka)."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import orjson
import pytest

import harness.workload.generator as generator
from harness.errors import ConfigError
from harness.kafka.partitioner import partition_for
from harness.scenario.model import Workload
from harness.workload.generator import GeneratorConfig, workload_fields
from harness.workload.transforms import Disorder, Idle, Lagging, Late

RUNNER_FIELDS: dict[str, Any] = {"bootstrap": "localhost:9092", "topic": "input", "rate": 1000.0, "duration_s": 2.0, "keys": 20,
                 "seed": 3, "summary_path": "/nonexistent/summary.json", "t0": 1_700_000_000.0,
                 "skew_kind": "uniform", "skew_s": 0.0, "max_schedule_lag_s": 2.0}


def runner_config(**fields: Any) -> GeneratorConfig:
    """The runner's fields with ``fields`` over them, transforms given as mappings (as ``load`` reads the JSON)."""
    return GeneratorConfig(**{**RUNNER_FIELDS, **fields})


def test_the_fields_the_runner_passes_today_still_work():
    cfg = GeneratorConfig(**RUNNER_FIELDS)

    assert (cfg.partitions, cfg.disorder, cfg.late, cfg.lagging, cfg.idle) == (None, None, None, None, None)
    assert len(list(cfg.schedule())) == 2000


def test_a_scenarios_transforms_round_trip_through_the_json_config(tmp_path):
    workload = Workload.model_validate({
        "rate": "1000/s", "duration": "2s", "disorder": {"fraction": 0.1, "max_delay": "2s"},
        "late": {"fraction": 0.001, "delay": "60s"}, "lagging": {"partition": 0, "delay": "500ms"},
        "idle": {"partition": 1, "at": "1s", "for": "500ms"}})
    path = tmp_path / "generator.json"
    path.write_text(json.dumps({**RUNNER_FIELDS, **workload_fields(workload, 3)}))

    cfg = GeneratorConfig.load(str(path))

    assert cfg.partitions == 3
    assert cfg.disorder == Disorder(0.1, 2000)
    assert cfg.late == Late(0.001, 60_000)
    assert cfg.lagging == Lagging(0, 500)
    assert cfg.idle == Idle(1, 1000, 500)


def test_workload_fields_leaves_unset_transforms_out():
    workload = Workload.model_validate({"rate": "10/s", "duration": "1s"})

    assert workload_fields(workload, None) == {"partitions": None}


def test_a_transform_naming_a_partition_needs_the_partition_count():
    with pytest.raises(ConfigError, match="needs the topic's partition count"):
        runner_config(lagging={"partition": 0, "delay": 1})


def test_a_bad_transform_spec_names_the_transform():
    with pytest.raises(ConfigError, match="disorder"):
        runner_config(disorder={"fraction": 2, "max_delay": 1})
    with pytest.raises(ConfigError, match="late"):
        runner_config(late={"fraction": 0.1})


class FakeProducer:
    """Records what would have been produced."""

    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, config: dict) -> None:
        self.config = config
        self.produced: list[dict] = []
        FakeProducer.instances.append(self)

    def produce(self, topic, key, value, timestamp, on_delivery, partition=None):
        self.produced.append({"topic": topic, "key": key, "value": orjson.loads(value), "timestamp": timestamp,
                              "partition": partition})
        on_delivery(None, None)

    def poll(self, _timeout):
        return 0

    def flush(self, _timeout):
        return 0


def test_the_generator_sends_the_schedule_to_each_keys_partition(monkeypatch):
    monkeypatch.setattr(generator, "Producer", FakeProducer)
    monkeypatch.setattr(generator.signal, "signal", lambda *_: None)  # keep pytest's own SIGTERM handling
    cfg = runner_config(rate=2000.0, duration_s=0.3, t0=time.time(), partitions=4,
                        late={"fraction": 0.05, "delay": 60}, idle={"partition": 2, "at": 0.1, "for": 0.1})

    summary = generator.run(cfg)

    produced = FakeProducer.instances[-1].produced
    expected = list(cfg.schedule())
    assert summary.sent == summary.acked == len(expected) == 600
    assert [p["value"] for p in produced] == [s.event for s in expected]
    assert all(p["partition"] == partition_for(p["key"].decode(), 4) for p in produced)
    assert all(p["timestamp"] == p["value"]["et"] for p in produced)
    assert summary.per_second is not None
    assert sum(summary.per_second) == 600
