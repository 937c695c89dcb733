"""Fast unit tests of the local provider's pieces (no broker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.kafka import LocalKafka, make_provider
from harness.kafka.java import _parse_version
from harness.kafka.local import broker_properties, free_ports, new_cluster_id
from harness.kafka.maven import kafka_version
from harness.proc import ManagedProcess


def test_three_node_cluster_replicates_by_three_with_min_isr_two(tmp_path):
    ports = {1: (9001, 9101), 2: (9002, 9102), 3: (9003, 9103)}
    props = broker_properties(2, ports, tmp_path)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102"
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        assert props[key] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_single_node_cluster_replicates_by_one():
    props = broker_properties(1, {1: (9001, 9101)}, Path("/d"))
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"


def test_node_count_is_one_or_three():
    with pytest.raises(ConfigError, match="1 or 3"):
        LocalKafka(nodes_count=2)


def test_unknown_provider_is_named():
    with pytest.raises(ConfigError, match="'kubernetes'"):
        make_provider("kubernetes")


def test_external_needs_host_port():
    with pytest.raises(ConfigError, match="host:port"):
        make_provider("external", bootstrap="localhost")


def test_cluster_ids_never_look_like_flags():
    assert all(not new_cluster_id().startswith("-") for _ in range(2000))
    assert len(new_cluster_id()) == 22


def test_free_ports_are_distinct():
    ports = free_ports(6)
    assert len(set(ports)) == 6


@pytest.mark.parametrize("text,major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "25" 2025-09-16', 25),
])
def test_java_version_parsing(text, major):
    version = _parse_version(text)
    assert version is not None
    assert version[0] == major


def test_kafka_version_from_classpath():
    assert kafka_version([Path("/r/kafka-clients-4.1.1.jar"), Path("/r/kafka_2.13-4.1.1.jar")]) == "4.1.1"


def test_a_recycled_pid_is_never_signalled():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        impostor = ManagedProcess("x", "test", child.pid, create_time=1.0)  # same PID, other start time
        assert not impostor.alive()
        assert impostor.send(9) is False
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
