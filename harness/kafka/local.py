"""The default provider: Apache Kafka 4.x in KRaft mode, run from Maven jars with the machine's Java.

One node, or three (replication 3, min.insync.replicas 2) for broker faults.
Each node runs as a combined broker+controller with its own data directory
under the provider's work directory, on free ports picked at start.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, ProcessError
from harness.kafka.base import KafkaProvider, NodeInfo
from harness.kafka.java import Java, find_java
from harness.kafka.maven import kafka_version, resolve_classpath
from harness.proc import SUPERVISOR, ManagedProcess

READY_LINE = "Kafka Server started"
#: what the KRaft leader logs when it takes over the quorum (org.apache.kafka.raft.QuorumState), with its epoch
LEADER_LINE = re.compile(r"\[RaftManager id=(\d+)\] Completed transition to Leader\(.*?\bepoch=(\d+)")
HOST = "127.0.0.1"

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""

JVM_OPTS = ["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true"]


def free_ports(n: int, host: str = HOST) -> list[int]:
    """n distinct free TCP ports on ``host`` (the loopback address by default; held open together while picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as Kafka's Uuid).

    Like Kafka's ``Uuid.randomUuid`` it never starts with '-', which command-line parsers take for a flag.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def broker_properties(node_id: int, ports: dict[int, tuple[int, int]], data_dir: Path,
                      extra: dict[str, str] | None = None, host: str = HOST) -> dict[str, str]:
    """server.properties for one combined broker+controller node of the cluster ``ports``.

    ``ports`` maps node id -> (client port, controller port).
    """
    n = len(ports)
    rf = 3 if n >= 3 else 1
    isr = 2 if n >= 3 else 1
    client, controller = ports[node_id]
    voters = ",".join(f"{i}@{host}:{c}" for i, (_, c) in sorted(ports.items()))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{client}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(isr),
        "offsets.topic.replication.factor": str(rf),
        "offsets.topic.num.partitions": "12",
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
        "transaction.state.log.num.partitions": "12",
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(isr),
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "unclean.leader.election.enable": "false",
        "controlled.shutdown.enable": "true",
        # runs delete their own topics; event times on a fixed epoch (workload.event_epoch) may be older
        # than any time-based retention, which must not delete a run's input under it
        "log.retention.ms": "-1",
    }
    props.update(extra or {})
    return props


