"""Peer engine: Apache Kafka Streams (the broker's version line, 4.1.x), run as it ships.

The worker (``java/io/streamgauge/ks``) implements the catalogue's jobs in
the Kafka Streams DSL; :mod:`engines.kafka_streams.build` resolves its
classpath with Maven (``pom.xml``) and compiles it with the machine's JDK,
both cached outside the tree. One JVM per application instance; parallelism
is the number of instances; ``application.id`` is under the run's prefix, so
Kafka Streams' repartition and changelog topics are the run's and go with
it; each instance's ``state.dir`` lives in the run directory and is kept
across a restart of that instance.

Defaults are Kafka Streams' own (session timeout 45 s, commit interval
100 ms under exactly_once_v2 and 30 s under at_least_once, dynamic
membership, no standby replicas); scenarios set options to compare like with
like, and the defaults' costs are findings. Kafka Streams drops late records
without a side output: the checker derives which inputs were late from the
input as written (``late_rule``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engines.kafka_streams import build
from harness.api import (
    ENGINE_FAULTS,
    DeploySpec,
    Guarantee,
    Prerequisite,
    RunRequest,
)
from harness.api.deployment import config_problems, options_of, parse_engine_config
from harness.api.groups import (
    CATALOGUE,
    CATALOGUE_TOPICS_READ,
    GroupInstances,
    catalogue_name,
    instance_process_count,
)

NAME = "kafka-streams"
#: The catalogue's jobs it implements (all of them) -> topics its consumer group reads
JOB_TOPICS = CATALOGUE_TOPICS_READ
#: What the report says when the checkers find these anomaly classes on Kafka Streams: its behaviour, a finding
EXPLANATIONS = {
    "window_duplicate": "Kafka Streams keeps a window aggregate's stream-time in memory only; after a restart or "
                        "a task migration it starts again from the records the task replays, so a record that "
                        "was late before can be counted in a window already emitted, which is then emitted again",
    "window_accounting": "Kafka Streams re-derives stream-time after a restart or task migration (it is not "
                         "kept with the state), so a replayed record that was late before can be counted in a "
                         "window, against the late set derived from the input; in a re-keyed job stream-time "
                         "is that of the repartition topic, where the upstream tasks' records interleave as they "
                         "come, so a task that runs behind has its records dropped as late downstream",
}
EOS_TRANSACTION_TIMEOUT_MS = 10_000   # Kafka Streams' producer default under exactly_once_v2
CLIENT_TRANSACTION_TIMEOUT_MS = 60_000


class KafkaStreamsConfig(BaseModel):
    """Options of the kafka-streams engine (Kafka Streams' names); None leaves Kafka Streams' own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commit_interval_ms: int | None = Field(None, gt=0, description="commit.interval.ms; None: 100 under "
                                                                   "exactly_once_v2, 30000 under at_least_once")
    session_timeout_ms: int | None = Field(None, ge=1000, description="session.timeout.ms; None: 45000")
    heartbeat_interval_ms: int | None = Field(None, ge=100, description="heartbeat.interval.ms; None: 3000")
    static_membership: bool = Field(False, description="group.instance.id per instance (KIP-345)")
    group_protocol: Literal["classic", "streams"] = Field(
        "classic", description="group.protocol: classic, or streams (KIP-1071, if the broker offers it)")
    num_standby_replicas: int | None = Field(None, ge=0, description="num.standby.replicas; None: 0")
    num_stream_threads: int = Field(1, ge=1, description="num.stream.threads")
    leave_group_on_close: bool = Field(False, description="an instance stopped cleanly leaves the group at once "
                                                          "(Kafka Streams' own: it does not)")
    properties: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="any other Kafka Streams configuration, passed through (checked "
                                          "against Kafka Streams' own names)")

    def streams_properties(self, replication: int) -> dict[str, str]:
        """The Kafka Streams properties these options stand for; ``properties`` last, so they win."""
        named: dict[str, int | str | None] = {"commit.interval.ms": self.commit_interval_ms, "session.timeout.ms": self.session_timeout_ms,
                 "heartbeat.interval.ms": self.heartbeat_interval_ms, "num.standby.replicas": self.num_standby_replicas,
                 "num.stream.threads": self.num_stream_threads, "replication.factor": replication}
        if self.group_protocol != "classic":
            named["group.protocol"] = self.group_protocol
        out = {k: str(v) for k, v in named.items() if v is not None}
        out.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.properties.items()})
        return out

    def effective_commit_interval_ms(self, guarantee: Guarantee) -> int:
        if "commit.interval.ms" in self.properties:
            return int(self.properties["commit.interval.ms"])
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms
        return 100 if guarantee is Guarantee.exactly_once else 30_000

    def transaction_timeout_ms(self, guarantee: Guarantee) -> int:
        for key in ("producer.transaction.timeout.ms", "transaction.timeout.ms"):
            if key in self.properties:
                return int(self.properties[key])
        return EOS_TRANSACTION_TIMEOUT_MS if guarantee is Guarantee.exactly_once else CLIENT_TRANSACTION_TIMEOUT_MS


def job_name(job: str) -> str | None:
    """The catalogue name of a job reference (``scenarios.jobs:running_sum`` -> running_sum), None if not ours."""
    return catalogue_name(job, JOB_TOPICS)


def property_problems(properties: dict[str, Any], known: frozenset[str] | None) -> list[str]:
    """Pass-through properties Kafka Streams does not know, and those that would undo what the harness sets."""
    owned = {"application.id", "bootstrap.servers", "processing.guarantee", "state.dir", "client.id",
             "default.key.serde", "default.value.serde"}
    out = [f"engine_config.{NAME}.properties.{name}: set by streamgauge for every run (use the scenario's "
           f"guarantee for processing.guarantee)" for name in sorted(properties) if name in owned]
    if known is not None:
        out += [f"engine_config.{NAME}.properties.{name}: not a Kafka Streams configuration name"
                for name in sorted(properties) if name not in known and name not in owned]
    return out


