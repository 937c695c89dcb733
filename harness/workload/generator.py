"""The open-loop load generator: writes the input topic on a fixed schedule.

Event i is scheduled at ``t0 + i / rate``; the generator never waits for
replies. It records how far behind schedule each send was (publish delay)
and marks the run invalid when that exceeds the tolerance, since a run whose
load fell behind did not measure what it claims to (coordinated omission).

Run as ``python -m harness.workload.generator CONFIG.json``; it writes a
summary JSON to the path in the config when done (also on SIGTERM).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, dataclass

import orjson
from confluent_kafka import Producer

from harness.workload.events import EventSource, KeySkew


@dataclass(frozen=True)
class GeneratorConfig:
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

    @classmethod
    def load(cls, path: str) -> GeneratorConfig:
        return cls(**json.loads(open(path).read()))


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
    source = EventSource(cfg.seed, cfg.keys, KeySkew(cfg.skew_kind, cfg.skew_s))
    total = int(cfg.rate * cfg.duration_s)
    period = 1.0 / cfg.rate
    i = 0
    while time.time() < cfg.t0 and not stop["now"]:
        time.sleep(min(0.01, max(0.0, cfg.t0 - time.time())))
    while i < total and not stop["now"]:
        now = time.time()
        due = min(total, int((now - cfg.t0) / period) + 1)
        while i < due:
            scheduled = cfg.t0 + i * period
            event = source.next(i, int(scheduled * 1_000_000))
            while True:
                try:
                    producer.produce(cfg.topic, key=event["k"].encode(), value=orjson.dumps(event),
                                     timestamp=event["et"], on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.01)
            lag = time.time() - scheduled
            sec = min(int(scheduled - cfg.t0), seconds - 1)
            per_second[sec] += 1
            lag_per_second[sec] = max(lag_per_second[sec], lag)
            summary.max_lag_s = max(summary.max_lag_s, lag)
            i += 1
        producer.poll(0)
        wait = cfg.t0 + i * period - time.time()
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


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    cfg = GeneratorConfig.load(args[0])
    summary = run(cfg)
    with open(cfg.summary_path + ".tmp", "w") as f:
        json.dump(asdict(summary), f)
    import os

    os.replace(cfg.summary_path + ".tmp", cfg.summary_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
