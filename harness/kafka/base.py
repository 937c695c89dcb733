"""The broker-provider interface: every way of getting a Kafka looks like this."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

from harness.errors import CapabilityError


@dataclass(frozen=True)
class NodeInfo:
    """One broker node as a provider sees it."""

    id: int
    host: str
    port: int
    pid: int | None
    alive: bool
    paused: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class KafkaProvider(ABC):
    """Start, stop and inspect a Kafka cluster; kill and restart one node where possible."""

    name: str = "?"
    #: whether one node can be killed, paused and restarted (a cluster streamgauge started and runs itself)
    node_faults: bool = False

    def preflight(self) -> None:  # noqa: B027 - a hook with nothing to check by default
        """Check what ``start`` needs (tools, settings) before anything is started."""

    @abstractmethod
    def start(self) -> str:
        """Start (or attach to) the cluster, wait until it serves; return the bootstrap servers."""

    @abstractmethod
    def stop(self) -> None:
        """Stop everything this provider started. Safe to call twice, and after a failed start."""

    @abstractmethod
    def bootstrap_servers(self) -> str: ...

    @abstractmethod
    def nodes(self) -> list[NodeInfo]: ...

    def version(self) -> str:
        return "unknown"

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one broker node."""
        raise CapabilityError(self._no_node_faults("kill"))

    def restart_node(self, node_id: int, wait: bool = True) -> None:
        """Start a stopped or killed node again and (with ``wait``) wait until it serves."""
        raise CapabilityError(self._no_node_faults("restart"))

    def wait_nodes(self, node_ids: list[int]) -> None:
        """Wait until nodes started again without waiting serve."""
        raise CapabilityError(self._no_node_faults("wait for"))

    def stop_node(self, node_id: int) -> None:
        """SIGTERM one broker node (a controlled shutdown)."""
        raise CapabilityError(self._no_node_faults("stop"))

    def pause_node(self, node_id: int) -> None:
        """SIGSTOP one broker node."""
        raise CapabilityError(self._no_node_faults("pause"))

    def resume_node(self, node_id: int) -> None:
        """SIGCONT a paused broker node."""
        raise CapabilityError(self._no_node_faults("resume"))

    def controller_id(self) -> int | None:
        """The node id of the active KRaft controller, None while there is none."""
        raise CapabilityError(self._no_node_faults("find the active controller of"))

    def _no_node_faults(self, what: str) -> str:
        return f"the {self.name} provider cannot {what} a broker node; use the local provider for broker faults"

    def status(self) -> dict:
        """What `streamgauge kafka status --json` prints."""
        return {
            "provider": self.name,
            "bootstrap": self.bootstrap_servers(),
            "nodes": [n.to_dict() for n in self.nodes()],
            "version": self.version(),
        }

    def __enter__(self) -> KafkaProvider:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
