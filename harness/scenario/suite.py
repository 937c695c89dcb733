"""Suites: scenarios × engines × repetitions in one file (``scenarios/suites/*.yaml``).

```yaml
name: conformance
description: every shipped scenario on both engines
repetitions: 1                       # the default for each entry
runs:
  - scenario: ../kill-instance-eos.yaml   # relative to the suite file
    engines: [embedded, cluster]          # default: the scenario's engines
    repetitions: 3
    set: {workload.duration: 30s}         # overrides, as with --set
  - scenario: ../capacity-running-sum-eos.yaml
    capacity: true                        # search each engine's sustainable throughput instead
```

Every problem — in the suite file or in any scenario it names — is reported
at once, with the file and the path to the value, before anything starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.scenario.model import Problem, ScenarioError, load_scenario, read_yaml_mapping, show
from harness.scenario.runner import Planned

SUITE_KEYS = ("name", "description", "repetitions", "runs")
ENTRY_KEYS = ("scenario", "engines", "repetitions", "set", "capacity")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _unknown_keys(file: str, where: str, data: dict, known: Sequence[str]) -> list[Problem]:
    return [Problem(file, f"{where}{key}", f"a known key (one of {', '.join(known)})", f"unknown key {show(key)}")
            for key in data if key not in known]


def _entry(file: str, base: Path, i: int, raw: Any, default_reps: int, overrides: Sequence[str],
           engines_known: set[str] | None, engine: list[str] | None) -> tuple[Planned | None, list[Problem]]:
    where = f"runs[{i}]"
    if not isinstance(raw, dict):
        return None, [Problem(file, where, "a mapping with keys " + ", ".join(ENTRY_KEYS), show(raw))]
    problems = _unknown_keys(file, f"{where}.", raw, ENTRY_KEYS)
    ref = raw.get("scenario")
    if not isinstance(ref, str) or not ref:
        problems.append(Problem(file, f"{where}.scenario", "a scenario file, relative to the suite file",
                                "nothing" if ref is None else show(ref)))
    reps = raw.get("repetitions", default_reps)
    if not _positive_int(reps):
        problems.append(Problem(file, f"{where}.repetitions", "an integer >= 1", show(reps)))
    engines = raw.get("engines")
    if engines is not None and (not isinstance(engines, list) or not engines
                                or not all(isinstance(e, str) for e in engines)):
        problems.append(Problem(file, f"{where}.engines", "a non-empty list of installed engine names (streamgauge engines lists them)",
                                show(engines)))
        engines = None
    elif engines is not None and engines_known is not None:
        known = ", ".join(sorted(engines_known))
        problems += [Problem(file, f"{where}.engines[{j}]", f"a known engine ({known})", show(e))
                     for j, e in enumerate(engines) if e not in engines_known]
    capacity = raw.get("capacity", False)
    if not isinstance(capacity, bool):
        problems.append(Problem(file, f"{where}.capacity", "true or false", show(capacity)))
    values = raw.get("set") or {}
    if not isinstance(values, dict):
        problems.append(Problem(file, f"{where}.set", "a mapping of key: value overrides, like "
                                "{workload.duration: 30s}", show(values)))
        values = {}
    if not isinstance(ref, str) or not ref:
        return None, problems
    sets = [f"{key}={json.dumps(value)}" for key, value in values.items()] + list(overrides)
    try:
        scenario = load_scenario(os.path.normpath(base / ref), overrides=sets, engines_known=engines_known)
    except ScenarioError as e:
        return None, problems + e.problems
    chosen = list(engine) if engine else list(engines or scenario.engines)
    if problems:
        return None, problems
    return Planned(scenario, chosen, reps, capacity=capacity is True), []


def load_suite(path: str | Path, overrides: Sequence[str] = (), engines_known: set[str] | None = None,
               engine: list[str] | None = None) -> tuple[dict[str, Any], list[Planned]]:
    """Read and validate a suite and every scenario it names; raise :class:`ScenarioError` listing every problem.

    Returns the suite's header for results.json and its plan. ``overrides``
    (``--set``) apply to every scenario, after the suite's own ``set``;
    ``engine`` (``--engine a,b``) runs every entry on those engines alone.
    """
    file = str(path)
    data, problems = read_yaml_mapping(Path(path), file, "suite", ", ".join(SUITE_KEYS))
    if data is None:
        raise ScenarioError(problems)
    problems = _unknown_keys(file, "", data, SUITE_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem(file, "name", "a non-empty string", "nothing" if name is None else show(name)))
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(Problem(file, "description", "a string", show(description)))
    default_reps = data.get("repetitions", 1)
    if not _positive_int(default_reps):
        problems.append(Problem(file, "repetitions", "an integer >= 1", show(default_reps)))
        default_reps = 1
    runs = data.get("runs")
    plan: list[Planned] = []
    if not isinstance(runs, list) or not runs:
        problems.append(Problem(file, "runs", "a non-empty list of {scenario: FILE, ...}",
                                "nothing" if runs is None else show(runs)))
    else:
        base = Path(path).parent
        for i, raw in enumerate(runs):
            item, found = _entry(file, base, i, raw, default_reps, overrides, engines_known, engine)
            problems += found
            if item is not None:
                plan.append(item)
        names = [item.scenario.name for item in plan]
        problems += [Problem(file, "runs", "each scenario once (give it more repetitions instead)",
                             f"{n!r} {names.count(n)} times") for n in sorted(set(names)) if names.count(n) > 1]
    if problems:
        raise ScenarioError(problems)
    header = {"suite": {"name": name, "description": description, "file": file,
                        "runs": [{"scenario": item.scenario.name, "engines": item.engines,
                                  "repetitions": item.repetitions, "capacity": item.capacity} for item in plan]}}
    return header, plan
