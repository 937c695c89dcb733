"""The runner: one scenario on one or more engines, along the run's timeline.

provision Kafka -> create topics -> deploy engine and wait ready -> start probe
-> start load (open loop) -> faults at their times -> stop load -> drain ->
stop engine -> check -> compute metrics -> write results -> tear down.

Teardown runs on every exit path (errors and Ctrl-C included): the fault
injector heals, the generator, engine and Kafka processes are stopped by
recorded PID, and the run's topics are deleted unless asked to keep them.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import psutil

from harness.api import (
    Deployment,
    DeploySpec,
    Engine,
    FaultRequest,
    Finishing,
    Guarantee,
    Lagging,
    RunRequest,
    WindowAggregate,
    load_job,
)
from harness.capacity import CapacityRun, Criteria, capacity_problems
from harness.check import Observed, overall, run_checks, summarize
from harness.check.conformance import Side, compare, side_of
from harness.check.oracle import Oracle
from harness.check.windows import lateness_of
from harness.errors import CapabilityError
from harness.faults import Fault, FaultInjector, broker, fault_problems, kind_of, network
from harness.faults.kinds import NETWORK_KINDS
from harness.faults.network import Network
from harness.kafka import ExternalKafka, KafkaProvider, LocalKafka
from harness.kafka.client import create_topics, delete_topics, list_topics, read_all, stable_and_end_offsets
from harness.metrics.calibrate import calibrate
from harness.metrics.compute import (
    baseline_p99,
    keeps_up,
    latency_histogram,
    longest_stall_s,
    outside_windows,
    percentiles_ms,
    recovery_seconds,
    timeline,
    window_result_latency_ms,
)
from harness.metrics.probe import Probe
from harness.proc import ManagedProcess, wait_until
from harness.report import SCHEMA
from harness.scenario.model import Scenario
from harness.scenario.registry import get_engine
from harness.workload.generator import workload_fields
from harness.workload.load import GeneratorProcesses, LocustLoad, load_figures

READY_TIMEOUT_S = 180.0


class StoppedEarly(Exception):
    """A run's watch stopped it during the load (a capacity trial that is clearly not sustainable)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path
    engine: str | None = None
    keep_topics: bool = False
    calibrate: bool = False  # measure the raw client ceiling first (results["ceiling"], metrics.ceiling_fraction)
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    criteria: Criteria = field(default_factory=Criteria)  # how the capacity trials of a plan's capacity entries run and are judged
    load: str = "builtin"  # builtin: the generator's processes; locust: a locust master and workers
    load_workers: int | None = None   # local generator processes / locust workers (None: workload.generators)
    load_remote_workers: int = 0      # locust workers on other machines that the master waits for
    load_master_port: int | None = None  # the locust master's port (None: a free one)


def _faults(scenario: Scenario) -> list[Fault]:
    out = []
    for f in scenario.faults:
        a = f.action
        out.append(Fault(at_s=f.at, kind=f.kind, role=getattr(a, "role", "worker"), pick=getattr(a, "pick", "random"),
                         restart_after_s=getattr(a, "restart_after", None), for_s=getattr(a, "for_", None),
                         ms=getattr(a, "ms", 0.0), jitter_ms=getattr(a, "jitter_ms", 0.0),
                         fraction=getattr(a, "fraction", 0.0), to=getattr(a, "to", 0)))
    return out


def _git_rev() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _machine() -> dict[str, Any]:
    return {"hostname": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "platform": platform.platform()}


def provision_kafka(nodes: int, own: bool = False) -> KafkaProvider:
    """$STREAMGAUGE_BOOTSTRAP, else the cluster of `streamgauge kafka up`, else a local one for this run
    (``own``: always a local one for this run, unless $STREAMGAUGE_BOOTSTRAP names one, which is refused)."""
    bootstrap = os.environ.get("STREAMGAUGE_BOOTSTRAP")
    if bootstrap:
        return ExternalKafka(bootstrap)
    if own:
        return LocalKafka(nodes_count=nodes)
    from harness.kafka import daemon

    running = daemon.current()
    if running is not None and len(running.nodes()) >= nodes:
        return daemon.attach() or ExternalKafka(running.bootstrap_servers(), known_version=running.version())
    return LocalKafka(nodes_count=nodes)


def guarantee_problems(guarantee: Guarantee, engine: Engine) -> list[str]:
    """A guarantee the engine does not offer (``Engine.guarantees``)."""
    if guarantee in engine.guarantees:
        return []
    others = ", ".join(g.value for g in Guarantee if g in engine.guarantees)
    return [f"guarantee: the {engine.name} engine does not offer {guarantee.value} (it offers {others}); "
            f"run this scenario on another engine with --engine, or change its guarantee"]


