"""Shared fixtures: a real Kafka broker (local KRaft unless STREAMGAUGE_BOOTSTRAP names one) and topic factories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.kafka import ExternalKafka, KafkaProvider, LocalKafka
from harness.kafka.client import create_topics, delete_topics
from harness.scenario.registry import engine_names, get_engine


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaProvider]:
    """One broker for the whole session: external if STREAMGAUGE_BOOTSTRAP is set, else a local node."""
    bootstrap = os.environ.get("STREAMGAUGE_BOOTSTRAP")
    provider: KafkaProvider = ExternalKafka(bootstrap) if bootstrap else LocalKafka(nodes_count=1)
    with provider:
        yield provider


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[LocalKafka]:
    """A 3-node local cluster of its own (replication 3, min.insync.replicas 2) for a module whose tests kill,
    pause and restart brokers."""
    cluster = LocalKafka(nodes_count=3)
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def bootstrap(kafka: KafkaProvider) -> str:
    return kafka.bootstrap_servers()


@pytest.fixture
def topic_factory(bootstrap: str) -> Iterator[Callable[..., str]]:
    """Make uniquely named topics on the session broker; deleted after the test."""
    made: list[str] = []

    def make(prefix: str = "t", partitions: int = 1, replication: int = 1, **config: str) -> str:
        name = f"sg.test.{prefix}.{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, {name: partitions}, replication=replication, config=config)
        made.append(name)
        return name

    yield make
    delete_topics(bootstrap, made)


ROOT = Path(__file__).resolve().parents[1]
#: The installed engines that interpret the Pipeline DSL (any job): the conformance tests run on each.
#: Peers with a jobs catalogue have tests of their own, since a conformance test may use any job.
ENGINES = sorted(n for n in engine_names() if get_engine(n).jobs is None)


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """Each conformance test runs once on every installed engine that runs any job."""
    return request.param


@pytest.fixture
def run_streamgauge(bootstrap: str) -> Callable[..., tuple[subprocess.CompletedProcess, dict | None]]:
    """Run `streamgauge run SCENARIO` on the session broker; returns the process and results.json."""

    def run(out: Path, scenario: str, *sets: str, engine: str | None = None, timeout: float = 600):
        args = [sys.executable, "-m", "harness.cli", "run", str(ROOT / "scenarios" / scenario), "--out", str(out)]
        if engine:
            args += ["--engine", engine]
        for s in sets:
            args += ["--set", s]
        env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap}
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        path = out / "results.json"
        return proc, json.loads(path.read_text()) if path.exists() else None

    return run
