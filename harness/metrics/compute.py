"""Metrics of one run from the probe's stamps and the generator's schedule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_LATENCY_US = 3_600_000_000


def latency_histogram(receipt_us: Sequence[int], st_us: Sequence[int]) -> HdrHistogram:
    """Event-time latency (receipt - scheduled send), µs, 3 significant digits."""
    h = HdrHistogram(1, MAX_LATENCY_US, 3)
    for r, s in zip(receipt_us, st_us):
        if s > 0:
            h.record_value(min(max(1, r - s), MAX_LATENCY_US))
    return h


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


def keeps_up(tl: Timeline, windows: Sequence[tuple[float, float]], load_seconds: int,
             tolerance: float = 0.25, share: float = 0.9, skip_first: int = 3, span: int = 5) -> dict:
    """Does the output rate follow the input rate outside recovery windows?

    Outputs and inputs are compared over ``span`` consecutive seconds,
    centred on each second of load outside the recovery windows (and after a
    short warm-up), with the whole span outside them: a sink that makes its
    outputs visible once per checkpoint or commit interval (1 s by default
    for the cluster engine) puts two intervals' outputs into one second and
    none into the next whenever a commit lands a little late, which says
    nothing about whether it keeps up. It keeps up when at least ``share`` of
    those spans are within ``tolerance`` of the input and the outputs total
    at least 95 % of the inputs over the checked seconds.
    """
    half = span // 2  # 5 s: one interval's outputs landing a second late moves a span by 20 %, within 25 %
    end = min(load_seconds, len(tl.inputs))
    outside = {s for s in range(skip_first, end) if not any(a <= s <= b for a, b in windows)}
    secs = [s for s in sorted(outside) if all(t in outside for t in range(s - half, s + half + 1))]
    if not secs:
        return {"keeps_up": None, "seconds_checked": 0, "within_tolerance": 0.0, "output_input_ratio": 0.0}

    def total(series: list[int], s: int) -> int:
        return sum(series[s - half:s + half + 1])

    close = sum(1 for s in secs if total(tl.inputs, s)
                and abs(total(tl.outputs, s) - total(tl.inputs, s)) <= tolerance * total(tl.inputs, s))
    ins = sum(tl.inputs[s] for s in secs)
    outs = sum(tl.outputs[s] for s in secs)
    ratio = outs / ins if ins else 0.0
    within = close / len(secs)
    return {"keeps_up": within >= share and ratio >= 0.95, "seconds_checked": len(secs), "span_s": span,
            "within_tolerance": round(within, 3), "output_input_ratio": round(ratio, 3)}
