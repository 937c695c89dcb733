"""Peer engine: Apache Flink (2.2.x, the newest line served with a matching Kafka connector), run as it ships.

A standalone session cluster started from Maven jars (:mod:`engines.flink.build`):
one JobManager and ``taskmanagers`` TaskManagers with ``slots_per_taskmanager``
slots, on free loopback ports, configured by a ``config.yaml`` written per run
under the run directory (checkpoints and savepoints there too). The job
catalogue (``java/io/streamgauge/flink/Jobs.java``) is submitted by a small
client over REST; its classes are on the cluster's classpath.

Jobs: KafkaSource (offsets in checkpoints, read_committed), per-partition
bounded-out-of-orderness watermarks with idleness, keyed ValueState or an
event-time window, one KafkaSink for the output and late topics
(EXACTLY_ONCE: transactions committed when a checkpoint completes; or
AT_LEAST_ONCE). Windows follow the catalogue's emission rule with grace folded
into the trigger (``FinalTrigger``): one result per window when the watermark
reaches we - 1 + grace; late records come from Flink's own late side output.

Defaults are Flink's own where Flink has one (heartbeat 10 s / 50 s, the
exponential-delay restart strategy, one slot per TaskManager); two have none
that works here: checkpointing is off unless an interval is set, and the
Kafka sink's transaction timeout (1 h) is above the broker's maximum (15 min).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from engines.flink import build, ha
from engines.flink.rest import FailoverRest, RestUnavailable, checkpoint_facts, restart_facts, tasks_not_running
from harness.api import (
    LIFE_CYCLE_FAULTS,
    NETWORK_FAULTS,
    PROCESS_FAULTS,
    DeploySpec,
    Guarantee,
    Prerequisite,
    RunRequest,
)
from harness.api.deployment import WorkerProcesses, config_problems, options_of, parse_engine_config
from harness.api.groups import (
    CATALOGUE,
    CATALOGUE_TOPICS_READ,
    catalogue_name,
    group_lag,
    taskmanager_process_count,
)
from harness.api.toolkit import SUPERVISOR, ProcessError, admin, coordinator_queries, free_ports

NAME = "flink"
JOB_TOPICS = CATALOGUE_TOPICS_READ
HOST = "127.0.0.1"
BROKER_MAX_TRANSACTION_TIMEOUT_MS = 900_000  # the broker's transaction.max.timeout.ms default
SUBMIT_TIMEOUT_S = 120.0
CANCEL_TIMEOUT_S = 30.0
TERMINAL_STATES = frozenset({"CANCELED", "FAILED", "FINISHED"})
#: What the report says when the checkers find these anomaly classes on Flink: its behaviour, a finding
EXPLANATIONS = {
    "window_duplicate": "Flink does not keep the window operator's watermark in checkpoints (FLINK-5601): "
                        "after a restore the watermark starts again from nothing, so a replayed record that "
                        "was late before lands in a new instance of a window that already fired, which fires "
                        "again",
    "window_accounting": "after a restore Flink's watermark starts again from nothing (FLINK-5601), so a record "
                         "that was late before can be counted in a window; and Flink's window operator drops a "
                         "record from those of its windows that are already late without a side output when "
                         "another of its windows is still open (sliding windows)",
}
#: A JobManager's log lines when its dispatcher gains or loses leadership (high availability)
GRANTED = re.compile(r"^(\d\d:\d\d:\d\d,\d{3}) .*DefaultDispatcherRunner was granted leadership", re.MULTILINE)
REVOKED = re.compile(r"^(\d\d:\d\d:\d\d,\d{3}) .*DefaultDispatcherRunner was revoked", re.MULTILINE)
#: A TaskManager log line that says a sink's write was fenced, and what fenced it
FENCING_PATTERNS = {
    "producer fenced (transactional id re-initialised by a newer attempt)": r"Transiting to fatal error state due "
                                                                           r"to \S*ProducerFencedException",
    "invalid producer epoch (transactional id re-initialised)": r"Transiting to fatal error state due to "
                                                               r"\S*InvalidProducerEpochException",
    "tasks failed on losing the JobManager's heartbeat": r"The heartbeat of JobManager with id \S+ timed out",
    "tasks cancelled by the JobManager": r"Attempting to cancel task",
}


class FlinkConfig(BaseModel):
    """Options of the flink engine (the cluster engine's names); None leaves Flink's own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    taskmanagers: int | None = Field(None, ge=1, description="TaskManager processes; None: the job's parallelism")
    slots_per_taskmanager: int | None = Field(None, ge=1, description="taskmanager.numberOfTaskSlots; None: 1")
    checkpoint_interval_ms: int = Field(1000, ge=50, description="execution.checkpointing.interval (Flink has "
                                                                 "no default: checkpointing is off unless set)")
    checkpoint_timeout_ms: int | None = Field(None, ge=1000, description="execution.checkpointing.timeout; "
                                                                          "None: 10 min")
    heartbeat_interval_ms: int | None = Field(None, ge=50, description="heartbeat.interval; None: 10000")
    heartbeat_timeout_ms: int | None = Field(None, ge=500, description="heartbeat.timeout; None: 50000")
    restart_delay_ms: int | None = Field(None, ge=0, description="fixed-delay restarts with this delay; None: "
                                                                 "Flink's exponential-delay strategy")
    state_backend: Literal["hashmap", "rocksdb"] = Field("hashmap", description="state.backend.type")
    transaction_timeout_ms: int = Field(60_000, ge=1000, description="the Kafka sink producer's "
                                                                     "transaction.timeout.ms (Flink's 1 h is above "
                                                                     "the broker's 15 min maximum)")
    idle_timeout_ms: int | None = Field(5000, ge=1, description="WatermarkStrategy.withIdleness; None: never idle")
    watermark_interval_ms: int | None = Field(None, ge=1, description="pipeline.auto-watermark-interval; "
                                                                      "None: 200")
    high_availability: bool = Field(False, description="high-availability.type: zookeeper, on a ZooKeeper "
                                                       "server streamgauge starts, with two JobManagers; "
                                                       "None of it by default, as in Flink")
    jobmanager_memory: str = Field("768m", description="jobmanager.memory.process.size")
    taskmanager_memory: str = Field("1280m", description="taskmanager.memory.process.size")
    properties: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="any other Flink configuration key, passed through to config.yaml")

    def flink_configuration(self) -> dict[str, str]:
        """The Flink configuration these options stand for (``properties`` last, so they win)."""
        named: dict[str, Any] = {
            "taskmanager.numberOfTaskSlots": self.slots_per_taskmanager,
            "execution.checkpointing.interval": f"{self.checkpoint_interval_ms} ms",
            "execution.checkpointing.timeout": _ms(self.checkpoint_timeout_ms),
            "heartbeat.interval": self.heartbeat_interval_ms,
            "heartbeat.timeout": self.heartbeat_timeout_ms,
            "state.backend.type": self.state_backend,
            "pipeline.auto-watermark-interval": _ms(self.watermark_interval_ms),
            "jobmanager.memory.process.size": self.jobmanager_memory,
            "taskmanager.memory.process.size": self.taskmanager_memory,
        }
        if self.restart_delay_ms is not None:
            named.update({"restart-strategy.type": "fixed-delay",
                          "restart-strategy.fixed-delay.attempts": 2_147_483_647,
                          "restart-strategy.fixed-delay.delay": f"{self.restart_delay_ms} ms"})
        out = {k: str(v) for k, v in named.items() if v is not None}
        out.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.properties.items()})
        return out


