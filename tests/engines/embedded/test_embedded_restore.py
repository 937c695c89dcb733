"""A state restore that cannot progress (its changelog partition has no leader) gives up after task.timeout.ms
and the instance rejoins, instead of waiting for ever inside the rebalance."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Producer

from engines.embedded.instance import Instance, InstanceConfig, Rejoin, Task
from harness.api import Guarantee
from harness.kafka.client import admin, create_topics
from harness.proc import wait_until

pytestmark = pytest.mark.kafka


def test_a_restore_from_a_changelog_without_a_leader_gives_up_after_the_task_timeout(three_nodes):
    bs = three_nodes.bootstrap_servers()
    run = uuid.uuid4().hex[:6]
    topics = {"input": f"sg.test.restore.{run}.input", "output": f"sg.test.restore.{run}.output",
              "changelog-sum": f"sg.test.restore.{run}.changelog-sum"}
    create_topics(bs, {topics["input"]: 1, topics["output"]: 1}, replication=3)
    create_topics(bs, {topics["changelog-sum"]: 1}, replication=1)  # one replica: its broker's loss stops it
    p = Producer({"bootstrap.servers": bs, "log_level": 0})
    for i in range(100):
        p.produce(topics["changelog-sum"], key=f"k{i}".encode(), value=b'{"n": 1, "s": 1}')
    assert p.flush(30) == 0
    leader = admin(bs).list_topics(topics["changelog-sum"], timeout=15).topics[topics["changelog-sum"]] \
        .partitions[0].leader
    three_nodes.kill_node(leader)
    cfg = InstanceConfig(bootstrap=bs, app_id=f"sg.test.restore.{run}", instance_id="instance-0",
                         job="scenarios.jobs:running_sum", guarantee=Guarantee.exactly_once, topics=topics,
                         commit_interval_ms=100, session_timeout_ms=10_000, heartbeat_interval_ms=1_000,
                         max_poll_interval_ms=300_000, transaction_timeout_ms=10_000, task_timeout_ms=2_000)
    instance = Instance(cfg)
    outcome: list[BaseException | None] = []

    def restore() -> None:
        try:
            instance._restore([Task(instance.segments[0], 0)])
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome.append(e)

    started = time.monotonic()
    threading.Thread(target=restore, daemon=True).start()
    try:
        wait_until(lambda: bool(outcome), 60, "the restore giving up (it waits for the changelog's leader)")
    finally:
        three_nodes.restart_node(leader)
        if instance.restorer is not None:
            instance.restorer.close()
    assert isinstance(outcome[0], Rejoin), outcome
    assert "restore made no progress for 2000 ms (task.timeout.ms) on changelog-sum-0" in str(outcome[0])
    assert time.monotonic() - started >= 2.0
