"""Peer engine: quixstreams 3.28.1, run as it ships, in a virtual environment of its own.

:mod:`engines.quixstreams.venv` makes that environment and names quixstreams'
internal topics; ``worker.py`` (run by the environment's Python, not imported
here) is one application instance, and implements the catalogue's jobs in
quixstreams' own API. NOTES.md says how quixstreams closes windows and what
was measured.

Defaults are quixstreams' own: a random ``transactional.id`` per process
(so a killed instance's open transaction holds read_committed consumers back
until the broker aborts it, 60 s by default), librdkafka's 45 s session
timeout, windows closed per key. Scenarios set options to compare like with
like; the defaults' costs are findings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engines.quixstreams import venv
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

NAME = "quixstreams"
#: The catalogue's jobs it implements (all of them) -> topics its consumer group reads
JOB_TOPICS = CATALOGUE_TOPICS_READ
LIBRDKAFKA_TRANSACTION_TIMEOUT_MS = 60_000


class QuixConfig(BaseModel):
    """Options of the quixstreams engine; None leaves quixstreams' (or librdkafka's) own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commit_interval_ms: int | None = Field(None, gt=0, description="Application(commit_interval); "
                                                                   "None: quixstreams' 5 s")
    session_timeout_ms: int | None = Field(None, ge=1000, description="session.timeout.ms; None: librdkafka's 45 s")
    heartbeat_interval_ms: int | None = Field(None, ge=100, description="heartbeat.interval.ms; None: 3 s")
    transactional_id: Literal["random", "per_instance"] = Field(
        "random", description="random: quixstreams' own (a UUID per process); per_instance: <app id>-<instance>, "
                              "so a restarted instance fences its predecessor's transaction")
    static_membership: bool = Field(False, description="group.instance.id per instance (KIP-345)")
    closing_strategy: Literal["key", "partition"] | None = Field(
        None, description="window closing; None: quixstreams' own ('key': per key)")
    properties: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="librdkafka settings for the consumer and producer, passed through")

    def transaction_timeout_ms(self) -> int:
        value = self.properties.get("transaction.timeout.ms", LIBRDKAFKA_TRANSACTION_TIMEOUT_MS)
        return int(value)


def job_name(job: str) -> str | None:
    """The catalogue name of a job reference (``scenarios.jobs:running_sum`` -> running_sum), None if not ours."""
    return catalogue_name(job, JOB_TOPICS)


class QuixEngine:
    """Deploys a catalogue job as N quixstreams application instances sharing one consumer group."""

    name = NAME
    guarantees = frozenset({Guarantee.at_least_once, Guarantee.exactly_once})
    roles = frozenset({"instance"})
    worker_roles = frozenset({"instance"})
    fault_kinds = ENGINE_FAULTS
    jobs = frozenset(f"{CATALOGUE}:{j}" for j in JOB_TOPICS)
    options = options_of(QuixConfig)
    late_side_output = True   # through quixstreams' on_late hook
    window_time = "key_time"  # quixstreams' default closing strategy, "key"
    conforms_to = "embedded"  # the real system of the embedded engine's model

    def unsupported(self, kind: str, role: str) -> str | None:
        return None

    def process_count(self, role: str, request: RunRequest) -> int | None:
        return instance_process_count(role, request)

    def problems(self, request: RunRequest) -> list[str]:
        out = config_problems(QuixConfig, request.options, self.name)
        if not venv.is_ready():
            out.append(f"the quixstreams environment is not set up; run: {venv.FIX}")
        return out

    def prerequisites(self) -> list[Prerequisite]:
        return [Prerequisite(name, met, fix) for name, met, fix in venv.prerequisites()]

    def prepare(self, log: Callable[[str], None] = print) -> None:
        venv.prepare(log)

    def deploy(self, spec: DeploySpec) -> QuixDeployment:
        return QuixDeployment(spec)


class QuixDeployment(GroupInstances):
    """A running quixstreams job: its instance processes."""

    def __init__(self, spec: DeploySpec) -> None:
        self.job = job_name(spec.job) or spec.job
        super().__init__(spec, NAME, venv.worker_argv(), JOB_TOPICS.get(self.job, 1))
        self.config = parse_engine_config(QuixConfig, spec.config, NAME)
        self.start_instances()

    def instance_config(self, name: str) -> dict[str, Any]:
        c = self.config
        cfg: dict[str, Any] = {
            "bootstrap": self.spec.bootstrap, "application_id": self.app_id, "instance_id": name, "job": self.job,
            "guarantee": self.spec.guarantee.value, "topics": self.spec.topics,
            "state_dir": str(self.state_dir(name)), "properties": dict(c.properties)}
        if c.static_membership:
            cfg["properties"]["consumer"] = {"group.instance.id": f"{self.app_id}-{name}"}
        if c.commit_interval_ms is not None:
            cfg["commit_interval_s"] = c.commit_interval_ms / 1000
        for key in ("session_timeout_ms", "heartbeat_interval_ms", "closing_strategy"):
            if getattr(c, key) is not None:
                cfg[key] = getattr(c, key)
        if c.transactional_id == "per_instance":
            cfg["transactional_id"] = f"{self.app_id}-{name}"
        return cfg

    def counted(self, topic: str) -> bool:
        """The input, and a group_by's repartition topic (not the changelogs an instance restores from)."""
        return topic == self.spec.topics["input"] or topic.startswith(f"repartition__{self.app_id}--")

    def transaction_timeout_s(self) -> float:
        return self.config.transaction_timeout_ms() / 1000

    def status(self) -> dict[str, Any]:
        counters = self.statuses()
        total = self.total

        commit_ms = self.config.commit_interval_ms or 5000
        facts = {"output visibility": f"commit interval {commit_ms} ms",
                 "rebalances": total("rebalances"), "rebalance revocations while processing": total("revocations"),
                 "state recoveries": total("recoveries"), "restored records": total("restored_records"),
                 "transactional id": self.config.transactional_id,
                 "window closing": self.config.closing_strategy or "key (per key)"}
        return {"engine": NAME, "application_id": self.app_id, "version": venv.pinned_versions(), "facts": facts,
                "late_records": total("late_records"),
                "instance_counters": counters, "config": self.config.model_dump(),
                "instances": len(self._procs), "restarts": self.restarts, "upgrades": self.upgrades}


ENGINE = QuixEngine()
