"""Metrics of one run from the probe's stamps and the generator's schedule."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_LATENCY_US = 3_600_000_000


def latency_histogram(receipt_us: Sequence[int], st_us: Sequence[int],
                      keep: Callable[[int], bool] | None = None) -> HdrHistogram:
    """Event-time latency (receipt - scheduled send), µs, 3 significant digits.

    ``keep``, when given, selects the outputs by their input's scheduled send
    time (µs): only those it accepts are counted.
    """
    h = HdrHistogram(1, MAX_LATENCY_US, 3)
    for r, s in zip(receipt_us, st_us):
        if s > 0 and (keep is None or keep(s)):
            h.record_value(min(max(1, r - s), MAX_LATENCY_US))
    return h


def outside_windows(t0_s: float, windows: Sequence[tuple[float, float]]) -> Callable[[int], bool]:
    """A ``keep`` for :func:`latency_histogram`: a scheduled send time (µs) outside every
    ``[start, end)`` window, in seconds from ``t0_s`` (the faults' recovery windows)."""
    t0_us = t0_s * 1_000_000
    spans = [(t0_us + a * 1_000_000, t0_us + b * 1_000_000) for a, b in windows]
    return lambda s: not any(a <= s < b for a, b in spans)


def window_result_latency_ms(receipt_us: Sequence[int], window_end_ms: Sequence[int],
                             grace_ms: int, wall_offset_ms: int = 0) -> dict[str, float | int]:
    """Window result latency: receipt - (window end + grace), per window output, in ms.

    ``receipt_us`` and ``window_end_ms`` are parallel (the probe's stamps and
    its outputs' ``we``); a window end < 0 marks an output that is no window
    and is skipped. A window received before its end + grace is ``early``
    (counted, and recorded as 0): an engine that emits before the grace has
    passed does not wait for it. Returns p50/p90/p99/p999/max (HdrHistogram,
    µs precision), ``count`` and ``early``. ``wall_offset_ms`` turns a window
    end into wall-clock time when event times are on a fixed epoch.
    """
    h = HdrHistogram(1, MAX_LATENCY_US, 3)
    early = 0
    for receipt, end in zip(receipt_us, window_end_ms):
        if end < 0:
            continue
        latency_us = receipt - (end + wall_offset_ms + grace_ms) * 1000
        if latency_us < 0:
            early += 1
        h.record_value(min(max(1, latency_us), MAX_LATENCY_US))
    if h.get_total_count() == 0:
        return {**percentiles_ms(h), "count": 0, "early": 0}
    clamped = {name: (0.0 if value <= 0.001 else value) for name, value in percentiles_ms(h).items()}
    return {**clamped, "count": h.get_total_count(), "early": early}


def late_count(late_events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """How much the late side output declared: declarations (one per input and window), distinct inputs, by ``why``.

    ``late_events`` are the late records' JSON values (``{"id", "k", "et", "ws", "we", "why"}``).
    """
    declarations = 0
    inputs: set[Any] = set()
    by_why: Counter[str] = Counter()
    for event in late_events:
        declarations += 1
        inputs.add(event.get("id"))
        by_why[str(event.get("why"))] += 1
    return {"declarations": declarations, "inputs": len(inputs), "by_why": dict(by_why)}


def percentiles_ms(h: HdrHistogram) -> dict[str, float]:
    if h.get_total_count() == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    return {"p50": h.get_value_at_percentile(50) / 1000, "p90": h.get_value_at_percentile(90) / 1000,
            "p99": h.get_value_at_percentile(99) / 1000, "p999": h.get_value_at_percentile(99.9) / 1000,
            "max": h.get_max_value() / 1000}


@dataclass
class Timeline:
    """Per-second series from the start of the load schedule.

    ``inputs``: events scheduled in each second; ``outputs``: outputs received
    in each second; ``p99_ms``: p99 event-time latency of the outputs whose
    input was *scheduled* in that second, so a stalled partition shows up in
    the seconds it stalled (no coordinated omission), not when it catches up.
    """

    inputs: list[int]
    outputs: list[int]
    p99_ms: list[float]


def timeline(t0_s: float, seconds: int, input_per_second: Sequence[int], receipt_us: Sequence[int],
             st_us: Sequence[int]) -> Timeline:
    outputs = [0] * seconds
    bins: list[list[int]] = [[] for _ in range(seconds)]
    t0_us = int(t0_s * 1_000_000)
    for r, s in zip(receipt_us, st_us):
        sec = (r - t0_us) // 1_000_000
        if 0 <= sec < seconds:
            outputs[sec] += 1
        if s > 0:
            sched = (s - t0_us) // 1_000_000
            if 0 <= sched < seconds:
                bins[sched].append(r - s)
    p99 = []
    for b in bins:
        if b:
            b.sort()
            p99.append(round(b[min(len(b) - 1, int(len(b) * 0.99))] / 1000, 1))
        else:
            p99.append(0.0)
    inputs = list(input_per_second[:seconds]) + [0] * max(0, seconds - len(input_per_second))
    return Timeline(inputs, outputs, p99)


def longest_stall_s(tl: Timeline) -> int:
    """The longest run of whole seconds between the first and the last output in which no output arrived:
    how long the job stood still at worst (input was due, or outstanding, all that time)."""
    seen = [i for i, n in enumerate(tl.outputs) if n]
    longest = run = 0
    for second in range(seen[0], seen[-1] + 1) if seen else ():
        run = run + 1 if tl.outputs[second] == 0 else 0
        longest = max(longest, run)
    return longest


def recovery_seconds(tl: Timeline, fault_at_s: float, baseline_p99_ms: float, load_seconds: int,
                     settle: int = 3) -> float | None:
    """Seconds from a fault until the latency of newly scheduled events is back near its pre-fault level.

    Back means: the p99 latency of events scheduled in a second is below
    max(1 s, 2 x the pre-fault p99), for ``settle`` consecutive seconds. None
    when it never got back during the load.
    """
    limit = max(1000.0, 2 * baseline_p99_ms)
    start = int(fault_at_s)
    run = 0
    for sec in range(start, min(load_seconds, len(tl.p99_ms))):
        ok = tl.inputs[sec] > 0 and 0 < tl.p99_ms[sec] <= limit
        run = run + 1 if ok else 0
        if run >= settle:
            return float(sec - settle + 1 - fault_at_s) if sec - settle + 1 > fault_at_s else 0.0
    return None


def baseline_p99(tl: Timeline, before_s: float, skip_first: int = 3) -> float:
    vals = [v for v in tl.p99_ms[skip_first:int(before_s)] if v > 0]
    if not vals:
        return 0.0
    vals.sort()
    return vals[len(vals) // 2]


def slope(values: Sequence[float], at: Sequence[float] | None = None) -> float:
    """The least-squares slope of ``values`` against ``at`` (default: their index); 0 for fewer than two."""
    return pooled_slope([(values, range(len(values)) if at is None else at)])


def pooled_slope(series: Sequence[tuple[Sequence[float], Sequence[float]]]) -> float:
    """The one least-squares slope of several (values, at) series, each about its own mean (0 when undefined)."""
    num = den = 0.0
    for values, at in series:
        if len(values) < 2:
            continue
        mean_x, mean_y = sum(at) / len(at), sum(values) / len(values)
        num += sum((x - mean_x) * (y - mean_y) for x, y in zip(at, values, strict=True))
        den += sum((x - mean_x) ** 2 for x in at)
    return num / den if den else 0.0


#: keeps_up: the backlog may grow by at most this share of the input rate, per second
KEEPS_UP_TOLERANCE = 0.10


def keeps_up(tl: Timeline, windows: Sequence[tuple[float, float]], load_seconds: int,
             tolerance: float = KEEPS_UP_TOLERANCE, skip_first: int = 3) -> dict:
    """Does the output follow the input outside recovery windows: is the backlog not growing?

    The backlog at the end of each second is the inputs so far minus the
    outputs so far. Over the seconds of load after a short warm-up and
    outside the recovery windows, its least-squares slope must be at most
    ``tolerance`` of the mean input rate of those seconds (one slope fitted
    within each stretch between recovery windows, since a recovery may leave
    the backlog at another level). A trend, not a
    comparison second by second or span by span: a sink that publishes once
    per checkpoint or commit interval makes the backlog rise and fall by an
    interval's outputs whenever a commit lands a little early or late, which
    says nothing about keeping up; one that falls behind makes it climb.
    """
    end = min(load_seconds, len(tl.inputs))
    secs = [s for s in range(skip_first, end) if not any(a <= s <= b for a, b in windows)]
    if len(secs) < 2:
        return {"keeps_up": None, "seconds_checked": len(secs), "lag_slope_eps": None, "lag_slope_share": None,
                "tolerance": tolerance}
    backlog = list(itertools.accumulate(i - o for i, o in zip(tl.inputs, tl.outputs, strict=True)))
    # one trend within the stretches between recovery windows: a recovery may leave the backlog at another level
    stretches = [[s for _, s in run] for _, run in itertools.groupby(enumerate(secs), key=lambda p: p[1] - p[0])]
    trend = pooled_slope([([backlog[s] for s in run], run) for run in stretches])
    rate = sum(tl.inputs[s] for s in secs) / len(secs)
    share = trend / rate if rate else 0.0
    return {"keeps_up": share <= tolerance, "seconds_checked": len(secs), "lag_slope_eps": round(trend, 1),
            "lag_slope_share": round(share, 4), "tolerance": tolerance}
