"""The report's plots (matplotlib, headless), as PNG bytes.

Throughput and p99 latency timelines per run with the faults marked (a line
where each struck, shaded until it healed), the latency percentile spectrum
per engine, and recovery per fault per engine.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt

from harness.faults.kinds import KINDS, PlotStyle

PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))
FAULT_COLOUR = "tab:red"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _finish_bars(fig, ax, ylabel: str, title: str) -> bytes:
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


def _mark_faults(ax, faults: list[dict[str, Any]], label: bool) -> None:
    """A line at each fault, shaded until its heal, in its kind's plot style (a kind the registry does not
    know, from an older results.json, in the default one)."""
    for f in faults:
        style = KINDS[f["kind"]].plot if f.get("kind") in KINDS else PlotStyle(colour=FAULT_COLOUR)
        ax.axvline(f["at_s"], color=style.colour, linewidth=1)
        healed = f.get("healed_at_s")
        if style.span and healed is not None and healed > f["at_s"]:
            ax.axvspan(f["at_s"], healed, color=style.colour, alpha=0.12)
        if label:
            ax.annotate(f"{f['kind']} {f['target']}", (f["at_s"], 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", fontsize=7, color=style.colour)


def _title(run: dict[str, Any]) -> str:
    rep = f" #{run['repetition']}" if run.get("repetition", 1) > 1 else ""
    return f"{run['engine']} ({run['guarantee']}){rep}: {run['verdict']}"


def timelines(results: dict[str, Any]) -> bytes | None:
    """Per run: events/s in and out, and p99 latency per second of schedule, with faults marked."""
    runs = [r for r in results["runs"] if (r["metrics"].get("timeline") or {}).get("inputs")]
    if not runs:
        return None
    fig, axes = plt.subplots(len(runs), 2, figsize=(12, 2.8 * len(runs)), squeeze=False)
    for (tp, lat), run in zip(axes, runs):
        tl = run["metrics"]["timeline"]
        seconds = range(len(tl["inputs"]))
        tp.plot(seconds, tl["inputs"], label="inputs (scheduled)", color="tab:gray")
        tp.plot(range(len(tl["outputs"])), tl["outputs"], label="outputs (received)", color="tab:blue")
        tp.set_ylabel("events/s")
        tp.set_title(f"throughput — {_title(run)}", fontsize=10)
        tp.legend(fontsize=7, loc="lower right")
        p99 = [v if v else float("nan") for v in tl["p99_ms"]]
        lat.plot(range(len(p99)), p99, color="tab:purple")
        if any(v == v and v > 0 for v in p99):  # NaN != NaN
            lat.set_yscale("log")
        lat.set_ylabel("p99 latency, ms")
        lat.set_title(f"latency — {_title(run)}", fontsize=10)
        for ax in (tp, lat):
            ax.set_xlabel("seconds since the load started")
            ax.grid(alpha=0.3)
            _mark_faults(ax, run["faults"], label=ax is tp)
    fig.tight_layout()
    return _png(fig)


def latency_spectrum(results: dict[str, Any]) -> bytes | None:
    """Event-time latency percentiles, one group of bars per run."""
    drawn = spectrum_axes(results)
    if drawn is None:
        return None
    fig, ax = drawn
    return _finish_bars(fig, ax, "event-time latency, ms", "latency percentiles")


def log_floor(values: list[float]) -> float:
    """The bottom of a log axis that shows every bar of ``values``: the power of ten at or below half the
    smallest positive value (a bar starts at the axis' bottom, so one whose top is below it is not drawn)."""
    smallest = min((v for v in values if v > 0), default=1.0)
    return float(10 ** math.floor(math.log10(smallest / 2)))


def spectrum_axes(results: dict[str, Any]) -> tuple[Any, Any] | None:
    """The figure and axes of :func:`latency_spectrum` before it is rendered (None: no run has latencies).

    Latencies span orders of magnitude between engines and percentiles, so the axis is logarithmic, its floor
    below the smallest bar so that every bar shows, and each bar is labelled with its value.
    """
    runs = [r for r in results["runs"] if r["metrics"]["latency_ms"].get("p50") is not None]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(runs)
    every: list[float] = []
    for i, run in enumerate(runs):
        values = [float(run["metrics"]["latency_ms"].get(key) or 0) for key, _ in PERCENTILES]
        every += values
        bars = ax.bar([x + i * width for x in range(len(PERCENTILES))], values, width, label=f"{run['engine']}")
        ax.bar_label(bars, labels=[f"{v:,.0f}" if v else "" for v in values], fontsize=6, rotation=90, padding=2)
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(PERCENTILES))],
                  [label for _, label in PERCENTILES])
    if any(v > 0 for v in every):
        ax.set_yscale("log")
        ax.set_ylim(bottom=log_floor(every), top=max(every) * 4)  # room above the tallest bar for its label
    return fig, ax


