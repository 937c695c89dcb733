"""The open-loop load generator: writes the input topic on a fixed schedule.

Event i is scheduled at ``t0 + i / rate``; the generator never waits for
replies (only failed deliveries are reported back). Several generator
processes can share one schedule, each sending the partitions of its slice
(:meth:`~harness.workload.schedule.Schedule.sends`); :func:`merge` makes one
summary of theirs, invalid when any fell behind. It records how far behind schedule each send was (publish delay)
and marks the run invalid when that exceeds the tolerance, since a run whose
load fell behind did not measure what it claims to (coordinated omission).
The schedule, with its disorder transforms, is :class:`~harness.workload.schedule.Schedule`.

Run as ``python -m harness.workload.generator CONFIG.json``; it writes a
summary JSON to the path in the config when done (also on SIGTERM).
"""

from __future__ import annotations

import bisect
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Producer

from harness.workload.events import KeySkew
from harness.workload.schedule import Batch, Schedule, Send, check_partition, check_slice
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
    process: int = 0      # this process sends slice ``process`` of ``processes`` of the schedule (by partition)
    processes: int = 1

    def __post_init__(self) -> None:
        for name, kind in _TRANSFORMS.items():
            object.__setattr__(self, name, coerce(kind, getattr(self, name)))  # frozen: set once, while building
        for name in ("lagging", "idle"):
            spec = getattr(self, name)
            if spec is not None:
                check_partition(name, spec.partition, self.partitions)
        check_slice(self.process, self.processes, self.partitions)

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
    process: int = 0      # this process's slice of the schedule ...
    processes: int = 1    # ... of this many
    cpu_s: float = 0.0    # CPU seconds this process used (user + system)
    elapsed_s: float = 0.0  # from the schedule's start to this process's last send


#: at most this many sends between two looks at the clock, so a burst's publish delay is measured as it grows
BURST = 2000


