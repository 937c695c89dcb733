"""Coordinator queries run in a helper process: they answer like the admin client, and a crash of the helper
(librdkafka aborts on some failed coordinator requests) costs one answer, not the harness."""

from __future__ import annotations

import signal
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from harness.errors import ProcessError
from harness.kafka.coordinator import CoordinatorQueries
from harness.proc import wait_until

pytestmark = pytest.mark.kafka


def test_a_group_is_described_and_its_offsets_read_and_a_crash_costs_one_answer(bootstrap, topic_factory):
    topic = topic_factory("coord", partitions=2)
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for i in range(10):
        p.produce(topic, value=b"x", partition=i % 2)
    assert p.flush(30) == 0
    group = f"sg-test-coord-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "log_level": 0})
    queries = CoordinatorQueries(bootstrap, answer_timeout_s=3.0)
    try:
        c.subscribe([topic])
        wait_until(lambda: bool(c.consume(10, timeout=0.5) or c.assignment()), 60, "the consumer's assignment")
        c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 4)], asynchronous=False)
        wait_until(lambda: queries.describe(group)["state"] == "STABLE", 60, "a stable group")
        desc = queries.describe(group)
        assert desc["members"] == 1 and sorted(desc["assigned"]) == [[topic, 0], [topic, 1]]
        assert queries.committed(group, topic, 2) == {0: 3, 1: 4}

        helper = queries._proc
        assert helper is not None
        helper.send(signal.SIGABRT)  # as librdkafka's assertion does, between two queries
        helper.wait(10)
        assert queries.committed(group, topic, 2) == {0: 3, 1: 4}  # a new helper answers
        assert queries.crashes == 1
        helper = queries._proc
        assert helper is not None
        helper.pause()  # one that never answers
        with pytest.raises(ProcessError, match="gave no answer to committed"):
            queries.committed(group, topic, 2)
        assert not helper.alive() and queries.crashes == 2
        assert queries.describe(group)["members"] == 1
    finally:
        c.close()
        queries.close()
