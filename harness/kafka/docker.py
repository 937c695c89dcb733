"""Kafka in a container through testcontainers, for machines with a Docker engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import CapabilityError, ConfigError
from harness.kafka.base import KafkaProvider, NodeInfo

if TYPE_CHECKING:
    from testcontainers.kafka import KafkaContainer

IMAGE = "apache/kafka:4.1.1"


def docker_available() -> tuple[bool, str]:
    """Whether a Docker engine answers, and why not when it does not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        return True, ""
    except Exception as e:  # noqa: BLE001 - any failure means no usable engine
        return False, str(e).splitlines()[0][:160] if str(e) else type(e).__name__


@dataclass
class DockerKafka(KafkaProvider):
    """A single KRaft broker in a container (testcontainers' KafkaContainer)."""

    nodes_count: int = 1
    image: str = IMAGE

    name = "docker"

    def __post_init__(self) -> None:
        if self.nodes_count != 1:
            msg = f"the docker provider runs 1 node (asked for {self.nodes_count}); use --provider local for 3 nodes"
            raise ConfigError(msg)
        self._container: KafkaContainer | None = None
        self._bootstrap = ""

    def preflight(self) -> None:
        ok, why = docker_available()
        if not ok:
            msg = (f"no Docker engine answers ({why}); use the local provider instead: "
                   f"--provider local (the default, needs only Java 17+ and Maven)")
            raise CapabilityError(msg)

    def start(self) -> str:
        self.preflight()
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer(self.image).with_kraft()
        self._container = container
        container.start()
        self._bootstrap = container.get_bootstrap_server()
        return self._bootstrap

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None

    def bootstrap_servers(self) -> str:
        return self._bootstrap

    def nodes(self) -> list[NodeInfo]:
        if not self._bootstrap:
            return []
        host, port = self._bootstrap.rsplit(":", 1)
        return [NodeInfo(1, host, int(port), None, self._container is not None)]

    def version(self) -> str:
        return self.image.rsplit(":", 1)[-1]