class _Tally:
    """Sends per second of schedule and the worst publish delay, per second and overall."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        self.t0 = cfg.t0
        self.seconds = int(cfg.duration_s) + 1
        self.per_second = np.zeros(self.seconds, dtype=np.int64)
        self.lag_per_second = [0.0] * self.seconds
        self.max_lag_s = 0.0
        self.sent = 0

    def _second(self, scheduled_s: float) -> int:
        return min(max(0, int(scheduled_s - self.t0)), self.seconds - 1)

    def lag(self, scheduled_us: int, now: float) -> None:
        """A send scheduled at ``scheduled_us`` went out at ``now``."""
        lag, sec = now - scheduled_us / 1_000_000, self._second(scheduled_us / 1_000_000)
        self.lag_per_second[sec] = max(self.lag_per_second[sec], lag)
        self.max_lag_s = max(self.max_lag_s, lag)

    def sends(self, seconds: np.ndarray) -> None:
        """Sends went out that were scheduled in these seconds of the schedule."""
        self.per_second += np.bincount(np.minimum(seconds, self.seconds - 1), minlength=self.seconds)
        self.sent += len(seconds)


#: told of every burst of sends: how many, the seconds they took, their payload bytes
OnBurst = Callable[[int, float, int], None]


def run(cfg: GeneratorConfig, on_burst: OnBurst | None = None, stop: dict[str, bool] | None = None) -> Summary:
    """Send this process's slice of the schedule on time; the summary says how far behind it fell.

    ``stop``: set ``stop["now"]`` to end early; without it, SIGTERM does (the process is the generator's own).
    """
    if stop is None:
        stop = {"now": False}
        flag = stop

        def _stop(_signum, _frame) -> None:
            flag["now"] = True

        signal.signal(signal.SIGTERM, _stop)
    cpu_start = time.process_time()
    summary = Summary(t0=cfg.t0, process=cfg.process, processes=cfg.processes)
    errors: list[str] = []

    def on_error(err, _msg) -> None:  # only failed deliveries are reported (delivery.report.only.error)
        summary.failed += 1
        if len(errors) < 3:
            errors.append(str(err))

    producer = Producer({"bootstrap.servers": cfg.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "partitioner": "murmur2_random", "log_level": 3,
                         "queue.buffering.max.messages": 1_000_000, "delivery.report.only.error": True,
                         "on_delivery": on_error})
    schedule = cfg.schedule()
    tally = _Tally(cfg)
    while time.time() < cfg.t0 and not stop["now"]:
        time.sleep(min(0.01, max(0.0, cfg.t0 - time.time())))
    if schedule.plain and schedule.partitions is not None:
        finished = _send_batches(producer, cfg.topic, schedule.batches(cfg.process, cfg.processes), tally, stop,
                                 on_burst)
    else:
        finished = _send_each(producer, cfg.topic, schedule.sends(cfg.process, cfg.processes), tally, stop, on_burst)
    summary.elapsed_s = round(max(0.0, time.time() - cfg.t0), 3)
    summary.sent = tally.sent
    summary.stopped_early = not finished
    unsent = producer.flush(60)
    summary.acked = summary.sent - summary.failed - unsent
    summary.per_second = tally.per_second.tolist()
    summary.lag_per_second = [round(x, 4) for x in tally.lag_per_second]
    summary.max_lag_s = tally.max_lag_s
    summary.cpu_s = round(time.process_time() - cpu_start, 3)
    problems = []
    if summary.max_lag_s > cfg.max_schedule_lag_s:
        problems.append(f"the generator{_which(cfg)} fell {summary.max_lag_s:.2f} s behind its schedule "
                        f"(tolerance {cfg.max_schedule_lag_s:.2f} s)")
    if summary.failed:
        problems.append(f"{summary.failed} sends failed{_which(cfg)} ({'; '.join(errors)})")
    if unsent:
        problems.append(f"{unsent} sends{_which(cfg)} still unacknowledged 60 s after the load")
    summary.valid, summary.reason = not problems, "; ".join(problems)
    return summary


def _which(cfg: GeneratorConfig) -> str:
    return f" process {cfg.process + 1} of {cfg.processes}" if cfg.processes > 1 else ""


def _send_batches(producer: Producer, topic: str, batches: Iterator[Batch], tally: _Tally,
                  stop: dict[str, bool], on_burst: OnBurst | None = None) -> bool:
    """The cheap path: prepared batches, the next one formatted while waiting for the current one's sends to be
    due; True when every batch was sent."""
    produce = producer.produce
    upcoming: Batch | None = next(batches, None)
    while upcoming is not None:
        batch, upcoming, prepared = upcoming, None, False
        at, n, j = batch.at_us, len(batch), 0
        while j < n:
            if stop["now"]:
                return False
            start = time.time()
            due = bisect.bisect_right(at, start * 1_000_000, j, min(n, j + BURST))
            if due == j:
                if not prepared:  # nothing due yet: prepare the next batch before its time
                    upcoming, prepared = next(batches, None), True
                    continue
                producer.poll(0)
                wait = at[j] / 1_000_000 - time.time()
                if wait > 0:
                    time.sleep(min(wait, 0.01))
                continue
            values, keys, partitions, stamps = batch.values, batch.keys, batch.partitions, batch.timestamps
            for m in range(j, due):
                while True:
                    try:
                        produce(topic, value=values[m], key=keys[m], partition=partitions[m], timestamp=stamps[m])
                        break
                    except BufferError:
                        producer.poll(0.01)
            end = time.time()
            tally.lag(at[j], start)
            tally.lag(at[due - 1], end)
            tally.sends(batch.seconds[j:due])
            if on_burst is not None:
                on_burst(due - j, end - start, sum(len(v) for v in values[j:due]))
            j = due
            producer.poll(0)
        if not prepared:
            upcoming = next(batches, None)
    return True


def _send_each(producer: Producer, topic: str, sends: Iterator[Send], tally: _Tally, stop: dict[str, bool],
               on_burst: OnBurst | None = None) -> bool:
    """Send by send (a schedule with transforms); True when every send was sent."""
    pending: Send | None = next(sends, None)
    seconds: list[int] = []
    while pending is not None and not stop["now"]:
        start = time.time()
        now_us = start * 1_000_000
        size = 0
        while pending is not None and pending.at_us <= now_us:
            size += _produce(producer, topic, pending)
            tally.lag(pending.at_us, time.time())
            seconds.append(tally._second(pending.at_us / 1_000_000))
            pending = next(sends, None)
        if seconds:
            tally.sends(np.array(seconds, dtype=np.int64))
            if on_burst is not None:
                on_burst(len(seconds), time.time() - start, size)
            seconds = []
        producer.poll(0)
        if pending is not None:
            wait = pending.at_us / 1_000_000 - time.time()
            if wait > 0:
                time.sleep(min(wait, 0.01))
    return pending is None


def _produce(producer: Producer, topic: str, send: Send) -> int:
    """Produce one scheduled event (to its partition when the schedule names one), waiting out a full queue;
    the payload's bytes."""
    event = send.event
    extra: dict[str, Any] = {} if send.partition is None else {"partition": send.partition}
    value = orjson.dumps(event)
    while True:
        try:
            producer.produce(topic, key=event["k"].encode(), value=value, timestamp=event["et"], **extra)
            return len(value)
        except BufferError:
            producer.poll(0.01)


def merge(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary for the processes that shared a schedule: sends and failures added, the worst publish delay
    of any, invalid when any process was; ``spread`` lists each process's sent, worst delay and CPU."""
    if len(summaries) == 1:
        return {**summaries[0], "spread": [_spread(summaries[0])]}
    width = max(len(s.get("per_second") or []) for s in summaries)
    per_second, lag_per_second = [0] * width, [0.0] * width
    for s in summaries:
        for i, v in enumerate(s.get("per_second") or []):
            per_second[i] += v
        for i, lag in enumerate(s.get("lag_per_second") or []):
            lag_per_second[i] = max(lag_per_second[i], lag)
    return {
        "sent": sum(s["sent"] for s in summaries), "acked": sum(s["acked"] for s in summaries),
        "failed": sum(s["failed"] for s in summaries), "max_lag_s": max(s["max_lag_s"] for s in summaries),
        "valid": all(s["valid"] for s in summaries),
        "reason": "; ".join(s["reason"] for s in summaries if s["reason"]),
        "t0": summaries[0]["t0"], "stopped_early": any(s["stopped_early"] for s in summaries),
        "per_second": per_second, "lag_per_second": lag_per_second, "processes": len(summaries),
        "cpu_s": round(sum(s.get("cpu_s", 0.0) for s in summaries), 3), "spread": [_spread(s) for s in summaries],
        "elapsed_s": max(s.get("elapsed_s", 0.0) for s in summaries),
    }


def _spread(s: dict[str, Any]) -> dict[str, Any]:
    return {"process": s.get("process", 0), "sent": s["sent"], "max_lag_ms": round(s["max_lag_s"] * 1000, 1),
            "cpu_s": s.get("cpu_s", 0.0), "valid": s["valid"]}


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
