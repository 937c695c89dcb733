"""Reference engine A — the embedded library model (Kafka Streams).

The deployer creates the internal topics (repartition and compacted changelog
topics, all under the run's prefix), then starts one OS process per
application instance (:mod:`engines.embedded.instance`). Every aggregate and
window aggregate gets a changelog ``changelog-<name>``; a windowed job's late
side output (``topics["late"]``) is passed through to the instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engines.embedded.config import EmbeddedConfig, check_late_topic, parse_config
from harness.api import (
    ENGINE_FAULTS,
    Aggregate,
    DeploySpec,
    Guarantee,
    Pipeline,
    Prerequisite,
    RunRequest,
    WindowAggregate,
    load_job,
)
from harness.api.deployment import WorkerProcesses, config_problems, options_of, reference_versions
from harness.api.groups import group_lag, group_stable, instance_process_count
from harness.api.toolkit import ConfigError, admin, coordinator_queries, create_topics


@dataclass(frozen=True)
class InternalTopics:
    """The internal topics of a job.

    ``names`` maps logical names (``repartition-<n>``, ``changelog-<op>``) to
    real ones; ``repartition`` and ``compacted`` map real names to partition counts.
    """

    names: dict[str, str] = field(default_factory=dict)
    repartition: dict[str, int] = field(default_factory=dict)
    compacted: dict[str, int] = field(default_factory=dict)


def internal_topics(pipeline: Pipeline, app_id: str, partitions: int) -> InternalTopics:
    """Repartition topics at re-keying points, and a compacted changelog per (window) aggregate."""
    out = InternalTopics()
    for seg in pipeline.segments():
        if seg.key_by is not None:
            out.names[seg.output] = f"{app_id}-{seg.output}"
            out.repartition[out.names[seg.output]] = partitions
        for op in seg.ops:
            if isinstance(op, (Aggregate, WindowAggregate)):
                logical = f"changelog-{op.name}"
                if logical in out.names:
                    msg = f"pipeline {pipeline.name!r}: two stateful operators are both named {op.name!r}"
                    raise ConfigError(msg)
                out.names[logical] = f"{app_id}-{op.name}-changelog"
                out.compacted[out.names[logical]] = partitions
    return out


class EmbeddedEngine:
    """Deploys a job as N application instances sharing one application id."""

    name = "embedded"
    guarantees = frozenset(Guarantee)
    roles = frozenset({"instance"})
    worker_roles = frozenset({"instance"})
    fault_kinds = ENGINE_FAULTS
    jobs = None  # it interprets the Pipeline DSL: any job
    options = options_of(EmbeddedConfig)
    late_side_output = True
    window_time = "stream_time"
    conforms_to = None  # a reference engine

    def unsupported(self, kind: str, role: str) -> str | None:
        return None

    def process_count(self, role: str, request: RunRequest) -> int | None:
        return instance_process_count(role, request)

    def problems(self, request: RunRequest) -> list[str]:
        out = config_problems(EmbeddedConfig, request.options, self.name)
        try:
            internal_topics(load_job(request.job), "app", request.partitions)
        except ConfigError as e:
            out.append(str(e))
        return out

    def prerequisites(self) -> list[Prerequisite]:
        return []

    def prepare(self, log: Any = print) -> None:
        """Nothing to prepare: it runs in the harness's own environment."""

    def deploy(self, spec: DeploySpec) -> EmbeddedDeployment:
        return EmbeddedDeployment(spec)


