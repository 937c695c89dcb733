"""Reading a Flink session cluster's REST API: job state, checkpoints, restarts and their causes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 5.0


class RestUnavailable(Exception):
    """The REST endpoint did not answer (the JobManager is starting, stopped or gone)."""


class Rest:
    """GET / PATCH / POST on ``http://host:port``, JSON in and out."""

    def __init__(self, host: str, port: int) -> None:
        self.base = f"http://{host}:{port}"

    def call(self, method: str, path: str, body: Any = None, timeout_s: float = TIMEOUT_S) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            msg = f"{method} {path}: HTTP {e.code}: {detail}"
            raise RestUnavailable(msg) from e
        except (OSError, ValueError) as e:
            msg = f"{method} {path}: {e}"
            raise RestUnavailable(msg) from e
        return json.loads(text) if text.strip() else {}

    def get(self, path: str) -> Any:
        return self.call("GET", path)


class FailoverRest:
    """The REST API of a highly available session cluster: every JobManager serves it (a standby forwards to
    the leader); a call goes to the JobManager that answered last, else to the next that answers."""

    def __init__(self, endpoints: list[tuple[str, int]]) -> None:
        self.endpoints = [Rest(host, port) for host, port in endpoints]
        self.current = 0

    @property
    def base(self) -> str:
        return self.endpoints[self.current].base

    def call(self, method: str, path: str, body: Any = None, timeout_s: float = TIMEOUT_S) -> Any:
        last: RestUnavailable | None = None
        for i in range(len(self.endpoints)):
            index = (self.current + i) % len(self.endpoints)
            try:
                answer = self.endpoints[index].call(method, path, body, timeout_s)
            except RestUnavailable as e:
                last = e
                continue
            self.current = index
            return answer
        assert last is not None
        raise last

    def get(self, path: str) -> Any:
        return self.call("GET", path)


def tasks_not_running(job: dict[str, Any]) -> dict[str, int]:
    """The subtasks of a job's vertices that are not RUNNING, by state (empty when all run)."""
    out: dict[str, int] = {}
    for vertex in job.get("vertices", []):
        for state, count in (vertex.get("tasks") or {}).items():
            if state != "RUNNING" and count:
                out[state] = out.get(state, 0) + int(count)
    return out


def checkpoint_facts(checkpoints: dict[str, Any]) -> dict[str, Any]:
    """Counts, durations, sizes and alignment of a job's checkpoints (``/jobs/:id/checkpoints``)."""
    counts = checkpoints.get("counts") or {}
    summary = checkpoints.get("summary") or {}

    def stat(name: str, key: str) -> Any:
        return (summary.get(name) or {}).get(key)

    restored = ((checkpoints.get("latest") or {}).get("restored") or {})
    return {"completed": counts.get("completed", 0), "failed": counts.get("failed", 0),
            "restored": counts.get("restored", 0), "in_progress": counts.get("in_progress", 0),
            "duration_ms_p50": stat("end_to_end_duration", "p50"),
            "duration_ms_p99": stat("end_to_end_duration", "p99"),
            "duration_ms_max": stat("end_to_end_duration", "max"),
            "size_bytes_p50": stat("checkpointed_size", "p50") or stat("state_size", "p50"),
            "size_bytes_max": stat("checkpointed_size", "max") or stat("state_size", "max"),
            "alignment_buffered_bytes_max": stat("alignment_buffered", "max"),
            "latest_restored": {"id": restored.get("id"), "restore_timestamp": restored.get("restore_timestamp"),
                                "is_savepoint": restored.get("is_savepoint")} if restored else None}


def restart_facts(exceptions: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The job's failures, each a restart, with cause and time (``/jobs/:id/exceptions``), oldest first."""
    entries = list(((exceptions.get("exceptionHistory") or {}).get("entries")) or [])
    failures = []
    for e in reversed(entries):
        first_line = (e.get("stacktrace") or "").strip().splitlines()
        failures.append({"timestamp_ms": e.get("timestamp"), "exception": e.get("exceptionName"),
                         "cause": first_line[0][:300] if first_line else e.get("exceptionName"),
                         "task": e.get("taskName"), "taskmanager": e.get("taskManagerId"),
                         "endpoint": e.get("endpoint")})
    timestamps = job.get("timestamps") or {}
    return {"restarts": len(failures), "failures": failures,
            "last_restarting_ms": timestamps.get("RESTARTING") or None,
            "last_running_ms": timestamps.get("RUNNING") or None}
