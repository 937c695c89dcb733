"""An engine that implements only the Engine protocol, and nothing of the harness's toolkit but the
supervisor: one worker process copying input to output at least once (the echo job).

The contract test runs a scenario on it through ``$STREAMGAUGE_ENGINES``, so
an engine that declares the protocol and nothing more is proven to run.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from harness.api import DeploySpec, Guarantee, Prerequisite, RunRequest
from harness.api.toolkit import SUPERVISOR, ManagedProcess, wait_until


class MinimalDeployment:
    def __init__(self, spec: DeploySpec) -> None:
        self.dir = spec.run_dir / "minimal"
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = {"bootstrap": spec.bootstrap, "group": f"{spec.prefix}app", "input": spec.topics["input"],
               "output": spec.topics["output"], "ready": str(self.dir / "ready")}
        (self.dir / "worker.json").write_text(json.dumps(cfg))
        self.proc = SUPERVISOR.start([sys.executable, __file__, str(self.dir / "worker.json")], name="copier-0",
                                     role="copier", log_path=self.dir / "copier-0.log")

    def processes(self) -> list[ManagedProcess]:
        return [self.proc]

    def wait_ready(self, timeout_s: float) -> None:
        wait_until(lambda: (self.dir / "ready").exists(), timeout_s, "the copier did not get its partitions")

    def stop(self) -> None:
        if self.proc.alive():
            self.proc.stop(grace_s=10)
        SUPERVISOR.forget(self.proc)

    def status(self) -> dict[str, Any]:
        return {"facts": {"copier processes": 1}}

    def transaction_timeout_s(self) -> float:
        return 60.0


class MinimalEngine:
    name = "minimal"
    guarantees = frozenset({Guarantee.at_least_once})
    roles = frozenset({"copier"})
    worker_roles = frozenset({"copier"})
    fault_kinds: frozenset[str] = frozenset()
    jobs = frozenset({"scenarios.jobs:echo"})
    options: ClassVar[dict[str, str]] = {}
    late_side_output = True
    window_time = "stream_time"
    conforms_to = None  # a reference engine

    def unsupported(self, kind: str, role: str) -> str | None:
        return None

    def problems(self, request: RunRequest) -> list[str]:
        return [f"engine_config.minimal.{k}: no such option" for k in request.options]

    def prerequisites(self) -> list[Prerequisite]:
        return []

    def prepare(self, log: Callable[[str], None]) -> None:
        pass

    def deploy(self, spec: DeploySpec) -> MinimalDeployment:
        return MinimalDeployment(spec)


ENGINE = MinimalEngine()


def _copy(cfg_path: str) -> None:
    from confluent_kafka import Consumer, Producer

    cfg = json.loads(Path(cfg_path).read_text())
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    consumer = Consumer({"bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": cfg["bootstrap"], "partitioner": "murmur2_random"})
    consumer.subscribe([cfg["input"]], on_assign=lambda c, parts: Path(cfg["ready"]).touch())
    while running[0]:
        batch = consumer.consume(500, timeout=0.2)
        for m in batch:
            if m.error() is None:
                producer.produce(cfg["output"], key=m.key(), value=m.value(), timestamp=m.timestamp()[1])
        if batch:
            producer.flush()
            consumer.commit(asynchronous=False)
    consumer.close()


if __name__ == "__main__":
    _copy(sys.argv[1])


def custom() -> Any:
    """A job outside the minimal engine's catalogue (it names only the built-in echo)."""
    from scenarios.jobs import echo

    return echo()


def two_aggregates() -> Any:
    """A job the oracle cannot interpret (it takes at most one aggregate); the copier still runs it."""
    from harness.api import Pipeline

    def zero() -> dict:
        return {"n": 0}

    def count(state: dict, event: dict) -> dict:
        return {"n": state["n"] + 1}

    return (Pipeline("two-aggregates").source("input").key_by("k").aggregate(init=zero, step=count, name="a")
            .aggregate(init=zero, step=count, name="b").sink("output"))


class UninterpretedEngine(MinimalEngine):
    """The copier, declaring a job the oracle cannot interpret: its failure comes after a full load."""

    name = "uninterpreted"
    jobs = frozenset({"tests.harness.api.minimal_engine:two_aggregates"})


class FailingEngine(MinimalEngine):
    """An engine whose deployment fails: the run raises after its topics exist."""

    name = "failing"

    def deploy(self, spec: DeploySpec) -> MinimalDeployment:
        msg = "the failing engine never deploys"
        raise RuntimeError(msg)


UNINTERPRETED = UninterpretedEngine()
FAILING = FailingEngine()
