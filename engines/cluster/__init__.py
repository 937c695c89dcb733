"""Reference engine B — the coordinated-cluster model (Apache Flink).

One JobManager process and N TaskManager processes with slots. The deployer
creates the sink's commit-marker topic, starts the JobManager, then the
TaskManagers, which register with it; the JobManager deploys the job and
checkpoints it.

Event time: sources generate per-partition watermarks and send
them in-band; window operators fire on the watermark and write late records
to the pipeline's late side output, the deploy spec's
``topics[pipeline.late_topic]`` (else ``topics["late"]``).
"""

from __future__ import annotations

import signal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engines.cluster.graph import event_time_problems
from engines.cluster.ha import read_lease
from harness.api import (
    LIFE_CYCLE_FAULTS,
    NETWORK_FAULTS,
    PROCESS_FAULTS,
    DeploySpec,
    Guarantee,
    Prerequisite,
    RunRequest,
    load_job,
)
from harness.api.deployment import (
    WorkerProcesses,
    config_problems,
    options_of,
    parse_engine_config,
    reference_versions,
)
from harness.api.groups import taskmanager_process_count
from harness.api.toolkit import SUPERVISOR, ConfigError, ProcessError, create_topics


class ClusterConfig(BaseModel):
    """Options of the cluster engine (Flink names in brackets), recorded in results."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    taskmanagers: int | None = Field(None, ge=1, description="TaskManager processes; None: the job's parallelism")
    slots_per_taskmanager: int = Field(2, ge=1, description="taskmanager.numberOfTaskSlots")
    checkpoint_interval_ms: int = Field(1000, ge=50, description="execution.checkpointing.interval")
    checkpoint_timeout_ms: int = Field(30_000, ge=1000, description="execution.checkpointing.timeout")
    heartbeat_interval_ms: int = Field(500, ge=50, description="heartbeat.interval")
    heartbeat_timeout_ms: int = Field(5000, ge=500, description="heartbeat.timeout")
    restart_delay_ms: int = Field(1000, ge=0, description="restart-strategy.fixed-delay.delay")
    transaction_timeout_ms: int = Field(60_000, ge=1000, description="the sink producer's transaction.timeout.ms")
    idle_timeout_ms: int | None = Field(5000, ge=1, description="WatermarkStrategy.withIdleness; None: never idle")
    watermark_interval_ms: int = Field(200, ge=1, description="pipeline.auto-watermark-interval")
    high_availability: bool = Field(False, description="high-availability.type: a standby JobManager and leader "
                                                       "election by a lease under the run directory")
    lease_timeout_ms: int = Field(5000, ge=500, description="high-availability lease: a leader that has not "
                                                            "renewed it this long is replaced")

def parse_config(raw: dict[str, Any]) -> ClusterConfig:
    return parse_engine_config(ClusterConfig, raw, "cluster")


def logical_topics(pipeline_late_topic: str | None) -> dict[str, str]:
    """The logical topics the runner gives a job (their real names do not matter for the pre-flight check)."""
    return {"input": "input", "output": "output", **({"late": "late"} if pipeline_late_topic else {})}


def check_event_time(spec: DeploySpec) -> None:
    """Raise ConfigError, before any process starts, when the job's windows cannot run as deployed."""
    problems = event_time_problems(load_job(spec.job), spec.topics)
    if problems:
        msg = f"cluster engine: job {spec.job}: " + "; ".join(problems)
        raise ConfigError(msg)


