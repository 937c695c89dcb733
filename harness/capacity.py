"""Sustainable throughput: the highest rate an engine sustains, found by search.

A trial runs the scenario at one rate for a warm-up and then a trial of fixed
length (no faults). It is *sustainable* when

- the run is valid: the load kept its schedule (else the rate measured the
  load, not the engine);
- the outputs match the inputs (verdict pass; at_least_once: nothing lost);
- the engine keeps up: the lag (events scheduled minus outputs received) has
  a flat trend over the trial, its least-squares slope at most ``lag_tolerance``
  of the rate;
- the p99 event-time latency of the events scheduled after the warm-up meets
  the SLO (the scenario's ``expect.p99_latency``, else 5 s).

A trial whose lag grows past ``rate x (2 x SLO + 5 s)`` after the warm-up is
clearly not sustainable: it stops there instead of draining.

The search (:func:`search`) doubles the rate from the scenario's while trials
are sustainable (or halves it while they are not), then bisects between the
highest sustained and the lowest failed rate until they are within
``precision`` of each other. Each repetition searches on its own;
``sustainable_eps`` is the lowest of the repetitions' rates, the highest rate
every repetition sustained, and ``spread_eps`` the difference between their
highest and lowest.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.api.engine import Guarantee
from harness.api.pipeline import WindowAggregate, load_job
from harness.errors import ConfigError
from harness.kafka import KafkaProvider
from harness.metrics.compute import latency_histogram, percentiles_ms, slope
from harness.scenario.model import Scenario

DEFAULT_WARMUP_S = 10.0
DEFAULT_TRIAL_S = 30.0
DEFAULT_PRECISION = 0.10
DEFAULT_SLO_S = 5.0
#: the lag's trend may grow by at most this fraction of the rate per second (2 %: 20 events/s at 1000/s)
LAG_TOLERANCE = 0.02
MAX_STEPS = 8          # doublings (or halvings) before the ramp gives up
EARLY_STOP_MARGIN_S = 5.0


@dataclass(frozen=True)
class Criteria:
    """How a trial is run and judged."""

    warmup_s: float = DEFAULT_WARMUP_S
    trial_s: float = DEFAULT_TRIAL_S
    slo_s: float = DEFAULT_SLO_S
    lag_tolerance: float = LAG_TOLERANCE
    precision: float = DEFAULT_PRECISION

    def lag_bound(self, rate: float) -> float:
        """The lag (events) past which a trial at ``rate`` is clearly not sustainable."""
        return rate * (2 * self.slo_s + EARLY_STOP_MARGIN_S)


@dataclass
class Trial:
    """One trial at one rate: its verdict on sustainability and the figures it rests on."""

    repetition: int
    rate_eps: float
    sustainable: bool
    valid: bool
    why: str
    p99_ms: float | None = None
    lag_slope: float | None = None      # events/s the lag grew by per second over the trial (least squares)
    stopped_early: bool = False
    verdict: str | None = None
    cpu_s: float | None = None          # the engine's CPU seconds over the run
    load_cpu_share: float | None = None  # the load's share of the CPU the load and the engine used
    run_dir: str = ""


@dataclass
class Search:
    """The trials of one repetition's search and the rate it found (None: no rate was sustainable)."""

    found_eps: float | None
    trials: list[Trial] = field(default_factory=list)
    limited_by_load: bool = False   # a trial was invalid because the load itself fell behind


def lag_per_second(t0_s: float, seconds: int, inputs_per_second: Sequence[int], receipt_us: Sequence[int]) -> list[int]:
    """The lag at the end of each second since ``t0_s``: events scheduled so far minus outputs received so far."""
    received = [0] * seconds
    t0_us = int(t0_s * 1_000_000)
    for r in receipt_us:
        sec = (r - t0_us) // 1_000_000
        if 0 <= sec < seconds:
            received[sec] += 1
    out, scheduled, seen = [], 0, 0
    for sec in range(seconds):
        scheduled += inputs_per_second[sec] if sec < len(inputs_per_second) else 0
        seen += received[sec]
        out.append(scheduled - seen)
    return out


def trial_p99_ms(receipt_us: Sequence[int], st_us: Sequence[int], after_us: int) -> float | None:
    """The p99 event-time latency (ms) of the outputs of events scheduled at or after ``after_us``."""
    h = latency_histogram(receipt_us, st_us, keep=lambda s: s >= after_us)
    return percentiles_ms(h)["p99"] if h.get_total_count() else None