def _ms(value: int | None) -> str | None:
    return None if value is None else f"{value} ms"


def job_name(job: str) -> str | None:
    """The catalogue name of a job reference (``scenarios.jobs:running_sum`` -> running_sum), None if not ours."""
    return catalogue_name(job, JOB_TOPICS)


#: Flink keys streamgauge sets for every run (addresses, ports, directories, identities)
OWNED_KEYS = frozenset({
    "jobmanager.rpc.address", "jobmanager.rpc.port", "jobmanager.bind-host", "rest.address", "rest.port",
    "rest.bind-address", "taskmanager.host", "taskmanager.bind-host", "taskmanager.resource-id",
    "execution.checkpointing.dir", "execution.checkpointing.savepoint-dir", "io.tmp.dirs",
    "high-availability.type", "high-availability.zookeeper.quorum", "high-availability.storageDir",
    "high-availability.cluster-id",
    "process.working-dir", "taskmanager.load-balance.mode",
})


def property_problems(config: FlinkConfig) -> list[str]:
    """Pass-through keys that would undo what the harness sets, and a transaction timeout the broker refuses."""
    out = [f"engine_config.{NAME}.properties.{key}: set by streamgauge for every run"
           for key in sorted(config.properties) if key in OWNED_KEYS]
    if config.transaction_timeout_ms > BROKER_MAX_TRANSACTION_TIMEOUT_MS:
        out.append(f"engine_config.{NAME}.transaction_timeout_ms: {config.transaction_timeout_ms} is above the "
                   f"broker's transaction.max.timeout.ms ({BROKER_MAX_TRANSACTION_TIMEOUT_MS}); the sink could "
                   f"not start a transaction. Use at most {BROKER_MAX_TRANSACTION_TIMEOUT_MS}")
    return out


