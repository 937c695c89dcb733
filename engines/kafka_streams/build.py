"""Building streamgauge's Kafka Streams worker: resolve its classpath with Maven, compile it with javac.

Nothing is built in the working tree. ``pom.xml`` names the worker's
dependencies (kafka-streams, log4j); :func:`prepare` resolves them once
(cached by the pom's content hash) and compiles ``java/`` with ``javac
--release 17`` into ``<cache>/kafka-streams/<key>/classes``, where ``<key>``
is the sha256 of the pom, the Java sources and the resources (16 hex digits).
A ``stamp`` file written last says the build is complete, so a build that
was interrupted is redone. :func:`prerequisites` only checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from harness.api.toolkit import JavaError, StreamgaugeError, cache_dir, find_java, resolve_classpath

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
SOURCES = HERE / "java"
RESOURCES = HERE / "resources"
MAIN_CLASS = "io.streamgauge.ks.Worker"
CONFIG_NAMES_CLASS = "io.streamgauge.ks.ConfigNames"
SETUP = "streamgauge engines setup"
JAVAC_TIMEOUT_S = 600
ERROR_LINES = 12  # how much of javac's output an error message quotes


class KafkaStreamsBuildError(StreamgaugeError):
    """The Kafka Streams worker could not be built: no javac, or the sources did not compile."""


class Check(NamedTuple):
    """One prerequisite: its name, whether it is met, and the command that meets it."""

    name: str
    met: bool
    fix: str


@dataclass(frozen=True)
class WorkerBuild:
    """A compiled worker: the java to run it with, its classes directory and its dependencies' classpath."""

    java: str
    classes: Path
    classpath: str

    def argv(self, config: Path, jvm_options: tuple[str, ...] = ()) -> list[str]:
        """The command line that runs the worker on ``config`` (its JSON config file)."""
        return [self.java, *jvm_options, "-cp", f"{self.classes}{os.pathsep}{self.classpath}", MAIN_CLASS,
                str(config)]


# -- inputs and where their build goes --------------------------------------------------------------------

def source_files() -> list[Path]:
    """The worker's Java sources, in a stable order."""
    return sorted(SOURCES.rglob("*.java"))


def resource_files() -> list[Path]:
    """Files copied as they are into the classes directory (the log4j configuration)."""
    return sorted(p for p in RESOURCES.rglob("*") if p.is_file()) if RESOURCES.is_dir() else []


def build_key() -> str:
    """sha256 over the pom, the sources and the resources (names and contents), 16 hex digits."""
    inputs = [("pom.xml", POM)]
    inputs += [(f"java/{p.relative_to(SOURCES)}", p) for p in source_files()]
    inputs += [(f"resources/{p.relative_to(RESOURCES)}", p) for p in resource_files()]
    digest = hashlib.sha256()
    for name, path in inputs:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_dir(key: str | None = None) -> Path:
    """``<cache>/kafka-streams/<key>``: the compiled classes, the resolved classpath and the stamp."""
    return cache_dir() / "kafka-streams" / (key or build_key())


def _stamp(directory: Path) -> Path:
    return directory / "stamp"


def _classpath_file(directory: Path) -> Path:
    return directory / "classpath.txt"


def _cached_classpath(directory: Path) -> str | None:
    """The classpath recorded for this build, when every jar on it still exists."""
    try:
        text = _classpath_file(directory).read_text().strip()
    except OSError:
        return None
    jars = [p for p in text.split(os.pathsep) if p]
    return text if jars and all(Path(j).is_file() for j in jars) else None


# -- the tools ---------------------------------------------------------------------------------------------

def find_javac(java_path: str) -> str:
    """javac next to ``java_path`` (symlinks resolved), else $JAVA_HOME/bin/javac, else the PATH's."""
    candidates = [Path(java_path).resolve().with_name("javac")]
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "javac")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("javac")
    if found:
        return found
    msg = (f"javac not found next to {java_path}, in $JAVA_HOME/bin or on PATH: the Kafka Streams worker is "
           f"compiled with a JDK 17+ (apt-get install openjdk-17-jdk-headless), then: {SETUP}")
    raise KafkaStreamsBuildError(msg)


# -- building ----------------------------------------------------------------------------------------------

