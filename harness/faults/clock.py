"""The clock the fault injector runs on: the wall clock in a run, a fake one in unit tests (no processes, no
waiting: the fake clock jumps to the next due time)."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (or any fixed origin the fault times are relative to)."""
        ...

    def wait(self, seconds: float, halt: threading.Event) -> bool:
        """Wait ``seconds`` or until ``halt`` is set; True when halted."""
        ...


class WallClock:
    def time(self) -> float:
        return time.time()

    def wait(self, seconds: float, halt: threading.Event) -> bool:
        return halt.wait(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when waited on: ``wait(s)`` adds ``s`` at once."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def wait(self, seconds: float, halt: threading.Event) -> bool:
        if halt.is_set():
            return True
        self.now += max(0.0, seconds)
        return halt.is_set()
