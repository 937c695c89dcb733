"""The TaskManager's event loop carries its heartbeats: a slow sink commit must not hold it."""

from __future__ import annotations

import asyncio
import time

from engines.cluster import messages as m
from engines.cluster.taskmanager import TaskManager, TMConfig
from harness.api import Guarantee


class _SlowCommit:
    """A subtask whose commit blocks its thread, as a transaction commit waiting on the broker does."""

    def __init__(self) -> None:
        self.committed: list[int] = []

    def notify_complete(self, checkpoint_id: int) -> None:
        time.sleep(0.6)
        self.committed.append(checkpoint_id)


def test_a_slow_sink_commit_does_not_stop_the_loop_and_commits_stay_in_order():
    tm = TaskManager(TMConfig(tm_id="tm-0", jm_host="127.0.0.1", jm_port=1, slots=1, job="scenarios.jobs:echo",
                              bootstrap="127.0.0.1:1", topics={}, guarantee=Guarantee.exactly_once, app_id="app",
                              checkpoint_dir="/nonexistent"))
    tm.attempt = 3
    subtask = _SlowCommit()
    tm.subtasks = [subtask]  # type: ignore[list-item]

    async def scenario() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        beat = asyncio.create_task(ticker())
        await tm._handle(m.NotifyComplete(attempt=3, checkpoint_id=7))
        await tm._handle(m.NotifyComplete(attempt=3, checkpoint_id=8))
        beat.cancel()
        return ticks

    ticks = asyncio.run(scenario())
    assert subtask.committed == [7, 8]
    assert ticks >= 10  # 1.2 s of commits: the loop ticked on (a blocked loop ticks 0 or 1 times)
