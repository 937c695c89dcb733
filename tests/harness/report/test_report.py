"""Reports rendered from results.json: summary.md, index.html and `streamgauge report`."""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from harness.report import SCHEMA, markdown, summary, write_reports
from harness.report import html as html_report
from harness.report.console import print_run_summary

CLI = [sys.executable, "-m", "harness.cli"]
ROOT = Path(__file__).resolve().parents[3]


def _run(engine: str, verdict: str = "pass", **extra) -> dict:
    anomalies = {"lost": 0, "duplicate": 0, "inconsistent": 0, "order": 0, "aborted_read": 0}
    run = {
        "scenario": "kill", "engine": engine, "guarantee": "exactly_once", "valid": True, "invalid_reason": "",
        "verdict": verdict, "anomalies": anomalies, "examples": {}, "inputs": 100, "outputs": 100,
        "expectations": {"met": True, "unmet": []},
        "faults": [{"at_s": 4.0, "kind": "kill", "target": f"{engine}-1", "healed_at_s": 6.0}],
        "metrics": {"throughput_eps": 10.0, "output_eps": 10.0, "cpu_s": 1.5, "rss_mb": 80.0,
                    "events_per_core_second": 66.7,
                    "latency_ms": {"p50": 120.0, "p90": 300.0, "p99": 900.0, "p999": 1200.0, "max": 1500.0},
                    "recovery_s": [2.0], "keeps_up": {"keeps_up": True},
                    "timeline": {"inputs": [10] * 10, "outputs": [10, 10, 10, 10, 0, 0, 30, 10, 10, 10],
                                 "p99_ms": [100] * 4 + [2000, 1500, 300] + [100] * 3}},
        "engine_status": {"config": {"commit_interval_ms": 100}, "facts": {
            "output visibility": "commit interval 100 ms", "commits refused by fencing": 1, "rejoins": 2,
            "rebalance revocations while processing": 3}},
    }
    run.update(extra)
    return run


def _results(*runs: dict) -> dict:
    return {"schema": SCHEMA, "started": "2026-11-26T10:00:00+0000", "git": "abc1234", "kafka": "4.1.1",
            "scenario": {"name": "kill", "description": "Kill <one> & see", "job": "scenarios.jobs:running_sum",
                         "guarantee": "exactly_once", "parallelism": 3, "partitions": 6,
                         "workload": {"duration": 10.0}},
            "runs": list(runs)}


def _both() -> dict:
    cluster = _run("cluster", verdict="fail", engine_status={
        "config": {"checkpoint_interval_ms": 1000},
        "facts": {"output visibility": "checkpoint interval 1000 ms", "checkpoints completed": 9,
                  "checkpoint duration p50 / p99 ms": "4 / 9", "alignment p50 / p99 ms": "1 / 3",
                  "global rollbacks": 1}})
    cluster["anomalies"]["duplicate"] = 7
    cluster["examples"] = {"duplicate": [{"id": 42, "times": 2}]}
    cluster["expectations"] = {"met": False, "unmet": ["correct: expected pass, got fail"]}
    cluster["metrics"]["recovery_s"] = [None]
    return _results(_run("embedded"), cluster)


def test_summary_md_shows_verdicts_differences_and_examples():
    md = markdown.render(_both())
    rows = [ln for ln in md.splitlines() if ln.startswith("| embedded") or ln.startswith("| cluster")]
    assert len(rows) == 2
    assert "| fail |" in rows[1] and "| 7 |" in rows[1] and "NOT MET" in rows[1]
    assert "- [cluster] expectation not met: correct: expected pass, got fail" in md
    side = md[md.index("## Side by side"):]
    assert "| output visibility | commit interval 100 ms | checkpoint interval 1000 ms |" in side
    assert "| recovery per fault, s | 2 | never |" in side
    assert "| global rollbacks | - | 1 |" in side
    assert "| commits refused by fencing | 1 | - |" in side
    assert "| rebalance revocations while processing | 3 | - |" in side
    assert "| checkpoint duration p50 / p99 ms | - | 4 / 9 |" in side
    assert "window result latency" not in side  # no run has it: the row says nothing and is left out
    assert '**cluster**, duplicate: `{"id": 42, "times": 2}`' in md


