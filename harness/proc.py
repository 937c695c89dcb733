"""The process supervisor: every OS process the harness starts goes through here.

A :class:`ManagedProcess` records its PID together with the process's start
time (counted from boot, so a step of the system clock does not move it), so
a signal is only ever sent to the process we started (never to a recycled
PID, never by name). Attached processes are registered with the
module's :data:`SUPERVISOR`, which tears them down at interpreter exit, and
they get ``PR_SET_PDEATHSIG`` so that even a SIGKILL of the harness takes
them down with it. Detached processes (``kafka up`` in the background) are
recorded in a state file by their owner instead.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.errors import ProcessError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


_PROC_STAT = Path("/proc/self/stat").exists()
_CLK_TCK = os.sysconf("SC_CLK_TCK") if _PROC_STAT else 100


def _create_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since boot (the ``starttime`` of ``/proc/<pid>/stat``), None when no such
    process runs. Not a wall-clock start time: that is boot time + this, and when the system clock is stepped
    (a virtual machine resumed, say) the boot time moves, and every process would look like another one."""
    if not _PROC_STAT:  # no procfs: psutil's wall-clock start time (steps of the clock move it)
        try:
            return psutil.Process(pid).create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    after_name = stat[stat.rindex(b")") + 2:].split()  # the name may hold spaces and parentheses
    return int(after_name[19]) / _CLK_TCK  # field 22 of stat; after_name starts at field 3


def _now_since_boot() -> float:
    """Now, on :func:`_create_time`'s clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if _PROC_STAT else time.time()


@dataclass
class ManagedProcess:
    """One OS process started by the harness, identified by PID + start time."""

    name: str
    role: str
    pid: int
    create_time: float
    log_path: Path | None = None
    argv: list[str] = field(default_factory=list)
    _popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "pid": self.pid,
            "create_time": self.create_time,
            "log_path": str(self.log_path) if self.log_path else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> ManagedProcess:
        log = d.get("log_path")
        return cls(d["name"], d["role"], int(d["pid"]), float(d["create_time"]),
                   Path(log) if log else None)

    def alive(self) -> bool:
        """True while our process (not a later one with the same PID) runs."""
        if self._popen is not None and self._popen.poll() is not None:
            return False
        ct = _create_time(self.pid)
        if ct is None or abs(ct - self.create_time) > 0.5:
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def send(self, sig: int) -> bool:
        """Send ``sig`` if the process is still ours; False when it is gone."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for exit; True once it has exited."""
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def kill(self) -> None:
        """SIGKILL and reap."""
        self.send(signal.SIGCONT)  # a stopped process must not hold up its own death
        self.send(signal.SIGKILL)
        self.wait(10)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL when it has not exited after ``grace_s``."""
        if not self.alive():
            self.wait(1)
            return
        self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        if not self.wait(grace_s):
            self.kill()

    @property
    def popen(self) -> subprocess.Popen | None:
        """The Popen of a process started here (its pipes, when started with ``pipes``)."""
        return self._popen

    def pause(self) -> None:
        self.send(signal.SIGSTOP)

    def resume(self) -> None:
        self.send(signal.SIGCONT)


class _Spawner:
    """Starts processes from one long-lived thread.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits,
    not the process: a child started from a short-lived thread (a fault
    injector restarting a worker) would be killed when that thread ends. So
    every attached child is forked by this thread, which lives as long as
    the harness.
    """

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
                self._thread.start()
        done: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put((kwargs, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    def _serve(self) -> None:
        while True:
            kwargs, done = self._requests.get()
            try:
                done.put((True, subprocess.Popen(**kwargs)))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                done.put((False, e))


class Supervisor:
    """Registry of attached processes; stops whatever is left at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: list[ManagedProcess] = []
        self._hooked = False
        self._spawner = _Spawner()

    def start(
        self,
        argv: Sequence[str],
        *,
        name: str,
        role: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        detach: bool = False,
        pipes: bool = False,
    ) -> ManagedProcess:
        """Start ``argv`` with stdout+stderr appended to ``log_path`` (with ``pipes``: stdin and stdout are
        pipes to the harness, stderr goes to the log).

        Attached (the default): registered here and killed if the harness
        dies. Detached: outlives this Python process; the caller records it.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            kwargs: dict[str, Any] = dict(args=list(argv), stdout=subprocess.PIPE if pipes else log,
                                          stderr=log if pipes else subprocess.STDOUT,
                                          stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                                          env=dict(env) if env is not None else None,
                                          cwd=cwd, start_new_session=True)
            try:
                if detach:
                    popen = subprocess.Popen(**kwargs)
                else:
                    popen = self._spawner.popen(preexec_fn=_die_with_parent, **kwargs)
            except OSError as e:
                msg = f"could not start {name}: {argv[0]}: {e.strerror or e}"
                raise ProcessError(msg) from e
        ct = _create_time(popen.pid) or _now_since_boot()
        proc = ManagedProcess(name, role, popen.pid, ct, log_path, list(argv), popen)
        if not detach:
            with self._lock:
                self._procs.append(proc)
                self._install_hooks()
        return proc

    def forget(self, proc: ManagedProcess) -> None:
        with self._lock:
            self._procs = [p for p in self._procs if p is not proc]

    def running(self) -> list[ManagedProcess]:
        with self._lock:
            return [p for p in self._procs if p.alive()]

    def stop_all(self, grace_s: float = 10.0) -> None:
        with self._lock:
            procs, self._procs = self._procs, []
        for p in procs:
            p.send(signal.SIGCONT)
            p.send(signal.SIGTERM)
        for p in procs:
            if not p.wait(grace_s):
                p.kill()

    def _install_hooks(self) -> None:
        if self._hooked:
            return
        self._hooked = True
        atexit.register(self.stop_all)


SUPERVISOR = Supervisor()


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit so ``finally`` blocks run teardown.

    SIGINT already raises KeyboardInterrupt. Call from the main thread of a
    CLI entry point.
    """

    def _exit(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)


def wait_until(cond: Callable[[], bool], timeout: float, err_msg: str | Callable[[], str],
               interval: float = 0.1) -> None:
    """Poll ``cond`` until true; raise :class:`TimeoutError` with ``err_msg`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(err_msg() if callable(err_msg) else err_msg)
        time.sleep(interval)