class FlinkEngine:
    """Deploys a catalogue job on a standalone Apache Flink session cluster."""

    name = NAME
    guarantees = frozenset({Guarantee.at_least_once, Guarantee.exactly_once})
    roles = frozenset({"jobmanager", "taskmanager"})
    worker_roles = frozenset({"taskmanager"})
    bounded_jobs = True
    fault_kinds = PROCESS_FAULTS | NETWORK_FAULTS | LIFE_CYCLE_FAULTS
    jobs = frozenset(f"{CATALOGUE}:{j}" for j in JOB_TOPICS)
    options = options_of(FlinkConfig)
    late_side_output = True
    window_time = "watermark"
    conforms_to = "cluster"  # the real system of the cluster engine's model

    def unsupported(self, kind: str, role: str) -> str | None:
        """None: a JobManager fault needs high availability, which :meth:`problems` checks in the options."""
        return None

    def process_count(self, role: str, request: RunRequest) -> int | None:
        return taskmanager_process_count(role, request)

    def problems(self, request: RunRequest) -> list[str]:
        out = config_problems(FlinkConfig, request.options, self.name)
        if not build.is_ready():
            out.append(f"the Flink job classes are not built; run: {build.SETUP}")
        if not out:
            config = FlinkConfig(**request.options)
            out += property_problems(config)
            if not config.high_availability:
                out += [f"faults[{i}]: a {f.kind} of the jobmanager needs JobManager high availability: set "
                        f"engine_config.flink.high_availability: true (ZooKeeper and two JobManagers)"
                        for i, f in enumerate(request.faults) if f.role == "jobmanager"]
        return out

    def prerequisites(self) -> list[Prerequisite]:
        return build.prerequisites()

    def prepare(self, log: Callable[[str], None] = print) -> None:
        build.prepare(log)
        ha.classpath()  # the ZooKeeper server of high availability: resolved now, so runs start offline

    def deploy(self, spec: DeploySpec) -> FlinkDeployment:
        return FlinkDeployment(spec)


