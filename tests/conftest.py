"""Shared fixtures: a real Kafka broker (local KRaft unless STREAMGAUGE_BOOTSTRAP names one) and topic factories."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from harness.kafka import ExternalKafka, KafkaProvider, LocalKafka
from harness.kafka.client import create_topics, delete_topics


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaProvider]:
    """One broker for the whole session: external if STREAMGAUGE_BOOTSTRAP is set, else a local node."""
    bootstrap = os.environ.get("STREAMGAUGE_BOOTSTRAP")
    provider: KafkaProvider = ExternalKafka(bootstrap) if bootstrap else LocalKafka(nodes_count=1)
    with provider:
        yield provider


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