def test_index_html_is_self_contained_and_marks_verdicts():
    page = html_report.render(_both())
    assert page.count("<img ") == 3  # timelines, latency spectrum, recovery
    assert not re.search(r'src="(?!data:image/png;base64,)', page), "the page must not load anything from outside"
    assert "Kill &lt;one&gt; &amp; see" in page
    assert re.search(r'class="[^"]*\bfail\b[^"]*"[^>]*>\s*fail', page)
    assert re.search(r'class="[^"]*\bpass\b[^"]*"[^>]*>\s*pass', page)


def test_a_run_that_never_finished_reports_so():
    empty = _results()
    assert "No run finished." in markdown.render(empty)
    assert "No run finished." in html_report.render(empty)


def test_invalid_runs_and_model_differences_are_notes():
    results = _both()
    results["runs"][0].update(valid=False, invalid_reason="the generator fell 3.00 s behind its schedule")
    results["comparison"] = {"summary": "The models dropped different records as late: ..."}
    md = markdown.render(results)
    assert "| pass (INVALID) |" in md
    assert "- [embedded] run invalid: the generator fell 3.00 s behind its schedule" in md
    assert "- The models dropped different records as late" in md


def test_plots_survive_missing_figures():
    results = _both()
    for r in results["runs"]:
        r["faults"], r["metrics"]["recovery_s"] = [], []
        r["metrics"]["timeline"] = {"inputs": [], "outputs": [], "p99_ms": []}
    page = html_report.render(results)
    assert page.count("<img ") == 1  # only the latency spectrum has data


def test_console_keeps_engine_prefixes():
    buf = io.StringIO()
    print_run_summary(_both(), Path("/tmp/x"), console=Console(file=buf, width=200))
    assert "[cluster] expectation not met" in buf.getvalue()


def test_write_reports_next_to_results(tmp_path):
    paths = write_reports(_both(), tmp_path)
    assert [p.name for p in paths] == ["summary.md", "index.html"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert not list(tmp_path.glob("*.tmp"))


def _sg_report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "report", *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_report_command_rewrites_the_reports_of_a_results_dir(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_both()))
    r = _sg_report(str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "summary.md").exists() and (tmp_path / "index.html").exists()
    assert f"report: {tmp_path / 'index.html'}" in r.stdout
    other = tmp_path / "elsewhere"
    r = _sg_report(str(tmp_path / "results.json"), "--out", str(other))
    assert r.returncode == 0, r.stderr
    assert (other / "summary.md").exists()


def test_report_command_refuses_bad_input_naming_the_file(tmp_path):
    missing = _sg_report(str(tmp_path / "nope"))
    assert missing.returncode == 2 and f"{tmp_path / 'nope'}" in missing.stderr and "not found" in missing.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    r = _sg_report(str(garbage))
    assert r.returncode == 2 and str(garbage) in r.stderr and "invalid JSON" in r.stderr
    wrong = tmp_path / "wrong.json"
    other = copy.deepcopy(_both())
    other["schema"] = "something/9"
    wrong.write_text(json.dumps(other))
    r = _sg_report(str(wrong))
    assert r.returncode == 2 and "schema" in r.stderr and "something/9" in r.stderr
    assert "Traceback" not in missing.stderr + r.stderr


def test_an_engines_explanation_of_an_anomaly_it_shows_is_a_note():
    results = _both()  # cluster has 7 duplicates, embedded none
    why = {"duplicate": "replayed after a restore", "order": "never shown: no order anomaly"}
    for r in results["runs"]:
        r["engine_status"]["explanations"] = why
    notes = summary.notes(results)
    assert "[cluster] duplicate (7): replayed after a restore" in notes
    assert not any("order" in n or n.startswith("[embedded] duplicate") for n in notes)


