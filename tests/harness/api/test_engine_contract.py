"""The Engine contract: what every installed engine declares holds, engines import only harness.api,
an engine lacking a member is refused in one line, and one implementing only the protocol runs."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from harness.api import DeploySpec, Guarantee, fault_kind_problems
from harness.api.engine import WINDOW_TIMES
from harness.errors import CapabilityError
from harness.scenario.registry import describe, engine_names, get_engine, parse_engine_list

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "harness.cli"]
MINIMAL = "minimal=tests.harness.api.minimal_engine:ENGINE"


def _deployment_class(engine: object) -> type:
    return typing.get_type_hints(engine.deploy)["return"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(engine_names()))
def test_declared_fault_kinds_are_capabilities_of_the_deployment(name):
    engine = get_engine(name)
    assert fault_kind_problems(engine, _deployment_class(engine)) == []
    assert engine.worker_roles <= engine.roles
    assert engine.window_time in WINDOW_TIMES
    assert describe(name)["name"] == name


def test_a_declared_fault_kind_the_deployment_cannot_take_is_found():
    class NoPause:
        def kill(self, name: str) -> None: ...

        def restart(self, name: str) -> None: ...

    engine = get_engine("embedded")
    problems = fault_kind_problems(engine, NoPause)
    assert any("'pause'" in p and "pause, resume" in p for p in problems), problems
    assert any("'terminate'" in p for p in problems), problems


def _harness_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [n for n in names if n == "harness" or n.startswith("harness.")]


def test_engines_import_only_harness_api():
    offending = {}
    for path in sorted((ROOT / "engines").rglob("*.py")):
        bad = [n for n in _harness_imports(path) if n != "harness.api" and not n.startswith("harness.api.")]
        if bad:
            offending[str(path.relative_to(ROOT))] = bad
    assert offending == {}


def test_the_import_rule_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from harness.kafka.client import admin\nimport harness.proc\n")
    assert _harness_imports(bad) == ["harness.kafka.client", "harness.proc"]


def test_nothing_outside_engines_names_an_engine():
    """The harness finds engines through the registry; no module of it spells an engine's name."""
    names = sorted(engine_names())
    found = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for n in names:
                if f'"{n}"' in line or f"'{n}'" in line:
                    found.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert found == []


def test_an_engine_lacking_a_member_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("STREAMGAUGE_ENGINES", "broken=tests.harness.api.test_engine_contract:BROKEN")
    with pytest.raises(CapabilityError) as e:
        get_engine("broken")
    assert str(e.value).count("\n") == 0
    assert ("lacks worker_roles, fault_kinds, jobs, options, late_side_output, window_time, conforms_to, "
            "unsupported, "
            "problems, prerequisites, prepare" in str(e.value))


class _Broken:
    name = "broken"
    guarantees: frozenset[Guarantee] = frozenset()
    roles: frozenset[str] = frozenset()

    def deploy(self, spec: DeploySpec) -> None: ...


BROKEN = _Broken()


def test_engine_lists_are_parsed_and_checked():
    assert parse_engine_list("embedded, cluster,embedded") == ["embedded", "cluster"]
    assert parse_engine_list(None) is None
    with pytest.raises(Exception, match="unknown engine"):
        parse_engine_list("embedded,nope")


def test_streamgauge_engines_lists_every_installed_engine():
    proc = subprocess.run([*CLI, "engines", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    infos = {i["name"]: i for i in json.loads(proc.stdout)}
    assert set(infos) == engine_names()
    assert infos["embedded"]["jobs"] is None and "exactly_once" in infos["embedded"]["guarantees"]
    assert "commit_interval_ms" in infos["embedded"]["options"]


@pytest.mark.kafka
def test_an_engine_implementing_only_the_protocol_runs_a_scenario(bootstrap, tmp_path):
    env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap, "STREAMGAUGE_ENGINES": MINIMAL}
    scenario = tmp_path / "copy.yaml"
    scenario.write_text("name: copy\njob: scenarios.jobs:echo\nengines: [minimal]\nguarantee: at_least_once\n"
                        "parallelism: 1\npartitions: 2\nworkload: {rate: 200/s, duration: 5s, keys: 20, seed: 3}\n"
                        "expect: {correct: true}\n")
    proc = subprocess.run([*CLI, "run", str(scenario), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]
    assert (run["engine"], run["verdict"], run["inputs"], run["outputs"]) == ("minimal", "pass", 1000, 1000)
    assert run["engine_status"]["facts"] == {"copier processes": 1}


def test_a_job_outside_an_engines_catalogue_is_refused_before_anything_starts(tmp_path):
    env = {**os.environ, "STREAMGAUGE_ENGINES": MINIMAL, "STREAMGAUGE_BOOTSTRAP": "127.0.0.1:1"}
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "minimal",
                           "--out", str(tmp_path / "out"), "--set", "guarantee=at_least_once", "--set", "faults=[]",
                           "--set", "job=tests.harness.api.minimal_engine:custom"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["streamgauge: error: kill-instance-eos on minimal: job: the minimal engine does not implement "
                     "tests.harness.api.minimal_engine:custom; its jobs: scenarios.jobs:echo"]
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_real_system_conforms_to_an_installed_reference_engine_and_pairs_with_it():
    from harness.scenario.runner import conformance_pairs

    for name in engine_names():
        reference = get_engine(name).conforms_to
        if reference is not None:
            assert reference in engine_names(), f"{name} conforms to {reference}, which is not installed"
            assert get_engine(reference).conforms_to is None and get_engine(reference).jobs is None
    assert conformance_pairs(["embedded", "kafka-streams", "quixstreams", "cluster", "flink"]) == [
        ("embedded", "kafka-streams"), ("embedded", "quixstreams"), ("cluster", "flink")]
    assert conformance_pairs(["kafka-streams", "flink"]) == []  # no reference in the run: nothing to compare
