"""Consumer groups as engines of the embedded model see them: is the group stable with every member
holding its partitions, how much input has it yet to commit; and the instances of such an application
as worker processes (:class:`GroupInstances`), which the peers of that model share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from harness.api.deployment import WorkerProcesses
from harness.api.engine import DeploySpec, RunRequest
from harness.kafka.client import admin
from harness.kafka.coordinator import CoordinatorQueries, coordinator_queries


def group_stable(queries: CoordinatorQueries, group: str, members: int, partitions: int,
                 counted: Callable[[str], bool] = lambda topic: True) -> tuple[bool, str]:
    """(ready, how it stands): the group is stable, has ``members`` members and ``partitions`` assigned.

    Only partitions of topics ``counted`` accepts are counted (an engine may
    assign itself others, such as changelogs it restores from).
    """
    try:
        desc = queries.describe(group)
    except Exception as e:  # noqa: BLE001 - the group may not exist yet
        return False, f"group not described yet: {e}"
    assigned = sum(1 for topic, _ in desc["assigned"] if counted(topic))
    ok = desc["state"] == "STABLE" and desc["members"] == members and assigned == partitions
    return ok, (f"group {desc['state']}, {desc['members']}/{members} members, {assigned}/{partitions} "
                f"partitions assigned")


def group_lag(queries: CoordinatorQueries, client: AdminClient, group: str, topic: str,
              partitions: int) -> int | None:
    """Records of ``topic`` that ``group`` has not committed yet (None when unknown).

    Meant for the input topic: internal topics are transactional under
    exactly_once, and their commit markers make end - committed a poor count.
    """
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    try:
        committed = queries.committed(group, topic, partitions)
        ends = client.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=10)
        return sum(max(0, f.result(timeout=10).offset - max(0, committed.get(tp.partition, 0)))
                   for tp, f in ends.items())
    except Exception:  # noqa: BLE001 - unknown lag is reported as None
        return None


#: The module of the built-in jobs (docs/jobs.md), which peers implement natively.
CATALOGUE = "scenarios.jobs"
#: The built-in jobs -> how many topics an embedded-model application of each reads in its consumer group
#: (a re-key adds a repartition topic with the input's partition count).
CATALOGUE_TOPICS_READ = {"echo": 1, "running_sum": 1, "running_sum_rekeyed": 2, "windowed_count": 1,
                         "windowed_count_rekeyed": 2, "sliding_sum": 1}


def instance_process_count(role: str, request: RunRequest) -> int | None:
    """An embedded-model application runs one instance process per unit of the job's parallelism."""
    return request.parallelism if role == "instance" else None


def taskmanager_process_count(role: str, request: RunRequest) -> int | None:
    """A cluster-model deployment: one JobManager, and ``taskmanagers`` TaskManagers (default: the job's
    parallelism) — the option both cluster engines name alike."""
    if role == "jobmanager":
        return 1
    if role != "taskmanager":
        return None
    taskmanagers = request.options.get("taskmanagers")
    if taskmanagers is None:
        return request.parallelism
    return taskmanagers if isinstance(taskmanagers, int) and taskmanagers >= 1 else None  # else problems() says


def catalogue_name(job: str, implemented: Iterable[str]) -> str | None:
    """The catalogue name of a job reference (``scenarios.jobs:running_sum`` -> running_sum), None when the
    reference is not one of ``implemented``."""
    module, _, name = job.partition(":")
    return name if module == CATALOGUE and name in set(implemented) else None


class GroupInstances(WorkerProcesses):
    """The instances of an embedded-model application: one worker process each, all in one consumer group
    (the application id, under the run's prefix), each with a state directory of its own kept across its
    restarts. A subclass gives each instance's config (``instance_config``) and how to start it
    (``command``); instances write ``state`` ``RUNNING`` in their status once they process."""

    def __init__(self, spec: DeploySpec, kind: str, command: Sequence[str], topics_read: int) -> None:
        super().__init__(spec.run_dir / kind)
        self.kind = kind
        self.spec = spec
        self.app_id = f"{spec.prefix}app"
        self.command = list(command)
        self.topics_read = topics_read  # topics the group reads (a re-key adds a repartition topic)
        self.network, self.network_roles = spec.network, frozenset({"instance"})
        self.scale_prefix = "instance"
        self._admin = admin(spec.bootstrap)
        self._queries = coordinator_queries(spec.bootstrap)

    def instance_config(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def state_dir(self, name: str) -> Path:
        return self.dir / name / "state"

    def start_instances(self) -> None:
        for i in range(self.spec.parallelism):
            self._start_worker(f"instance-{i}")

    def _start_worker(self, name: str) -> None:
        """Start (or restart, under the same name and state directory) one instance."""
        self.spawn(name, "instance", self.instance_config(name), command=self.command)

    def counted(self, topic: str) -> bool:
        """Whether a topic's partitions count towards readiness (all, unless a subclass says otherwise)."""
        return True

    def ready(self, check_group: bool = True) -> tuple[bool, str]:
        """Every instance RUNNING and (``check_group``) the group stable with every partition assigned."""
        states = {n: s.get("state") for n, s in self.statuses().items()}
        if any(state != "RUNNING" for state in states.values()):
            return False, f"instance states {states}"
        if not check_group:
            return True, "every instance RUNNING"
        return group_stable(self._queries, self.app_id, len(self._procs), self.spec.partitions * self.topics_read,
                            counted=self.counted)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        self.wait_for(self.ready, timeout_s, f"the {self.kind} job to become ready", interval_s=0.2)

    def lag(self) -> int | None:
        return group_lag(self._queries, self._admin, self.app_id, self.spec.topics["input"], self.spec.partitions)

    def total(self, key: str) -> int:
        """A counter summed over every instance's last status."""
        return sum(int(c.get(key) or 0) for c in self.statuses().values())