def judge(rate: float, run: dict[str, Any], lag: Sequence[int], p99_ms: float | None, criteria: Criteria,
          guarantee: Guarantee) -> tuple[bool, str, float]:
    """Whether a finished trial sustained ``rate``, why (every reason it did not), and the lag slope over the
    trial seconds of ``lag`` (the lag at the end of each second from the warm-up's end)."""
    reasons = []
    if not run["valid"]:
        reasons.append(f"invalid: {run.get('invalid_reason') or 'the load fell behind its schedule'}")
    lost = (run.get("anomalies") or {}).get("lost", 0)
    correct = run["verdict"] == "pass" if guarantee == Guarantee.exactly_once else (
        run["verdict"] != "unknown" and not lost)
    if not correct:
        reasons.append(f"outputs do not match inputs (verdict {run['verdict']}, {lost} lost)")
    trend = slope(lag)
    if trend > criteria.lag_tolerance * rate:
        reasons.append(f"the lag grew by {trend:,.0f} events/s over the trial (tolerance "
                       f"{criteria.lag_tolerance * rate:,.0f}/s)")
    if p99_ms is None:
        reasons.append("no output of the trial's events was received")
    elif p99_ms > criteria.slo_s * 1000:
        reasons.append(f"p99 {p99_ms:,.0f} ms is above the SLO of {criteria.slo_s * 1000:,.0f} ms")
    if reasons:
        return False, "; ".join(reasons), trend
    return True, f"kept up: lag slope {trend:+,.0f} events/s, p99 {p99_ms:,.0f} ms", trend


def search(first_rate: float, sustained: Callable[[float], bool], precision: float = DEFAULT_PRECISION,
           max_rate: float | None = None, max_steps: int = MAX_STEPS) -> float | None:
    """The highest rate ``sustained`` holds, to ``precision``: an exponential ramp from ``first_rate`` (up while
    rates are sustained, down while they are not), then bisection. None when no rate of the ramp was sustained.

    ``max_rate`` caps the ramp (a rate above it is not tried); reaching it sustained ends the search there.
    """
    ok: float | None = None
    failed: float | None = None
    rate = first_rate
    if sustained(rate):
        ok = rate
        for _ in range(max_steps):
            nxt = rate * 2 if max_rate is None else min(rate * 2, max_rate)
            if nxt <= rate:
                return ok  # the cap, sustained
            rate = nxt
            if not sustained(rate):
                failed = rate
                break
            ok = rate
        else:
            return ok
    else:
        failed = rate
        for _ in range(max_steps):
            rate = rate / 2
            if sustained(rate):
                ok = rate
                break
            failed = rate
        else:
            return None
    assert ok is not None and failed is not None
    while (failed - ok) / ok > precision:
        mid = (ok + failed) / 2
        if sustained(mid):
            ok = mid
        else:
            failed = mid
    return ok


def capacity_problems(scenario: Scenario) -> list[str]:
    """Why ``scenario`` cannot be searched for its capacity (empty: it can)."""
    out = []
    if scenario.faults:
        out.append(f"faults: capacity is measured under a steady load, and {scenario.name} has "
                   f"{len(scenario.faults)} faults; remove them or use a scenario without faults")
    if scenario.workload.bounded:
        out.append("workload.bounded: a bounded job has no sustainable rate (its input is written before it starts)")
    if any(isinstance(op, WindowAggregate) for op in load_job(scenario.job).ops):
        out.append(f"job: {scenario.job} emits one output per window, so its lag cannot be read from its outputs; "
                   f"measure capacity with a job that emits per input, like scenarios.jobs:running_sum")
    return out


