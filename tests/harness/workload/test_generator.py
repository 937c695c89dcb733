"""The generator's config (as the runner writes it) and its send loop, with a fake producer (no Kafka)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
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

    def produce(self, topic, value=None, key=None, partition=None, timestamp=None):
        self.produced.append({"topic": topic, "key": key, "value": orjson.loads(value), "timestamp": timestamp,
                              "partition": partition, "raw": value})

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


def _run_slices(monkeypatch, cfg_fields: dict[str, Any], processes: int) -> list[tuple[generator.Summary, list[dict]]]:
    monkeypatch.setattr(generator, "Producer", FakeProducer)
    monkeypatch.setattr(generator.signal, "signal", lambda *_: None)
    t0 = time.time()
    out = []
    for j in range(processes):  # one after the other: each on the same schedule, so the later ones run behind it
        cfg = runner_config(**{**cfg_fields, "t0": t0, "process": j, "processes": processes})
        out.append((generator.run(cfg), FakeProducer.instances[-1].produced))
    return out


@pytest.mark.parametrize("transforms", [{}, {"late": {"fraction": 0.05, "delay": 60}}], ids=["plain", "late"])
def test_processes_share_the_schedule_by_partition_and_together_send_it_all(monkeypatch, transforms):
    fields = {"rate": 20000.0, "duration_s": 0.5, "partitions": 6, "keys": 50, "max_schedule_lag_s": 60.0,
              **transforms}
    slices = _run_slices(monkeypatch, fields, 3)
    expected = list(runner_config(**{**fields, "t0": 0.0}).schedule())
    assert len(expected) == 10000
    for j, (summary, produced) in enumerate(slices):
        assert summary.sent == summary.acked == len(produced) and not summary.stopped_early
        assert {p["partition"] % 3 for p in produced} == {j}
        mine = [s.event for s in expected if s.partition is not None and s.partition % 3 == j]
        shifted = [{**e, "et": p["value"]["et"], "st": p["value"]["st"]} for e, p in zip(mine, produced)]
        assert [p["value"] for p in produced] == shifted  # the same events, in send order, at this run's times
        assert all(p["raw"] == orjson.dumps(p["value"]) for p in produced)  # the wire format of one event dict
    assert sum(s.sent for s, _ in slices) == 10000
    merged = generator.merge([asdict(s) for s, _ in slices])
    assert merged["sent"] == 10000 and sum(merged["per_second"]) == 10000 and merged["processes"] == 3
    assert [row["process"] for row in merged["spread"]] == [0, 1, 2]


def test_the_cheap_path_sends_what_the_general_path_would():
    from harness.workload.schedule import Schedule

    common: dict[str, Any] = {"seed": 11, "keys": 300, "rate": 25000.0, "duration_s": 1.0, "t0": 1_700_000_000.25,
                              "partitions": 6}
    extras: list[dict[str, Any]] = [{}, {"event_epoch_ms": 1_600_000_000_000}]
    for extra in extras:
        schedule = Schedule(**common, **extra)
        for count in (1, 2, 4):
            for j in range(count):
                sends = list(schedule.sends(j, count))
                batched = [(at, p, k, v, ts) for b in schedule.batches(j, count)
                           for at, p, k, v, ts in zip(b.at_us, b.partitions, b.keys, b.values, b.timestamps)]
                assert batched == [(s.at_us, s.partition, s.event["k"].encode(), orjson.dumps(s.event), s.event["et"])
                                   for s in sends]


def test_a_slice_needs_partitions_and_a_valid_index():
    with pytest.raises(ConfigError, match="partition count"):
        runner_config(processes=2, process=0)
    with pytest.raises(ConfigError, match="slice 2 of 2"):
        runner_config(processes=2, process=2, partitions=4)


def test_one_process_behind_its_schedule_makes_the_merged_load_invalid():
    ok = {"sent": 10, "acked": 10, "failed": 0, "max_lag_s": 0.01, "valid": True, "reason": "", "t0": 1.0,
          "stopped_early": False, "per_second": [5, 5], "lag_per_second": [0.01, 0.0], "process": 0, "cpu_s": 1.0}
    late = {**ok, "process": 1, "max_lag_s": 3.5, "valid": False, "per_second": [4, 6, 1],
            "lag_per_second": [0.0, 3.5, 0.2],
            "reason": "the generator process 2 of 2 fell 3.50 s behind its schedule (tolerance 2.00 s)"}
    merged = generator.merge([ok, late])
    assert not merged["valid"] and "process 2 of 2 fell 3.50 s" in merged["reason"]
    assert merged["per_second"] == [9, 11, 1] and merged["lag_per_second"] == [0.01, 3.5, 0.2]
    assert merged["max_lag_s"] == 3.5 and merged["cpu_s"] == 2.0
