"""The oracle and checkers against a correct running_sum output: outputs judged per second (no Kafka)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import orjson

from harness.api.pipeline import load_job
from harness.check import Observed, Oracle, run_checks
from harness.kafka.client import Record
from harness.kafka.partitioner import partition_for
from harness.workload.schedule import Schedule

JOB = "scenarios.jobs:running_sum"


def correct_run(events: int, partitions: int = 6, keys: int = 1000, seed: int = 5) -> Observed:
    """The input topic of ``events`` seeded events and the output topic a correct running_sum engine writes."""
    schedule = Schedule(seed=seed, keys=keys, rate=100_000.0, duration_s=events / 100_000, t0=1_700_000_000.0,
                        partitions=partitions)
    next_in: dict[int, int] = defaultdict(int)
    inputs = []
    for send in schedule:
        assert send.partition is not None
        inputs.append(Record("input", send.partition, next_in[send.partition], send.event["k"].encode(),
                             orjson.dumps(send.event), send.event["et"]))
        next_in[send.partition] += 1
    inputs.sort(key=lambda r: (r.partition, r.offset))
    oracle = Oracle(load_job(JOB), inputs)
    next_out: dict[int, int] = defaultdict(int)
    outputs = []
    for expected in (e for found in oracle.expected.values() for e in found):
        partition = partition_for(str(expected.key), partitions)
        outputs.append(Record("output", partition, next_out[partition], str(expected.key).encode(),
                              orjson.dumps(expected.value), 0))
        next_out[partition] += 1
    outputs.sort(key=lambda r: (r.partition, r.offset))
    ends = {"input": {p: (n, n) for p, n in next_in.items()}, "output": {p: (n, n) for p, n in next_out.items()}}
    return Observed(inputs=inputs, committed=outputs, uncommitted=list(outputs),
                    probe=[(r.partition, r.offset) for r in outputs], offsets=ends, offsets_later=lambda: ends)


def measure(events: int = 500_000) -> dict[str, Any]:
    """Judge a correct run of ``events`` inputs; outputs per second through the oracle and every checker."""
    observed = correct_run(events)
    start = time.perf_counter()
    results = run_checks(load_job(JOB), observed)
    seconds = time.perf_counter() - start
    failed = [f"{r.name}: {r.verdict} ({r.detail})" for r in results if r.verdict != "pass"]
    if failed:
        msg = f"the checkers did not pass a correct run: {failed}"
        raise AssertionError(msg)
    return {"outputs": len(observed.committed), "seconds": round(seconds, 3),
            "outputs_per_s": round(len(observed.committed) / seconds, 1),
            "per_checker": {r.name: r.verdict for r in results}}


if __name__ == "__main__":
    print(measure(int(__import__("sys").argv[1]) if len(__import__("sys").argv) > 1 else 200_000))