class CapacityRun:
    """The searches for ``scenario`` on each engine, on one Kafka (started by the caller)."""

    def __init__(self, scenario: Scenario, kafka: KafkaProvider, out_dir: Path, criteria: Criteria,
                 repetitions: int, log: Callable[[str], None], ceiling: dict[str, Any] | None = None,
                 keep_topics: bool = False, options: Any = None) -> None:
        if repetitions < 1:
            msg = f"--repetitions {repetitions}: expected a number of repetitions >= 1"
            raise ConfigError(msg)
        self.scenario, self.kafka, self.out_dir = scenario, kafka, out_dir
        self.criteria, self.repetitions, self.log = criteria, repetitions, log
        self.ceiling, self.keep_topics = ceiling, keep_topics
        self.options = options  # the plan's RunOptions (the load's options), given to every trial

    def measure(self, engine: str) -> dict[str, Any]:
        """Every repetition's search on ``engine``; the capacity entry of results.json."""
        searches = [self._search(engine, rep) for rep in range(1, self.repetitions + 1)]
        found = [s.found_eps for s in searches]
        rates = [f for f in found if f is not None]
        best = min(rates) if rates and len(rates) == len(found) else None
        txn = (self.ceiling or {}).get("txn_copy_eps")
        entry = {
            "scenario": self.scenario.name, "engine": engine, "guarantee": self.scenario.guarantee.value,
            "sustainable_eps": None if best is None else round(best, 1),
            "spread_eps": round(max(rates) - min(rates), 1) if best is not None else None,
            "per_repetition_eps": [None if f is None else round(f, 1) for f in found],
            "repetitions": self.repetitions,
            "ceiling_fraction": round(best / txn, 4) if best is not None and txn else None,
            "limited_by_load": any(s.limited_by_load for s in searches),
            "load_cpu_share": _sustained_share(searches),
            "criteria": asdict(self.criteria),
            "trials": [asdict(t) for s in searches for t in s.trials],
        }
        shown = "none" if best is None else f"{best:,.0f} events/s"
        self.log(f"capacity of {engine}: {shown} (repetitions: "
                 f"{', '.join('none' if f is None else f'{f:,.0f}' for f in found)})")
        return entry

    def _search(self, engine: str, rep: int) -> Search:
        result = Search(found_eps=None)
        cap = (self.ceiling or {}).get("produce_eps")

        def sustained(rate: float) -> bool:
            trial = self._trial(engine, rate, rep, len(result.trials) + 1)
            release_memory()
            result.trials.append(trial)
            if not trial.valid and "behind its schedule" in trial.why:
                result.limited_by_load = True
            return trial.sustainable

        result.found_eps = search(self.scenario.workload.rate, sustained, self.criteria.precision, max_rate=cap)
        return result

    def trial_scenario(self, rate: float) -> Scenario:
        """The scenario of a trial at ``rate``: the warm-up and the trial long, no faults."""
        c = self.criteria
        workload = self.scenario.workload.model_copy(update={"rate": rate, "duration": c.warmup_s + c.trial_s})
        return self.scenario.model_copy(update={"workload": workload, "faults": []})

    def _trial(self, engine: str, rate: float, rep: int, number: int) -> Trial:
        from harness.scenario.runner import RunOne, RunOptions, StoppedEarly

        c = self.criteria
        scenario = self.trial_scenario(rate)
        run_dir = self.out_dir / engine / f"rep-{rep}" / f"trial-{number}-{rate:.0f}eps"
        self.log(f"[{engine}] capacity trial {number} (repetition {rep}): {rate:,.0f} events/s, "
                 f"{c.warmup_s:g} s warm-up + {c.trial_s:g} s")
        bound = c.lag_bound(rate)

        def watch(one: RunOne, elapsed_s: float) -> str | None:
            if elapsed_s < c.warmup_s or one.probe is None:
                return None
            lag = min(rate * elapsed_s, rate * scenario.workload.duration) - one.probe.seen_count()
            if lag > bound:
                return (f"the lag reached {lag:,.0f} events ({lag / rate:.1f} s of input) at {elapsed_s:.0f} s, "
                        f"past the bound {bound:,.0f}: clearly not sustainable")
            return None

        opts = (replace(self.options, out_dir=run_dir, engine=engine) if self.options is not None else
                RunOptions(out_dir=run_dir, engine=engine, keep_topics=self.keep_topics, log=self.log))
        one = RunOne(scenario, engine, self.kafka, opts, [], run_dir=run_dir, watch=watch)
        try:
            run = one.execute()
        except StoppedEarly as stop:
            return Trial(rep, rate, sustainable=False, valid=True, why=stop.why, stopped_early=True,
                         run_dir=str(run_dir))
        except Exception as e:  # noqa: BLE001 - a failed trial is part of the search, not its end
            return Trial(rep, rate, sustainable=False, valid=False, why=f"the trial failed: {type(e).__name__}: {e}",
                         run_dir=str(run_dir))
        assert one.probe is not None and one.t0 is not None
        seconds = int(c.warmup_s + c.trial_s)
        lag = lag_per_second(one.t0, seconds, run["metrics"]["timeline"]["inputs"], one.probe.receipt_us)
        p99 = trial_p99_ms(one.probe.receipt_us, one.probe.st_us, int((one.t0 + c.warmup_s) * 1_000_000))
        ok, why, trend = judge(rate, run, lag[int(c.warmup_s):], p99, c, scenario.guarantee)
        self.log(f"[{engine}] {rate:,.0f} events/s: {'sustainable' if ok else 'not sustainable'}: {why}")
        load = run["metrics"].get("load") or {}
        return Trial(rep, rate, sustainable=ok, valid=run["valid"], why=why, p99_ms=p99, lag_slope=round(trend, 1),
                     verdict=run["verdict"], cpu_s=run["metrics"].get("cpu_s"),
                     load_cpu_share=load.get("cpu_share"), run_dir=str(run_dir))


def release_memory() -> None:
    """Give back what a trial's check held (millions of records and decoded events) before the next one: a
    search runs many trials in one process, and the freed memory otherwise stays with it, a trial's worth more
    each time (measured: 4.8 GB of the 14.8 GB a search held after seven trials came back this way)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)


def _sustained_share(searches: list[Search]) -> float | None:
    """The load's CPU share in the highest sustained trial (what the figure was measured beside)."""
    best = max((t for s in searches for t in s.trials if t.sustainable), key=lambda t: t.rate_eps, default=None)
    return None if best is None else best.load_cpu_share
