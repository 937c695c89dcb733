"""Building a JVM peer's Java sources: resolve their classpath with Maven, compile them with javac.

Nothing is built in the working tree. A peer's directory holds a ``pom.xml``
(its dependencies), ``java/`` (its sources) and optionally ``resources/``
(copied as they are, e.g. the log4j configuration). :meth:`JavaSources.prepare`
resolves the pom once (cached by its content hash) and compiles ``java/``
with ``javac --release 17`` into ``<cache>/<kind>/<key>/classes``, where
``<key>`` is the sha256 of the pom, the sources and the resources (16 hex
digits). A ``stamp`` file written last says the build is complete, so an
interrupted build is redone. :meth:`JavaSources.prerequisites` only checks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.api.engine import Prerequisite
from harness.errors import StreamgaugeError
from harness.kafka.java import JavaError, find_java
from harness.kafka.maven import resolve_classpath
from harness.paths import cache_dir

SETUP = "streamgauge engines setup"
JAVAC_TIMEOUT_S = 600
ERROR_LINES = 12  # how much of javac's output an error message quotes


class JavaBuildError(StreamgaugeError):
    """A peer's Java sources could not be built: no javac, or they did not compile."""


@dataclass(frozen=True)
class JavaBuild:
    """A compiled build: the java to run it with, its classes directory and its dependencies' classpath."""

    java: str
    classes: Path
    classpath: str
    directory: Path

    @property
    def full_classpath(self) -> str:
        """The classes directory, then the dependencies."""
        return f"{self.classes}{os.pathsep}{self.classpath}"

    def jar_version(self, artifact: str) -> str:
        """The version of ``artifact`` on the classpath, from its jar's name (``<artifact>-<version>.jar``, the
        version starting with a digit, so ``flink-runtime`` is not taken from ``flink-runtime-web``)."""
        for jar in self.classpath.split(os.pathsep):
            name = Path(jar).name
            rest = name[len(artifact) + 1:-len(".jar")] if name.endswith(".jar") else ""
            if name.startswith(f"{artifact}-") and rest[:1].isdigit():
                return rest
        return "unknown"

    def argv(self, main_class: str, *args: str, jvm_options: tuple[str, ...] = ()) -> list[str]:
        """The command line that runs ``main_class`` of this build with ``args``."""
        return [self.java, *jvm_options, "-cp", self.full_classpath, main_class, *args]


#: Called once after a compilation, before the stamp: (build) -> None, e.g. to ask the build for facts.
AfterCompile = Callable[[JavaBuild], None]


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
    msg = (f"javac not found next to {java_path}, in $JAVA_HOME/bin or on PATH: the JVM peers are compiled "
           f"with a JDK 17+ (apt-get install openjdk-17-jdk-headless), then: {SETUP}")
    raise JavaBuildError(msg)


