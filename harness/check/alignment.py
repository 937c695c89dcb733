"""How the committed outputs line up with the oracle's expected outputs, worked out once for all checkers.

On a correct run every output names an id the oracle expects exactly once,
every expected output appears once, and each key's outputs come in the
oracle's order. The tests below say so from whole columns at once, so that
``lost``, ``duplicate``, ``unexpected``, ``inconsistent`` and ``order`` need
not judge output by output. Each test is only a shortcut to "no anomaly": when
it does not hold, the checkers judge output by output as they always do, and
so find and report the same things.

The strongest, :attr:`Alignment.exact`, needs no output decoded: the committed
values are, byte for byte, what the oracle wrote after each step of a keyed
aggregate.
"""

from __future__ import annotations

from functools import cached_property
from itertools import chain
from typing import Any, cast

import numpy as np

from harness.check.observed import Decoded, Event
from harness.check.oracle import Oracle


def alignment(oracle: Oracle, view: Decoded) -> Alignment:
    """The alignment of ``view`` (the committed output) with ``oracle``, made once and shared by the checkers."""
    return oracle.memo("alignment", view, lambda: Alignment(oracle, view))


class Alignment:
    """The committed outputs (rows of ``view``) against the oracle's expected rows (:attr:`Oracle.rows`)."""

    def __init__(self, oracle: Oracle, view: Decoded) -> None:
        self.oracle = oracle
        self.view = view

    @cached_property
    def exact(self) -> bool:
        """The committed values are exactly the bytes the oracle wrote, one per step of its keyed aggregate, each
        key's in the oracle's order, on a job whose every output names its contribution's id (an int or a
        string) and states its key: each output then reads back as the one the oracle expects for its id, and
        every checker of per-record anomalies passes.

        That is: each value is the oracle's written output of a contribution
        (:attr:`ContributionRows.row_of_written`), each contribution's output
        is committed once, and each key's come in its contributions' order.
        """
        oracle = self.oracle
        expected, c = oracle.rows, oracle.contribution_rows
        if (not oracle.stateful or not expected.one_per_contribution or not expected.plain or expected.more
                or c.restarted or len(self.view.values) != len(c.ids) or c.ids != expected.ids):
            return False
        rows = list(map(c.row_of_written.get, self.view.values))
        return None not in rows and _in_key_order(cast(list[int], rows), oracle)

    @cached_property
    def rows(self) -> list[int | None]:
        """For each output, the first expected row of its id; None when the oracle expects no output with it."""
        return list(map(self.oracle.rows.first.get, self.view.ids))

    @cached_property
    def simple(self) -> bool:
        """Every output names an id the oracle expects, and no id is expected more than once."""
        return not self.oracle.rows.more and None not in self.rows

    def _column(self, column: list[Any]) -> list[Any]:
        """``column[rows[i]]`` for every output ``i`` (only when :attr:`simple`)."""
        return list(map(column.__getitem__, cast(list[int], self.rows)))  # simple: no row is None

    @cached_property
    def in_key_order(self) -> bool:
        """:attr:`simple`, each expected output is named by exactly one committed output, and each key's outputs
        come in the order of its expected rows (the oracle's)."""
        return (self.simple and len(self.rows) == len(self.oracle.rows.ids)
                and _in_key_order(cast(list[int], self.rows), self.oracle))

    def stated_keys_agree(self) -> bool:
        """:attr:`simple`, every output is a JSON object and states (``k``) the key of its expected row."""
        events = self.view.events
        if not self.simple or None in events:
            return False
        try:
            stated = [event["k"] for event in cast(list[Event], events)]  # none is None (checked above)
        except KeyError:
            return False
        # the oracle's keys are strings (or None), so a stated key is in {key} exactly when it equals it
        return stated == self._column(self.oracle.rows.keys)

    def as_oracle_wrote(self) -> bool:
        """:attr:`in_key_order` on a job whose every contribution gave one output under its own key, and each
        output names its contribution's id and has exactly the bytes the oracle wrote for it."""
        oracle = self.oracle
        c = oracle.contribution_rows
        if c.restarted or not oracle.rows.one_per_contribution or not self.in_key_order:
            return False
        return self._column(c.ids) == self.view.ids and self._column(c.written) == self.view.values


def _in_key_order(rows: list[int], oracle: Oracle) -> bool:
    """``rows`` (one expected row per output, in topic order, as many as there are expected rows) names each
    expected row once, and each key's expected rows in their order."""
    n = len(rows)
    named = np.fromiter(rows, dtype=np.int64, count=n)
    positions = np.zeros(n, dtype=np.int64)  # for each expected row, where an output names it
    positions[named] = np.arange(n)
    if not (named[positions] == np.arange(n)).all():
        return False  # some expected row is named by no output (and another by two)
    earlier, later = _successions(oracle)
    return bool((positions[earlier] < positions[later]).all())


def _successions(oracle: Oracle) -> tuple[np.ndarray, np.ndarray]:
    """Each pair of consecutive expected rows of one key: (the earlier rows, the later rows)."""
    def build() -> tuple[np.ndarray, np.ndarray]:
        groups = oracle.rows.by_key.values()
        earlier = np.fromiter(chain.from_iterable(rows[:-1] for rows in groups), dtype=np.int64)
        later = np.fromiter(chain.from_iterable(rows[1:] for rows in groups), dtype=np.int64)
        return earlier, later

    return oracle.memo("successions", oracle.rows, build)
