"""The brokers as targets of faults: ``role: broker``, an infrastructure role the fault registry owns (no
engine has it). The nodes of a cluster streamgauge started and runs itself (the local provider, or
`streamgauge kafka up`) are killed, paused and restarted; a user's external cluster refuses them.

A broker is picked by its node id, at random, or by what it does at the moment of the fault: the leader of a
partition of the run's input or output topic, the coordinator of the engine's transactions, or the active
KRaft controller.
"""

from __future__ import annotations

import random
import time
from collections import Counter

from harness.api.engine import BROKER_PICKS
from harness.errors import ConfigError, ProcessError
from harness.kafka.base import KafkaProvider

ROLE = "broker"
#: the fault kinds a broker takes
KINDS = ("kill", "pause", "restart", "terminate")
#: picks by what a broker does when the fault comes (besides ``random`` and a node id)
PICKS = BROKER_PICKS
TXN_TOPIC = "__transaction_state"


NODES = 3  # a cluster that takes broker faults: replication 3, min.insync.replicas 2


def problems(kind: str, pick: str | int, guarantee: str | None) -> list[str]:
    """What is wrong with a broker fault of a scenario, one line each, before the run."""
    out = []
    if kind not in KINDS:
        out.append(f"a broker takes {', '.join(KINDS)} faults, not {kind}")
    if isinstance(pick, int) and not 1 <= pick <= NODES:
        out.append(f"broker pick {pick} is not a node id: the brokers are nodes 1 to {NODES}")
    if pick == "txn_coordinator" and guarantee not in (None, "exactly_once"):
        out.append(f"pick txn_coordinator needs an engine writing transactions: the guarantee is {guarantee}, "
                   f"not exactly_once")
    return out


def kafka_problems(nodes: int, kafka: KafkaProvider) -> list[str]:
    """Why the cluster of a run cannot take broker faults (the scenario's ``kafka.nodes``, the provider)."""
    out = []
    if nodes != NODES:
        out.append(f"broker faults need a {NODES}-node cluster: set kafka: {{nodes: {NODES}}} in the scenario "
                   f"(it has {nodes})")
    if not kafka.node_faults:
        out.append(f"broker faults need a cluster streamgauge started (the local provider or `streamgauge "
                   f"kafka up --nodes {NODES}`); the {kafka.name} cluster at {kafka.bootstrap_servers()} is "
                   f"not ours to kill (unset STREAMGAUGE_BOOTSTRAP, or run `streamgauge kafka down`)")
    return out


def target_name(node_id: int) -> str:
    return f"broker-{node_id}"


def node_of(target: str) -> int:
    return int(target.rsplit("-", 1)[1])


