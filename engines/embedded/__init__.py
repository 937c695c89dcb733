"""Reference engine A — the embedded library model (Kafka Streams), DESIGN §4.

The deployer creates the internal topics (repartition and compacted changelog
topics, all under the run's prefix), then starts one OS process per
application instance (:mod:`engines.embedded.instance`). Every aggregate and
window aggregate gets a changelog ``changelog-<name>``; a windowed job's late
side output (``topics["late"]``) is passed through to the instances.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState, TopicPartition

from harness.api import Aggregate, DeploySpec, Pipeline, WindowAggregate, load_job
from harness.api.deployment import WorkerProcesses
from harness.errors import ConfigError, ProcessError
from harness.kafka.client import admin, create_topics
from harness.proc import SUPERVISOR, ManagedProcess

from engines.embedded.config import EmbeddedConfig, check_late_topic, parse_config


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
    capabilities = frozenset({"Killable", "Pausable", "Terminable", "Lagging"})
    roles = frozenset({"instance"})

    def deploy(self, spec: DeploySpec) -> EmbeddedDeployment:
        return EmbeddedDeployment(spec)


class EmbeddedDeployment(WorkerProcesses):
    """A running embedded job: its instance processes and internal topics."""

    kind = "embedded"

    def __init__(self, spec: DeploySpec) -> None:
        super().__init__()
        self.spec = spec
        self.config: EmbeddedConfig = parse_config(spec.config)
        if spec.parallelism < 1:
            msg = f"embedded engine: parallelism must be >= 1, found {spec.parallelism}"
            raise ConfigError(msg)
        self.pipeline = load_job(spec.job)
        check_late_topic(self.pipeline, spec.topics)
        self.app_id = f"{spec.prefix}app"
        self.topics = dict(spec.topics)
        self.dir = spec.run_dir / "embedded"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._admin = admin(spec.bootstrap)  # one client: it must outlive its futures
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

    def _instance_config(self, name: str) -> Path:
        path = self.dir / f"{name}.json"
        cfg = {
            "bootstrap": self.spec.bootstrap, "app_id": self.app_id, "instance_id": name,
            "job": self.spec.job, "guarantee": self.spec.guarantee.value, "topics": self.topics,
            "commit_interval_ms": self.config.effective_commit_interval_ms(self.spec.guarantee),
            "session_timeout_ms": self.config.session_timeout_ms,
            "heartbeat_interval_ms": self.config.heartbeat_interval_ms,
            "max_poll_interval_ms": self.config.max_poll_interval_ms,
            "transaction_timeout_ms": self.config.transaction_timeout_ms,
            "group_protocol": self.config.group_protocol, "poll_batch": self.config.poll_batch,
            "linger_ms": self.config.linger_ms, "static_membership": self.config.static_membership,
            "status_path": str(self._status_path(name)),
        }
        path.write_text(json.dumps(cfg, indent=2))
        return path

    def _status_path(self, name: str) -> Path:
        return self.dir / f"{name}.status.json"

    def _instance_counters(self) -> dict[str, dict[str, Any]]:
        """Each instance's last written counters (commits, rejoins, fenced); a killed one keeps its last."""
        out = {}
        for name in sorted(self._procs):
            try:
                out[name] = json.loads(self._status_path(name).read_text())
            except (OSError, ValueError):
                out[name] = {}
        return out

    def _start(self, name: str) -> ManagedProcess:
        cfg_path = self._instance_config(name)
        proc = SUPERVISOR.start([sys.executable, "-m", "engines.embedded.instance", str(cfg_path)],
                                name=name, role="instance", log_path=self.dir / f"{name}.log")
        self._procs[name] = proc
        return proc

    # -- Deployment ------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Ready when the group is stable with every instance as a member and all partitions assigned."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            dead = [p.name for p in self._procs.values() if not p.alive()]
            if dead:
                msg = f"embedded instance(s) {dead} exited during start; see {self.dir}/<name>.log:\n{self._tail(dead[0])}"
                raise ProcessError(msg)
            ok, last = self._group_stable(len(self._procs))
            if ok:
                return
            time.sleep(0.2)
        msg = f"embedded job did not become ready within {timeout_s:.0f} s ({last})"
        raise ProcessError(msg)

    def _group_stable(self, members: int) -> tuple[bool, str]:
        try:
            fut = self._admin.describe_consumer_groups([self.app_id], request_timeout=5)
            desc = fut[self.app_id].result(timeout=10)
        except Exception as e:  # noqa: BLE001 - the group may not exist yet
            return False, f"group not described yet: {e}"
        assigned = sum(len(m.assignment.topic_partitions) for m in desc.members if m.assignment)
        want = self.spec.partitions * len({s.input for s in self.pipeline.segments()})
        state = desc.state
        ok = state == ConsumerGroupState.STABLE and len(desc.members) == members and assigned == want
        return ok, f"group {state}, {len(desc.members)}/{members} members, {assigned}/{want} partitions assigned"

    def status(self) -> dict[str, Any]:
        counters = self._instance_counters()
        return {"engine": "embedded", "application_id": self.app_id,
                **{name: sum(c.get(name, 0) for c in counters.values())
                   for name in ("fenced", "rejoins", "revocations", "late_records")},
                "instance_counters": counters,
                "config": {**self.config.model_dump(),
                           "commit_interval_ms": self.config.effective_commit_interval_ms(self.spec.guarantee)},
                "instances": len(self._procs), "restarts": self.restarts,
                "internal_topics": sorted(t for k, t in self.topics.items() if k not in self.spec.topics)}

    # -- capabilities: Killable, Pausable, Terminable (WorkerProcesses), Lagging --------------
    def _start_worker(self, name: str) -> None:
        """Restart an instance under the same name: same transactional id, so it fences its predecessor."""
        self._start(name)

    def lag(self) -> int | None:
        """Records of the input topic the group has not committed yet (None when unknown).

        Only the input topic: internal topics are transactional under
        exactly_once, and their commit markers make end - committed a poor count.
        """
        from confluent_kafka import ConsumerGroupTopicPartitions
        from confluent_kafka.admin import OffsetSpec

        topic = self.topics["input"]
        tps = [TopicPartition(topic, p) for p in range(self.spec.partitions)]
        try:
            a = self._admin
            fut = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.app_id, tps)])
            committed = {tp.partition: tp.offset for tp in fut[self.app_id].result(timeout=10).topic_partitions}
            ends = a.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=10)
            return sum(max(0, f.result(timeout=10).offset - max(0, committed.get(tp.partition, 0)))
                       for tp, f in ends.items())
        except Exception:  # noqa: BLE001 - unknown lag is reported as None
            return None

    def _tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / f"{name}.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


ENGINE = EmbeddedEngine()
