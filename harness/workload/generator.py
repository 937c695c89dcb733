"""The open-loop load generator: writes the input topic on a fixed schedule.

Event i is scheduled at ``t0 + i / rate``; the generator never waits for
replies. It records how far behind schedule each send was (publish delay)
and marks the run invalid when that exceeds the tolerance, since a run whose
load fell behind did not measure what it claims to (coordinated omission).
The schedule, with its disorder transforms, is :class:`~harness.workload.schedule.Schedule`.

Run as ``python -m harness.workload.generator CONFIG.json``; it writes a
summary JSON to the path in the config when done (also on SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from confluent_kafka import Producer

from harness.workload.events import KeySkew
from harness.workload.schedule import Schedule, Send, check_partition
from harness.workload.transforms import Disorder, Idle, Lagging, Late, coerce

_TRANSFORMS = {"disorder": Disorder, "late": Late, "lagging": Lagging, "idle": Idle}


@dataclass(frozen=True)
class GeneratorConfig:
    """What the generator process is told (a JSON file written by the runner).

    ``partitions`` is the input topic's partition count: when given, every
    event is produced to Kafka's default partition of its key, computed here
    (:func:`harness.kafka.partitioner.partition_for`) so the transforms and the
    broker agree; None lets the producer partition. ``disorder``, ``late``,
    ``lagging`` and ``idle`` are the workload transforms, as mappings with the
    scenario's field names and units (seconds) or as transform specs.
    """

    bootstrap: str
    topic: str
    rate: float                 # events/s
    duration_s: float
    keys: int
    seed: int
    summary_path: str
    t0: float                   # epoch seconds of event 0's schedule
    skew_kind: str = "uniform"
    skew_s: float = 0.0
    max_schedule_lag_s: float = 2.0
    partitions: int | None = None
    disorder: Disorder | None = None
    late: Late | None = None
    lagging: Lagging | None = None
    idle: Idle | None = None
    event_epoch_ms: int | None = None   # event times on this fixed epoch (ms) instead of the wall clock

    def __post_init__(self) -> None:
        for name, kind in _TRANSFORMS.items():
            object.__setattr__(self, name, coerce(kind, getattr(self, name)))  # frozen: set once, while building
        for name in ("lagging", "idle"):
            spec = getattr(self, name)
            if spec is not None:
                check_partition(name, spec.partition, self.partitions)

    @classmethod
    def load(cls, path: str) -> GeneratorConfig:
        with open(path) as f:
            return cls(**json.load(f))

    def schedule(self) -> Schedule:
        """The sends of this load, in send order."""
        return Schedule(seed=self.seed, keys=self.keys, rate=self.rate, duration_s=self.duration_s, t0=self.t0,
                        skew=KeySkew(self.skew_kind, self.skew_s), partitions=self.partitions,
                        disorder=self.disorder, late=self.late, lagging=self.lagging, idle=self.idle,
                        event_epoch_ms=self.event_epoch_ms)


def workload_fields(workload: Any, partitions: int | None) -> dict[str, Any]:
    """The GeneratorConfig fields for a scenario's transforms (JSON-able): ``partitions`` and each transform set.

    ``workload`` is a :class:`harness.scenario.model.Workload`; unset transforms are left out.
    """
    fields: dict[str, Any] = {"partitions": partitions}
    for name in _TRANSFORMS:
        spec = getattr(workload, name, None)
        if spec is not None:
            fields[name] = spec.model_dump(by_alias=True) if hasattr(spec, "model_dump") else dict(spec)
    return fields


@dataclass
class Summary:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    max_lag_s: float = 0.0
    valid: bool = True
    reason: str = ""
    t0: float = 0.0
    stopped_early: bool = False
    per_second: list[int] | None = None   # sends per second of schedule
    lag_per_second: list[float] | None = None   # worst publish delay per second of schedule


def run(cfg: GeneratorConfig) -> Summary:
    stop = {"now": False}

    def _stop(_signum, _frame) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    summary = Summary(t0=cfg.t0)
    seconds = int(cfg.duration_s) + 1
    per_second = [0] * seconds
    lag_per_second = [0.0] * seconds

    def on_delivery(err, _msg) -> None:
        if err is None:
            summary.acked += 1
        else:
            summary.failed += 1

    producer = Producer({"bootstrap.servers": cfg.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "partitioner": "murmur2_random", "log_level": 3,
                         "queue.buffering.max.messages": 1_000_000})
    schedule = cfg.schedule()
    total = schedule.total
    sends = iter(schedule)
    pending: Send | None = next(sends, None)
    i = 0
    while time.time() < cfg.t0 and not stop["now"]:
        time.sleep(min(0.01, max(0.0, cfg.t0 - time.time())))
    while pending is not None and not stop["now"]:
        now_us = time.time() * 1_000_000
        while pending is not None and pending.at_us <= now_us:
            _produce(producer, cfg.topic, pending, on_delivery)
            scheduled = pending.at_us / 1_000_000
            lag = time.time() - scheduled
            sec = min(max(0, int(scheduled - cfg.t0)), seconds - 1)
            per_second[sec] += 1
            lag_per_second[sec] = max(lag_per_second[sec], lag)
            summary.max_lag_s = max(summary.max_lag_s, lag)
            i += 1
            pending = next(sends, None)
        producer.poll(0)
        if pending is not None:
            wait = pending.at_us / 1_000_000 - time.time()
            if wait > 0:
                time.sleep(min(wait, 0.01))
    summary.sent = i
    summary.stopped_early = i < total
    producer.flush(60)
    summary.per_second = per_second
    summary.lag_per_second = [round(x, 4) for x in lag_per_second]
    if summary.max_lag_s > cfg.max_schedule_lag_s:
        summary.valid = False
        summary.reason = (f"the generator fell {summary.max_lag_s:.2f} s behind its schedule "
                          f"(tolerance {cfg.max_schedule_lag_s:.2f} s)")
    if summary.failed:
        summary.valid = False
        summary.reason = (summary.reason + "; " if summary.reason else "") + f"{summary.failed} sends failed"
    return summary


def _produce(producer: Producer, topic: str, send: Send, on_delivery: Any) -> None:
    """Produce one scheduled event (to its partition when the schedule names one); wait out a full queue."""
    event = send.event
    extra: dict[str, Any] = {} if send.partition is None else {"partition": send.partition}
    while True:
        try:
            producer.produce(topic, key=event["k"].encode(), value=orjson.dumps(event), timestamp=event["et"],
                             on_delivery=on_delivery, **extra)
            return
        except BufferError:
            producer.poll(0.01)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    cfg = GeneratorConfig.load(args[0])
    summary = run(cfg)
    with open(cfg.summary_path + ".tmp", "w") as f:
        json.dump(asdict(summary), f)
    os.replace(cfg.summary_path + ".tmp", cfg.summary_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