class JavaSources:
    """The Java sources of one peer (``kind`` names it in the cache and in messages) under ``root``."""

    def __init__(self, kind: str, root: Path, after_compile: AfterCompile | None = None) -> None:
        self.kind = kind
        self.root = root
        self.pom = root / "pom.xml"
        self.sources = root / "java"
        self.resources = root / "resources"
        self.after_compile = after_compile

    # -- inputs and where their build goes ---------------------------------------------------------
    def source_files(self) -> list[Path]:
        return sorted(self.sources.rglob("*.java"))

    def resource_files(self) -> list[Path]:
        return sorted(p for p in self.resources.rglob("*") if p.is_file()) if self.resources.is_dir() else []

    def build_key(self) -> str:
        """sha256 over the pom, the sources and the resources (names and contents), 16 hex digits."""
        inputs = [("pom.xml", self.pom)]
        inputs += [(f"java/{p.relative_to(self.sources)}", p) for p in self.source_files()]
        inputs += [(f"resources/{p.relative_to(self.resources)}", p) for p in self.resource_files()]
        digest = hashlib.sha256()
        for name, path in inputs:
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def build_dir(self, key: str | None = None) -> Path:
        """``<cache>/<kind>/<key>``: the compiled classes, the resolved classpath and the stamp."""
        return cache_dir() / self.kind / (key or self.build_key())

    def _stamp(self, directory: Path) -> Path:
        return directory / "stamp"

    def _classpath_file(self, directory: Path) -> Path:
        return directory / "classpath.txt"

    def _cached_classpath(self, directory: Path) -> str | None:
        """The classpath recorded for this build, when every jar on it still exists."""
        try:
            text = self._classpath_file(directory).read_text().strip()
        except OSError:
            return None
        jars = [p for p in text.split(os.pathsep) if p]
        return text if jars and all(Path(j).is_file() for j in jars) else None

    # -- building ------------------------------------------------------------------------------------
    def prepare(self, log: Callable[[str], None] = print) -> JavaBuild:
        """Resolve the classpath and compile the sources when not done yet; return the build."""
        java = find_java()
        javac = find_javac(java.path)
        directory = self.build_dir()
        classpath = self._cached_classpath(directory)
        if classpath is None:
            log(f"{self.kind}: resolving the classpath of {self.pom} (Maven, cached by content)")
            classpath = os.pathsep.join(str(j) for j in resolve_classpath(self.pom))
        classes = directory / "classes"
        build = JavaBuild(java.path, classes, classpath, directory)
        if not self._stamp(directory).is_file():
            log(f"{self.kind}: compiling {len(self.source_files())} Java sources into {classes}")
            self._compile(javac, classpath, classes)
            self._classpath_file(directory).write_text(classpath)
            if self.after_compile is not None:
                self.after_compile(build)
            self._stamp(directory).write_text(f"{self.kind}\n")
        return build

    def is_ready(self) -> bool:
        """True when the current sources are built (nothing is checked beyond the stamp)."""
        return self._stamp(self.build_dir()).is_file()

    def _compile(self, javac: str, classpath: str, classes: Path) -> None:
        """javac into a fresh directory beside ``classes``, resources copied in, then renamed into place."""
        work = classes.with_name(f"classes.tmp-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            self._run_javac(javac, classpath, work)
        except JavaBuildError:
            shutil.rmtree(work, ignore_errors=True)
            raise
        for resource in self.resource_files():
            target = work / resource.relative_to(self.resources)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resource, target)
        shutil.rmtree(classes, ignore_errors=True)
        work.rename(classes)

    def _run_javac(self, javac: str, classpath: str, out: Path) -> None:
        sources = [str(p) for p in self.source_files()]
        if not sources:
            msg = f"no Java sources under {self.sources}"
            raise JavaBuildError(msg)
        cmd = [javac, "--release", "17", "-encoding", "UTF-8", "-Xlint:all,-classfile,-processing,-serial",
               "-d", str(out), "-cp", classpath, *sources]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVAC_TIMEOUT_S, cwd=self.root)
        except (OSError, subprocess.TimeoutExpired) as e:
            msg = f"javac could not be run ({javac}): {e}"
            raise JavaBuildError(msg) from e
        if proc.returncode != 0:
            raise JavaBuildError(self.compile_failure(proc.returncode, proc.stdout + proc.stderr))

    def compile_failure(self, returncode: int, output: str) -> str:
        """The message for a failed compilation: the first failing file and javac's first error lines."""
        lines = output.strip().splitlines()
        first = next((i for i, line in enumerate(lines) if ": error:" in line), 0)
        quoted = "\n".join(lines[first:first + ERROR_LINES])
        where = lines[first].split(": error:")[0] if lines and ": error:" in lines[first] else str(self.sources)
        return (f"the {self.kind} sources do not compile (javac exit {returncode}); first error at {where}:\n"
                f"{quoted}")

    # -- checking --------------------------------------------------------------------------------------
    def prerequisites(self) -> list[Prerequisite]:
        """Java 17+, javac, the resolved classpath and the compiled classes: checked, nothing built."""
        checks = []
        try:
            java = find_java()
        except JavaError as e:
            return [Prerequisite(f"Java 17+ ({e})", False, SETUP), Prerequisite("javac", False, SETUP),
                    *self._build_checks(self.build_dir())]
        checks.append(Prerequisite(f"Java 17+ (found {java.version} at {java.path})", True, SETUP))
        try:
            checks.append(Prerequisite(f"javac ({find_javac(java.path)})", True, SETUP))
        except JavaBuildError:
            checks.append(Prerequisite("javac (not found next to java, in $JAVA_HOME/bin or on PATH)", False, SETUP))
        return checks + self._build_checks(self.build_dir())

    def _build_checks(self, directory: Path) -> list[Prerequisite]:
        return [
            Prerequisite(f"{self.kind} classpath resolved ({self._classpath_file(directory)})",
                         self._cached_classpath(directory) is not None, SETUP),
            Prerequisite(f"{self.kind} sources compiled ({directory / 'classes'})",
                         self._stamp(directory).is_file(), SETUP),
        ]


__all__ = ["SETUP", "JavaBuild", "JavaBuildError", "JavaSources", "find_javac"]
