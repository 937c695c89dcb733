"""The load generator alone and the probe alone, against the ceiling measured on the same Kafka."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from harness.kafka.client import create_topics, delete_topics
from harness.metrics.probe import Probe
from harness.workload.load import GeneratorProcesses

PARTITIONS = 6


def _config(bootstrap: str, topic: str, rate: float, seconds: float) -> dict[str, Any]:
    return {"bootstrap": bootstrap, "topic": topic, "rate": rate, "duration_s": seconds, "keys": 1000, "seed": 3,
            "t0": time.time() + 2.0, "max_schedule_lag_s": 2.0, "partitions": PARTITIONS}


def generate(bootstrap: str, rate: float, seconds: float, processes: int) -> dict[str, Any]:
    """Run the generator alone at ``rate`` for ``seconds`` of schedule with ``processes`` processes: the rate it
    achieved (events sent over the time to its last send), whether it kept its schedule, its CPU."""
    topic = f"sg.bench-{uuid.uuid4().hex[:6]}.input"
    create_topics(bootstrap, {topic: PARTITIONS})
    try:
        with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
            cfg = _config(bootstrap, topic, rate, seconds)
            load = GeneratorProcesses(cfg, processes, Path(tmp))
            load.start()
            try:
                summary = load.wait(cfg["t0"] + seconds + 120)
            finally:
                load.stop()
        elapsed = max(summary["elapsed_s"], seconds)
        return {"rate_eps": rate, "processes": processes, "sent": summary["sent"], "acked": summary["acked"],
                "achieved_eps": round(summary["sent"] / elapsed, 1), "valid": summary["valid"],
                "max_lag_ms": round(summary["max_lag_s"] * 1000, 1), "cpu_s": summary["cpu_s"],
                "spread": summary["spread"], "why": summary["reason"]}
    finally:
        delete_topics(bootstrap, [topic])


def probe(bootstrap: str, events: int) -> dict[str, Any]:
    """Write ``events`` events (as fast as the generator goes), then read them with the run's probe from the
    start: the records it stamped per second."""
    topic = f"sg.bench-{uuid.uuid4().hex[:6]}.output"
    create_topics(bootstrap, {topic: PARTITIONS})
    try:
        with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
            cfg = _config(bootstrap, topic, events / 2.0, 2.0)  # far above what it holds: as fast as it goes
            cfg["max_schedule_lag_s"] = 3600.0
            load = GeneratorProcesses(cfg, 2, Path(tmp))
            load.start()
            try:
                summary = load.wait(cfg["t0"] + 600)
            finally:
                load.stop()
        written = summary["acked"]
        reader = Probe(bootstrap, topic, PARTITIONS)
        start = time.monotonic()
        reader.start()
        try:
            while reader.seen_count() < written:
                if reader.error or time.monotonic() - start > 300:
                    msg = f"the probe read {reader.seen_count()} of {written} records ({reader.error or 'in 300 s'})"
                    raise RuntimeError(msg)
                time.sleep(0.01)
            seconds = time.monotonic() - start
        finally:
            reader.stop()
        return {"records": written, "seconds": round(seconds, 3), "records_per_s": round(written / seconds, 1)}
    finally:
        delete_topics(bootstrap, [topic])