class ClusterEngine:
    """Deploys a job on a JobManager and TaskManagers."""

    name = "cluster"
    roles = frozenset({"taskmanager", "jobmanager"})
    worker_roles = frozenset({"taskmanager"})
    bounded_jobs = True
    fault_kinds = PROCESS_FAULTS | NETWORK_FAULTS | LIFE_CYCLE_FAULTS
    # at_most_once would need sources that skip a checkpoint's replay: it restores from checkpoints or not at all
    guarantees = frozenset({Guarantee.at_least_once, Guarantee.exactly_once})
    jobs = None  # it interprets the Pipeline DSL: any job
    options = options_of(ClusterConfig)
    late_side_output = True
    window_time = "watermark"
    conforms_to = None  # a reference engine

    def unsupported(self, kind: str, role: str) -> str | None:
        """Why a fault cannot be aimed at ``role``, or None when it can (a JobManager fault needs high
        availability, which :meth:`problems` checks in the run's options)."""
        return None

    def process_count(self, role: str, request: RunRequest) -> int | None:
        return taskmanager_process_count(role, request)

    def problems(self, request: RunRequest) -> list[str]:
        out = config_problems(ClusterConfig, request.options, self.name)
        if not out and not ClusterConfig(**request.options).high_availability:
            out += [f"faults[{i}]: a {f.kind} of the jobmanager needs JobManager failover: set "
                    f"engine_config.cluster.high_availability: true (a standby JobManager)"
                    for i, f in enumerate(request.faults) if f.role == "jobmanager"]
        pipeline = load_job(request.job)
        if request.bounded and pipeline.source_op.timestamps is not None:
            out.append(f"job {request.job}: a bounded job on event time needs a final watermark at the end of "
                       f"input, which the cluster engine does not emit yet")
        out.extend(f"job {request.job}: {p}"
                   for p in event_time_problems(pipeline, logical_topics(pipeline.late_topic)))
        return out

    def prerequisites(self) -> list[Prerequisite]:
        return []

    def prepare(self, log: Any = print) -> None:
        """Nothing to prepare: it runs in the harness's own environment."""

    def deploy(self, spec: DeploySpec) -> ClusterDeployment:
        return ClusterDeployment(spec)


