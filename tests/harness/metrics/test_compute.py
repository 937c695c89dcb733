"""Metrics from the probe's stamps."""

from __future__ import annotations

import pytest

from harness.metrics.compute import (
    keeps_up,
    latency_histogram,
    outside_windows,
    percentiles_ms,
    timeline,
    window_result_latency_ms,
)


def test_window_result_latency_is_receipt_minus_end_plus_grace():
    receipt_us = [12_000_000, 13_500_000, 99_000_000]
    window_end_ms = [10_000, 10_000, -1]  # the last output is no window
    lat = window_result_latency_ms(receipt_us, window_end_ms, grace_ms=1000)
    assert lat["count"] == 2
    assert abs(lat["p50"] - 1000) < 5 and abs(lat["max"] - 2500) < 5


def test_an_output_before_its_window_closed_counts_as_early():
    lat = window_result_latency_ms([10_500_000], [10_000], grace_ms=1000)
    assert lat["early"] == 1


def test_stalled_partitions_show_in_the_seconds_they_stalled():
    t0 = 1000.0
    # two events scheduled in second 0; one is received at once, one 5 s later
    st = [int(t0 * 1e6) + 100_000, int(t0 * 1e6) + 200_000]
    receipt = [int(t0 * 1e6) + 150_000, int(t0 * 1e6) + 5_200_000]
    tl = timeline(t0, 6, [2, 0, 0, 0, 0, 0], receipt, st)
    assert tl.outputs[0] == 1 and tl.outputs[5] == 1
    assert tl.p99_ms[0] >= 5000  # by schedule: second 0 holds the 5 s latency


def test_keeps_up_fails_when_outputs_fall_behind_outside_recovery():
    from harness.metrics.compute import Timeline

    ok = Timeline(inputs=[100] * 20, outputs=[100] * 20, p99_ms=[50.0] * 20)
    slow = Timeline(inputs=[100] * 20, outputs=[60] * 20, p99_ms=[50.0] * 20)
    assert keeps_up(ok, [], 20)["keeps_up"] is True
    assert keeps_up(slow, [], 20)["keeps_up"] is False
    assert keeps_up(slow, [(0, 19)], 20)["keeps_up"] is None  # everything inside a recovery window


def test_keeps_up_is_not_fooled_by_commits_that_straddle_a_second():
    from harness.metrics.compute import Timeline

    # a sink committing once a second, sometimes a little late: 0 in one second, twice as much in the next
    jitter = [100, 100, 100, 100, 0, 200, 100, 100, 0, 200, 100, 0, 200, 100, 100, 100, 0, 200, 100, 100]
    assert keeps_up(Timeline(inputs=[100] * 20, outputs=jitter, p99_ms=[50.0] * 20), [], 20)["keeps_up"] is True
    # the same pattern with a fifth less output is still falling behind
    behind = [v * 7 // 10 for v in jitter]
    assert keeps_up(Timeline(inputs=[100] * 20, outputs=behind, p99_ms=[50.0] * 20), [], 20)["keeps_up"] is False


def test_keeps_up_is_not_fooled_by_a_sink_whose_commits_drift_across_seconds():
    from harness.metrics.compute import Timeline

    # the cluster engine's outputs per second in a smoke run (5000/s, 1 s checkpoints landing early and late,
    # a TaskManager killed at 12 s and recovered by 15 s): five-second spans of it stray more than 25 % from
    # the input a fifth of the time, yet its backlog never grows
    outputs = [0, 4053, 9997, 5029, 3234, 2677, 9128, 3262, 6652, 5000, 5112, 652, 4376, 0, 5000, 13391, 6534,
               108, 10008, 5012, 3406, 0, 10118, 1499, 5100, 4910, 8502, 6530, 5000, 1005]
    tl = Timeline(inputs=[5000] * 30, outputs=outputs, p99_ms=[1100.0] * 30)
    assert keeps_up(tl, [(12, 15)], 30)["keeps_up"] is True
    # the same commits carrying a tenth less each: the backlog climbs by 500 a second
    behind = Timeline(inputs=[5000] * 30, outputs=[v * 85 // 100 for v in outputs], p99_ms=[1100.0] * 30)
    assert keeps_up(behind, [(12, 15)], 30)["keeps_up"] is False


def test_keeps_up_only_checks_seconds_outside_recovery():
    from harness.metrics.compute import Timeline

    # a recovery window and its catch-up; the spans that touch it are not judged
    outputs = [100] * 8 + [0, 400] + [100] * 10
    result = keeps_up(Timeline(inputs=[100] * 20, outputs=outputs, p99_ms=[50.0] * 20), [(8, 9)], 20)
    assert result["keeps_up"] is True
    assert result["seconds_checked"] == len([3, 4, 5, 6, 7, *range(10, 20)])  # after the warm-up, outside it
    slow_after = [100] * 8 + [0, 400] + [60] * 10
    assert keeps_up(Timeline(inputs=[100] * 20, outputs=slow_after, p99_ms=[50.0] * 20), [(8, 9)], 20)[
        "keeps_up"] is False


def test_the_longest_stall_is_the_longest_silence_between_outputs():
    from harness.metrics.compute import Timeline, longest_stall_s

    def tl(outputs: list[int]) -> Timeline:
        return Timeline(inputs=[10] * len(outputs), outputs=outputs, p99_ms=[0.0] * len(outputs))

    assert longest_stall_s(tl([0, 0, 5, 5, 0, 0, 0, 7, 0, 3, 0, 0])) == 3  # not the start-up, not the tail
    assert longest_stall_s(tl([5] * 6)) == 0
    assert longest_stall_s(tl([0] * 6)) == 0


def test_steady_latency_leaves_out_the_events_scheduled_in_a_recovery_window():
    t0 = 1000.0
    sec = 1_000_000
    # one event per second for 10 s, 100 ms each, except seconds 4-6 (a fault at 4 s, recovered at 7 s): 5 s each
    st = [int(t0 * sec) + i * sec for i in range(10)]
    receipt = [s + (5 * sec if 4 <= i < 7 else 100_000) for i, s in enumerate(st)]
    whole = percentiles_ms(latency_histogram(receipt, st))
    steady = percentiles_ms(latency_histogram(receipt, st, keep=outside_windows(t0, [(4.0, 7.0)])))
    assert whole["max"] == pytest.approx(5000, rel=1e-3) and whole["p90"] == pytest.approx(5000, rel=1e-3)
    assert steady["max"] == pytest.approx(100, rel=1e-3) and steady["p99"] == pytest.approx(100, rel=1e-3)
    assert latency_histogram(receipt, st, keep=outside_windows(t0, [(4.0, 7.0)])).get_total_count() == 7
    # no windows: every event counts
    assert latency_histogram(receipt, st, keep=outside_windows(t0, [])).get_total_count() == 10
