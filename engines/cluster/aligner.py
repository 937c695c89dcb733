"""Aligned checkpoint barriers for a task with several input channels.

When barrier n arrives on a channel, that channel is blocked: records behind
the barrier wait until barrier n has arrived on every channel. Then the task
snapshots its state, forwards barrier n, and every channel is unblocked.

Pure logic, no I/O: the task asks :meth:`BarrierAligner.readable` which
channels it may read, and reports each barrier with :meth:`on_barrier`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Aligned:
    """Barrier ``checkpoint_id`` has arrived on every channel."""

    checkpoint_id: int
    alignment_s: float   # first barrier -> last barrier


class BarrierAligner:
    """Tracks barrier alignment across ``channels`` input channels."""

    def __init__(self, channels: int, clock: Callable[[], float] = time.monotonic) -> None:
        if channels < 1:
            msg = "a task needs at least one input channel"
            raise ValueError(msg)
        self.channels = channels
        self.clock = clock
        self.pending: int | None = None      # the checkpoint being aligned
        self.blocked: set[int] = set()
        self.started = 0.0
        self.last_aligned = 0

    def readable(self, channel: int) -> bool:
        """May the task take the next item from ``channel`` now?"""
        return channel not in self.blocked

    def on_barrier(self, channel: int, checkpoint_id: int) -> Aligned | None:
        """Barrier ``checkpoint_id`` arrived on ``channel``; returns Aligned once all channels have it."""
        if checkpoint_id <= self.last_aligned:
            return None  # a late barrier of a checkpoint that was already aligned or given up
        if self.pending is None or checkpoint_id > self.pending:
            # a newer checkpoint supersedes one still aligning (it was aborted upstream)
            self.pending, self.blocked, self.started = checkpoint_id, set(), self.clock()
        elif checkpoint_id < self.pending:
            return None
        self.blocked.add(channel)
        if len(self.blocked) < self.channels:
            return None
        aligned = Aligned(checkpoint_id, self.clock() - self.started)
        self.pending, self.blocked, self.last_aligned = None, set(), checkpoint_id
        return aligned

    def reset(self) -> None:
        self.pending, self.blocked = None, set()
