"""The local broker is real Kafka: produce/consume, transactions, restart, and a 3-node cluster losing a node."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from harness.kafka import LocalKafka
from harness.kafka.client import create_topics, read_all

pytestmark = pytest.mark.kafka


def _values(records) -> list[bytes]:
    return [r.value for r in records]


def _txn_producer(bootstrap: str) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"sg-test-{uuid.uuid4().hex[:8]}",
                  "log_level": 0})
    p.init_transactions(30)
    return p


def test_produce_and_consume(bootstrap, topic_factory):
    topic = topic_factory("plain", partitions=3)
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for i in range(300):
        p.produce(topic, key=f"k{i % 17}".encode(), value=str(i).encode())
    assert p.flush(30) == 0
    got = read_all(bootstrap, topic, isolation="read_uncommitted")
    assert sorted(int(v) for v in _values(got)) == list(range(300))
    assert {r.partition for r in got} == {0, 1, 2}


def test_committed_transaction_is_visible_read_committed(bootstrap, topic_factory):
    topic = topic_factory("commit")
    p = _txn_producer(bootstrap)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"c{i}".encode())
    p.commit_transaction(30)
    assert _values(read_all(bootstrap, topic, isolation="read_committed")) == [f"c{i}".encode() for i in range(10)]


def test_aborted_transaction_is_hidden_from_read_committed_only(bootstrap, topic_factory):
    topic = topic_factory("abort")
    p = _txn_producer(bootstrap)
    p.begin_transaction()
    p.produce(topic, value=b"kept")
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"aborted{i}".encode())
    p.flush(30)
    p.abort_transaction(30)
    assert _values(read_all(bootstrap, topic, isolation="read_committed")) == [b"kept"]
    assert _values(read_all(bootstrap, topic, isolation="read_uncommitted")) == (
        [b"kept"] + [f"aborted{i}".encode() for i in range(5)])


def test_committed_data_survives_a_broker_restart():
    with LocalKafka(nodes_count=1) as kafka:
        bs = kafka.bootstrap_servers()
        topic = "sg.test.restart"
        create_topics(bs, {topic: 2})
        p = _txn_producer(bs)
        p.begin_transaction()
        for i in range(100):
            p.produce(topic, key=str(i).encode(), value=str(i).encode())
        p.commit_transaction(30)
        old_pid = kafka.nodes()[0].pid
        kafka.kill_node(1)
        assert not kafka.nodes()[0].alive
        kafka.restart_node(1)
        assert kafka.nodes()[0].alive and kafka.nodes()[0].pid != old_pid
        got = read_all(bs, topic, isolation="read_committed")
        assert sorted(int(v) for v in _values(got)) == list(range(100))


def test_three_nodes_keep_acks_all_producing_with_one_broker_killed():
    with LocalKafka(nodes_count=3) as kafka:
        bs = kafka.bootstrap_servers()
        topic = "sg.test.acks-all"
        create_topics(bs, {topic: 3}, replication=3)
        p = Producer({"bootstrap.servers": bs, "acks": "all", "enable.idempotence": True,
                      "message.timeout.ms": 60000, "log_level": 0})
        failures: list[str] = []

        def on_delivery(err, _msg):
            if err is not None:
                failures.append(str(err))

        for i in range(500):
            p.produce(topic, key=str(i).encode(), value=str(i).encode(), on_delivery=on_delivery)
        assert p.flush(60) == 0
        kafka.kill_node(2)
        assert [n.alive for n in kafka.nodes()] == [True, False, True]
        for i in range(500, 1000):
            p.produce(topic, key=str(i).encode(), value=str(i).encode(), on_delivery=on_delivery)
        assert p.flush(90) == 0
        assert failures == []
        got = read_all(bs, topic, isolation="read_committed")
        assert sorted(int(v) for v in _values(got)) == list(range(1000))