class ClusterDeployment(WorkerProcesses):
    """A running cluster job: its JobManager and TaskManager processes."""

    kind = "cluster"

    def __init__(self, spec: DeploySpec) -> None:
        super().__init__(spec.run_dir / "cluster")
        if spec.guarantee is Guarantee.at_most_once:
            msg = "cluster engine: at_most_once is not supported (it restores from checkpoints or not at all)"
            raise ConfigError(msg)
        self.spec = spec
        self.config = parse_config(spec.config)
        self.network, self.network_roles = spec.network, frozenset({"taskmanager"})
        #: where the JobManager listens: the bridge of a network run, which the TaskManagers' namespaces reach
        self.host = spec.network.bridge_address if spec.network is not None else "127.0.0.1"
        check_event_time(spec)
        self.app_id = f"{spec.prefix}app"
        self.topics = {**spec.topics, "markers": f"{spec.prefix}sink-markers"}
        create_topics(spec.bootstrap, {self.topics["markers"]: 1}, replication=spec.replication,
                      config={"cleanup.policy": "compact"})
        self.checkpoint_dir = self.dir / "checkpoints"
        self.parallelism, self.rescales = spec.parallelism, 0
        #: high availability: two JobManagers electing a leader by a lease in ``ha_dir``
        self.ha_dir = self.dir / "ha" if self.config.high_availability else None
        self.jm_names = ["jobmanager-0", "jobmanager-1"] if self.ha_dir is not None else ["jobmanager"]
        self.jm_port = self._start_jobmanagers()
        for i in range(self._taskmanager_count()):
            self._start_taskmanager(f"taskmanager-{i}")

    # -- processes ----------------------------------------------------------------------------------
    def _start_jobmanager(self, name: str) -> None:
        cfg = {"name": name, "ha_dir": str(self.ha_dir) if self.ha_dir is not None else None,
               "lease_timeout_ms": self.config.lease_timeout_ms, "job": self.spec.job,
               "parallelism": self.parallelism, "partitions": self.spec.partitions,
               "checkpoint_dir": str(self.checkpoint_dir), "status_path": str(self.status_path(name)),
               "checkpoint_interval_ms": self.config.checkpoint_interval_ms,
               "checkpoint_timeout_ms": self.config.checkpoint_timeout_ms,
               "heartbeat_timeout_ms": self.config.heartbeat_timeout_ms,
               "restart_delay_ms": self.config.restart_delay_ms,
               "taskmanagers": self._taskmanager_count(), "host": self.host,
               "bounded": self.spec.bounded}
        self.spawn(name, "jobmanager", cfg, module="engines.cluster.jobmanager")

    def _start_jobmanagers(self) -> int:
        """Start the JobManager (highly available: the first, and once it leads the standby): its port."""
        self._start_jobmanager(self.jm_names[0])
        port = self._wait_jm_port()
        for name in self.jm_names[1:]:
            self._start_jobmanager(name)
        return port

    def _wait_jm_port(self, timeout_s: float = 60.0) -> int:
        """The leading JobManager's port, once it listens (and, highly available, holds the lease)."""
        def up() -> tuple[bool, str]:
            st = self._jm_status()
            return bool(st.get("port")) and st.get("role", "leader") == "leader", f"{st.get('role')}, no port yet"
        self.wait_for(up, timeout_s, "the jobmanager to listen and lead", interval_s=0.05)
        return int(self._jm_status()["port"])

    def leading(self, role: str) -> str | None:
        """The JobManager that holds the lease (a fault on the jobmanager role hits it), None without HA."""
        if role != "jobmanager" or self.ha_dir is None:
            return None
        lease = read_lease(self.ha_dir)
        return str(lease["holder"]) if lease and not lease.get("released") else None

    def _start_taskmanager(self, name: str) -> None:
        data_host = self.network.add_worker(name).address if self.network is not None else "127.0.0.1"
        cfg = {"tm_id": name, "jm_host": self.host, "jm_port": self.jm_port, "data_host": data_host,
               "ha_dir": str(self.ha_dir) if self.ha_dir is not None else None,
               "bounded": self.spec.bounded,
               "slots": self.config.slots_per_taskmanager, "job": self.spec.job,
               "bootstrap": self.spec.bootstrap, "topics": self.topics, "guarantee": self.spec.guarantee.value,
               "app_id": self.app_id, "checkpoint_dir": str(self.checkpoint_dir),
               "heartbeat_interval_ms": self.config.heartbeat_interval_ms,
               "transaction_timeout_ms": self.config.transaction_timeout_ms,
               "idle_timeout_ms": self.config.idle_timeout_ms,
               "watermark_interval_ms": self.config.watermark_interval_ms}
        self.spawn(name, "taskmanager", cfg, module="engines.cluster.taskmanager")

    def finished(self) -> bool:
        return self._jm_status().get("state") == "FINISHED"

    def job_duration_s(self) -> float | None:
        times = self._jm_status().get("times") or {}
        return round(times["finished"] - times["deployed"], 3) if "finished" in times else None

    def upgrade(self) -> None:
        """Stop with a savepoint (the JobManager takes a checkpoint on request, then cancels the job), stop the
        TaskManagers, and start the cluster again: the new JobManager deploys the job from the savepoint."""
        self._redeploy(self.parallelism)

    def scale(self, to: int) -> None:
        """Stop with a savepoint and redeploy at parallelism ``to`` on ``to`` TaskManagers: the new subtasks
        restore the key groups and partitions they now own (Scalable)."""
        self.rescales += 1
        self._redeploy(to)

    def _redeploy(self, parallelism: int) -> None:
        leader = self.leading("jobmanager") or self.jm_names[0]
        # a standby would take the job over from a leader that stops: it stops first
        self._stop_together([self._procs[n] for n in self.jm_names if n != leader and n in self._procs])
        jm = self._procs[leader]
        jm.send(signal.SIGUSR1)
        if not jm.wait(self.config.checkpoint_timeout_ms / 1000 * 3 + 30):
            msg = "cluster: the JobManager did not stop with a savepoint in time"
            raise ProcessError(msg)
        self._stop_together([p for n, p in self._procs.items() if n not in self.jm_names])
        SUPERVISOR.forget(jm)
        self.upgrades += parallelism == self.parallelism
        self.parallelism = parallelism
        for name in self.jm_names:  # the new JobManagers' ports, not the old ones'
            self.status_path(name).unlink(missing_ok=True)
        self._procs.clear()
        self.jm_port = self._start_jobmanagers()
        for i in range(self._taskmanager_count()):
            self._start_taskmanager(f"taskmanager-{i}")
        self.wait_ready(120)

    def _taskmanager_count(self) -> int:
        """The TaskManagers to start: the configured number, else one per subtask; rescaled, one per subtask."""
        if self.config.taskmanagers is not None and self.rescales == 0:
            return self.config.taskmanagers
        return self.parallelism

    def _jm_status(self) -> dict[str, Any]:
        """The leading JobManager's status (highly available: the lease holder's, else the first's)."""
        return self.read_status(self.leading("jobmanager") or self.jm_names[0])

    # -- Deployment ------------------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        self.wait_for(lambda: (self._jm_status().get("state") in ("RUNNING", "FINISHED"),
                               f"state {self._jm_status().get('state')}"), timeout_s, "the cluster job to reach RUNNING")

    def transaction_timeout_s(self) -> float:
        return self.config.transaction_timeout_ms / 1000

    def status(self) -> dict[str, Any]:
        st = self._jm_status()
        ck = st.get("checkpoints", {})
        durations = sorted(ck.get("durations_ms", []))
        alignment = sorted(ck.get("alignment_ms", []))

        def pct(values: list[float], q: float) -> float | None:
            return values[min(len(values) - 1, int(len(values) * q))] if values else None

        counters = self.statuses("taskmanager")
        fenced = sum(c.get("fenced_commits", 0) for c in counters.values())
        facts = {"output visibility": f"checkpoint interval {self.config.checkpoint_interval_ms} ms",
                 "commits refused by fencing": fenced,
                 "checkpoints completed": ck.get("completed", 0),
                 "checkpoint duration p50 / p99 ms": f"{_ms(pct(durations, 0.5))} / {_ms(pct(durations, 0.99))}",
                 "alignment p50 / p99 ms": f"{_ms(pct(alignment, 0.5))} / {_ms(pct(alignment, 0.99))}",
                 "global rollbacks": ck.get("restores", 0)}
        lease = read_lease(self.ha_dir) if self.ha_dir is not None else {}
        if lease:
            facts["JobManager takeovers (lease run out)"] = lease.get("takeovers", 0)
            facts["leading JobManager"] = f"{lease.get('holder')} (epoch {lease.get('epoch')})"
        return {"engine": "cluster", "application_id": self.app_id, "version": reference_versions(),
                "config": self.config.model_dump(),
                "facts": facts, "fenced": fenced,
                "disconnected": sum(c.get("disconnected", 0) for c in counters.values()),
                "late_records": sum(c.get("late_records", 0) for c in counters.values()),
                "taskmanager_counters": counters,
                "taskmanagers": sum(1 for p in self._procs.values() if p.role == "taskmanager"),
                "high_availability": {k: lease.get(k) for k in ("holder", "epoch", "takeovers")} if lease else None,
                "restarts": self.restarts, "upgrades": self.upgrades, "rescales": self.rescales,
                "parallelism": self.parallelism, "state": st.get("state"), "attempt": st.get("attempt"),
                "checkpoints": {"completed": ck.get("completed", 0), "failed": ck.get("failed", 0),
                                "duration_ms_p50": pct(durations, 0.5), "duration_ms_p99": pct(durations, 0.99),
                                "alignment_ms_p50": pct(alignment, 0.5), "alignment_ms_p99": pct(alignment, 0.99),
                                "alignment_ms_max": alignment[-1] if alignment else None,
                                "restores": ck.get("restores", 0), "restored_from": ck.get("restored_from", []),
                                "failures": ck.get("failures", []),
                                "rescaled": ck.get("rescaled", [])}}

    def _start_worker(self, name: str) -> None:
        """Restart a TaskManager, or a JobManager (it comes back as the standby), under the same name (the fault
        injector's heal after a kill)."""
        if name in self.jm_names:
            self._start_jobmanager(name)
        else:
            self._start_taskmanager(name)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


ENGINE = ClusterEngine()
