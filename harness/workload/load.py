"""The load of a run: the built-in generator's processes, sharing one seeded schedule by partition.

Each process is ``python -m harness.workload.generator`` with its slice of the
schedule (``process`` of ``processes``); the run waits for all of them and
takes one summary of theirs (:func:`~harness.workload.generator.merge`),
invalid when any process fell behind or failed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ProcessError
from harness.proc import SUPERVISOR, ManagedProcess
from harness.workload.generator import merge


class GeneratorProcesses:
    """``processes`` generator processes writing ``config`` (the GeneratorConfig fields but the slice's)."""

    def __init__(self, config: dict[str, Any], processes: int, run_dir: Path) -> None:
        self.config, self.count, self.run_dir = config, processes, run_dir
        self.procs: list[ManagedProcess] = []

    def _name(self, j: int) -> str:
        return "generator" if self.count == 1 else f"generator-{j}"

    def _summary_path(self, j: int) -> Path:
        return self.run_dir / f"{self._name(j)}-summary.json"

    def start(self) -> None:
        for j in range(self.count):
            path = self.run_dir / f"{self._name(j)}.json"
            path.write_text(json.dumps({**self.config, "process": j, "processes": self.count,
                                        "summary_path": str(self._summary_path(j))}))
            self.procs.append(SUPERVISOR.start([sys.executable, "-m", "harness.workload.generator", str(path)],
                                               name=self._name(j), role="load",
                                               log_path=self.run_dir / f"{self._name(j)}.log"))

    def wait(self, until: float, tick: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """Wait for every process to finish (by the epoch time ``until``), calling ``tick`` about twice a second
        (it may raise to stop waiting); the merged summary."""
        for j, proc in enumerate(self.procs):
            while not proc.wait(0.5):
                if time.time() > until:
                    msg = (f"the load generator did not finish within 120 s of its schedule; "
                           f"see {self.run_dir}/{self._name(j)}.log")
                    raise ProcessError(msg)
                tick()
        summaries = []
        for j, proc in enumerate(self.procs):
            path = self._summary_path(j)
            if proc.returncode() != 0 or not path.exists():
                msg = (f"the load generator{'' if self.count == 1 else f' process {j + 1} of {self.count}'} failed "
                       f"(exit {proc.returncode()}); see {self.run_dir}/{self._name(j)}.log")
                raise ProcessError(msg)
            summaries.append(json.loads(path.read_text()))
        return merge(summaries)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop(grace_s=5)
            SUPERVISOR.forget(proc)


def load_figures(summary: dict[str, Any], engine_cpu_s: float) -> dict[str, Any]:
    """What the load cost beside the engine on the same machine: its processes, their CPU seconds and share of
    the CPU the two used together, and each process's sends, worst publish delay and CPU."""
    cpu = float(summary.get("cpu_s") or 0.0)
    total = cpu + engine_cpu_s
    return {"processes": summary.get("processes", 1), "cpu_s": round(cpu, 1),
            "cpu_share": round(cpu / total, 3) if total else None, "spread": summary.get("spread", [])}


LOCUSTFILE = Path(__file__).with_name("locust_load.py")


class LocustLoad:
    """The same schedule sent by locust: a master and ``workers`` local worker processes, and as many more
    as ``remote_workers`` started on other machines against ``master_port`` (see README)."""

    def __init__(self, config: dict[str, Any], workers: int, run_dir: Path, remote_workers: int = 0,
                 master_port: int | None = None) -> None:
        from harness.kafka.local import free_ports

        if workers < 0 or remote_workers < 0 or workers + remote_workers < 1:
            msg = f"locust load: {workers} local and {remote_workers} remote workers; at least one worker is needed"
            raise ConfigError(msg)
        self.config, self.workers, self.remote, self.run_dir = config, workers, remote_workers, run_dir
        self.port = master_port or free_ports(1)[0]
        self.summary_path = run_dir / "locust-summary.json"
        self.procs: list[ManagedProcess] = []
        self.master: ManagedProcess | None = None

    def start(self) -> None:
        total = self.workers + self.remote
        base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
        self.master = SUPERVISOR.start(
            [*base, "--master", "--headless", "--expect-workers", str(total), "-u", str(total), "-r", str(total),
             "--master-bind-port", str(self.port), "--csv", str(self.run_dir / "locust"), "--only-summary",
             "--sg-config", json.dumps(self.config), "--sg-summary", str(self.summary_path)],
            name="locust-master", role="load", log_path=self.run_dir / "locust-master.log")
        self.procs.append(self.master)
        for j in range(self.workers):
            self.procs.append(SUPERVISOR.start(
                [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(self.port)],
                name=f"locust-worker-{j}", role="load", log_path=self.run_dir / f"locust-worker-{j}.log"))

    def wait(self, until: float, tick: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """Wait for the master to end the test (every worker reported); the merged summary."""
        assert self.master is not None
        while not self.master.wait(0.5):
            if time.time() > until:
                msg = (f"the locust load did not finish within 120 s of its schedule (workers expected: "
                       f"{self.workers} local, {self.remote} remote on port {self.port}); "
                       f"see {self.run_dir}/locust-master.log")
                raise ProcessError(msg)
            tick()
        if not self.summary_path.exists():
            msg = (f"the locust master ended (exit {self.master.returncode()}) without every worker's summary; "
                   f"see {self.run_dir}/locust-master.log")
            raise ProcessError(msg)
        return json.loads(self.summary_path.read_text())

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(grace_s=5)
            SUPERVISOR.forget(proc)