class Brokers:
    """The brokers of one run's cluster, with the faults' actions on them (kill, pause, resume, restart,
    terminate, as a Deployment offers them on its processes) and the run's picks.

    ``topics``: the run's topics by purpose (``input``, ``output``); ``since_ms``: when the engine was
    deployed (the transactions the coordinator picks are the ones begun since).
    """

    def __init__(self, kafka: KafkaProvider, topics: dict[str, str], since_ms: int) -> None:
        self.kafka = kafka
        self.topics = topics
        self.since_ms = since_ms
        self._touched: set[int] = set()  # nodes a fault killed, stopped or paused

    # -- the picks -------------------------------------------------------------------------------------
    def pick(self, pick: str | int, rng: random.Random) -> tuple[str, str]:
        """The target of a fault (``broker-N``) and why it was picked."""
        if isinstance(pick, int):
            ids = [n.id for n in self.kafka.nodes()]
            if pick not in ids:
                msg = f"there is no broker with node id {pick}; the node ids are {ids}"
                raise ConfigError(msg)
            return target_name(pick), f"node {pick}"
        if pick == "random":
            alive = [n.id for n in self.kafka.nodes() if n.alive and not n.paused]
            if not alive:
                msg = "no broker is running to pick from"
                raise ProcessError(msg)
            return target_name(rng.choice(alive)), "at random"
        if pick in ("leader_of_input", "leader_of_output"):
            purpose = pick.removeprefix("leader_of_")
            partition, leader = self._leader_of(self.topics[purpose], rng)
            return target_name(leader), f"leader of {purpose} partition {partition}"
        if pick == "txn_coordinator":
            coordinator, count, total = self._txn_coordinator(rng)
            return target_name(coordinator), f"coordinator of {count} of the engine's {total} transactional ids"
        if pick == "controller":
            controller = self.kafka.controller_id()
            if controller is None:
                msg = "the cluster has no active controller now (an election is under way)"
                raise ProcessError(msg)
            return target_name(controller), "the active controller"
        msg = f"unknown broker pick {pick!r}; picks: random, a node id, {', '.join(PICKS)}"
        raise ConfigError(msg)

    def _leader_of(self, topic: str, rng: random.Random) -> tuple[int, int]:
        from harness.kafka.client import admin

        md = admin(self.kafka.bootstrap_servers()).list_topics(topic, timeout=15).topics[topic]
        led = sorted((p.id, p.leader) for p in md.partitions.values() if p.leader >= 0)
        if not led:
            msg = f"no partition of {topic} has a leader now"
            raise ProcessError(msg)
        return rng.choice(led)

    def _txn_coordinator(self, rng: random.Random) -> tuple[int, int, int]:
        """The broker coordinating the most of the transactional ids written since the deployment (ties by
        ``rng``), with how many it coordinates and how many there are."""
        by_leader: Counter[int] = Counter()
        for attempt in range(4):  # a broker just started again can fail a client's first requests
            try:
                by_leader = transaction_coordinators(self.kafka.bootstrap_servers(), self.since_ms)
                break
            except Exception:  # asked again; the last failure is raised
                if attempt == 3:
                    raise
                time.sleep(1.0)
        if not by_leader:
            msg = ("no transaction was begun since the engine was deployed: the txn_coordinator pick needs an "
                   "engine that writes transactionally (exactly_once)")
            raise ProcessError(msg)
        most = max(by_leader.values())
        node = rng.choice(sorted(n for n, c in by_leader.items() if c == most))
        return node, most, sum(by_leader.values())

    # -- the actions -------------------------------------------------------------------------------------
    def kill(self, target: str) -> None:
        self._touched.add(node_of(target))
        self.kafka.kill_node(node_of(target))

    def terminate(self, target: str) -> None:
        self._touched.add(node_of(target))
        self.kafka.stop_node(node_of(target))

    def restart(self, target: str) -> None:
        """Start the node again without waiting until it serves (a JVM start takes seconds that the faults
        after it must not wait for); :meth:`heal_all` waits."""
        self._touched.add(node_of(target))
        self.kafka.restart_node(node_of(target), wait=False)

    def pause(self, target: str) -> None:
        self._touched.add(node_of(target))
        self.kafka.pause_node(node_of(target))

    def resume(self, target: str) -> None:
        self.kafka.resume_node(node_of(target))

    def heal_all(self) -> None:
        """At the end of a run: every broker a fault touched is running and unpaused again, so the next run
        of a suite finds the whole cluster."""
        touched = [n for n in self.kafka.nodes() if n.id in self._touched]
        for node in touched:  # resumed first: a node starting again waits until every running node serves
            if node.paused:
                self.kafka.resume_node(node.id)
        for node in touched:
            if not node.alive:
                self.kafka.restart_node(node.id, wait=False)
        self.kafka.wait_nodes([n.id for n in touched])
        self._touched.clear()


def transaction_coordinators(bootstrap: str, since_ms: int, timeout_s: float = 20.0) -> Counter[int]:
    """How many transactional ids each broker coordinates, of those with a transaction state written since
    ``since_ms``: read from the transaction log itself (its key is the transactional id; the leader of its
    partition is the id's coordinator)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sg-txn-coordinators",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        md = consumer.list_topics(TXN_TOPIC, timeout=timeout_s).topics.get(TXN_TOPIC)
        if md is None or md.error is not None:
            return Counter()
        leaders = {p.id: p.leader for p in md.partitions.values()}
        wanted = consumer.offsets_for_times([TopicPartition(TXN_TOPIC, p, since_ms) for p in leaders],
                                            timeout=timeout_s)
        ends = {}
        for tp in wanted:
            _, high = consumer.get_watermark_offsets(TopicPartition(TXN_TOPIC, tp.partition), timeout=timeout_s)
            if tp.offset >= 0 and tp.offset < high:
                ends[tp.partition] = high
        consumer.assign([tp for tp in wanted if tp.partition in ends])
        ids: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1.0):
                if msg.error() is not None:
                    continue
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None  # a record, not an error
                tid = transactional_id(msg.key())
                if tid is not None:
                    ids[tid] = partition
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
        return Counter(leaders[p] for p in ids.values() if leaders.get(p, -1) >= 0)
    finally:
        consumer.close()


def transactional_id(key: bytes | None) -> str | None:
    """The transactional id of a transaction log record's key (int16 version 0, then an int16-length string),
    None for a key of another shape."""
    if key is None or len(key) < 4 or key[:2] != b"\x00\x00":
        return None
    size = int.from_bytes(key[2:4], "big", signed=True)
    if size < 0 or len(key) != 4 + size:
        return None
    return key[4:].decode("utf-8", errors="replace")