def bounded_problems(scenario: Scenario, engine: Engine) -> list[str]:
    """A bounded workload on an engine whose model is unbounded, or that does not run bounded jobs yet."""
    if not scenario.workload.bounded or getattr(engine, "bounded_jobs", False):
        return []
    why = getattr(engine, "bounded_refusal", None) or (
        f"the {engine.name} engine's model is unbounded (its job reads its input for ever and never finishes by "
        f"itself); run a bounded workload on an engine of the cluster model")
    return [f"workload.bounded: {why}"]


def job_problems(job: str, engine: Engine) -> list[str]:
    """A job the engine does not implement (an engine with a catalogue runs only the jobs it names)."""
    if engine.jobs is None or job in engine.jobs:
        return []
    return [f"job: the {engine.name} engine does not implement {job}; its jobs: {', '.join(sorted(engine.jobs))}"]


def run_request(scenario: Scenario, engine: str) -> RunRequest:
    """What ``scenario`` asks of ``engine``, engine-neutral, for its pre-flight check."""
    return RunRequest(job=scenario.job, guarantee=scenario.guarantee, parallelism=scenario.parallelism,
                      partitions=scenario.partitions, options=scenario.config_for(engine),
                      faults=tuple(FaultRequest(f.kind, f.role, f.pick) for f in _faults(scenario)))


def preflight(scenario: Scenario, name: str) -> list[str]:
    """Everything that keeps ``scenario`` from running on engine ``name``, checked before anything starts."""
    engine = get_engine(name)
    problems = guarantee_problems(scenario.guarantee, engine) + job_problems(scenario.job, engine)
    problems += bounded_problems(scenario, engine)
    faults = fault_problems(_faults(scenario), engine, run_request(scenario, name))
    if not problems:  # the engine's own checks assume a job and guarantee it has
        problems += faults + engine.problems(run_request(scenario, name))
    else:
        problems += faults
    return problems


def network_problems(kafka: KafkaProvider) -> list[str]:
    """Why network faults cannot be made here: the machine (root, iproute2, nftables, namespaces), or a
    cluster whose brokers do not listen on the run's bridge."""
    out = list(network.problems())
    if not isinstance(kafka, LocalKafka) or kafka.attached:
        out.append(f"network faults need brokers that streamgauge starts for the run on its bridge; the "
                   f"{kafka.name} cluster at {kafka.bootstrap_servers()} is not (unset STREAMGAUGE_BOOTSTRAP)")
    return out


def check_plan(plan: list[Planned], kafka: KafkaProvider | None = None) -> None:
    """Refuse the plan, with every problem of every scenario on every engine, before anything starts
    (``kafka``: the cluster the plan will run on, not started yet)."""
    lines = []
    for item in plan:
        if kafka is not None and any(f.role == broker.ROLE for f in _faults(item.scenario)):
            lines += [f"{item.scenario.name}: {p}" for p in broker.kafka_problems(item.scenario.kafka.nodes, kafka)]
        if kafka is not None and any(f.kind in NETWORK_KINDS for f in _faults(item.scenario)):
            lines += [f"{item.scenario.name}: {p}" for p in network_problems(kafka)]
        if item.capacity:
            lines += [f"{item.scenario.name}: capacity: {p}" for p in capacity_problems(item.scenario)]
        for name in item.engines:
            lines += [f"{item.scenario.name} on {name}: {p}" for p in preflight(item.scenario, name)]
    if lines:
        raise CapabilityError("\n".join(dict.fromkeys(lines)))


@dataclass(frozen=True)
class Planned:
    """A scenario to run on some engines, some number of times."""

    scenario: Scenario
    engines: list[str]
    repetitions: int = 1
    #: search each engine's sustainable throughput (harness.capacity) instead of running the scenario as given;
    #: repetitions are then independent searches
    capacity: bool = False