class KafkaStreamsEngine:
    """Deploys a catalogue job as N Kafka Streams application instances (one JVM each)."""

    name = NAME
    guarantees = frozenset({Guarantee.at_least_once, Guarantee.exactly_once})
    roles = frozenset({"instance"})
    worker_roles = frozenset({"instance"})
    fault_kinds = ENGINE_FAULTS
    jobs = frozenset(f"{CATALOGUE}:{j}" for j in JOB_TOPICS)
    options = options_of(KafkaStreamsConfig)
    late_side_output = False  # Kafka Streams drops late records; the checkers derive which
    window_time = "stream_time"
    conforms_to = "embedded"  # the real system of the embedded engine's model

    def unsupported(self, kind: str, role: str) -> str | None:
        return None

    def process_count(self, role: str, request: RunRequest) -> int | None:
        return instance_process_count(role, request)

    def problems(self, request: RunRequest) -> list[str]:
        out = config_problems(KafkaStreamsConfig, request.options, self.name)
        if not build.is_ready():
            out.append(f"the Kafka Streams worker is not built; run: {build.SETUP}")
        if not out:
            config = KafkaStreamsConfig(**request.options)
            out += property_problems(dict(config.properties), build.config_names())
        return out

    def prerequisites(self) -> list[Prerequisite]:
        return build.prerequisites()

    def prepare(self, log: Callable[[str], None] = print) -> None:
        build.prepare(log)

    def deploy(self, spec: DeploySpec) -> KafkaStreamsDeployment:
        return KafkaStreamsDeployment(spec)


class KafkaStreamsDeployment(GroupInstances):
    """A running Kafka Streams job: its instance JVMs."""

    def __init__(self, spec: DeploySpec) -> None:
        worker = build.prepare(lambda msg: None)
        self.version = {"kafka-streams": worker.jar_version("kafka-streams")}
        self.job = job_name(spec.job) or spec.job
        super().__init__(spec, NAME, worker.argv(build.MAIN_CLASS), JOB_TOPICS.get(self.job, 1))
        self.config = parse_engine_config(KafkaStreamsConfig, spec.config, NAME)
        self.start_instances()

    def instance_config(self, name: str) -> dict[str, Any]:
        """An instance's worker config; a restarted one keeps its name and state directory (its transactional
        producer follows the task assignment under exactly_once_v2, so fencing is Kafka Streams' own)."""
        return {"bootstrap": self.spec.bootstrap, "application_id": self.app_id, "instance_id": name,
                "job": self.job, "guarantee": self.spec.guarantee.value, "topics": self.spec.topics,
                "state_dir": str(self.state_dir(name)),
                "properties": self.config.streams_properties(self.spec.replication),
                "static_membership": self.config.static_membership,
                "leave_group_on_close": self.config.leave_group_on_close,
                "close_timeout_ms": 20_000}

    def native_dir(self, name: str) -> Path:
        """Where an instance's JVM unpacks RocksDB's native library (about 14 MB). By default RocksDB writes it
        to a fresh file in the system temporary directory and deletes it only when the JVM exits normally, so
        every killed instance would leave one behind; here it is one file per instance, overwritten on each
        restart and removed with the deployment."""
        return self.dir / name / "native"

    def _start_worker(self, name: str) -> None:
        native = self.native_dir(name)
        native.mkdir(parents=True, exist_ok=True)
        self.spawn(name, "instance", self.instance_config(name), command=self.command,
                   env={**os.environ, "ROCKSDB_SHAREDLIB_DIR": str(native)})

    def stop(self, grace_s: float = 30.0) -> None:
        try:
            super().stop(grace_s)
        finally:
            for name in list(self._procs):
                shutil.rmtree(self.native_dir(name), ignore_errors=True)

    def ready(self, check_group: bool = True) -> tuple[bool, str]:
        """Every instance RUNNING and, under the classic protocol, the consumer group stable (a streams
        group, KIP-1071, is not a consumer group)."""
        return super().ready(check_group=self.config.group_protocol == "classic")

    def transaction_timeout_s(self) -> float:
        return self.config.transaction_timeout_ms(self.spec.guarantee) / 1000

    def status(self) -> dict[str, Any]:
        counters = self.statuses()
        total = self.total
        commit_ms = self.config.effective_commit_interval_ms(self.spec.guarantee)
        causes: dict[str, int] = {}
        for c in counters.values():
            for cause, n in (c.get("fenced_by") or {}).items():
                causes[cause] = causes.get(cause, 0) + int(n)
        facts = {"output visibility": f"commit interval {commit_ms} ms",
                 "commits refused by fencing": total("fenced"),
                 "fenced by": ", ".join(f"{cause} x{n}" for cause, n in sorted(causes.items())) or None,
                 "rebalances": total("rebalances"),
                 "tasks assigned / revoked": f"{total('tasks_assigned')} / {total('tasks_revoked')}",
                 "restored records": total("restored_records"),
                 "records dropped as late (Kafka Streams' metric)": total("dropped_records")}
        return {"engine": NAME, "application_id": self.app_id, "version": self.version, "facts": facts,
                "explanations": EXPLANATIONS,
                "fenced": total("fenced"), "late_records_counted": total("dropped_records"),
                "instance_counters": counters,
                "config": {**self.config.model_dump(), "commit_interval_ms": commit_ms,
                           "properties_in_force": self.config.streams_properties(self.spec.replication)},
                "instances": len(self._procs), "restarts": self.restarts, "upgrades": self.upgrades}


ENGINE = KafkaStreamsEngine()
