"""The quixstreams peer engine's own virtual environment, and the names of the topics quixstreams makes.

quixstreams 3.28.1 pins ``confluent-kafka<2.13``, which the project's
environment cannot share, so its workers (:file:`worker.py`, beside this
file) run under a Python of their own: a virtual environment at
``cache_dir()/quixstreams-venv/<16 hex of sha256(requirements.txt)>/``,
made with ``python -m venv`` from the interpreter running the harness and
filled by ``pip install -r requirements.txt``. A stamp file, written last,
marks it complete; a directory without one is an interrupted build and is
made again. Editing :file:`requirements.txt` names a new directory, so an old
environment is never patched in place.

This module runs in the harness's environment and imports only from
``harness.api``; nothing here imports quixstreams.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.api.toolkit import StreamgaugeError, cache_dir

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
WORKER = HERE / "worker.py"
STAMP = "streamgauge-venv.json"
FIX = "streamgauge engines setup"
QUIXSTREAMS_VERSION = "3.28.1"
PIP_TIMEOUT_S = 1800.0
PIP_TAIL_LINES = 25


class QuixVenvError(StreamgaugeError):
    """The quixstreams virtual environment could not be made (no venv module, pip failed, ...)."""


# -- where it lives ------------------------------------------------------------------------------
def requirements_hash(path: Path | None = None) -> str:
    """The first 16 hex digits of the sha256 of ``requirements.txt``: the environment's directory name."""
    path = path or REQUIREMENTS
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as e:
        msg = f"quixstreams engine: cannot read {path} ({e.strerror or e})"
        raise QuixVenvError(msg) from e


def pinned_versions(names: tuple[str, ...] = ("quixstreams", "confluent-kafka"), path: Path | None = None) -> dict[
        str, str]:
    """The versions requirements.txt pins for ``names`` (the environment is made from exactly those pins)."""
    pins = {}
    for line in (path or REQUIREMENTS).read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and name.strip().lower() in names:
            pins[name.strip().lower()] = version.strip()
    return {name: pins.get(name, "unknown") for name in names}


def venv_dir() -> Path:
    """``cache_dir()/quixstreams-venv/<hash>/`` (it may not exist yet)."""
    return cache_dir() / "quixstreams-venv" / requirements_hash()


def venv_python(directory: Path | None = None) -> Path:
    """The environment's interpreter (it may not exist yet)."""
    return (directory or venv_dir()) / "bin" / "python"


def worker_argv(python: Path | None = None) -> list[str]:
    """The command that starts one worker, without its config path: ``[venv python, worker.py]``."""
    return [str(python or venv_python()), str(WORKER)]


def base_python() -> str:
    """The interpreter to make the environment with: the one running the harness (its base, out of a venv)."""
    for candidate in (getattr(sys, "_base_executable", None), sys.executable, shutil.which("python3")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    msg = "quixstreams engine: no Python interpreter found to make its virtual environment with (tried python3)"
    raise QuixVenvError(msg)


def _python_tag() -> str:
    return f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"


def _stamp(directory: Path) -> dict | None:
    """The stamp of a complete environment at ``directory`` made for this Python, else None."""
    try:
        stamp = json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("python") != _python_tag():
        return None
    if not venv_python(directory).exists():
        return None
    return stamp


def is_ready() -> bool:
    """True when the environment for the current requirements.txt is complete."""
    try:
        return _stamp(venv_dir()) is not None
    except QuixVenvError:
        return False


# -- what it needs -----------------------------------------------------------------------------------
def _venv_module_problem() -> str | None:
    """Why ``python -m venv`` cannot make an environment with pip here, or None."""
    if importlib.util.find_spec("venv") is None:
        return "the Python standard library's venv module is missing"
    if importlib.util.find_spec("ensurepip") is None:
        return "the Python standard library's ensurepip module is missing (Debian: apt-get install python3-venv)"
    return None


def prerequisites() -> list[tuple[str, bool, str]]:
    """``(name, met, fix command)`` for what the quixstreams engine needs; checks only, creates nothing."""
    venv_problem = _venv_module_problem()
    out = [(
        "Python venv and ensurepip modules (to make the quixstreams environment)",
        venv_problem is None,
        "apt-get install python3-venv" if venv_problem else "",
    )]
    try:
        directory = venv_dir()
        name = f"quixstreams {QUIXSTREAMS_VERSION} virtual environment ({directory})"
        ready = _stamp(directory) is not None
    except QuixVenvError as e:
        name, ready = f"quixstreams {QUIXSTREAMS_VERSION} virtual environment ({e})", False
    out.append((name, ready, FIX))
    return out


# -- making it ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (two harnesses preparing at once make the environment once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _tail(text: str, lines: int = PIP_TAIL_LINES) -> str:
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in kept)


