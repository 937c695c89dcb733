"""The cluster engine's event-time window operator, no Kafka."""

from __future__ import annotations

import msgspec
import pytest

from engines.cluster.windows import LATE_REASON, EventTimeError, Fired, WindowOperator
from harness.api import Sliding, Tumbling, WindowAggregate, id_checksum
from harness.api.pipeline import late_record
from scenarios.jobs import sliding_sum, windowed_count


def window_op(pipeline) -> WindowAggregate:
    return next(op for op in pipeline().ops if isinstance(op, WindowAggregate))


def event(i: int, et: int, k: str = "a", v: int = 1) -> dict:
    return {"id": i, "k": k, "v": v, "et": et, "st": 1000 + i}


def tumbling(grace_ms: int = 2000) -> WindowOperator:
    """5 s tumbling windows with ``grace_ms`` grace, the built-in count/sum/checksum aggregate."""
    base = window_op(windowed_count)
    return WindowOperator(WindowAggregate(Tumbling(5000), grace_ms, base.init, base.step), "et")


def summary(fired: list[Fired]) -> list[tuple]:
    return [(f.key, f.start, f.end, f.result["n"], f.result["s"]) for f in fired]


def test_tumbling_windows_fire_once_when_the_watermark_reaches_end_minus_one_plus_grace():
    win = tumbling()
    assert win.process("a", event(1, 1_000, v=3)) == []
    assert win.process("a", event(2, 4_999, v=4)) == []
    assert win.process("b", event(3, 5_000)) == []
    assert win.advance(6_998) == []           # window [0, 5000) fires at 4999 + 2000 = 6999
    fired = win.advance(6_999)
    assert summary(fired) == [("a", 0, 5000, 2, 7)]
    assert fired[0].result == {"k": "a", "ws": 0, "we": 5000, "n": 2, "s": 7,
                               "h": id_checksum(1) + id_checksum(2), "st_max": 1002}
    assert win.advance(11_998) == []
    assert summary(win.advance(50_000)) == [("b", 5000, 10000, 1, 1)]
    assert win.advance(60_000) == [] and win.windows == {}  # fired windows are dropped


def test_records_are_late_only_for_windows_that_have_fired():
    win = tumbling()
    win.process("a", event(1, 1_000))
    win.advance(6_998)                         # [0, 5000) has not fired yet: still on time
    assert win.process("a", event(2, 100)) == []
    assert summary(win.advance(6_999)) == [("a", 0, 5000, 2, 2)]
    late = win.process("a", event(3, 4_999, v=9))
    assert [(r.key, r.record, r.timestamp) for r in late] == [
        ("a", late_record(event(3, 4_999, v=9), "a", 0, 5000, LATE_REASON), 4_999)]
    assert late[0].record["why"] == "watermark passed"
    assert win.process("a", event(4, 5_000)) == []  # [5000, 10000) fires at 11999: on time
    assert summary(win.advance(20_000)) == [("a", 5000, 10000, 1, 1)]


def test_a_window_that_would_have_fired_is_late_even_if_it_never_had_state():
    win = tumbling(grace_ms=0)
    win.advance(10_000)
    assert [r.record["ws"] for r in win.process("a", event(1, 5_000))] == [5000]  # fires at 9999 <= 10000
    assert win.process("a", event(2, 10_000)) == []


def test_before_any_watermark_nothing_is_late():
    win = tumbling()
    assert win.process("a", event(1, -10_000)) == []
    assert win.watermark is None


def test_sliding_windows_count_each_record_in_every_window_and_late_per_window():
    op = window_op(sliding_sum)  # 10 s windows every 5 s, 2 s grace
    win = WindowOperator(op, "et")
    assert op.windows_of(7_000) == [(0, 10_000), (5_000, 15_000)]
    win.process("a", event(1, 7_000, v=2))
    win.process("a", event(2, 12_000, v=5))
    assert summary(win.advance(11_999)) == [("a", 0, 10_000, 1, 2)]
    late = win.process("a", event(3, 8_000, v=7))   # [0, 10000) fired, [5000, 15000) has not
    assert [(r.record["ws"], r.record["we"]) for r in late] == [(0, 10_000)]
    assert summary(win.advance(100_000)) == [("a", 5_000, 15_000, 3, 14), ("a", 10_000, 20_000, 1, 5)]


def test_the_watermark_never_goes_backwards():
    win = tumbling()
    win.advance(20_000)
    assert win.advance(5_000) == []
    assert win.watermark == 20_000
    assert len(win.process("a", event(1, 12_000))) == 1  # 9999 + 2000 <= 20000: late, whatever came after


def test_results_come_in_fire_time_order_then_key():
    win = tumbling()
    for i, (k, et) in enumerate([("b", 6_000), ("b", 1_000), ("a", 7_000), ("a", 2_000)]):
        win.process(k, event(i, et, k=k))
    assert [(f.key, f.start) for f in win.advance(30_000)] == [("a", 0), ("b", 0), ("a", 5000), ("b", 5000)]


def test_a_record_without_event_time_is_an_error_naming_the_field():
    with pytest.raises(EventTimeError, match="'et'"):
        tumbling().process("a", {"id": 1, "k": "a", "v": 1})


def test_snapshot_and_restore_keep_the_windows_and_the_watermark():
    win = tumbling()
    win.process("a", event(1, 1_000, v=3))
    win.process("b", event(2, 6_000, v=4))
    win.process("a", event(3, 7_000, v=5))
    assert summary(win.advance(7_000)) == [("a", 0, 5000, 1, 3)]
    snap = msgspec.msgpack.decode(msgspec.msgpack.encode(win.snapshot()))  # as the checkpoint stores it
    assert snap["watermark"] == 7_000
    assert sorted(tuple(e[:3]) for entries in snap["groups"].values() for e in entries) == [
        ("a", 5000, 10000), ("b", 5000, 10000)]

    restored = tumbling()
    restored.restore(snap)
    assert restored.watermark == 7_000
    # a replayed record of the window that fired before the checkpoint: late, never a second result
    assert len(restored.process("a", event(1, 1_000, v=3))) == 1
    assert restored.advance(6_999) == []
    assert summary(restored.advance(12_000)) == [("a", 5000, 10000, 1, 5), ("b", 5000, 10000, 1, 4)]


def test_restore_without_the_watermark_would_emit_a_fired_window_twice():
    """Why the watermark is checkpointed: the counterfactual, spelled out."""
    win = tumbling()
    win.process("a", event(1, 1_000))
    assert len(win.advance(7_000)) == 1
    snap = win.snapshot()
    snap["watermark"] = None
    forgetful = tumbling()
    forgetful.restore(snap)
    assert forgetful.process("a", event(1, 1_000)) == []
    assert len(forgetful.advance(7_000)) == 1  # the same window again: a duplicate


def test_restore_replaces_state_and_fires_restored_windows():
    win = tumbling()
    win.process("a", event(1, 1_000))
    other = tumbling()
    other.process("z", event(9, 30_000))
    other.restore(win.snapshot())
    assert summary(other.advance(100_000)) == [("a", 0, 5000, 1, 1)]


def test_sliding_assignment_of_negative_and_boundary_times():
    assert Sliding(10_000, 5_000).windows_of(5_000) == [(0, 10_000), (5_000, 15_000)]
    assert Sliding(10_000, 5_000).windows_of(4_999) == [(-5_000, 5_000), (0, 10_000)]
    assert Tumbling(5_000).windows_of(4_999) == [(0, 5_000)]
