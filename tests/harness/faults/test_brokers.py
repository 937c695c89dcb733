"""Broker faults on a real 3-node cluster: each pick names the broker that does that job now, and the actions
kill, pause and restart the node it names; at the end every touched broker runs again."""

from __future__ import annotations

import random
import time
import uuid

import pytest
from confluent_kafka import Producer

from harness.faults.broker import Brokers, node_of, transactional_id
from harness.kafka.client import admin, create_topics
from harness.proc import wait_until

pytestmark = pytest.mark.kafka


def test_a_transaction_log_key_is_read_as_its_transactional_id():
    assert transactional_id(b"\x00\x00\x00\x03abc") == "abc"
    assert transactional_id(b"\x00\x01\x00\x03abc") is None  # another key version
    assert transactional_id(b"\x00\x00\x00\x09abc") is None  # a length that does not fit
    assert transactional_id(None) is None


def _leader(bootstrap: str, topic: str, partition: int) -> int:
    return admin(bootstrap).list_topics(topic, timeout=15).topics[topic].partitions[partition].leader


def test_each_pick_names_the_broker_doing_that_job(three_nodes):
    cluster = three_nodes
    bs = cluster.bootstrap_servers()
    topics = {"input": f"sg.test.brokers.in.{uuid.uuid4().hex[:6]}", "output": f"sg.test.brokers.out.{uuid.uuid4().hex[:6]}"}
    create_topics(bs, {topics["input"]: 3, topics["output"]: 3}, replication=3)
    since = int(time.time() * 1000)
    brokers = Brokers(cluster, topics, since)
    with pytest.raises(Exception, match="no transaction was begun"):
        brokers.pick("txn_coordinator", random.Random(1))
    tid = f"sg-test-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": bs, "transactional.id": tid, "log_level": 0})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topics["output"], value=b"x")
    p.commit_transaction(30)

    target, why = brokers.pick("leader_of_input", random.Random(3))
    partition = int(why.rsplit(" ", 1)[1])
    assert why.startswith("leader of input partition ")
    assert node_of(target) == _leader(bs, topics["input"], partition)
    target, why = brokers.pick("txn_coordinator", random.Random(3))
    assert why == "coordinator of 1 of the engine's 1 transactional ids"
    coordinators = {node_of(brokers.pick("txn_coordinator", random.Random(s))[0]) for s in range(5)}
    assert coordinators == {node_of(target)}
    controller, why = brokers.pick("controller", random.Random(3))
    assert why == "the active controller"
    assert brokers.pick(2, random.Random(3)) == ("broker-2", "node 2")
    with pytest.raises(Exception, match="no broker with node id 7"):
        brokers.pick(7, random.Random(3))

    brokers.kill(controller)  # the quorum elects another controller
    wait_until(lambda: cluster.controller_id() not in (None, node_of(controller)), 60, "a new active controller")
    assert not {n.id: n.alive for n in cluster.nodes()}[node_of(controller)]
    other = next(n.id for n in cluster.nodes() if n.alive)
    brokers.pause(f"broker-{other}")
    assert {n.id: n.paused for n in cluster.nodes()}[other]
    brokers.heal_all()
    assert all(n.alive and not n.paused for n in cluster.nodes())
    p.flush(10)