class EmbeddedDeployment(WorkerProcesses):
    """A running embedded job: its instance processes and internal topics."""

    kind = "embedded"

    def __init__(self, spec: DeploySpec) -> None:
        super().__init__(spec.run_dir / "embedded")
        self.spec = spec
        self.network, self.network_roles = spec.network, frozenset({"instance"})
        self.scale_prefix = "instance"
        self.config: EmbeddedConfig = parse_config(spec.config)
        self.pipeline = load_job(spec.job)
        check_late_topic(self.pipeline, spec.topics)
        self.app_id = f"{spec.prefix}app"
        self.topics = dict(spec.topics)
        self._admin = admin(spec.bootstrap)  # one client: it must outlive its futures
        self._queries = coordinator_queries(spec.bootstrap)
        self._create_internal_topics()
        for i in range(spec.parallelism):
            self._start(f"instance-{i}")

    # -- setup ---------------------------------------------------------------------------
    def _create_internal_topics(self) -> None:
        internal = internal_topics(self.pipeline, self.app_id, self.spec.partitions)
        self.topics.update(internal.names)
        if internal.repartition:
            create_topics(self.spec.bootstrap, internal.repartition, replication=self.spec.replication)
        if internal.compacted:
            create_topics(self.spec.bootstrap, internal.compacted, replication=self.spec.replication,
                          config={"cleanup.policy": "compact"})

    def _instance_config(self, name: str) -> dict[str, Any]:
        return {
            "bootstrap": self.spec.bootstrap, "app_id": self.app_id, "instance_id": name,
            "job": self.spec.job, "guarantee": self.spec.guarantee.value, "topics": self.topics,
            "commit_interval_ms": self.config.effective_commit_interval_ms(self.spec.guarantee),
            "session_timeout_ms": self.config.session_timeout_ms,
            "heartbeat_interval_ms": self.config.heartbeat_interval_ms,
            "max_poll_interval_ms": self.config.max_poll_interval_ms,
            "transaction_timeout_ms": self.config.transaction_timeout_ms,
            "group_protocol": self.config.group_protocol, "poll_batch": self.config.poll_batch,
            "linger_ms": self.config.linger_ms, "static_membership": self.config.static_membership,
            "task_timeout_ms": self.config.task_timeout_ms,
            "record_cost_us": self.config.record_cost_us,
        }

    def _start(self, name: str) -> None:
        self.spawn(name, "instance", self._instance_config(name), module="engines.embedded.instance")

    # -- Deployment ------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Ready when the group is stable with every instance as a member and all partitions assigned."""
        self.wait_for(lambda: self._group_stable(len(self._procs)), timeout_s, "the embedded job to become ready",
                      interval_s=0.2)

    def _group_stable(self, members: int) -> tuple[bool, str]:
        want = self.spec.partitions * len({s.input for s in self.pipeline.segments()})
        return group_stable(self._queries, self.app_id, members, want)

    def transaction_timeout_s(self) -> float:
        return self.config.transaction_timeout_ms / 1000

    def status(self) -> dict[str, Any]:
        counters = self.statuses()
        totals = {name: sum(c.get(name, 0) for c in counters.values())
                  for name in ("fenced", "rejoins", "revocations", "late_records")}
        commit_ms = self.config.effective_commit_interval_ms(self.spec.guarantee)
        return {"engine": "embedded", "application_id": self.app_id, **totals, "version": reference_versions(),
                "facts": {"output visibility": f"commit interval {commit_ms} ms",
                          "commits refused by fencing": totals["fenced"], "rejoins": totals["rejoins"],
                          "rebalance revocations while processing": totals["revocations"]},
                "instance_counters": counters,
                "config": {**self.config.model_dump(), "commit_interval_ms": commit_ms},
                "instances": len(self._procs), "restarts": self.restarts, "upgrades": self.upgrades,
                "internal_topics": sorted(t for k, t in self.topics.items() if k not in self.spec.topics)}

    # -- capabilities: Killable, Pausable, Terminable (WorkerProcesses), Lagging --------------
    def _start_worker(self, name: str) -> None:
        """Restart an instance under the same name: same transactional id, so it fences its predecessor."""
        self._start(name)

    def lag(self) -> int | None:
        """Records of the input topic the group has not committed yet (None when unknown)."""
        return group_lag(self._queries, self._admin, self.app_id, self.topics["input"], self.spec.partitions)


ENGINE = EmbeddedEngine()
