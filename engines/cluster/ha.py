"""High availability of the cluster engine's JobManager: leader election by a lease in durable storage.

The storage is a directory under the run directory, shared by the JobManagers
(the model of Flink's ZooKeeper or Kubernetes HA services):

- ``leader.json``: the lease — its holder, its epoch (a fencing token that
  grows by one with every new leader), where the holder listens for
  TaskManagers, and the wall-clock time it expires unless renewed;
- ``job.json``: the job as its leaders left it — the latest completed
  checkpoint's pointer, the last deployment attempt, and FINISHED once a
  bounded job has finished.

Every read-modify-write holds an exclusive ``flock`` on ``lock``, so taking
the lease and writing the job record are atomic across processes. A write of
the job record names the writer's epoch and is refused once the lease has
gone to a newer leader: a JobManager that was paused past its lease (a
zombie) cannot move the checkpoint pointer; it learns so and steps down.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class LeaseLost(Exception):
    """The lease belongs to another JobManager now: this one is no longer the leader."""


class LeaseStore:
    """The lease and the job record in ``directory``, as JobManager ``holder`` sees them."""

    def __init__(self, directory: str | Path, holder: str, duration_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.holder = holder
        self.duration_s = duration_s
        self.clock = clock
        self.epoch: int | None = None  # ours while we hold the lease

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.dir / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.dir / name).read_text()))
        except (OSError, ValueError):
            return {}

    def _write(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.dir / f"{name}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.dir / name)

    # -- the lease --------------------------------------------------------------------------------
    def try_acquire(self, host: str, port: int) -> bool:
        """Take the lease if it is free (never held, released, or expired); True when we hold it now."""
        with self._locked():
            lease = self._read("leader.json")
            now = self.clock()
            live = bool(lease) and not lease.get("released") and now <= lease["expires"]
            if live and self.epoch is not None and lease.get("epoch") == self.epoch:
                return True  # ours already
            if live:  # another's, or a predecessor's under our name (a JobManager started again)
                return False
            self.epoch = int(lease.get("epoch", 0)) + 1
            # a takeover: the lease ran out on a leader that did not give it up (killed, paused, cut off)
            takeovers = int(lease.get("takeovers", 0)) + (1 if lease and not lease.get("released") else 0)
            self._write("leader.json", {"holder": self.holder, "epoch": self.epoch, "host": host, "port": port,
                                        "since": now, "expires": now + self.duration_s, "takeovers": takeovers,
                                        "previous": lease.get("holder")})
            return True

    def renew(self) -> None:
        """Extend our lease; raises LeaseLost when another JobManager holds it now."""
        with self._locked():
            lease = self._check_ours()
            lease["expires"] = self.clock() + self.duration_s
            self._write("leader.json", lease)

    def release(self) -> None:
        """Give the lease up (a clean stop): a standby takes it at once instead of after it expires."""
        with self._locked():
            lease = self._read("leader.json")
            if lease.get("holder") == self.holder and lease.get("epoch") == self.epoch:
                lease["released"] = True
                self._write("leader.json", lease)
        self.epoch = None

    def _check_ours(self) -> dict[str, Any]:
        lease = self._read("leader.json")
        if self.epoch is None or lease.get("epoch") != self.epoch or lease.get("holder") != self.holder:
            msg = (f"{self.holder}: the lease is held by {lease.get('holder')} (epoch {lease.get('epoch')}), "
                   f"not by us (epoch {self.epoch})")
            raise LeaseLost(msg)
        return lease

    # -- the job record -----------------------------------------------------------------------------
    def job(self) -> dict[str, Any]:
        """The job record: ``checkpoint`` (id), ``metadata`` (its path), ``attempt``, ``state``."""
        return self._read("job.json")

    def update_job(self, **changes: Any) -> None:
        """Change the job record, as the leader; raises LeaseLost (and changes nothing) when we are not."""
        with self._locked():
            lease = self._check_ours()
            job = self._read("job.json")
            job.update(changes, epoch=lease["epoch"])
            self._write("job.json", job)


def read_lease(directory: str | Path) -> dict[str, Any]:
    """The lease in ``directory`` without taking part in the election (TaskManagers, the deployer)."""
    try:
        return dict(json.loads((Path(directory) / "leader.json").read_text()))
    except (OSError, ValueError):
        return {}