def test_the_longest_stall_and_cpu_per_event_are_side_by_side():
    results = _both()
    results["runs"][0]["metrics"]["longest_stall_s"] = 4
    _, rows = summary.side_by_side(results)
    by_label = {r[0]: r[1:] for r in rows}
    assert by_label["longest stall (no output), s"] == ["4", "2"]  # cluster: from its timeline (0, 0 at 4-5 s)
    assert by_label["CPU s per 100k events"][0] == str(round(1.5 * 100_000 / results["runs"][0]["inputs"], 1))


def test_each_engines_version_is_side_by_side():
    results = _both()
    results["runs"][0]["engine_status"]["version"] = {"streamgauge": "0.1.0", "librdkafka": "2.12.1"}
    _, rows = summary.side_by_side(results)
    assert {r[0]: r[1:] for r in rows}["version"] == ["streamgauge 0.1.0, librdkafka 2.12.1", "-"]


def test_a_jar_version_is_read_from_the_classpath_and_a_longer_artifact_name_is_not_taken():
    from harness.api.javabuild import JavaBuild

    build = JavaBuild("java", Path("classes"), ":".join(["/m2/flink-runtime-web-2.2.1.jar", "/m2/flink-runtime-2.2.1.jar",
                                                         "/m2/kafka-streams-4.1.1.jar"]), Path("."))
    assert (build.jar_version("flink-runtime"), build.jar_version("kafka-streams")) == ("2.2.1", "4.1.1")
    assert build.jar_version("flink-clients") == "unknown"


def test_the_quixstreams_environment_reports_the_versions_it_pins(tmp_path):
    from engines.quixstreams.venv import pinned_versions

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pins\nquixstreams==3.28.1  # the peer\nConfluent-Kafka==2.12.2\nrich==13.0\n")
    assert pinned_versions(path=requirements) == {"quixstreams": "3.28.1", "confluent-kafka": "2.12.2"}
    assert pinned_versions()["quixstreams"][:1].isdigit()


def test_recovery_per_fault_kind_is_side_by_side_and_a_fault_not_recovered_from_says_never():
    embedded = _run("embedded", faults=[{"at_s": 15, "kind": "kill", "target": "broker-2"},
                                        {"at_s": 35, "kind": "partition", "target": "instance-1"}])
    embedded["metrics"]["recovery_s"] = [14.0, None]
    cluster = _run("cluster", faults=[{"at_s": 15, "kind": "kill", "target": "broker-1"},
                                      {"at_s": 35, "kind": "partition", "target": "taskmanager-0"}])
    cluster["metrics"]["recovery_s"] = [9.0, 18.5]
    header, rows = summary.recovery_by_kind(_results(embedded, cluster))
    assert header == ["fault", "embedded", "cluster"]
    assert rows == [["kill broker (exactly_once)", "14", "9"], ["partition worker (exactly_once)", "never", "18.5"]]
    text = markdown.render(_results(embedded, cluster))
    assert "## Recovery per fault kind" in text and "| partition worker (exactly_once) | never | 18.5 |" in text
    assert "Recovery per fault kind" in html_report.render(_results(embedded, cluster))
    assert summary.recovery_by_kind(_results(_run("embedded", faults=[]))) == ([], [])
    upgraded = _run("cluster", faults=[{"at_s": 25, "kind": "upgrade", "target": "job"}])
    assert summary.recovery_by_kind(_results(upgraded))[1] == [["upgrade job (exactly_once)", "2"]]
    failed_over = _run("cluster", faults=[{"at_s": 15, "kind": "kill", "target": "jobmanager-0"},
                                          {"at_s": 38, "kind": "kill", "target": "jobmanager-1"}])
    failed_over["metrics"]["recovery_s"] = [5.0, 4.0]
    assert summary.recovery_by_kind(_results(failed_over))[1] == [["kill jobmanager (exactly_once)", "5, 4"]]



