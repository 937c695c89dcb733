"""`streamgauge ...`: the command line.

Exit codes: 0 success; 1 a verdict failed or a run was invalid; 2 bad input or
an environment problem (the message says which and how to fix it).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, StreamgaugeError
from harness.proc import install_signal_handlers


def _kafka_up(args: argparse.Namespace) -> int:
    from harness.kafka import daemon

    return daemon.up(provider=args.provider, nodes=args.nodes, bootstrap=args.bootstrap,
                     foreground=args.foreground)


def _kafka_down(args: argparse.Namespace) -> int:
    from harness.kafka import daemon

    return daemon.down()


def _kafka_status(args: argparse.Namespace) -> int:
    from harness.kafka import daemon

    st = daemon.status()
    if args.json:
        print(json.dumps(st if st is not None else
                         {"provider": None, "bootstrap": None, "nodes": [], "version": None}))
    elif st is None:
        print("no Kafka cluster is up; start one with: streamgauge kafka up")
    else:
        print(f"{st['provider']} Kafka {st['version']} at {st['bootstrap']}")
        for n in st["nodes"]:
            print(f"  node {n['id']}  {n['host']}:{n['port']}  pid {n['pid']}  {'up' if n['alive'] else 'DOWN'}")
    return 0 if st is not None else 1


def _kafka_classpath(args: argparse.Namespace) -> int:
    from harness.kafka.maven import resolve_classpath

    jars = resolve_classpath(refresh=args.refresh)
    print(":".join(str(j) for j in jars))
    return 0


def _engines(args: argparse.Namespace) -> int:
    from harness.scenario.registry import describe, engine_names

    infos = [describe(n) for n in sorted(engine_names())]
    if args.json:
        print(json.dumps(infos))
        return 0
    for info in infos:
        print(f"{info['name']}: {'ready' if info['ready'] else 'NOT READY'}")
        if "error" in info:
            print(f"  {info['error']}")
            continue
        jobs = "any job of the Pipeline DSL" if info["jobs"] is None else ", ".join(info["jobs"])
        print(f"  jobs: {jobs}")
        print(f"  guarantees: {', '.join(info['guarantees'])}")
        print(f"  faults: {', '.join(info['fault_kinds']) or 'none'} (roles: {', '.join(info['roles'])}; "
              f"worker = {' or '.join(info['worker_roles'])})")
        late = "written to the late topic" if info["late_side_output"] else "derived by the checkers"
        print(f"  windows close by {info['window_time']}; late records {late}")
        if info["conforms_to"]:
            print(f"  the real system of the {info['conforms_to']} engine's model: their outputs are compared")
        print(f"  options (engine_config.{info['name']}):")
        for option, about in info["options"].items():
            print(f"    {option}: {about}")
        for p in info["prerequisites"]:
            state = "ok" if p["met"] else "MISSING"
            detail = f" ({p['detail']})" if p["detail"] else ""
            fix = f"; fix: {p['fix']}" if not p["met"] and p["fix"] else ""
            print(f"  needs {p['name']}: {state}{detail}{fix}")
    return 0


def _say(name: str, msg: str) -> None:
    print(f"[{name}] {msg}", file=sys.stderr, flush=True)


def _engines_setup(args: argparse.Namespace) -> int:
    from harness.scenario.registry import engine_names, get_engine, parse_engine_list

    for name in parse_engine_list(args.engine) or sorted(engine_names()):
        engine = get_engine(name)
        if all(p.met for p in engine.prerequisites()):
            continue
        print(f"setting up {name}...", file=sys.stderr)
        engine.prepare(functools.partial(_say, name))
        missing = [p.name for p in engine.prerequisites() if not p.met]
        if missing:
            msg = f"{name}: still missing after set-up: {', '.join(missing)}"
            raise ConfigError(msg)
    return 0


def _execute(plan: list, header: dict, args: argparse.Namespace, name: str, criteria: Any = None) -> int:
    """Run a plan, print its verdicts, write its reports; 0 when every run is valid and meets its expectations
    and every capacity search found a sustainable rate."""
    from harness.capacity import Criteria
    from harness.report import write_reports
    from harness.report.console import print_run_summary
    from harness.scenario.runner import RunOptions, run_plan

    out = Path(args.out) if args.out else Path("reports") / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    if args.load_workers is not None and args.load_workers < 0:
        msg = f"--load-workers {args.load_workers}: expected a number of local load processes >= 0"
        raise ConfigError(msg)
    if args.load != "locust" and (args.load_remote_workers or args.load_master_port):
        msg = "--load-remote-workers and --load-master-port are for --load locust"
        raise ConfigError(msg)
    opts = RunOptions(out_dir=out, engine=args.engine, keep_topics=args.keep_topics,
                      calibrate=getattr(args, "calibrate", False), criteria=criteria or Criteria(),
                      load=args.load, load_workers=args.load_workers, load_remote_workers=args.load_remote_workers,
                      load_master_port=args.load_master_port)
    results = run_plan(plan, opts, header)
    print_run_summary(results, out, reports=write_reports(results, out))
    if getattr(args, "json", False):
        print(json.dumps(results.get("capacity", [])))
    ok = all(r["valid"] and r["expectations"]["met"] for r in results["runs"])
    found = all(c["sustainable_eps"] is not None for c in results.get("capacity", []))
    return 0 if ok and found and (results["runs"] or results.get("capacity")) else 1


def _run(args: argparse.Namespace) -> int:
    from harness.scenario.model import load_scenario
    from harness.scenario.registry import engine_names, parse_engine_list
    from harness.scenario.runner import Planned

    chosen = parse_engine_list(args.engine)
    scenario = load_scenario(args.scenario, overrides=args.set or [], engines_known=engine_names())
    return _execute([Planned(scenario, scenario.engine_list(chosen))], {"scenario": scenario.to_dict()},
                    args, scenario.name)


def _suite(args: argparse.Namespace) -> int:
    from harness.scenario.registry import engine_names, parse_engine_list
    from harness.scenario.suite import load_suite

    chosen = parse_engine_list(args.engine)
    header, plan = load_suite(args.suite, overrides=args.set or [], engines_known=engine_names(),
                              engine=chosen)
    return _execute(plan, header, args, f"suite-{header['suite']['name']}")


def _seconds(flag: str, value: str) -> float:
    from harness.scenario.model import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        msg = f"{flag} {value}: expected a positive duration like 30s, 500ms or 2m"
        raise ConfigError(msg)
    return seconds


def _capacity(args: argparse.Namespace) -> int:
    from harness.capacity import DEFAULT_SLO_S, Criteria
    from harness.scenario.model import load_scenario
    from harness.scenario.registry import engine_names, parse_engine_list
    from harness.scenario.runner import Planned

    if args.repetitions < 1:
        msg = f"--repetitions {args.repetitions}: expected a number of repetitions >= 1"
        raise ConfigError(msg)
    if not 0 < args.precision < 1:
        msg = f"--precision {args.precision:g}: expected a fraction between 0 and 1, like 0.1 (10 %)"
        raise ConfigError(msg)
    scenario = load_scenario(args.scenario, overrides=args.set or [], engines_known=engine_names())
    slo = scenario.expect.p99_latency
    slo_s = _seconds("--slo", args.slo) if args.slo else (
        slo.value if slo is not None and slo.op in ("<", "<=") else DEFAULT_SLO_S)
    criteria = Criteria(warmup_s=_seconds("--warmup", args.warmup), trial_s=_seconds("--trial", args.trial),
                        slo_s=slo_s, precision=args.precision)
    engines = scenario.engine_list(parse_engine_list(args.engine))
    plan = [Planned(scenario, engines, args.repetitions, capacity=True)]
    header = {"scenario": scenario.to_dict()}
    return _execute(plan, header, args, f"capacity-{scenario.name}", criteria)


def _calibrate(args: argparse.Namespace) -> int:
    from harness.metrics.calibrate import calibrate
    from harness.scenario.runner import provision_kafka

    if args.seconds <= 0:
        msg = f"--seconds {args.seconds:g}: expected a positive number of seconds per phase, like 3"
        raise ConfigError(msg)
    kafka = provision_kafka(1)
    print(f"starting {kafka.name} Kafka...", file=sys.stderr)
    with kafka:
        ceiling = calibrate(kafka.bootstrap_servers(), seconds=args.seconds,
                            log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"kafka": kafka.version(), **ceiling}))
    else:
        print(f"Kafka {kafka.version()}: produce {ceiling['produce_eps']:,.0f}/s, consume "
              f"{ceiling['consume_eps']:,.0f}/s, transactional copy {ceiling['txn_copy_eps']:,.0f}/s")
    return 0


def _gate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.gate import SPEED_NOISE, gate, to_junit
    from harness.report import load_results

    if not 0 <= args.tolerance < 10:
        msg = f"--tolerance {args.tolerance:g}: expected a fraction like 0.25 (25 % worse than the baseline)"
        raise ConfigError(msg)
    current, _ = load_results(Path(args.results))
    baseline, _ = load_results(Path(args.baseline))
    result = gate(current, baseline, args.tolerance)
    if args.junit:
        junit = Path(args.junit)
        if junit.parent and not junit.parent.is_dir():
            msg = f"--junit {junit}: the folder {junit.parent} does not exist; create it or name another file"
            raise ConfigError(msg)
        junit.write_text(to_junit(result))
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0 if result.passed else 1
    table = Table(title=f"streamgauge gate — tolerance {args.tolerance:.0%}")
    for col in ("check", "scenario", "engine", "what", "baseline", "current", "change", "ok"):
        table.add_column(col, justify="right" if col in ("baseline", "current", "change") else "left")
    for f in result.findings:
        table.add_row(f.check, f.scenario, f.engine, f.what, "" if f.baseline is None else f"{f.baseline:g}",
                      "" if f.current is None else f"{f.current:g}",
                      "" if f.change is None else f"{f.change:+.0%}", "ok" if f.ok else "FAIL")
    console = Console(highlight=False, width=160)
    console.print(table)
    if result.scaled:
        basis = f"current figures scaled to the baseline's machine (speed {result.speed:g})"
    elif result.speed:
        basis = (f"figures compared as measured: speed {result.speed:g}, within one machine's own noise "
                 f"(±{SPEED_NOISE:.0%})")
    else:
        basis = "figures compared as measured: run both with --calibrate to normalise by the machine's ceiling"
    console.print(basis, markup=False)
    if not current["runs"]:
        console.print("no run in the results: nothing to judge", markup=False)
    console.print(f"gate: {'pass' if result.passed else 'FAIL'}", markup=False)
    return 0 if result.passed else 1


def _report(args: argparse.Namespace) -> int:
    from harness.report import load_results, write_reports
    from harness.report.console import print_run_summary

    results, folder = load_results(Path(args.results))
    out = Path(args.out) if args.out else folder
    out.mkdir(parents=True, exist_ok=True)
    print_run_summary(results, folder, reports=write_reports(results, out))
    return 0


def _load_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--load", choices=("builtin", "locust"), default="builtin",
                     help="who sends the schedule: the built-in generator's processes (default), or locust "
                          "(a master and workers; the same events for the same seed)")
    cmd.add_argument("--load-workers", type=int, metavar="N",
                     help="local load processes / locust workers (default: the scenario's workload.generators)")
    cmd.add_argument("--load-remote-workers", type=int, default=0, metavar="N",
                     help="--load locust: also wait for N workers started on other machines (see README)")
    cmd.add_argument("--load-master-port", type=int, metavar="PORT",
                     help="--load locust: the master's port, for remote workers to reach (default: a free one)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamgauge", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    for name, target, example, scope, func in (
            ("run", "scenario", "scenarios/kill-instance-eos.yaml", "the scenario", _run),
            ("suite", "suite", "scenarios/suites/main.yaml", "every scenario", _suite)):
        cmd = sub.add_parser(name, help=f"run a {target} on its engines; exit 0 when every expectation holds")
        cmd.add_argument(target, help=f"{target} YAML file, e.g. {example}")
        cmd.add_argument("--engine", help=f"run {scope} on these engines only, comma-separated, "
                                          f"e.g. embedded,kafka-streams (default: the scenario's engines)")
        cmd.add_argument("--out", help="results directory (default: reports/runs/<time>-<name>)")
        cmd.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help=f"override a value of {scope} before validation, e.g. --set workload.duration=30s")
        cmd.add_argument("--keep-topics", action="store_true", help="do not delete the topics afterwards")
        cmd.add_argument("--calibrate", action="store_true",
                         help="first measure the raw client ceiling on the same Kafka (about 15 s); "
                              "results then carry it, and the gate normalises by it")
        _load_options(cmd)
        cmd.set_defaults(func=func)

    cap = sub.add_parser("capacity", help="search each engine's sustainable throughput for a scenario; exit 0 when "
                                          "the search completed, 1 when no rate was sustainable")
    cap.add_argument("scenario", help="scenario YAML file without faults, e.g. scenarios/capacity-running-sum-eos.yaml")
    cap.add_argument("--engine", help="search on these engines only, comma-separated (default: the scenario's)")
    cap.add_argument("--repetitions", type=int, default=1, help="independent searches per engine (default 1)")
    cap.add_argument("--out", help="results directory (default: reports/runs/<time>-capacity-<name>)")
    cap.add_argument("--json", action="store_true", help="print the capacity entries as JSON on stdout")
    cap.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a value of the scenario, e.g. --set workload.rate=20000/s (the first rate)")
    cap.add_argument("--warmup", default="10s", help="warm-up of each trial, not judged (default 10s)")
    cap.add_argument("--trial", default="30s", help="judged length of each trial (default 30s)")
    cap.add_argument("--precision", type=float, default=0.1,
                     help="bisect until the sustained and failed rates are this close (default 0.1: 10 %%)")
    cap.add_argument("--slo", help="p99 latency a sustained rate must meet (default: the scenario's "
                                   "expect.p99_latency, else 5s)")
    cap.add_argument("--keep-topics", action="store_true", help="do not delete the topics afterwards")
    _load_options(cap)
    cap.set_defaults(func=_capacity)

    cal = sub.add_parser("calibrate", help="measure the raw Kafka client ceiling: produce, consume, "
                                           "transactional copy (events/s)")
    cal.add_argument("--seconds", type=float, default=3.0, help="how long each phase runs (default 3)")
    cal.add_argument("--json", action="store_true", help="machine-readable output")
    cal.set_defaults(func=_calibrate)

    gate = sub.add_parser("gate", help="judge a results.json against a baseline; exit 0 pass, 1 fail")
    gate.add_argument("results", help="a results.json, or the directory a run wrote it to")
    gate.add_argument("--baseline", required=True, help="the baseline results.json, e.g. reports/baseline/main.json")
    gate.add_argument("--tolerance", type=float, default=0.25,
                      help="how much worse a performance median may be, as a fraction (default 0.25)")
    gate.add_argument("--json", action="store_true", help="machine-readable output")
    gate.add_argument("--junit", metavar="FILE",
                      help="also write the findings as JUnit XML to FILE (one test case per finding)")
    gate.set_defaults(func=_gate)

    report = sub.add_parser("report", help="write summary.md and index.html for a results.json")
    report.add_argument("results", help="a results.json, or the directory a run wrote it to")
    report.add_argument("--out", help="where to write the reports (default: next to results.json)")
    report.set_defaults(func=_report)

    engines = sub.add_parser("engines", help="list the installed engines: jobs, guarantees, faults, options, "
                                             "prerequisites")
    engines.add_argument("--json", action="store_true", help="machine-readable output")
    engines.set_defaults(func=_engines)
    esub = engines.add_subparsers(dest="engines_command")
    setup = esub.add_parser("setup", help="meet every engine's prerequisites (compile, resolve, create "
                                          "environments; cached)")
    setup.add_argument("--engine", help="only these engines, comma-separated")
    setup.set_defaults(func=_engines_setup)

    kafka = sub.add_parser("kafka", help="start, stop and inspect the Kafka that scenarios run on")
    ksub = kafka.add_subparsers(dest="kafka_command", required=True)
    up = ksub.add_parser("up", help="start Kafka in the background; prints the bootstrap servers once ready")
    up.add_argument("--nodes", type=int, choices=(1, 3), default=1,
                    help="1 node, or 3 (replication 3, min.insync.replicas 2) for broker faults")
    up.add_argument("--provider", choices=("local", "docker", "external"), default="local",
                    help="local: KRaft from Maven jars with this machine's Java (default); "
                         "docker: testcontainers; external: --bootstrap servers you run")
    up.add_argument("--bootstrap", help="host:port[,...] for --provider external")
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops Kafka")
    up.set_defaults(func=_kafka_up)
    down = ksub.add_parser("down", help="stop the Kafka started by `kafka up`")
    down.set_defaults(func=_kafka_down)
    status = ksub.add_parser("status", help="show the Kafka started by `kafka up`")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_kafka_status)
    cp = ksub.add_parser("classpath", help="resolve (once, cached) and print the broker's Java classpath")
    cp.add_argument("--refresh", action="store_true", help="resolve again with Maven")
    cp.set_defaults(func=_kafka_classpath)
    return p


def main(argv: list[str] | None = None) -> int:
    install_signal_handlers()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StreamgaugeError as e:
        print(f"streamgauge: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("streamgauge: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
