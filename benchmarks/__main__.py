"""``bin/sg-bench``: the harness's own speed in one run, as ratios to the ceiling measured on the same Kafka.

- the generator alone (no engine): the rate it holds on schedule with one process and with its automatic
  spread, and the most it sends when asked for more than the produce ceiling;
- the probe alone: records stamped per second reading a full topic, against the consume ceiling;
- the oracle and every checker judging a correct running_sum run: outputs per second (target 500k/s).

Writes bench.json to --out (default reports/bench/<time>/) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import checker, load
from harness.metrics.calibrate import calibrate
from harness.proc import install_signal_handlers
from harness.scenario.runner import provision_kafka

CHECKER_TARGET_EPS = 500_000


def _rows(bench: dict[str, Any]) -> list[tuple[str, str, str]]:
    c = bench["ceiling"]
    rows = []
    for g in bench["generator"]:
        what = f"generator, {g['processes']} process{'es' if g['processes'] > 1 else ''}, asked {g['rate_eps']:,.0f}/s"
        state = "on schedule" if g["valid"] else f"behind (worst {g['max_lag_ms']:,.0f} ms)"
        rows.append((what, f"{g['achieved_eps']:,.0f}/s, {state}", f"{g['achieved_eps'] / c['produce_eps']:.2f} x produce"))
    p = bench["probe"]
    rows.append(("probe, reading a full topic", f"{p['records_per_s']:,.0f}/s",
                 f"{p['records_per_s'] / c['consume_eps']:.2f} x consume"))
    k = bench["checker"]
    rows.append((f"oracle + checkers, {k['outputs']:,} outputs", f"{k['outputs_per_s']:,.0f}/s",
                 f"{k['outputs_per_s'] / CHECKER_TARGET_EPS:.2f} x target {CHECKER_TARGET_EPS:,}/s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    install_signal_handlers()
    parser = argparse.ArgumentParser(prog="sg-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where bench.json goes (default reports/bench/<time>)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of schedule per generator trial")
    parser.add_argument("--checker-events", type=int, default=500_000, help="inputs of the checker benchmark")
    parser.add_argument("--json", action="store_true", help="print bench.json on stdout")
    args = parser.parse_args(argv)
    out = Path(args.out or f"reports/bench/{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    kafka = provision_kafka(1)
    log(f"starting {kafka.name} Kafka...")
    with kafka:
        bootstrap = kafka.bootstrap_servers()
        ceiling = calibrate(bootstrap, seconds=5.0, log=log)
        log(f"ceiling: produce {ceiling['produce_eps']:,.0f}/s, consume {ceiling['consume_eps']:,.0f}/s")
        target = round(0.9 * ceiling["produce_eps"], -2)
        spread = min(os.cpu_count() or 1, load.PARTITIONS)
        generator = []
        for rate, processes in ((target, 1), (target, spread), (2 * ceiling["produce_eps"], spread)):
            log(f"generator alone: {rate:,.0f}/s from {processes} processes for {args.seconds:g} s...")
            generator.append(load.generate(bootstrap, rate, args.seconds, processes))
        log("probe alone: writing 1,000,000 records, then reading them...")
        probe = load.probe(bootstrap, 1_000_000)
        kafka_version = kafka.version()
    log(f"oracle + checkers: {args.checker_events:,} inputs...")
    judged = checker.measure(args.checker_events)
    bench = {"kafka": kafka_version, "cpus": os.cpu_count(), "ceiling": ceiling, "generator": generator,
             "probe": probe, "checker": judged, "checker_target_eps": CHECKER_TARGET_EPS}
    (out / "bench.json").write_text(json.dumps(bench, indent=1))
    if args.json:
        print(json.dumps(bench))
    else:
        for what, figure, ratio in _rows(bench):
            print(f"{what:<55} {figure:>32}   {ratio}")
        print(f"bench.json: {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