def recovery_bars(results: dict[str, Any]) -> bytes | None:
    """Seconds to recover from each fault, per run; a fault never recovered from is drawn hatched at the load's end."""
    runs = [r for r in results["runs"] if r["faults"]]
    if not runs:
        return None
    n = max(len(r["metrics"]["recovery_s"]) for r in runs)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(runs)
    load_s = float(results.get("scenario", {}).get("workload", {}).get("duration") or 0)
    for i, run in enumerate(runs):
        xs, values, never = [], [], []
        for j, v in enumerate(run["metrics"]["recovery_s"]):
            xs.append(j + i * width)
            never.append(v is None)
            values.append(v if v is not None else max(load_s - run["faults"][j]["at_s"], 0))
        bars = ax.bar(xs, values, width, label=run["engine"])
        for bar, unrecovered in zip(bars, never):
            if unrecovered:
                bar.set_hatch("//")
    labels = []
    for j in range(n):
        f = next((r["faults"][j] for r in runs if j < len(r["faults"])), None)
        labels.append(f"{f['kind']} at {f['at_s']:g}s" if f else f"fault {j + 1}")
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(n)], labels)
    return _finish_bars(fig, ax, "recovery, s", "recovery per fault (hatched: not recovered before the load ended)")


def capacity_bars(results: dict[str, Any]) -> bytes | None:
    """The sustainable throughput of each capacity search, against the ceilings measured on the same Kafka."""
    entries = [c for c in results.get("capacity") or [] if c.get("sustainable_eps") is not None]
    if not entries:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [c["engine"] if len({e["scenario"] for e in entries}) == 1 else f"{c['engine']}\n{c['scenario']}"
              for c in entries]
    values = [c["sustainable_eps"] for c in entries]
    spreads = [c.get("spread_eps") or 0 for c in entries]
    bars = ax.bar(range(len(entries)), values, yerr=spreads, capsize=3, color="tab:blue", label="sustainable")
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(range(len(entries)), labels, fontsize=8)
    ceiling = results.get("ceiling") or {}
    for key, name, style in (("produce_eps", "produce ceiling", ":"), ("txn_copy_eps", "transactional copy", "--")):
        if ceiling.get(key):
            ax.axhline(ceiling[key], color="tab:gray", linestyle=style, linewidth=1, label=name)
    return _finish_bars(fig, ax, "events/s", "sustainable throughput (error bar: spread over repetitions)")


def capacity_trials(results: dict[str, Any]) -> bytes | None:
    """Per trial: p99 latency and the lag's slope against the rate, per engine (filled: sustained)."""
    entries = [c for c in results.get("capacity") or [] if c.get("trials")]
    if not entries:
        return None
    fig, (lat, lag) = plt.subplots(1, 2, figsize=(12, 3.4))
    for n, c in enumerate(entries):
        colour = f"C{n % 10}"
        for ax, key in ((lat, "p99_ms"), (lag, "lag_slope")):
            for sustained in (True, False):
                points = [(t["rate_eps"], t[key]) for t in c["trials"]
                          if t.get(key) is not None and t["sustainable"] is sustained]
                if points:
                    ax.scatter(*zip(*points), color=colour, facecolors=colour if sustained else "none",
                               label=f"{c['engine']} ({'sustained' if sustained else 'not'})")
        if c.get("sustainable_eps"):
            for ax in (lat, lag):
                ax.axvline(c["sustainable_eps"], color=colour, linewidth=0.8, linestyle="--")
    slo = next((c["criteria"]["slo_s"] for c in entries if c.get("criteria")), None)
    if slo:
        lat.axhline(slo * 1000, color="tab:red", linewidth=0.8, label="SLO")
    if any(t.get("p99_ms") for c in entries for t in c["trials"]):
        lat.set_yscale("log")
    lat.set_ylabel("p99 latency after the warm-up, ms")
    lag.set_ylabel("lag slope, events/s per s")
    for ax in (lat, lag):
        ax.set_xlabel("rate, events/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    lat.set_title("latency against rate (dashed: the sustainable rate)", fontsize=10)
    lag.set_title("lag trend against rate", fontsize=10)
    fig.tight_layout()
    return _png(fig)