def _run(argv: list[str], what: str, timeout_s: float) -> None:
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"})
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
        msg = f"quixstreams engine: {what} did not finish in {timeout_s:.0f} s; its last lines:\n{_tail(out)}"
        raise QuixVenvError(msg) from e
    except OSError as e:
        msg = f"quixstreams engine: {what} could not start ({argv[0]}: {e.strerror or e})"
        raise QuixVenvError(msg) from e
    if proc.returncode != 0:
        msg = (f"quixstreams engine: {what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
               f"its last lines:\n{_tail(proc.stdout)}")
        raise QuixVenvError(msg)


def prepare(log: Callable[[str], None] = print) -> Path:
    """Make the environment if it is not there yet; return its interpreter's path.

    Cheap when done (one stamp file read). A failed build leaves no stamp and
    is removed, so the next call starts over; the error names pip's last lines.
    """
    directory = venv_dir()
    if _stamp(directory) is not None:
        return venv_python(directory)
    problem = _venv_module_problem()
    if problem is not None:
        msg = f"quixstreams engine: cannot make its virtual environment: {problem}"
        raise QuixVenvError(msg)
    with _locked(directory.parent / f"{directory.name}.lock"):
        if _stamp(directory) is not None:  # another process made it while we waited
            return venv_python(directory)
        python = base_python()
        started = time.monotonic()
        if directory.exists():
            log(f"quixstreams engine: removing the incomplete environment {directory}")
            shutil.rmtree(directory)
        log(f"quixstreams engine: making its virtual environment {directory} with {python}")
        try:
            _run([python, "-m", "venv", str(directory)], "python -m venv", 300.0)
            py = str(venv_python(directory))
            log(f"quixstreams engine: pip install -r {REQUIREMENTS.name} (quixstreams {QUIXSTREAMS_VERSION}); "
                "this takes a minute or two")
            _run([py, "-m", "pip", "install", "--no-input", "--progress-bar", "off", "-r", str(REQUIREMENTS)],
                 "pip install", PIP_TIMEOUT_S)
            _run([py, "-c", "import quixstreams, confluent_kafka, rocksdict, orjson; "
                  f"assert quixstreams.__version__ == {QUIXSTREAMS_VERSION!r}, quixstreams.__version__"],
                 "the import check of the new environment", 120.0)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        stamp = {"python": _python_tag(), "base_python": python, "requirements_sha256": requirements_hash(),
                 "quixstreams": QUIXSTREAMS_VERSION, "created": time.time(),
                 "seconds": round(time.monotonic() - started, 1)}
        tmp = directory / (STAMP + ".tmp")
        tmp.write_text(json.dumps(stamp, indent=2))
        tmp.replace(directory / STAMP)
        log(f"quixstreams engine: environment ready in {stamp['seconds']} s")
    return venv_python(directory)


# -- quixstreams' internal topics ----------------------------------------------------------------------
INTERNAL_TOPIC_TYPES = ("changelog", "repartition")


def internal_topic_names(all_topics: list[str], application_id: str) -> list[str]:
    """The topics quixstreams made for the application ``application_id`` (its consumer group), sorted.

    quixstreams 3.28.1 names them ``<type>__<consumer group>--<stream>--<suffix>``
    (``TopicManager._internal_name`` in quixstreams/models/topics/manager.py),
    ``<type>`` being ``changelog`` or ``repartition``:

    - a state store's changelog: ``changelog__<group>--<stream id>--<store name>``;
      the stream id is the input topic's name, or, after a ``group_by``, the
      repartition topic's name with ``__<group>`` removed and ``--`` turned
      into ``.`` (``repartition.<input>.<group_by name>``);
    - a ``group_by``'s repartition topic: ``repartition__<group>--<input>--<group_by name>``.

    Only names that start with ``<type>__<application_id>--`` are picked, so
    the input, output and late topics (and other runs' topics) never are.
    """
    if not application_id:
        return []
    prefixes = tuple(f"{kind}__{application_id}--" for kind in INTERNAL_TOPIC_TYPES)
    return sorted(t for t in all_topics if t.startswith(prefixes))
