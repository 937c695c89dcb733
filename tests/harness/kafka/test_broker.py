"""The local broker is real Kafka: produce/consume, transactions, restart, and a 3-node cluster losing a node."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from harness.kafka import LocalKafka
from harness.kafka.client import admin, create_topics, read_all
from harness.proc import wait_until

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


def _log_start(bootstrap: str, topic: str) -> int:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    client = admin(bootstrap)  # must outlive the future
    futures = client.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()})
    return next(iter(futures.values())).result(timeout=15).offset


def test_topics_we_create_keep_records_with_old_timestamps_through_retention():
    """Record timestamps are event times: the broker's time retention must not delete a run's records.

    The broker runs its retention pass every 200 ms; a control topic with the
    broker's default retention (7 days) shows the pass ran and deleted its
    1970-stamped records, while a topic made by ``create_topics`` keeps them.
    """
    quick = {"log.retention.check.interval.ms": "200", "log.initial.task.delay.ms": "0"}
    with LocalKafka(nodes_count=1, broker_config=quick) as kafka:
        bs = kafka.bootstrap_servers()
        ours, control = "sg.test.retention.ours", "sg.test.retention.control"
        create_topics(bs, {ours: 1})
        create_topics(bs, {control: 1}, config={"retention.ms": str(7 * 24 * 3600 * 1000)})
        p = Producer({"bootstrap.servers": bs, "log_level": 0})
        for topic in (ours, control):
            for i in range(3):
                p.produce(topic, value=str(i).encode(), timestamp=1000 + i)
        assert p.flush(30) == 0
        wait_until(lambda: _log_start(bs, control) == 3, 60, "the retention pass deleting the control topic's records")
        assert _log_start(bs, ours) == 0
        assert _values(read_all(bs, ours, isolation="read_uncommitted")) == [b"0", b"1", b"2"]
