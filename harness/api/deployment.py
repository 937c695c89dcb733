"""The worker-process toolkit every engine shares: typed engine options, and worker processes that take
the process faults (Killable, Pausable, Terminable) by name.

A worker is a module (``python -m``) or a command, started by the process
supervisor with one JSON config file, writing a status file of its own and
logging to the deployment's directory; readiness is a condition over status
files or a log line; a worker that dies during a wait is reported with the
tail of its log.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError, ProcessError
from harness.proc import SUPERVISOR, ManagedProcess

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def _problems_of(e: ValidationError, engine: str) -> list[str]:
    return [f"engine_config.{engine}.{'.'.join(map(str, err['loc']))}: {err['msg']} (found {err.get('input')!r})"
            for err in e.errors()]


def config_problems(model: type[BaseModel], raw: Mapping[str, Any], engine: str) -> list[str]:
    """What is wrong with ``engine_config.<engine>`` for ``model``, one line each (empty when valid)."""
    try:
        model(**raw)
    except ValidationError as e:
        return _problems_of(e, engine)
    return []


def parse_engine_config(model: type[ConfigT], raw: Mapping[str, Any], engine: str) -> ConfigT:
    """Validate a scenario's ``engine_config.<engine>`` into ``model``; one message naming every problem."""
    try:
        return model(**raw)
    except ValidationError as e:
        msg = f"{engine} engine: " + "; ".join(_problems_of(e, engine))
        raise ConfigError(msg) from e


def options_of(model: type[BaseModel]) -> dict[str, str]:
    """Option name -> "description (default X)" from a pydantic model of engine options."""
    out = {}
    for name, f in model.model_fields.items():
        default = "required" if f.is_required() else f"default {f.get_default(call_default_factory=True)!r}"
        out[name] = f"{f.description} ({default})" if f.description else f"({default})"
    return out


def reference_versions() -> dict[str, str]:
    """What a reference engine's results record as its version: streamgauge's own, and the Kafka client its
    workers run on (confluent-kafka and the librdkafka under it)."""
    from importlib import metadata

    import confluent_kafka

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"streamgauge": installed("streamgauge"), "confluent-kafka": installed("confluent-kafka"),
            "librdkafka": confluent_kafka.libversion()[0]}