class FlinkDeployment(WorkerProcesses):
    """A running Flink job: its JobManager and TaskManager JVMs, and the job on them."""

    kind = NAME

    def __init__(self, spec: DeploySpec) -> None:
        super().__init__(spec.run_dir / NAME)
        self.spec = spec
        self.config = parse_engine_config(FlinkConfig, spec.config, NAME)
        self.job = job_name(spec.job) or spec.job
        self.build = build.prepare(lambda msg: None)
        self.app_id = f"{spec.prefix}flink"
        self.network, self.network_roles = spec.network, frozenset({"taskmanager"})
        #: where the JobManager (RPC, REST) listens: the bridge of a network run, which the TaskManagers reach
        self.host = spec.network.bridge_address if spec.network is not None else HOST
        #: high availability: two JobManagers on ZooKeeper; each with its own RPC and REST port
        self.jm_names = ["jobmanager-0", "jobmanager-1"] if self.config.high_availability else ["jobmanager"]
        ports = free_ports(2 * len(self.jm_names), self.host)
        self.jm_ports = {name: (ports[2 * i], ports[2 * i + 1]) for i, name in enumerate(self.jm_names)}
        self.rpc_port, self.rest_port = self.jm_ports[self.jm_names[0]]
        self.rest = FailoverRest([(self.host, rest) for _rpc, rest in self.jm_ports.values()])
        self.zookeeper_quorum: str | None = None
        self._log_offsets: dict[str, int] = {}
        self.conf_dir = self.dir / "conf"
        self.job_id: str | None = None
        self._facts: dict[str, Any] = {}
        self._fencing: dict[str, dict[str, int]] = {}
        self._paused: dict[str, int] = {}  # a paused TaskManager -> where its log stood when it was paused
        self._admin = admin(spec.bootstrap)
        self._queries = coordinator_queries(spec.bootstrap)
        self.taskmanager_names = [f"taskmanager-{i}" for i in range(self.config.taskmanagers or spec.parallelism)]
        self.parallelism, self.rescales = spec.parallelism, 0
        self._write_configuration()  # again once ZooKeeper runs (high availability): the JVMs' sizes first
        self._jvm = {role: build.resource_params(self.build, self.conf_dir, role)
                     for role in ("jobmanager", "taskmanager")}
        try:
            if self.config.high_availability:
                self._start_zookeeper()
            self._write_configuration()
            for name in self.jm_names:
                self._start(name, "jobmanager")
            self.wait_for(self._rest_up, 120, "the Flink JobManager's REST endpoint", interval_s=0.2)
            for name in self.taskmanager_names:
                self._start(name, "taskmanager")
            self.wait_for(self._taskmanagers_registered, 120, "every TaskManager to register", interval_s=0.2)
            self._submit()
        except BaseException:
            super().stop(grace_s=10)  # the caller never gets this deployment to stop: no JVM may outlive it
            raise

    # -- configuration and processes -----------------------------------------------------------------------
    def configuration(self) -> dict[str, str]:
        """The config.yaml of this run: streamgauge's addresses and directories, then the options."""
        owned = {
            "jobmanager.rpc.address": self.host, "jobmanager.rpc.port": str(self.rpc_port),
            "jobmanager.bind-host": self.host, "rest.address": self.host, "rest.bind-address": self.host,
            "rest.port": str(self.rest_port), "taskmanager.host": HOST, "taskmanager.bind-host": HOST,
            "taskmanager.load-balance.mode": "SLOTS",  # spread slots over TaskManagers (Flink 2.x)
            "execution.checkpointing.dir": (self.dir / "checkpoints").resolve().as_uri(),
            "execution.checkpointing.savepoint-dir": (self.dir / "savepoints").resolve().as_uri(),
            "io.tmp.dirs": str((self.dir / "tmp").resolve()),
        }
        if self.zookeeper_quorum is not None:
            owned.update(ha.configuration(self.zookeeper_quorum, self.dir / "ha", self.app_id))
        return {**owned, **self.config.flink_configuration()}

    def _start_zookeeper(self) -> None:
        proc, port = ha.start_zookeeper(self.dir / "zookeeper", self.host)
        self._procs["zookeeper"] = proc
        self.zookeeper_quorum = f"{self.host}:{port}"

    def _write_configuration(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        text = yaml.safe_dump(self.configuration(), default_flow_style=False, sort_keys=True)
        (self.conf_dir / "config.yaml").write_text(text)

    def _start(self, name: str, role: str) -> None:
        """Start the JobManager, or a TaskManager under its own resource id (kept across restarts)."""
        memory, dynamic = self._jvm[role]
        main = build.JOBMANAGER_CLASS if role == "jobmanager" else build.TASKMANAGER_CLASS
        if role == "jobmanager":
            rpc, rest = self.jm_ports[name]
            extra = ["-D", f"jobmanager.rpc.port={rpc}", "-D", f"rest.port={rest}"]
        else:
            extra = ["-D", f"taskmanager.resource-id={name}"]
        if role == "taskmanager" and self.network is not None:  # in its namespace, on its own address
            address = self.network.add_worker(name).address
            extra += ["-D", f"taskmanager.host={address}", "-D", f"taskmanager.bind-host={address}"]
        argv = self.build.argv(main, "--configDir", str(self.conf_dir), *dynamic, *extra,
                               jvm_options=(*memory, *build.JAVA17_FLAGS, "-XX:+UseG1GC",
                                            f"-Dlog.file={self.log_path(name)}"))
        if role in self.network_roles and self.network is not None:
            argv = self.network.wrap(name, list(argv))
        work = self.dir / name
        work.mkdir(parents=True, exist_ok=True)
        try:  # where this process's lines begin in a log that a restarted process appends to
            self._log_offsets[name] = self.log_path(name).stat().st_size
        except OSError:
            self._log_offsets[name] = 0
        self._procs[name] = SUPERVISOR.start(argv, name=name, role=role, log_path=self.log_path(name), cwd=work)

    def leading(self, role: str) -> str | None:
        """The JobManager whose dispatcher holds leadership now (Flink's own log line on the grant), among
        those alive; None without high availability or while none leads."""
        if role != "jobmanager" or len(self.jm_names) == 1:
            return None
        best: tuple[str, str] | None = None
        for name in self.jm_names:
            proc = self._procs.get(name)
            if proc is None or not proc.alive():
                continue
            text = self._log_since(name, self._log_offsets.get(name, 0))
            grants, revokes = GRANTED.findall(text), REVOKED.findall(text)
            if grants and (not revokes or grants[-1] > revokes[-1]) and (best is None or grants[-1] > best[0]):
                best = (grants[-1], name)
        return best[1] if best is not None else None

    def leadership_grants(self) -> int:
        """How often a JobManager was granted leadership in this run (1, plus one per failover)."""
        return sum(len(GRANTED.findall(self._log_since(name))) for name in self.jm_names)

    def _jobmanager_alive(self) -> bool:
        return any(self._procs[n].alive() for n in self.jm_names if n in self._procs)

    def _start_worker(self, name: str) -> None:
        """Restart a TaskManager under the same name and resource id, or a JobManager (the fault injector's
        heal)."""
        self._start(name, "jobmanager" if name in self.jm_names else "taskmanager")

    def _rest_up(self) -> tuple[bool, str]:
        try:
            overview = self.rest.get("/overview")
        except RestUnavailable as e:
            return False, str(e)
        return True, f"Flink {overview.get('flink-version')}"

    def _taskmanagers_registered(self, exactly: bool = False) -> tuple[bool, str]:
        """Every TaskManager registered (``exactly``: and no stopped one is registered any more)."""
        try:
            overview = self.rest.get("/overview")
        except RestUnavailable as e:
            return False, str(e)
        n, want = int(overview.get("taskmanagers", 0)), len(self.taskmanager_names)
        return (n == want if exactly else n >= want), f"{n} of {want} TaskManagers registered"

    def _submit(self, savepoint: str | None = None) -> None:
        """Submit the job with the job client (a short-lived JVM) and keep its job id; from ``savepoint``
        (``execution.savepoint.path``) when given."""
        flink_config = self.config.flink_configuration()
        if savepoint is not None:
            flink_config = {**flink_config, "execution.savepoint.path": savepoint}
        rest_port = int(self.rest.base.rsplit(":", 1)[1])  # the JobManager that answered last
        cfg = {"rest_host": self.host, "rest_port": rest_port, "job": self.job, "guarantee": self.spec.guarantee.value,
               "bootstrap": self.spec.bootstrap, "topics": self.spec.topics, "group_id": self.app_id,
               "transactional_id_prefix": self.app_id, "parallelism": self.parallelism,
               "idle_timeout_ms": self.config.idle_timeout_ms or 0,
               "transaction_timeout_ms": self.config.transaction_timeout_ms, "bounded": self.spec.bounded,
               "flink_config": flink_config, "status_path": str(self.status_path("submit"))}
        path = self.config_path("submit")
        path.write_text(json.dumps(cfg, indent=2))
        argv = self.build.argv(build.SUBMIT_CLASS, str(path), jvm_options=tuple(build.JAVA17_FLAGS))
        client = SUPERVISOR.start(argv, name="submit", role="client", log_path=self.log_path("submit"))
        try:
            if not client.wait(SUBMIT_TIMEOUT_S):
                msg = f"flink: the job client did not finish within {SUBMIT_TIMEOUT_S:.0f} s; see {self.log_path('submit')}"
                raise ProcessError(msg)
        finally:
            if client.alive():
                client.kill()
            SUPERVISOR.forget(client)
        self.job_id = self.read_status("submit").get("job_id")
        if client.returncode() != 0 or not self.job_id:
            msg = (f"flink: the job client could not submit {self.job} (exit {client.returncode()}); see "
                   f"{self.log_path('submit')}:\n{self.tail('submit', 30)}")
            raise ProcessError(msg)

    def finished(self) -> bool:
        try:
            return self.job_details().get("state") == "FINISHED"
        except RestUnavailable:
            return False

    def job_duration_s(self) -> float | None:
        """Flink's own duration of the job, from its start to FINISHED."""
        job = self.job_details()
        return round(int(job["duration"]) / 1000, 3) if job.get("state") == "FINISHED" else None

    def upgrade(self) -> None:
        """Flink's upgrade of a job: stop it with a savepoint (``POST /jobs/:id/stop``), then submit it again
        from the savepoint to the same session cluster."""
        savepoint = self._stop_with_savepoint()
        self.upgrades += 1
        self._submit(savepoint=savepoint)
        self.wait_for(self.ready, 120, "the upgraded Flink job to run", interval_s=0.2)

    def scale(self, to: int) -> None:
        """Flink's rescaling of a job: stop it with a savepoint, start or stop TaskManagers so that their slots
        are ``to``, then submit it again from the savepoint at parallelism ``to`` (Flink reassigns the key
        groups and the source's splits; the KafkaSink aborts the transactions of the subtasks that are gone)."""
        savepoint = self._stop_with_savepoint()
        self.rescales += 1
        self.parallelism = to
        want = -(-to // (self.config.slots_per_taskmanager or 1))
        leaving = self.taskmanager_names[want:]
        self._stop_together([self._procs.pop(n) for n in leaving])
        self.taskmanager_names = self.taskmanager_names[:want]
        for i in range(len(self.taskmanager_names), want):
            self.taskmanager_names.append(f"taskmanager-{i}")
            self._start(f"taskmanager-{i}", "taskmanager")
        self.wait_for(lambda: self._taskmanagers_registered(exactly=True), 120,
                      f"{want} TaskManagers registered", interval_s=0.2)
        self._submit(savepoint=savepoint)
        self.wait_for(self.ready, 120, "the rescaled Flink job to run", interval_s=0.2)

    def _stop_with_savepoint(self) -> str:
        """Stop the job with a savepoint (``POST /jobs/:id/stop``) and wait until it has ended: the savepoint's
        location."""
        trigger = self.rest.call("POST", f"/jobs/{self.job_id}/stop",
                                 {"targetDirectory": (self.dir / "savepoints").resolve().as_uri(), "drain": False})
        request = trigger["request-id"]
        found: dict[str, Any] = {}

        def done() -> tuple[bool, str]:
            try:
                found.update(self.rest.get(f"/jobs/{self.job_id}/savepoints/{request}"))
            except RestUnavailable as e:
                return False, str(e)
            state = (found.get("status") or {}).get("id")
            return state == "COMPLETED", f"savepoint {state}"

        self.wait_for(done, 120, "Flink's stop with savepoint", interval_s=0.2)
        operation = found.get("operation") or {}
        if "location" not in operation:
            msg = f"flink: the stop with savepoint failed: {json.dumps(operation.get('failure-cause', operation))[:800]}"
            raise ProcessError(msg)
        old = self.job_id
        self.wait_for(lambda: (self.rest.get(f"/jobs/{old}").get("state") in TERMINAL_STATES, "stopping"), 60,
                      "the stopped job to finish", interval_s=0.2)
        return str(operation["location"])

    # -- Deployment --------------------------------------------------------------------------------------
    def job_details(self) -> dict[str, Any]:
        return self.rest.get(f"/jobs/{self.job_id}")

    def ready(self) -> tuple[bool, str]:
        """The job RUNNING with every subtask RUNNING."""
        try:
            job = self.job_details()
        except RestUnavailable as e:
            return False, str(e)
        if job.get("state") in TERMINAL_STATES:
            msg = f"flink: job {self.job_id} is {job.get('state')}; see {self.log_path('jobmanager')}"
            raise ProcessError(msg)
        waiting = tasks_not_running(job)
        return job.get("state") == "RUNNING" and not waiting, f"job {job.get('state')}, subtasks not running {waiting}"

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        self.wait_for(self.ready, timeout_s, "the Flink job to run every subtask", interval_s=0.2)

    def lag(self) -> int | None:
        """Records not yet covered by a completed checkpoint (the source commits its offsets on checkpoints)."""
        return group_lag(self._queries, self._admin, self.app_id, self.spec.topics["input"], self.spec.partitions)

    def transaction_timeout_s(self) -> float:
        return self.config.transaction_timeout_ms / 1000

    def _read_facts(self) -> None:
        """Flink's own facts from REST, kept so that status() still has them once the cluster is gone."""
        if self.job_id is None:
            return
        try:
            job = self.job_details()
            checkpoints = self.rest.get(f"/jobs/{self.job_id}/checkpoints")
            exceptions = self.rest.get(f"/jobs/{self.job_id}/exceptions?maxExceptions=100")
        except RestUnavailable:
            return
        self._facts = {"state": job.get("state"), "checkpoints": checkpoint_facts(checkpoints),
                       "placement": self.placement(job), **restart_facts(exceptions, job)}

    def placement(self, job: dict[str, Any]) -> dict[str, int]:
        """Running subtasks per TaskManager, over every vertex of the job."""
        out: dict[str, int] = {}
        for vertex in job.get("vertices", []):
            try:
                answer = self.rest.get(f"/jobs/{self.job_id}/vertices/{vertex['id']}/taskmanagers")
            except RestUnavailable:
                continue
            for tm in answer.get("taskmanagers", []):
                running = int((tm.get("status-counts") or tm.get("statusCounts") or {}).get("RUNNING", 0))
                name = str(tm.get("taskmanager-id") or tm.get("taskmanagerId") or tm.get("endpoint"))
                out[name] = out.get(name, 0) + running
        return dict(sorted(out.items()))

    def pause(self, name: str) -> None:
        """SIGSTOP a TaskManager, remembering where its log stood (what fenced it is read from there on)."""
        try:
            self._paused[name] = self.log_path(name).stat().st_size
        except OSError:
            self._paused[name] = 0
        super().pause(name)

    def _log_since(self, name: str, offset: int = 0) -> str:
        try:
            with self.log_path(name).open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def fencing(self) -> dict[str, dict[str, int]]:
        """Per TaskManager, what its log says stopped its tasks or fenced its sink's writes, with counts."""
        out: dict[str, dict[str, int]] = {}
        for name in self.taskmanager_names:
            text = self._log_since(name)
            found = {cause: n for cause, pattern in FENCING_PATTERNS.items() if (n := len(re.findall(pattern, text)))}
            if found:
                out[name] = found
        return out

    def zombie_notes(self) -> list[str]:
        """For each TaskManager that was paused: what stopped its writes once it ran again (from its log)."""
        notes = []
        for name, offset in sorted(self._paused.items()):
            text = self._log_since(name, offset)
            found = [cause for cause, pattern in FENCING_PATTERNS.items() if re.search(pattern, text)]
            what = "; ".join(found) if found else "nothing in its log (it had no open transaction or task)"
            notes.append(f"{name} was paused and resumed: {what}")
        return notes

    def stop(self, grace_s: float = 30.0) -> None:
        """Keep Flink's facts, cancel the job (its open transactions are aborted), then stop every JVM."""
        if self._jobmanager_alive():
            self._read_facts()
            self._fencing = self.fencing()  # before the cancellation below adds its own lines
            self._cancel()
        super().stop(grace_s)

    def _cancel(self) -> None:
        if self.job_id is None:
            return
        try:
            self.rest.call("PATCH", f"/jobs/{self.job_id}?mode=cancel")
        except RestUnavailable:
            return
        deadline = time.monotonic() + CANCEL_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if self.job_details().get("state") in TERMINAL_STATES:
                    return
            except RestUnavailable:
                return
            time.sleep(0.2)

    def status(self) -> dict[str, Any]:
        if self._jobmanager_alive():
            self._read_facts()
        facts = self._facts
        ck = facts.get("checkpoints") or {}
        fencing = self._fencing or self.fencing()
        causes: dict[str, int] = {}
        for found in fencing.values():
            for cause, n in found.items():
                causes[cause] = causes.get(cause, 0) + n
        fenced = sum(n for cause, n in causes.items() if "fenced" in cause or "epoch" in cause)
        failures = facts.get("failures") or []
        shown = {
            "output visibility": f"checkpoint interval {self.config.checkpoint_interval_ms} ms",
            "checkpoints completed / failed": f"{ck.get('completed', 0)} / {ck.get('failed', 0)}",
            "checkpoint duration p50 / p99 ms": f"{_num(ck.get('duration_ms_p50'))} / {_num(ck.get('duration_ms_p99'))}",
            "checkpoint size p50 bytes": _num(ck.get("size_bytes_p50")),
            "subtasks per TaskManager": ", ".join(f"{tm} {n}" for tm, n in (facts.get("placement") or {}).items())
                                        or None,
            "restarts (Flink's exception history)": facts.get("restarts", 0),
            "JobManager leadership grants (ZooKeeper)": self.leadership_grants() if len(self.jm_names) > 1 else None,
            "restart causes": "; ".join(sorted({f["cause"] for f in failures if f.get("cause")}))[:400] or None,
            "commits refused by fencing": fenced,
            "tasks stopped by": ", ".join(f"{c} x{n}" for c, n in sorted(causes.items())) or None,
        }
        return {"engine": NAME, "application_id": self.app_id, "job_id": self.job_id, "facts": shown,
                "explanations": EXPLANATIONS, "fenced": fenced, "fenced_by": fencing,
                "notes": self.zombie_notes(),
                "flink": facts, "version": {"flink": build.flink_version(self.build),
                                            "flink-connector-kafka": build.connector_version(self.build)},
                "config": {**self.config.model_dump(), "flink_configuration_in_force": self.configuration()},
                "taskmanagers": len(self.taskmanager_names), "restarts": self.restarts, "upgrades": self.upgrades,
                "rescales": self.rescales, "parallelism": self.parallelism,
                "high_availability": {"leader": self.leading("jobmanager"), "grants": self.leadership_grants(),
                                      "zookeeper": ha.zookeeper_version()} if len(self.jm_names) > 1 else None}


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}" if isinstance(value, float) else str(value)


ENGINE = FlinkEngine()