def run_plan(plan: list[Planned], opts: RunOptions, header: dict[str, Any]) -> dict[str, Any]:
    """Run every planned scenario × engine × repetition on one Kafka; write and return results.json's content.

    ``header`` goes into results.json as given (``scenario`` for one scenario,
    ``suite`` for a suite). Whatever an engine cannot do is refused before
    anything starts. results.json is rewritten after every run, so an
    interrupted plan leaves the finished runs behind.
    """
    faults = [f for item in plan for f in _faults(item.scenario)]
    network = Network() if any(f.kind in NETWORK_KINDS for f in faults) else None
    kafka = provision_kafka(max(item.scenario.kafka.nodes for item in plan), own=network is not None)
    check_plan(plan, kafka)  # refuse what an engine or the cluster cannot do before anything starts
    with network or contextlib.nullcontext():
        if network is not None:
            assert isinstance(kafka, LocalKafka)
            kafka.host = network.bridge_address  # the brokers listen where the namespaces reach them
            network.proxied = any(f.kind == "delay" for f in faults)
            opts.log(f"network: workers in namespaces on bridge {network.bridge} ({network.bridge_address})")
        return _run_plan(plan, opts, header, kafka, network)


def _run_plan(plan: list[Planned], opts: RunOptions, header: dict[str, Any], kafka: KafkaProvider,
              network: Network | None) -> dict[str, Any]:
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"schema": SCHEMA, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "git": _git_rev(), "machine": _machine(), "kafka": None, **header,
                               "scenarios": {item.scenario.name: item.scenario.to_dict() for item in plan},
                               "runs": [], "comparisons": []}
    nested = len(plan) > 1 or any(item.repetitions > 1 for item in plan)
    opts.log(f"starting {kafka.name} Kafka...")
    with kafka:
        results["kafka"] = kafka.version()
        opts.log(f"Kafka {kafka.version()} at {kafka.bootstrap_servers()}")
        if network is not None:
            network.broker_ports = [n.port for n in kafka.nodes()]
        if opts.calibrate or any(item.capacity for item in plan):  # capacity figures are read against the ceiling
            results["ceiling"] = calibrate(kafka.bootstrap_servers(), replication=min(3, len(kafka.nodes()) or 1),
                                           log=opts.log)
            opts.log("ceiling: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in results["ceiling"].items()
                                             if k.endswith("_eps")))
        for item in plan:
            if item.capacity:
                _run_capacity(item, opts, kafka, results)
                continue
            pairs = conformance_pairs(item.engines)
            compared = {engine for pair in pairs for engine in pair}
            for rep in range(item.repetitions):
                late_by_engine: dict[str, set] = {}
                sides: dict[str, Side] = {}
                for name in item.engines:
                    where = opts.out_dir / item.scenario.name / f"rep-{rep + 1}" if nested else opts.out_dir
                    one = RunOne(item.scenario, name, kafka, opts, _faults(item.scenario), run_dir=where / name,
                                 keep_side=name in compared, network=network)
                    try:
                        run = {**one.execute(), "repetition": rep + 1}
                    except Exception as e:  # noqa: BLE001 - one failed run must not cost the runs after it
                        opts.log(f"[{name}] the run failed: {type(e).__name__}: {e}; recorded as unknown")
                        run = {**one.error_run(e), "repetition": rep + 1}
                    if one.side is not None:
                        sides[name] = one.side
                    if "ceiling" in results:
                        run["metrics"]["ceiling_fraction"] = round(
                            run["metrics"]["throughput_eps"] / results["ceiling"]["txn_copy_eps"], 4)
                    results["runs"].append(run)
                    if one.window_op is not None:
                        late_by_engine[name] = one.late_ids
                    _write_results(opts.out_dir, results)
                comparison: dict[str, Any] = {}
                if len(late_by_engine) >= 2:
                    comparison.update(compare_late(late_by_engine))
                conformance = [_conformance(sides, ref, real, opts.log) for ref, real in pairs]
                if conformance:
                    comparison["conformance"] = conformance
                if comparison:
                    results["comparisons"].append({"scenario": item.scenario.name, "repetition": rep + 1,
                                                   **comparison})
                    _write_results(opts.out_dir, results)
    if len(plan) == 1 and len(results["comparisons"]) == 1:
        results["comparison"] = results["comparisons"][0]
    _write_results(opts.out_dir, results)
    return results


def _run_capacity(item: Planned, opts: RunOptions, kafka: KafkaProvider, results: dict[str, Any]) -> None:
    """Each engine's capacity search for ``item``, into ``results["capacity"]`` (written after each engine)."""
    nested = opts.out_dir / item.scenario.name / "capacity"
    search = CapacityRun(item.scenario, kafka, nested, opts.criteria, item.repetitions, opts.log,
                         ceiling=results.get("ceiling"), keep_topics=opts.keep_topics, options=opts)
    for name in item.engines:
        results.setdefault("capacity", []).append(search.measure(name))
        _write_results(opts.out_dir, results)


