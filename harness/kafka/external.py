"""A Kafka cluster the user already runs, given by its bootstrap servers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from harness.errors import ConfigError, ProcessError
from harness.kafka.base import KafkaProvider, NodeInfo


@dataclass
class ExternalKafka(KafkaProvider):
    """Bootstrap servers given by the user; streamgauge neither starts nor stops the brokers."""

    bootstrap: str
    timeout_s: float = 15.0
    known_version: str | None = None  # when streamgauge started it (`kafka up`) and recorded its version

    name = "external"

    def __post_init__(self) -> None:
        if not self.bootstrap or any(":" not in s for s in self.bootstrap.split(",")):
            msg = (f"external Kafka needs bootstrap servers as host:port[,host:port...]; "
                   f"found {self.bootstrap!r}. Pass --bootstrap HOST:PORT or set STREAMGAUGE_BOOTSTRAP")
            raise ConfigError(msg)
        self._brokers: list[NodeInfo] = []

    def start(self) -> str:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            md = admin.list_topics(timeout=self.timeout_s)
        except Exception as e:
            msg = f"external Kafka at {self.bootstrap} did not answer within {self.timeout_s:.0f} s: {e}"
            raise ProcessError(msg) from e
        # confluent-kafka infers BrokerMetadata.host as None from its __init__ placeholder; librdkafka sets a str
        self._brokers = [NodeInfo(b.id, cast(str, b.host), b.port, None, True) for b in md.brokers.values()]
        return self.bootstrap

    def stop(self) -> None:
        """Nothing to stop: the brokers are the user's."""

    def bootstrap_servers(self) -> str:
        return self.bootstrap

    def nodes(self) -> list[NodeInfo]:
        return list(self._brokers)

    def version(self) -> str:
        return self.known_version or super().version()
