"""The checkers' column shortcuts (harness.check.alignment) only ever shorten the way to the same result.

Each case is a correct running-sum output, or one broken in one way; every
checker must give the same verdict, count, examples and detail with the
shortcuts as without them (judging output by output).
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from harness.api.pipeline import load_job
from harness.check import delivery, per_key, run_checks
from harness.kafka.client import Record

Event = dict[str, Any]


class _NoShortcut:
    """An alignment that never vouches for anything: every checker judges output by output."""

    exact = False
    in_key_order = False

    def stated_keys_agree(self) -> bool:
        return False

    def as_oracle_wrote(self) -> bool:
        return False


Output = tuple[str, Event | bytes]  # the key it is written under, its value


def _broken(correct: list[Event], rng: random.Random) -> Iterator[tuple[str, list[Output]]]:
    outputs: list[Output] = [(out["k"], out) for out in correct]
    n = len(outputs)
    yield "correct", list(outputs)
    i = rng.randrange(n)
    yield "one dropped", outputs[:i] + outputs[i + 1:]
    yield "one repeated", outputs + [outputs[rng.randrange(n)]]
    yield "one repeated in place", outputs[:i + 1] + [outputs[i]] + outputs[i + 1:]
    of_a = [j for j, (key, _) in enumerate(outputs) if key == "a"]
    swapped = list(outputs)
    swapped[of_a[1]], swapped[of_a[2]] = swapped[of_a[2]], swapped[of_a[1]]
    yield "two of a key swapped", swapped
    edits: list[tuple[str, Callable[[Event], Event | bytes]]] = [
        ("a sum off by one", lambda out: {**out, "s": out["s"] + 1}),
        ("an id never input", lambda out: {**out, "id": 10**9}),
        ("the wrong key stated", lambda out: {**out, "k": "z"}),
        ("no key stated", lambda out: {f: v for f, v in out.items() if f != "k"}),
        ("the id as a string", lambda out: {**out, "id": str(out["id"])}),
        ("a field more", lambda out: {**out, "extra": 1}),
        ("a value that is not JSON", lambda out: b"not json"),
    ]
    for name, edit in edits:
        changed = list(outputs)
        changed[i] = (correct[i]["k"], edit(correct[i]))
        yield name, changed
    yield "reversed", list(reversed(outputs))
    yield "nothing", []


def _topic(outputs: list[Output], partitions: int = 3) -> list[Record]:
    next_offset: dict[int, int] = defaultdict(int)
    records = []
    for key, value in outputs:
        partition = zlib.crc32(key.encode()) % partitions
        written = value if isinstance(value, bytes) else orjson.dumps(value)
        records.append(Record("output", partition, next_offset[partition], key.encode(), written, 0))
        next_offset[partition] += 1
    return sorted(records, key=lambda r: (r.partition, r.offset))


CASES = ["correct", "one dropped", "one repeated", "one repeated in place", "two of a key swapped",
         "a sum off by one", "an id never input", "the wrong key stated", "no key stated", "the id as a string",
         "a field more", "a value that is not JSON", "reversed", "nothing"]

#: outputs are compared on the fields the job emits: one more is not an anomaly
PASSING = {"correct", "a field more"}


@pytest.mark.parametrize(("case", "seed"), [(case, seed) for seed in (1, 2) for case in CASES])
def test_the_shortcuts_change_no_result(make, monkeypatch, case, seed):
    rng = random.Random(seed)
    specs = [(rng.randrange(3), i, rng.choice("abcde"), rng.randrange(100)) for i in range(1, 201)]
    inputs = make.input_topic(specs)
    outputs = dict(_broken(make.running_sums(inputs), rng))[case]
    assert sorted(dict(_broken(make.running_sums(inputs), random.Random(0)))) == sorted(CASES)
    topic = _topic(outputs)
    job = load_job("scenarios.jobs:running_sum")

    def judged() -> list[tuple[str, str, int, list[dict[str, Any]], str]]:
        results = run_checks(job, make.observe(inputs, topic))
        return [(r.name, r.verdict, r.count, r.examples, r.detail) for r in results]

    with_shortcuts = judged()
    monkeypatch.setattr(delivery, "alignment", lambda oracle, view: _NoShortcut())
    monkeypatch.setattr(per_key, "alignment", lambda oracle, view: _NoShortcut())
    assert judged() == with_shortcuts
    assert (case in PASSING) == all(verdict == "pass" for _, verdict, *_ in with_shortcuts)