def conformance_pairs(engines: Sequence[str]) -> list[tuple[str, str]]:
    """(reference, real) for every engine of ``engines`` that is the real system of a reference engine also in it."""
    present = set(engines)
    pairs = []
    for name in engines:
        reference = getattr(get_engine(name), "conforms_to", None)
        if reference is not None and reference in present:
            pairs.append((reference, name))
    return pairs


def _conformance(sides: dict[str, Side], reference: str, real: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The conformance of ``real`` to ``reference`` in one repetition (``equal`` None when one did not finish)."""
    missing = [e for e in (reference, real) if e not in sides]
    if missing:
        return {"reference": reference, "real": real, "comparable": False, "equal": None,
                "summary": f"not compared: no checked output of {', '.join(missing)} (the run did not finish)"}
    result = compare(sides[reference], sides[real])
    log(f"reference against real: {result['summary']}")
    return result


def compare_late(late_by_engine: dict[str, set]) -> dict[str, Any]:
    """Which inputs each engine declared late and the others did not: a difference between the models.

    Both engines may be right by their own rule for time (per-task
    stream-time, or the minimum watermark); this is reported, not judged.
    """
    engines = sorted(late_by_engine)
    only = {e: len(late_by_engine[e] - set().union(*(late_by_engine[o] for o in engines if o != e)))
            for e in engines}
    parts = [f"{e} declared {len(late_by_engine[e])} inputs late" for e in engines]
    differ = any(only.values())
    if differ:
        detail = "; ".join(f"{only[e]} only by {e}" for e in engines)
        summary = (f"The models dropped different records as late: {', '.join(parts)} ({detail}). "
                   f"This is a difference between the models (stream-time per task versus the minimum "
                   f"watermark over inputs), not a failure.")
    else:
        summary = f"The models dropped the same records as late: {', '.join(parts)}."
    return {"late_inputs": {e: len(late_by_engine[e]) for e in engines}, "late_only_by": only,
            "models_differ": differ, "summary": summary}


def _write_results(out_dir: Path, results: dict) -> None:
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(out_dir / "results.json")


class ResourceSampler(threading.Thread):
    """CPU seconds and peak RSS of the engine's processes, sampled once a second."""

    def __init__(self, procs: Callable[[], list[ManagedProcess]]) -> None:
        super().__init__(name="resources", daemon=True)
        self.procs = procs
        self.cpu: dict[tuple[int, float], float] = {}
        self.peak_rss = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(1.0):
            self.sample()

    def sample(self) -> None:
        rss = 0
        for p in self.procs():
            try:
                ps = psutil.Process(p.pid)
                t = ps.cpu_times()
                self.cpu[(p.pid, p.create_time)] = t.user + t.system
                rss += ps.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.peak_rss = max(self.peak_rss, rss)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


class RunOne:
    """One scenario on one engine."""

    def __init__(self, scenario: Scenario, engine: str, kafka: KafkaProvider, opts: RunOptions,
                 faults: list[Fault], run_dir: Path | None = None, keep_side: bool = False,
                 network: Network | None = None, watch: Callable[[RunOne, float], str | None] | None = None) -> None:
        self.network = network
        #: called about twice a second during the load with the seconds since it started; a reason it returns
        #: stops the run (StoppedEarly)
        self.watch = watch
        self.t0: float | None = None
        self.s, self.engine_name, self.kafka, self.opts, self.faults = scenario, engine, kafka, opts, faults
        self.engine = get_engine(engine)
        self.log = opts.log
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
        self.prefix = f"sg.{self.run_id}.{engine}."
        self.pipeline = load_job(scenario.job)
        self.topics = {"input": f"{self.prefix}input", "output": f"{self.prefix}output"}
        if self.pipeline.late_topic:
            self.topics["late"] = f"{self.prefix}{self.pipeline.late_topic}"
        self.run_dir = run_dir or opts.out_dir / engine
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap = kafka.bootstrap_servers()
        self.deployment: Deployment | None = None
        self.probe: Probe | None = None
        self.load: GeneratorProcesses | LocustLoad | None = None
        self.injector: FaultInjector | None = None
        self.sampler: ResourceSampler | None = None
        self.late_ids: set = set()
        self.keep_side = keep_side  # keep what a reference-against-real comparison needs of this run
        self.side: Side | None = None

    # -- the timeline ------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        s = self.s
        self.log(f"== {s.name} on {self.engine_name} ({s.guarantee.value}, job {s.job}, "
                 f"parallelism {s.parallelism}, {s.partitions} partitions)")
        try:
            replication = min(3, len(self.kafka.nodes()) or 1)
            create_topics(self.bootstrap, {t: s.partitions for t in self.topics.values()}, replication=replication)
            self.log(f"topics: {self.prefix}*")
            engine = self.engine
            spec = DeploySpec(job=s.job, parallelism=s.parallelism, guarantee=s.guarantee,
                              bootstrap=self.bootstrap, topics=dict(self.topics), prefix=self.prefix,
                              partitions=s.partitions, run_dir=self.run_dir, replication=replication,
                              config=s.config_for(self.engine_name), network=self.network,
                              bounded=s.workload.bounded)
            if s.workload.bounded:
                return self._execute_bounded(spec)
            deployed_ms = int(time.time() * 1000)
            self.deployment = engine.deploy(spec)
            self.deployment.wait_ready(READY_TIMEOUT_S)
            self.log("engine ready")
            self.sampler = ResourceSampler(self.deployment.processes)
            self.sampler.start()
            self.probe = Probe(self.bootstrap, self.topics["output"], s.partitions)
            self.probe.start()
            t0 = self.t0 = time.time() + 1.0
            self.load = self._start_load(t0)
            infrastructure: dict[str, Any] = ({broker.ROLE: broker.Brokers(self.kafka, self.topics, deployed_ms)}
                                              if self.kafka.node_faults else {})
            if self.network is not None:
                infrastructure["network"] = self.network
            self.injector = FaultInjector(self.deployment, self.faults, s.workload.seed, t0, log=self.log,
                                          worker_roles=engine.worker_roles, infrastructure=infrastructure)
            self.injector.start()
            gen_summary = self._wait_load(t0)
            return self._finish(t0, gen_summary)
        finally:
            self._teardown()

    def _finish(self, t0: float, gen_summary: dict[str, Any]) -> dict[str, Any]:
        """After the load: the heals, the oracle, the drain, the engine stopped, the checks and the figures."""
        assert self.sampler is not None and self.deployment is not None and self.probe is not None
        self._wait_heals()
        inputs = read_all(self.bootstrap, self.topics["input"], isolation="read_uncommitted")
        try:
            oracle: Oracle | None = Oracle(self.pipeline, inputs)
        except Exception as e:  # noqa: BLE001 - the checkers report the oracle's failure as unknown
            self.log(f"the oracle failed ({type(e).__name__}: {e}): draining until the job is idle")
            oracle = None
        drained, drain_s = self._drain(oracle)
        self.sampler.sample()
        self.deployment.stop()
        self.probe.stop()
        return self._check_and_measure(t0, gen_summary, inputs, oracle, drained, drain_s)

    def _execute_bounded(self, spec: DeploySpec) -> dict[str, Any]:
        """A bounded job: the whole input written first, then the job deployed; it reads to the end and
        finishes by itself. Its duration and throughput are measured; latency has no meaning here."""
        s = self.s
        self.probe = Probe(self.bootstrap, self.topics["output"], s.partitions)
        self.probe.start()
        t0 = time.time() + 1.0
        self.load = self._start_load(t0)
        gen_summary = self._wait_load(t0)
        self.log("input written: deploying the bounded job")
        self.deployment = self.engine.deploy(spec)
        self.sampler = ResourceSampler(self.deployment.processes)
        self.sampler.start()
        self.injector = FaultInjector(self.deployment, self.faults, s.workload.seed, time.time(), log=self.log,
                                      worker_roles=self.engine.worker_roles)
        self.injector.start()
        finishing = cast(Finishing, self.deployment)
        wait_until(finishing.finished, s.drain.timeout + READY_TIMEOUT_S,
                   lambda: f"the bounded job to finish by itself (status: {self.deployment.status() if self.deployment else {}})",
                   interval=0.2)
        duration = finishing.job_duration_s()
        self.log(f"the job finished by itself in {duration} s")
        run = self._finish(t0, gen_summary)
        why = "a bounded job: its input was written before it started, so it has no latency to measure"
        run["metrics"].update({
            "bounded": {"duration_s": duration,
                        "throughput_eps": round(run["inputs"] / duration, 1) if duration else None},
            "latency_ms": {k: None for k in run["metrics"]["latency_ms"]},
            "steady_latency_ms": {k: None for k in run["metrics"]["steady_latency_ms"]},
            "keeps_up": {"keeps_up": None, "why": why}, "recovery_s": [None] * len(run["faults"])})
        return run

    def error_run(self, error: BaseException) -> dict[str, Any]:
        """The record of a run that raised before it was checked: invalid, verdict unknown, its expectations
        unmet, its metrics empty (the reports and the gate read it like any other run)."""
        why = f"the run failed: {type(error).__name__}: {error}"
        s = self.s
        return {
            "scenario": s.name, "engine": self.engine_name, "job": s.job, "guarantee": s.guarantee.value,
            "parallelism": s.parallelism, "partitions": s.partitions, "run_id": self.run_id,
            "valid": False, "invalid_reason": why, "verdict": "unknown",
            "expectations": {"met": False, "unmet": [f"verdict unknown: {why}"]},
            "anomalies": {}, "examples": {}, "checks": [], "inputs": 0, "outputs": 0, "outputs_uncommitted": 0,
            "drain": {"drained": False, "seconds": 0.0},
            "faults": [e.to_dict() for e in self.injector.events] if self.injector is not None else [],
            "metrics": {"throughput_eps": 0.0, "output_eps": 0.0, "ceiling_fraction": None,
                        "latency_ms": {"p50": None, "p90": None, "p99": None, "p999": None, "max": None},
                        "steady_latency_ms": {"p50": None, "p90": None, "p99": None, "p999": None,
                                              "max": None},
                        "recovery_s": [], "keeps_up": {"keeps_up": None, "why": why}, "longest_stall_s": None,
                        "cpu_s": 0.0, "rss_mb": 0.0, "events_per_core_second": None, "publish_delay_max_ms": None,
                        "load": None,
                        "timeline": {"inputs": [], "outputs": [], "p99_ms": []}},
            "engine_status": {}, "error": why,
        }

    def _start_load(self, t0: float) -> GeneratorProcesses | LocustLoad:
        w = self.s.workload
        cfg = {"bootstrap": self.bootstrap, "topic": self.topics["input"], "rate": w.rate,
               "duration_s": w.duration, "keys": w.keys, "seed": w.seed, "t0": t0,
               "skew_kind": w.key_skew.kind, "skew_s": w.key_skew.s or 0.0,
               "max_schedule_lag_s": w.max_schedule_lag, "event_epoch_ms": w.event_epoch_ms}
        cfg.update(workload_fields(w, self.s.partitions))
        o = self.opts
        processes = o.load_workers if o.load_workers is not None else w.generator_processes(self.s.partitions)
        load: GeneratorProcesses | LocustLoad
        if o.load == "locust":
            load = LocustLoad(cfg, processes, self.run_dir, o.load_remote_workers, o.load_master_port)
            remote = f" and {o.load_remote_workers} on other machines" if o.load_remote_workers else ""
            spread = f" from locust: a master on port {load.port}, {processes} local workers{remote}"
        else:
            load = GeneratorProcesses(cfg, processes, self.run_dir)
            spread = "" if processes == 1 else f" from {processes} generator processes"
        self.log(f"load: {w.rate:.0f} events/s for {w.duration:.0f} s ({w.total_events} events){spread}")
        load.start()
        return load

    def _wait_load(self, t0: float) -> dict[str, Any]:
        assert self.load is not None and self.probe is not None
        probe = self.probe
        next_progress = time.time() + 5

        def tick() -> None:
            nonlocal next_progress
            now = time.time()
            if now >= next_progress:
                next_progress = now + 5
                self.log(f"t={now - t0:5.1f}s  outputs seen {probe.seen_count():>8}")
            why = self.watch(self, now - t0) if self.watch is not None else None
            if why:
                self.log(f"t={now - t0:5.1f}s  stopping early: {why}")
                raise StoppedEarly(why)

        summary = self.load.wait(t0 + self.s.workload.duration + 120, tick)
        self.log(f"load done: {summary['sent']} events sent, worst publish delay {summary['max_lag_s'] * 1000:.0f} ms")
        return summary

    def _wait_heals(self) -> None:
        """Let pending heals (restarts after kills, resumes after pauses) happen before draining."""
        assert self.injector is not None
        self.injector.join(timeout=max(60.0, max((kind_of(f).heal_deadline_s(f) for f in self.faults),
                                                 default=0) + 30))
        self.injector.stop()

    @property
    def window_op(self) -> WindowAggregate | None:
        return next((op for op in self.pipeline.ops if isinstance(op, WindowAggregate)), None)

    def _drain(self, oracle: Oracle | None) -> tuple[bool, float]:
        """Wait until every expected output is visible, or the job is idle with its input consumed.

        Windows are emitted as time passes, so which ones appear is not known
        in advance: a windowed job is drained once it is idle (and, where the
        engine can tell, has consumed all its input).
        """
        assert self.probe is not None
        windowed = self.window_op is not None
        # without an oracle the expected outputs are unknown: drain like a windowed job, until idle
        until_idle = windowed or oracle is None
        expected = set() if oracle is None or windowed else {i for i, outs in oracle.expected.items() if outs}
        started = time.monotonic()
        deadline = started + self.s.drain.timeout
        quiet = self.s.drain.quiet
        what = "the windows to close" if windowed else "the job to be idle" if until_idle else f"{len(expected)} outputs"
        self.log(f"draining: waiting for {what} (at most {self.s.drain.timeout:.0f} s)")
        while time.monotonic() < deadline:
            if not until_idle and self.probe.has_all(expected):
                return True, time.monotonic() - started
            idle = time.monotonic() - max(self.probe.last_receipt, started) >= quiet
            if idle and (self.deployment.lag() == 0 if isinstance(self.deployment, Lagging) else until_idle):
                self.log("drained: the job is idle and has consumed all input")
                return True, time.monotonic() - started
            time.sleep(0.25)
        self.log(f"drain timed out after {self.s.drain.timeout:.0f} s")
        return False, time.monotonic() - started

    def _check_and_measure(self, t0: float, gen: dict[str, Any], inputs: list, oracle: Oracle | None,
                           drained: bool, drain_s: float) -> dict[str, Any]:
        assert self.probe is not None and self.deployment is not None and self.injector is not None
        s = self.s
        committed = read_all(self.bootstrap, self.topics["output"], isolation="read_committed")
        uncommitted = read_all(self.bootstrap, self.topics["output"], isolation="read_uncommitted")
        late = read_all(self.bootstrap, self.topics["late"], isolation="read_committed") if "late" in self.topics else []
        engine = self.engine
        status = self.deployment.status()
        checked_topics = [t for t in list_topics(self.bootstrap) if self.prefix in t and t != self.topics["input"]]
        observed = Observed(
            inputs=inputs, committed=committed, uncommitted=uncommitted, probe=list(self.probe.positions),
            offsets=stable_and_end_offsets(self.bootstrap, checked_topics),
            offsets_later=lambda: stable_and_end_offsets(self.bootstrap, checked_topics),
            txn_timeout_s=self.deployment.transaction_timeout_s(), drained=drained,
            late=late, late_declared=engine.late_side_output, window_time=engine.window_time,
            late_metric=status.get("late_records_counted"), partitions=s.partitions,
            faults=len(self.injector.events))
        late_pairs = self._late_pairs(observed, late, oracle)
        self.late_ids = {input_id for input_id, _window in late_pairs}
        self.log("checking...")
        checks = run_checks(self.pipeline, observed)
        if self.keep_side and oracle is not None:
            try:
                self.side = side_of(self.engine_name, oracle, observed,
                                    at_least_once=self.s.guarantee == Guarantee.at_least_once)
            except Exception as e:  # noqa: BLE001 - a comparison that cannot be made is reported, not fatal
                self.log(f"reference against real: this run's output could not be reduced for comparison: {e}")
        verdict = overall(checks)
        summary = summarize(checks)

        load_s = int(s.workload.duration)
        seconds = load_s + int(drain_s) + 5
        tl = timeline(t0, seconds, gen.get("per_second") or [], self.probe.receipt_us, self.probe.st_us)
        hist = latency_histogram(self.probe.receipt_us, self.probe.st_us)
        latency = percentiles_ms(hist)
        events = [e.to_dict() for e in self.injector.events]
        first_fault = min((e["at_s"] for e in events), default=float(load_s))
        base = baseline_p99(tl, first_fault)
        recovery = [recovery_seconds(tl, e["at_s"], base, load_s) for e in events]
        windows = [(e["at_s"], e["at_s"] + (r if r is not None else load_s)) for e, r in zip(events, recovery)]
        # the latency away from the faults: events scheduled from a second before each fault (under exactly-once
        # the outputs of the last uncommitted transaction wait out the recovery too) until it recovered are left out
        recovering = [(start - 1.0, end) for start, end in windows]
        steady = percentiles_ms(latency_histogram(self.probe.receipt_us, self.probe.st_us,
                                                  keep=outside_windows(t0, recovering))) if windows else latency
        follow: dict[str, Any] = keeps_up(tl, windows, load_s) if self.window_op is None else {
            "keeps_up": None, "why": "not measured for windowed jobs: one output per window, not per input"}
        cpu_s = sum(self.sampler.cpu.values()) if self.sampler else 0.0
        valid = bool(gen.get("valid", False)) and not self.probe.error
        invalid_reason = gen.get("reason") or self.probe.error or ""
        metrics = {
            "throughput_eps": round(gen["sent"] / s.workload.duration, 1),
            "output_eps": round(len(committed) / s.workload.duration, 1),
            "ceiling_fraction": None,
            "latency_ms": latency,
            "steady_latency_ms": steady,
            "recovery_s": recovery,
            "keeps_up": follow,
            "longest_stall_s": longest_stall_s(tl),
            "cpu_s": round(cpu_s, 1),
            "rss_mb": round((self.sampler.peak_rss if self.sampler else 0) / 2**20, 1),
            "events_per_core_second": round(gen["sent"] / cpu_s, 1) if cpu_s else None,
            "publish_delay_max_ms": round(gen["max_lag_s"] * 1000, 1),
            "load": load_figures(gen, cpu_s),
            "timeline": {"inputs": tl.inputs, "outputs": tl.outputs, "p99_ms": tl.p99_ms},
        }
        if self.window_op is not None:
            metrics["late_dropped"] = len(late_pairs)
            metrics["late_inputs"] = len(self.late_ids)
            metrics["late_declared_by"] = "engine" if engine.late_side_output else "derived from the input"
            metrics["window_result_latency_ms"] = window_result_latency_ms(
                self.probe.receipt_us, self.probe.window_end_ms, self.window_op.grace_ms,
                wall_offset_ms=self._event_time_offset_ms(t0))
        unmet = s.expect_for(self.engine_name).unmet(verdict=verdict, anomalies=summary["anomalies"],
                               p99_latency_s=latency["p99"] / 1000,
                               recovery_s=[r for r in recovery if r is not None] if all(
                                   r is not None for r in recovery) else [None] * len(recovery),
                               keeps_up=follow["keeps_up"])
        if verdict == "unknown":  # inconclusive is never a pass, whatever the scenario expects
            inconclusive = [f"{c.name}: {c.detail}" for c in checks if c.verdict == "unknown"]
            unmet = [f"verdict unknown: inconclusive checks ({'; '.join(inconclusive)})", *unmet]
        run = {
            "scenario": s.name, "engine": self.engine_name, "job": s.job, "guarantee": s.guarantee.value,
            "parallelism": s.parallelism, "partitions": s.partitions, "run_id": self.run_id,
            "valid": valid, "invalid_reason": invalid_reason,
            "verdict": verdict,
            "expectations": {"met": valid and not unmet, "unmet": unmet},
            "anomalies": summary["anomalies"], "examples": summary["examples"],
            "checks": [{"name": c.name, "verdict": c.verdict, "count": c.count, "detail": c.detail}
                       for c in checks],
            "inputs": len(inputs), "outputs": len(committed),
            "outputs_uncommitted": len(uncommitted),
            "drain": {"drained": drained, "seconds": round(drain_s, 1)},
            "faults": events,
            "metrics": metrics,
            "engine_status": status,
        }
        return run

    def _event_time_offset_ms(self, t0: float) -> int:
        """What to add to an event time to get its wall-clock time: 0, or on a fixed epoch, t0 - the epoch."""
        epoch = self.s.workload.event_epoch_ms
        return 0 if epoch is None else round(t0 * 1000) - epoch

    def _late_pairs(self, observed: Observed, late: list, oracle: Oracle | None) -> list[tuple[Any, Any]]:
        """The (input id, window) pairs declared late: the engine's late records, or those derived from the
        input for an engine that writes none (none without an oracle)."""
        if observed.late_declared or self.window_op is None:
            return [(orjson.loads(r.value).get("id"), None) for r in late if r.value]
        if oracle is None:
            return []
        lateness = lateness_of(oracle, observed)
        return [(i, w) for w, ids in lateness.late.items() for i in ids]

    def _teardown(self) -> None:
        for step in (self._stop_injector, self._stop_generator, self._stop_deployment, self._stop_probe,
                     self._stop_sampler, self._delete_topics):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - teardown goes on whatever fails
                self.log(f"teardown: {step.__name__} failed: {e}")

    def _stop_injector(self) -> None:
        if self.injector is not None:
            self.injector.stop()

    def _stop_generator(self) -> None:
        if self.load is not None:
            self.load.stop()

    def _stop_deployment(self) -> None:
        if self.deployment is not None:
            self.deployment.stop()

    def _stop_probe(self) -> None:
        if self.probe is not None and self.probe.is_alive():
            self.probe.stop()

    def _stop_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def _delete_topics(self) -> None:
        """Every topic whose name contains the run's prefix: the run's own, and those an engine derives from
        its application id (which starts with the prefix) however it shapes the name."""
        if not self.opts.keep_topics:
            delete_topics(self.bootstrap, [t for t in list_topics(self.bootstrap) if self.prefix in t])
