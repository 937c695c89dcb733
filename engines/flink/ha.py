"""Flink's high availability as it ships: a ZooKeeper server (``org.apache.zookeeper:zookeeper``,
``ZooKeeperServerMain``, classpath resolved by Maven from ``zookeeper/pom.xml``) on a free port, started and
stopped with the run, and the configuration that puts a session cluster's JobManagers on it.

Two JobManagers contend for leadership in ZooKeeper; the job graph and the
pointers to completed checkpoints are kept under ``high-availability.storageDir``
(a directory of the run) and ZooKeeper, so the JobManager that takes over
recovers the job from its latest completed checkpoint.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from harness.api.toolkit import SUPERVISOR, ManagedProcess, ProcessError, find_java, free_ports, resolve_classpath

POM = Path(__file__).resolve().parent / "zookeeper" / "pom.xml"
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
START_TIMEOUT_S = 60.0


def classpath() -> list[Path]:
    """The ZooKeeper server's jars (resolved once with Maven, then cached)."""
    return resolve_classpath(POM)


def zookeeper_version() -> str:
    jar = next((j for j in classpath() if j.name.startswith("zookeeper-") and "jute" not in j.name), None)
    return jar.name.removeprefix("zookeeper-").removesuffix(".jar") if jar is not None else "unknown"


def start_zookeeper(directory: Path, host: str) -> tuple[ManagedProcess, int]:
    """A standalone ZooKeeper server with its data under ``directory``, listening on ``host`` at a free port;
    returns once it serves requests (``srvr``)."""
    (port,) = free_ports(1)
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = directory / "zoo.cfg"
    config.write_text(f"dataDir={data}\nclientPort={port}\nclientPortAddress={host}\ntickTime=2000\n"
                      f"maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n")
    java = find_java()
    argv = [java.path, "-Xmx128m", "-cp", ":".join(str(j) for j in classpath()), MAIN, str(config)]
    proc = SUPERVISOR.start(argv, name="zookeeper", role="zookeeper", log_path=directory / "zookeeper.log")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not proc.alive():
            msg = f"flink: ZooKeeper exited as it started; see {directory / 'zookeeper.log'}"
            raise ProcessError(msg)
        if serving(host, port):
            return proc, port
        time.sleep(0.1)
    proc.kill()
    SUPERVISOR.forget(proc)
    msg = f"flink: ZooKeeper did not answer on {host}:{port} within {START_TIMEOUT_S:.0f} s; see {directory}"
    raise ProcessError(msg)


def serving(host: str, port: int) -> bool:
    """Whether the server serves requests: ``srvr`` names its mode (``ruok`` answers even when it does not)."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(b"srvr")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
    except OSError:
        return False
    return b"Mode:" in answer


def configuration(quorum: str, storage: Path, cluster_id: str) -> dict[str, str]:
    """Flink's ZooKeeper high availability for one session cluster."""
    return {"high-availability.type": "zookeeper", "high-availability.zookeeper.quorum": quorum,
            "high-availability.storageDir": storage.resolve().as_uri(),
            "high-availability.cluster-id": f"/{cluster_id}"}