def write_json_atomically(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename (readers never see half)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    tmp.replace(path)


class WorkerProcesses:
    """The processes of a deployment, by name, with the process faults a fault injector applies.

    Workers are started with :meth:`spawn` (a module or a command, one JSON
    config, a status file, a log, all under ``directory``). A subclass
    implements ``_start_worker(name)``, which starts a process under the same
    identity again (``restart``).
    """

    kind = "engine"
    #: the name stem of the workers a scale starts ("instance": instance-3, instance-4), None when the engine
    #: does not scale by starting and stopping workers
    scale_prefix: str | None = None

    def __init__(self, directory: Path | None = None) -> None:
        self._procs: dict[str, ManagedProcess] = {}
        self.restarts = 0
        self.upgrades = 0
        #: the run's network (network faults) and the roles whose workers start in its namespaces
        self.network: Any = None
        self.network_roles: frozenset[str] = frozenset()
        self.dir = directory or Path(".")
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    # -- starting workers ----------------------------------------------------------------------
    def config_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def status_path(self, name: str) -> Path:
        return self.dir / f"{name}.status.json"

    def log_path(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def spawn(self, name: str, role: str, config: Mapping[str, Any] | BaseModel, *, module: str | None = None,
              command: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> ManagedProcess:
        """Start worker ``name``: ``python -m module CONFIG`` or ``command... CONFIG``.

        The config is written to ``<dir>/<name>.json`` with ``status_path``
        added (unless it names one); stdout and stderr go to ``<dir>/<name>.log``.
        """
        if (module is None) == (command is None):
            msg = f"{self.kind} worker {name}: give exactly one of module or command"
            raise ConfigError(msg)
        values = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
        values.setdefault("status_path", str(self.status_path(name)))
        write_json_atomically(self.config_path(name), values)
        argv = [sys.executable, "-m", module] if module is not None else list(command or [])
        argv = [*argv, str(self.config_path(name))]
        if self.network is not None and role in self.network_roles:
            argv = self.network.wrap(name, argv)
        proc = SUPERVISOR.start(argv, name=name, role=role,
                                log_path=self.log_path(name), env=env, cwd=cwd)
        self._procs[name] = proc
        return proc

    def network_placed(self) -> bool:
        """Whether this deployment's workers run in the network's namespaces (NetworkPlaced)."""
        return self.network is not None

    # -- reading workers -----------------------------------------------------------------------
    def read_status(self, name: str) -> dict[str, Any]:
        """A worker's last status file ({} before it wrote one); a killed worker keeps its last."""
        try:
            value = json.loads(self.status_path(name).read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def statuses(self, role: str | None = None) -> dict[str, dict[str, Any]]:
        """Every worker's status by name (of one role when given)."""
        return {n: self.read_status(n) for n in sorted(self._procs) if role is None or self._procs[n].role == role}

    def tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _died(self) -> str | None:
        dead = [p.name for p in self._procs.values() if not p.alive()]
        if not dead:
            return None
        return (f"{self.kind} process(es) {dead} exited (exit {self._procs[dead[0]].returncode()}); "
                f"see {self.log_path(dead[0])}:\n{self.tail(dead[0])}")

    def wait_for(self, cond: Callable[[], tuple[bool, str]], timeout_s: float, what: str,
                 interval_s: float = 0.1) -> None:
        """Poll ``cond`` (-> (done, how things stand)) until done; ProcessError when a worker dies or on timeout."""
        deadline = time.monotonic() + timeout_s
        detail = ""
        while True:
            died = self._died()
            if died:
                msg = f"{died}\n(while waiting for {what})"
                raise ProcessError(msg)
            done, detail = cond()
            if done:
                return
            if time.monotonic() >= deadline:
                msg = f"{self.kind}: {what} did not happen within {timeout_s:.0f} s ({detail})"
                raise ProcessError(msg)
            time.sleep(interval_s)

    def log_has(self, name: str, pattern: str) -> bool:
        """True once a line of ``name``'s log matches the regular expression ``pattern``."""
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return False
        return re.search(pattern, text, re.MULTILINE) is not None

    def wait_log_line(self, name: str, pattern: str, timeout_s: float) -> None:
        """Wait until ``name``'s log has a line matching ``pattern``."""
        self.wait_for(lambda: (self.log_has(name, pattern), f"no line matching {pattern!r} yet"),
                      timeout_s, f"{name} to log {pattern!r}")

    # -- Deployment and the process faults ----------------------------------------------------
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

    def upgrade(self) -> None:
        """Stop every worker cleanly, all at once (each commits what it has processed and leaves), then start each
        again under its name, from its state (Upgradable)."""
        names = sorted(self._procs)
        self._stop_together([self._procs[n] for n in names])
        self.upgrades += 1
        for name in names:
            self._start_worker(name)

    def scale(self, to: int) -> None:
        """Run ``to`` workers from now on: start new ones, or stop the newest cleanly (Scalable)."""
        if self.scale_prefix is None:
            msg = f"the {self.kind} deployment does not scale by starting and stopping workers"
            raise ConfigError(msg)
        names = sorted(self._procs, key=lambda n: (len(n), n))
        leaving = names[to:]
        self._stop_together([self._procs.pop(n) for n in leaving])
        for i in range(len(names), to):
            self._start_worker(f"{self.scale_prefix}-{i}")

    def _stop_together(self, procs: list[ManagedProcess], grace_s: float = 30.0) -> None:
        for p in procs:
            p.resume()
            p.send(signal.SIGTERM)
        for p in procs:
            if not p.wait(grace_s):
                p.kill()
            SUPERVISOR.forget(p)

    def pause(self, name: str) -> None:
        self._proc(name).pause()

    def resume(self, name: str) -> None:
        self._proc(name).resume()

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM every process at once (resuming paused ones first), SIGKILL what lingers."""
        self._stop_together(list(self._procs.values()), grace_s)
