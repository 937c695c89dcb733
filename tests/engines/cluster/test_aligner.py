"""Barrier alignment with two inputs, driven deterministically."""

from __future__ import annotations

from collections import deque

from engines.cluster.aligner import Aligned, BarrierAligner


def drive(aligner: BarrierAligner, inputs: dict[int, deque]) -> list:
    """Read round-robin from the readable inputs, as a task does; return what it processed, in order."""
    processed: list = []
    progress = True
    while progress:
        progress = False
        for ch, queue in inputs.items():
            if queue and aligner.readable(ch):
                item = queue.popleft()
                progress = True
                if isinstance(item, tuple) and item[0] == "barrier":
                    done = aligner.on_barrier(ch, item[1])
                    if done is not None:
                        processed.append(("snapshot", done.checkpoint_id))
                else:
                    processed.append(item)
    return processed


def test_records_behind_a_barrier_wait_for_the_barrier_on_the_other_input():
    clock = iter([0.0, 0.25]).__next__
    aligner = BarrierAligner(2, clock=clock)
    inputs = {0: deque(["a1", ("barrier", 1), "a2", "a3"]), 1: deque(["b1", "b2", "b3", ("barrier", 1), "b4"])}
    out = drive(aligner, inputs)
    # a2 and a3 come after barrier 1 on input 0: they wait until input 1 has delivered barrier 1
    assert out.index(("snapshot", 1)) > out.index("b3")
    assert out.index("a2") > out.index(("snapshot", 1))
    assert out.index("a3") > out.index(("snapshot", 1))
    assert set(out[:out.index(("snapshot", 1))]) == {"a1", "b1", "b2", "b3"}
    assert out.count(("snapshot", 1)) == 1 and sorted(x for x in out if isinstance(x, str)) == sorted(
        ["a1", "a2", "a3", "b1", "b2", "b3", "b4"])


def test_a_blocked_input_is_not_readable_until_aligned():
    aligner = BarrierAligner(2, clock=iter([1.0, 3.5]).__next__)
    assert aligner.on_barrier(0, 7) is None
    assert not aligner.readable(0) and aligner.readable(1)
    assert aligner.on_barrier(1, 7) == Aligned(7, 2.5)
    assert aligner.readable(0) and aligner.readable(1)


def test_a_newer_barrier_supersedes_an_unfinished_alignment():
    aligner = BarrierAligner(2, clock=lambda: 0.0)
    aligner.on_barrier(0, 1)
    assert aligner.on_barrier(1, 2) is None  # checkpoint 1 was given up upstream
    assert aligner.readable(0) and not aligner.readable(1)
    aligned = aligner.on_barrier(0, 2)
    assert aligned is not None and aligned.checkpoint_id == 2
    assert aligner.on_barrier(1, 1) is None  # a stale barrier is ignored


def test_one_input_aligns_at_once():
    assert BarrierAligner(1, clock=lambda: 0.0).on_barrier(0, 3) == Aligned(3, 0.0)