def _write_properties(path: Path, props: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


@dataclass
class _Node:
    id: int
    port: int
    controller_port: int
    dir: Path
    proc: ManagedProcess | None = None
    log_offset: int = 0  # where in the log the current incarnation starts
    paused: bool = False

    @property
    def log(self) -> Path:
        return self.dir / "server.log"

    @property
    def config(self) -> Path:
        return self.dir / "server.properties"

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def started(self) -> bool:
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                return READY_LINE.encode() in f.read()
        except OSError:
            return False


@dataclass
class LocalKafka(KafkaProvider):
    """Kafka 4.x KRaft node(s) on this machine, started from Maven jars.

    ``workdir``: where node data and logs go (a fresh temporary directory when
    None, removed on stop unless ``keep``). ``detach``: the JVMs outlive this
    Python process (``kafka up``); otherwise they die with it.
    """

    nodes_count: int = 1
    workdir: Path | None = None
    broker_config: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0
    detach: bool = False
    keep: bool = False
    #: a cluster another command started (`kafka up`): ``start`` only waits until it serves, ``stop`` leaves
    #: it running; its nodes may still be killed, paused and restarted
    attached: bool = False
    #: called after a node was started again (``kafka up`` records the new process, so `kafka down` stops it)
    on_relaunch: Callable[[LocalKafka], None] | None = None
    #: the address the nodes listen on and advertise (a run with network faults: its bridge's)
    host: str = HOST

    name = "local"
    node_faults = True

    def __post_init__(self) -> None:
        if self.nodes_count not in (1, 3):
            msg = f"--nodes must be 1 or 3 (found {self.nodes_count}): 1 for most scenarios, 3 for broker faults"
            raise ConfigError(msg)
        self._nodes: dict[int, _Node] = {}
        self._java: Java | None = None
        self._classpath: str = ""
        self._version = "unknown"
        self._own_workdir = self.workdir is None
        self._cluster_id = ""

    # -- lifecycle -----------------------------------------------------------
    def preflight(self) -> None:
        """Find Java 17+ and the broker's jars (Maven, once); raise a clear error if either is missing."""
        if self._java is None:
            self._java = find_java()
            jars = resolve_classpath()
            self._classpath = os.pathsep.join(str(j) for j in jars)
            self._version = kafka_version(jars)

    def start(self) -> str:
        self.preflight()
        if self.attached:
            self._wait_admin(time.monotonic() + self.ready_timeout_s)
            return self.bootstrap_servers()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="sg-kafka-"))
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "log4j2.properties").write_text(LOG4J2)
        ids = list(range(1, self.nodes_count + 1))
        ports = free_ports(2 * len(ids), self.host)
        port_map = {i: (ports[2 * k], ports[2 * k + 1]) for k, i in enumerate(ids)}
        self._cluster_id = new_cluster_id()
        for i in ids:
            d = self.workdir / f"node-{i}"
            shutil.rmtree(d, ignore_errors=True)  # a start begins clean: no data of an earlier cluster
            d.mkdir(parents=True)
            node = _Node(i, port_map[i][0], port_map[i][1], d)
            _write_properties(node.config, broker_properties(i, port_map, d / "data", self.broker_config, self.host))
            self._nodes[i] = node
        with ThreadPoolExecutor(len(ids)) as pool:
            list(pool.map(self._format, self._nodes.values()))
        for node in self._nodes.values():
            self._launch(node)
        self._wait_ready(list(self._nodes.values()))
        return self.bootstrap_servers()

    def stop(self) -> None:
        if self.attached:
            return
        procs = [n.proc for n in self._nodes.values() if n.proc is not None]
        for p in procs:  # all at once: a node shutting down alone waits on the others' quorum
            p.send(signal.SIGCONT)
            p.send(signal.SIGTERM)
        for p in procs:
            if not p.wait(20):
                p.kill()
            SUPERVISOR.forget(p)
        for n in self._nodes.values():
            n.proc = None
        if self._own_workdir and not self.keep and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- single nodes ----------------------------------------------------------
    def kill_node(self, node_id: int) -> None:
        node = self._node(node_id)
        if node.proc is not None:
            node.proc.kill()
            SUPERVISOR.forget(node.proc)
        node.paused = False

    def stop_node(self, node_id: int) -> None:
        """SIGTERM one node (controlled shutdown), SIGKILL if it lingers."""
        node = self._node(node_id)
        if node.proc is not None:
            node.proc.stop(grace_s=30)
            SUPERVISOR.forget(node.proc)

    def restart_node(self, node_id: int, wait: bool = True) -> None:
        """Start a node again (stopping it first if it runs); with ``wait``, until it serves, else see
        :meth:`wait_nodes`."""
        node = self._node(node_id)
        if node.proc is not None and node.proc.alive():
            self.stop_node(node_id)
        self.preflight()
        self._launch(node)
        if self.on_relaunch is not None:
            self.on_relaunch(self)
        if wait:
            self._wait_ready([node])

    def wait_nodes(self, node_ids: list[int]) -> None:
        """Wait until the nodes ``node_ids``, started again, serve."""
        self._wait_ready([self._node(i) for i in node_ids])

    def pause_node(self, node_id: int) -> None:
        node = self._node(node_id)
        if node.proc is None or not node.proc.alive():
            msg = f"broker node {node_id} is not running; it cannot be paused"
            raise ProcessError(msg)
        node.proc.send(signal.SIGSTOP)
        node.paused = True

    def resume_node(self, node_id: int) -> None:
        node = self._node(node_id)
        if node.proc is not None and node.proc.alive():
            node.proc.send(signal.SIGCONT)
        node.paused = False

    def controller_id(self) -> int | None:
        """The active KRaft controller: the node whose leader transition has the highest epoch, from the nodes'
        logs (the client API names a random broker as the controller of a KRaft cluster); None when that node
        is not running or is paused (a new election is under way)."""
        best: tuple[int, int] | None = None  # (epoch, node id)
        for node in self._nodes.values():
            try:
                text = node.log.read_text(errors="replace")
            except OSError:
                continue
            for m in LEADER_LINE.finditer(text):
                found = (int(m.group(2)), int(m.group(1)))
                if best is None or found > best:
                    best = found
        if best is None:
            return None
        leader = self._nodes.get(best[1])
        if leader is None or leader.proc is None or not leader.proc.alive() or leader.paused:
            return None
        return leader.id

    # -- inspection --------------------------------------------------------------
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self._nodes.values())

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(n.id, self.host, n.port, n.proc.pid if n.proc else None,
                         bool(n.proc and n.proc.alive()), n.paused) for n in self._nodes.values()]

    def processes(self) -> list[ManagedProcess]:
        return [n.proc for n in self._nodes.values() if n.proc is not None]

    def version(self) -> str:
        return self._version

    # -- state for a detached cluster (`kafka up` / `kafka down`) --------------------
    def to_state(self) -> dict:
        return {
            "provider": self.name,
            "version": self._version,
            "workdir": str(self.workdir),
            "own_workdir": self._own_workdir,
            "cluster_id": self._cluster_id,
            "nodes": [{"id": n.id, "port": n.port, "controller_port": n.controller_port,
                       "dir": str(n.dir), "process": n.proc.to_dict() if n.proc else None}
                      for n in self._nodes.values()],
        }

    @classmethod
    def from_state(cls, state: dict, attached: bool = False) -> LocalKafka:
        self = cls(nodes_count=len(state["nodes"]), workdir=Path(state["workdir"]), detach=True, attached=attached)
        self._own_workdir = bool(state.get("own_workdir"))
        self._version = state.get("version", "unknown")
        self._cluster_id = state.get("cluster_id", "")
        for nd in state["nodes"]:
            proc = ManagedProcess.from_dict(nd["process"]) if nd.get("process") else None
            self._nodes[nd["id"]] = _Node(nd["id"], nd["port"], nd["controller_port"], Path(nd["dir"]), proc)
        return self

    # -- internals -----------------------------------------------------------------
    def _node(self, node_id: int) -> _Node:
        if node_id not in self._nodes:
            msg = f"no broker node {node_id}; nodes are {sorted(self._nodes)}"
            raise ConfigError(msg)
        return self._nodes[node_id]

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        assert self._java is not None
        log4j = self.workdir / "log4j2.properties"  # type: ignore[operator]
        return [self._java.path, *JVM_OPTS, f"-Dlog4j2.configurationFile={log4j}",
                "-cp", self._classpath, main, *args]

    def _format(self, node: _Node) -> None:
        cmd = self._java_cmd("kafka.tools.StorageTool", "format", "-t", self._cluster_id,
                             "-c", str(node.config), "--ignore-formatted")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            msg = f"kafka.tools.StorageTool format failed for node {node.id} (exit {proc.returncode}):\n{tail}"
            raise ProcessError(msg)

    def _launch(self, node: _Node) -> None:
        node.paused = False
        node.log_offset = node.log.stat().st_size if node.log.exists() else 0
        node.proc = SUPERVISOR.start(
            self._java_cmd("kafka.Kafka", str(node.config)),
            name=f"kafka-{node.id}", role="broker", log_path=node.log, detach=self.detach)

    def _wait_ready(self, nodes: list[_Node]) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        pending = list(nodes)
        while pending:
            for node in list(pending):
                if node.started():
                    pending.remove(node)
                elif node.proc is None or not node.proc.alive():
                    code = node.proc.returncode() if node.proc else None
                    msg = (f"Kafka node {node.id} exited during start (exit code {code}); "
                           f"last lines of {node.log}:\n{node.log_tail()}")
                    raise ProcessError(msg)
            if pending and time.monotonic() >= deadline:
                node = pending[0]
                msg = (f"Kafka node {node.id} did not log '{READY_LINE}' within {self.ready_timeout_s:.0f} s; "
                       f"last lines of {node.log}:\n{node.log_tail()}")
                raise ProcessError(msg)
            if pending:
                time.sleep(0.1)
        self._wait_admin(deadline)

    def _wait_admin(self, deadline: float) -> None:
        from confluent_kafka.admin import AdminClient

        expected = {n.id for n in self._nodes.values() if n.proc and n.proc.alive() and not n.paused}
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers(), "log_level": 0})
        last = "no answer"
        while True:
            try:
                md = admin.list_topics(timeout=5)
                seen = set(md.brokers)
                if expected <= seen:
                    return
                last = f"brokers registered: {sorted(seen)}, expected {sorted(expected)}"
            except Exception as e:  # noqa: BLE001 - any client error means not ready yet
                last = str(e)
            if time.monotonic() >= deadline:
                tails = "\n".join(f"--- node {n.id} ---\n{n.log_tail(10)}" for n in self._nodes.values())
                msg = f"Kafka at {self.bootstrap_servers()} started but its admin API did not answer in time ({last})\n{tails}"
                raise ProcessError(msg)
            time.sleep(0.2)
