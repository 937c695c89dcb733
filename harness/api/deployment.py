"""Building blocks an engine's Deployment may share: typed engine options, and worker processes
that take the process faults (Killable, Pausable, Terminable) by name."""

from __future__ import annotations

import signal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError
from harness.proc import SUPERVISOR, ManagedProcess

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_engine_config(model: type[ConfigT], raw: dict[str, Any], engine: str) -> ConfigT:
    """Validate a scenario's ``engine_config.<engine>`` into ``model``; one message naming every problem."""
    try:
        return model(**raw)
    except ValidationError as e:
        problems = "; ".join(f"engine_config.{engine}.{'.'.join(map(str, err['loc']))}: {err['msg']} "
                             f"(found {err.get('input')!r})" for err in e.errors())
        msg = f"{engine} engine: {problems}"
        raise ConfigError(msg) from e


class WorkerProcesses:
    """The processes of a deployment, by name, with the process faults a fault injector applies.

    A subclass starts its processes into ``self._procs`` and implements
    ``_start_worker(name)``, which starts a process under the same identity
    again (``restart``).
    """

    kind = "engine"

    def __init__(self) -> None:
        self._procs: dict[str, ManagedProcess] = {}
        self.restarts = 0

    def _start_worker(self, name: str) -> None:
        raise NotImplementedError

    def processes(self) -> list[ManagedProcess]:
        return list(self._procs.values())

    def _proc(self, name: str) -> ManagedProcess:
        if name not in self._procs:
            msg = f"no {self.kind} process {name!r}; processes are {sorted(self._procs)}"
            raise ConfigError(msg)
        return self._procs[name]

    def kill(self, name: str) -> None:
        self._proc(name).kill()

    def terminate(self, name: str) -> None:
        self._proc(name).stop(grace_s=30)

    def restart(self, name: str) -> None:
        old = self._proc(name)
        if old.alive():
            old.stop(grace_s=30)
        SUPERVISOR.forget(old)
        self.restarts += 1
        self._start_worker(name)

    def pause(self, name: str) -> None:
        self._proc(name).pause()

    def resume(self, name: str) -> None:
        self._proc(name).resume()

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM every process at once (resuming paused ones first), SIGKILL what lingers."""
        procs = list(self._procs.values())
        for p in procs:
            p.resume()
            p.send(signal.SIGTERM)
        for p in procs:
            if not p.wait(grace_s):
                p.kill()
            SUPERVISOR.forget(p)