def prepare(log: Callable[[str], None] = print) -> WorkerBuild:
    """Resolve the classpath and compile the worker when not done yet; return how to run it."""
    java = find_java()
    javac = find_javac(java.path)
    directory = build_dir()
    classpath = _cached_classpath(directory)
    if classpath is None:
        log(f"kafka-streams worker: resolving the classpath of {POM} (Maven, cached by content)")
        classpath = os.pathsep.join(str(j) for j in resolve_classpath(POM))
    classes = directory / "classes"
    if not _stamp(directory).is_file():
        log(f"kafka-streams worker: compiling {len(source_files())} Java sources into {classes}")
        _compile(javac, classpath, classes)
        _classpath_file(directory).write_text(classpath)
        _write_config_names(java.path, classes, classpath, directory)
        _stamp(directory).write_text(f"{MAIN_CLASS}\n")
    return WorkerBuild(java.path, classes, classpath)


def _config_names_file(directory: Path) -> Path:
    return directory / "config-names.json"


def _write_config_names(java: str, classes: Path, classpath: str, directory: Path) -> None:
    """Every configuration name Kafka Streams accepts, asked of Kafka Streams itself (ConfigNames.java)."""
    argv = [java, "-cp", f"{classes}{os.pathsep}{classpath}", CONFIG_NAMES_CLASS]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        msg = f"could not list Kafka Streams' configuration names (exit {proc.returncode}): {proc.stderr[-2000:]}"
        raise KafkaStreamsBuildError(msg)
    _config_names_file(directory).write_text(proc.stdout)


def config_names() -> frozenset[str] | None:
    """The configuration names Kafka Streams accepts (from the build), None before the worker is built."""
    try:
        return frozenset(json.loads(_config_names_file(build_dir()).read_text()))
    except (OSError, ValueError):
        return None


def is_ready() -> bool:
    """True when the worker for the current sources is built (nothing is checked beyond the stamp)."""
    return _stamp(build_dir()).is_file()


def _compile(javac: str, classpath: str, classes: Path) -> None:
    """javac into a fresh directory beside ``classes``, resources copied in, then renamed into place."""
    work = classes.with_name(f"classes.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _run_javac(javac, classpath, work)
    except KafkaStreamsBuildError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for resource in resource_files():
        target = work / resource.relative_to(RESOURCES)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(resource, target)
    shutil.rmtree(classes, ignore_errors=True)
    work.rename(classes)


def _run_javac(javac: str, classpath: str, out: Path) -> None:
    sources = [str(p) for p in source_files()]
    if not sources:
        msg = f"no Java sources under {SOURCES}"
        raise KafkaStreamsBuildError(msg)
    cmd = [javac, "--release", "17", "-encoding", "UTF-8", "-Xlint:all,-classfile,-processing",
           "-d", str(out), "-cp", classpath, *sources]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVAC_TIMEOUT_S, cwd=HERE)
    except (OSError, subprocess.TimeoutExpired) as e:
        msg = f"javac could not be run ({javac}): {e}"
        raise KafkaStreamsBuildError(msg) from e
    if proc.returncode != 0:
        raise KafkaStreamsBuildError(_compile_failure(proc.returncode, proc.stdout + proc.stderr))


def _compile_failure(returncode: int, output: str) -> str:
    """The message for a failed compilation: the first failing file and javac's first error lines."""
    lines = output.strip().splitlines()
    first = next((i for i, line in enumerate(lines) if ": error:" in line), 0)
    quoted = "\n".join(lines[first:first + ERROR_LINES])
    where = lines[first].split(": error:")[0] if lines and ": error:" in lines[first] else str(SOURCES)
    return f"the Kafka Streams worker does not compile (javac exit {returncode}); first error at {where}:\n{quoted}"


# -- checking ----------------------------------------------------------------------------------------------

def prerequisites() -> list[Check]:
    """Java 17+, javac, the resolved classpath and the compiled classes: checked, nothing built."""
    checks = []
    try:
        java = find_java()
    except JavaError as e:
        return [Check(f"Java 17+ ({e})", False, SETUP), Check("javac", False, SETUP),
                *_build_checks(build_dir())]
    checks.append(Check(f"Java 17+ (found {java.version} at {java.path})", True, SETUP))
    try:
        checks.append(Check(f"javac ({find_javac(java.path)})", True, SETUP))
    except KafkaStreamsBuildError:
        checks.append(Check("javac (not found next to java, in $JAVA_HOME/bin or on PATH)", False, SETUP))
    return checks + _build_checks(build_dir())


def _build_checks(directory: Path) -> list[Check]:
    return [
        Check(f"kafka-streams classpath resolved ({_classpath_file(directory)})",
              _cached_classpath(directory) is not None, SETUP),
        Check(f"kafka-streams worker compiled ({directory / 'classes'})", _stamp(directory).is_file(), SETUP),
    ]


__all__ = ["Check", "KafkaStreamsBuildError", "WorkerBuild", "build_dir", "build_key",
           "find_javac", "prepare", "prerequisites"]