def test_a_failover_without_a_jobmanager_fault_is_named_and_matching_ones_are_not():
    cluster = _run("cluster", faults=[{"at_s": 15, "kind": "kill", "target": "jobmanager-0"}])
    cluster["engine_status"] = {"high_availability": {"holder": "jobmanager-1", "epoch": 3, "takeovers": 2}}
    flink = _run("flink", faults=[{"at_s": 15, "kind": "kill", "target": "jobmanager-0"},
                                  {"at_s": 38, "kind": "kill", "target": "jobmanager-1"}])
    flink["engine_status"] = {"high_availability": {"leader": "jobmanager-0", "grants": 3}}
    lines = summary.notes(_results(cluster, flink))
    assert [line for line in lines if "failover" in line] == [
        "[cluster] 2 JobManager failovers for 1 JobManager faults: 1 without a fault (a JobManager stalled past "
        "its lease or ZooKeeper session here), so recovery figures are not the faults' alone"]
    assert summary.spurious_failovers(_run("embedded", faults=[])) is None


def test_every_latency_bar_stands_above_the_log_axis_floor():
    from harness.report import figures

    results = _both()
    results["runs"][0]["metrics"]["latency_ms"] = {"p50": 151.0, "p90": 200.0, "p99": 366.0, "p999": 400.0,
                                                   "max": 500.0}
    results["runs"][1]["metrics"]["latency_ms"] = {"p50": 1372.0, "p90": 2000.0, "p99": 9000.0, "p999": 40000.0,
                                                   "max": 65000.0}
    drawn = figures.spectrum_axes(results)
    assert drawn is not None
    fig, ax = drawn
    bottom, top = ax.get_ylim()
    tops = [bar.get_height() for bar in ax.patches]
    assert ax.get_yscale() == "log" and len(tops) == 10
    assert bottom <= 151.0 / 2 and all(bottom < h < top for h in tops)
    assert figures.log_floor([151.0, 0.0, 65000.0]) == 10.0 and figures.log_floor([3.0]) == 1.0
    figures.plt.close(fig)
    png = figures.latency_spectrum(results)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"


def _capacity_results() -> dict:
    def trial(rep, rate, ok, p99, slope):
        return {"repetition": rep, "rate_eps": rate, "sustainable": ok, "valid": True, "p99_ms": p99,
                "lag_slope": slope, "stopped_early": False, "verdict": "pass", "cpu_s": 40.0,
                "load_cpu_share": 0.3, "why": "kept up" if ok else "p99 above the SLO", "run_dir": ""}

    entries = [{"scenario": "kill", "engine": engine, "guarantee": "exactly_once", "sustainable_eps": best,
                "spread_eps": 2000.0, "per_repetition_eps": [best, best + 2000.0], "repetitions": 2,
                "ceiling_fraction": round(best / 133000, 4), "limited_by_load": False, "load_cpu_share": 0.3,
                "criteria": {"slo_s": 5.0},
                "trials": [trial(1, 20000.0, True, 400.0, 3.0), trial(1, 40000.0, best >= 40000, 900.0, 10.0),
                           trial(1, 80000.0, False, 9000.0, 4000.0), trial(2, 60000.0, False, 7000.0, 900.0)]}
               for engine, best in (("embedded", 45000.0), ("cluster", 30000.0))]
    results = _results()
    results.update({"capacity": entries, "ceiling": {"produce_eps": 211000.0, "consume_eps": 210000.0,
                                                       "txn_copy_eps": 133000.0}})
    return results


def test_capacity_is_a_table_with_the_ceiling_and_two_figures():
    results = _capacity_results()
    md = markdown.render(results)
    assert "## Sustainable throughput" in md and "No run finished" not in md
    assert "transactional copy 133,000/s" in md
    assert "| kill | embedded | exactly_once | 45,000 | 2,000 | 45,000, 47,000 | 0.34 | 30% | 2 of 4 sustained |" in md
    assert "### Trials: kill on cluster" in md and "p99 above the SLO" in md
    page = html_report.render(results)
    assert "Sustainable throughput" in page and page.count("<img ") == 2
    results["capacity"][1]["sustainable_eps"] = None  # a search that found nothing is a row, not a bar
    assert "| kill | cluster | exactly_once | none |" in markdown.render(results)
    assert html_report.render(results).count("<img ") == 2
