"""Admin queries that a group coordinator answers (describe a group, read its committed offsets), made in a
helper process of their own.

librdkafka aborts the process that makes such a query when the request to the coordinator fails in a
particular way (the connection drops while the request is being sent: an assertion in
``rd_kafka_enq_once_del_source_return``, confluentinc/librdkafka#4605). Broker faults, and a cluster that has
just started, make that happen. In a helper, such a crash costs one answer ("unknown", asked again later)
instead of the run. Run as ``python -m harness.kafka.coordinator BOOTSTRAP``: one JSON request per line on
stdin, one JSON answer per line on stdout.
"""

from __future__ import annotations

import json
import select
import sys
import threading
from pathlib import Path
from typing import Any

from harness.errors import ProcessError
from harness.paths import cache_dir
from harness.proc import SUPERVISOR, ManagedProcess

ANSWER_TIMEOUT_S = 20.0


class CoordinatorQueries:
    """One helper process answering coordinator queries against ``bootstrap``, started on first use and again
    after it died. Thread-safe (one query at a time)."""

    def __init__(self, bootstrap: str, answer_timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.answer_timeout_s = answer_timeout_s
        self.crashes = 0  # helpers found dead or silent
        self._proc: ManagedProcess | None = None
        self._lock = threading.Lock()

    def describe(self, group: str) -> dict[str, Any]:
        """``{"state": "STABLE", "members": n, "assigned": [[topic, partition], ...]}``."""
        return self._ask({"op": "describe", "group": group})

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """partition -> the group's committed offset of ``topic`` (negative when none)."""
        answer = self._ask({"op": "committed", "group": group, "topic": topic, "partitions": partitions})
        return {int(p): int(o) for p, o in answer.items()}

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._proc.kill()
                SUPERVISOR.forget(self._proc)
                self._proc = None

    def _ask(self, request: dict[str, Any]) -> Any:
        with self._lock:
            proc = self._helper()
            assert proc.popen is not None and proc.popen.stdin is not None and proc.popen.stdout is not None
            try:
                proc.popen.stdin.write((json.dumps(request) + "\n").encode())
                proc.popen.stdin.flush()
                ready, _, _ = select.select([proc.popen.stdout], [], [], self.answer_timeout_s)
                line = proc.popen.stdout.readline() if ready else b""
            except OSError:
                line = b""
            if not line:
                self._lost(proc)
                msg = (f"the coordinator query helper gave no answer to {request['op']} (it crashed or hung; "
                       f"librdkafka aborts on some failed coordinator requests); it is started again")
                raise ProcessError(msg)
            answer = json.loads(line)
            if not answer["ok"]:
                raise ProcessError(answer["error"])
            return answer["value"]

    def _helper(self) -> ManagedProcess:
        if self._proc is not None and not self._proc.alive():
            self._lost(self._proc)
        if self._proc is None:
            log = Path(cache_dir()) / "logs" / "coordinator-queries.log"
            self._proc = SUPERVISOR.start([sys.executable, "-m", "harness.kafka.coordinator", self.bootstrap],
                                          name="coordinator-queries", role="harness", log_path=log, pipes=True)
        return self._proc

    def _lost(self, proc: ManagedProcess) -> None:
        self.crashes += 1
        proc.kill()
        SUPERVISOR.forget(proc)
        self._proc = None


_SHARED: dict[str, CoordinatorQueries] = {}
_SHARED_LOCK = threading.Lock()


def coordinator_queries(bootstrap: str) -> CoordinatorQueries:
    """The harness's one helper for ``bootstrap`` (it lives as long as the harness)."""
    with _SHARED_LOCK:
        if bootstrap not in _SHARED:
            _SHARED[bootstrap] = CoordinatorQueries(bootstrap)
        return _SHARED[bootstrap]


# -- the helper process ------------------------------------------------------------------------------

def _answer(client, request: dict[str, Any]) -> Any:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    group = request["group"]
    if request["op"] == "describe":
        desc = client.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
        assigned = [[tp.topic, tp.partition] for m in desc.members if m.assignment
                    for tp in m.assignment.topic_partitions]
        return {"state": desc.state.name, "members": len(desc.members), "assigned": assigned}
    if request["op"] == "committed":
        tps = [TopicPartition(request["topic"], p) for p in range(request["partitions"])]
        fut = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)], request_timeout=10)
        return {tp.partition: tp.offset for tp in fut[group].result(timeout=15).topic_partitions}
    msg = f"unknown query {request['op']!r}"
    raise ValueError(msg)


def main(bootstrap: str) -> int:
    from confluent_kafka.admin import AdminClient

    client = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    for line in sys.stdin:
        try:
            answer = {"ok": True, "value": _answer(client, json.loads(line))}
        except Exception as e:  # noqa: BLE001 - every failure is an answer
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
