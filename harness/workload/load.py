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

from harness.errors import ProcessError
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
