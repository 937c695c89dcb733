"""Broker provisioning: local KRaft from Maven jars (default), testcontainers, external."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import ConfigError
from harness.kafka.base import KafkaProvider, NodeInfo
from harness.kafka.docker import DockerKafka
from harness.kafka.external import ExternalKafka
from harness.kafka.local import LocalKafka

PROVIDERS = ("local", "docker", "external")


def make_provider(name: str = "local", *, nodes: int = 1, bootstrap: str | None = None,
                  workdir: Path | None = None, detach: bool = False) -> KafkaProvider:
    """The provider called ``name``; ``bootstrap`` (or $STREAMGAUGE_BOOTSTRAP) for external."""
    if name == "local":
        return LocalKafka(nodes_count=nodes, workdir=workdir, detach=detach)
    if name == "docker":
        return DockerKafka(nodes_count=nodes)
    if name == "external":
        return ExternalKafka(bootstrap or os.environ.get("STREAMGAUGE_BOOTSTRAP", ""))
    msg = f"unknown Kafka provider {name!r}; expected one of {', '.join(PROVIDERS)}"
    raise ConfigError(msg)


__all__ = ["PROVIDERS", "DockerKafka", "ExternalKafka", "KafkaProvider", "LocalKafka", "NodeInfo", "make_provider"]
