"""Resolving the Kafka broker classpath with Maven, once, cached outside the tree."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from harness.errors import StreamgaugeError
from harness.paths import cache_dir

POM = Path(__file__).with_name("pom.xml")


class MavenError(StreamgaugeError):
    """Maven is missing or could not resolve the classpath."""


def _cache_file(pom_text: str) -> Path:
    digest = hashlib.sha256(pom_text.encode()).hexdigest()[:16]
    return cache_dir() / "kafka-classpath" / digest / "classpath.txt"


def _cached(path: Path) -> list[Path] | None:
    if not path.is_file():
        return None
    jars = [Path(p) for p in path.read_text().strip().split(os.pathsep) if p]
    if jars and all(j.is_file() for j in jars):
        return jars
    return None


def resolve_classpath(pom: Path = POM, *, refresh: bool = False) -> list[Path]:
    """The jars of the broker's classpath, resolving them with Maven when not cached.

    The result is cached by the pom's content hash; the jars themselves stay in
    Maven's local repository, so a second call needs no network.
    """
    pom_text = pom.read_text()
    out_file = _cache_file(pom_text)
    if not refresh and (jars := _cached(out_file)):
        return jars
    mvn = os.environ.get("STREAMGAUGE_MVN") or shutil.which("mvn")
    if not mvn:
        msg = ("Maven (mvn) not found; the local Kafka provider resolves the broker's jars with it. "
               "Install it (apt-get install maven) or set STREAMGAUGE_MVN=/path/to/mvn, then retry: "
               "streamgauge kafka classpath")
        raise MavenError(msg)
    work = out_file.parent
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(pom_text)  # run outside the source tree: Maven may write target/
    tmp = work / "classpath.txt.tmp"
    cmd = [mvn, "-q", "-B", "-f", str(work / "pom.xml"), "dependency:build-classpath",
           f"-Dmdep.outputFile={tmp}", f"-Dmdep.pathSeparator={os.pathsep}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        msg = f"Maven could not be run: {shlex.join(cmd)}: {e}. Retry with: streamgauge kafka classpath"
        raise MavenError(msg) from e
    if proc.returncode != 0 or not tmp.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        msg = (f"Maven could not resolve the Kafka classpath (exit {proc.returncode}).\n"
               f"command: {shlex.join(cmd)}\n{tail}\n"
               f"Check that Maven Central is reachable, then retry with: streamgauge kafka classpath")
        raise MavenError(msg)
    tmp.replace(out_file)
    jars = _cached(out_file)
    if not jars:
        msg = f"Maven wrote an unusable classpath to {out_file}; retry with: streamgauge kafka classpath --refresh"
        raise MavenError(msg)
    return jars


def kafka_version(jars: list[Path]) -> str:
    """The Kafka version of the resolved classpath (from the kafka_2.13 jar's name)."""
    for j in jars:
        name = j.name
        if name.startswith("kafka_2.13-") and name.endswith(".jar"):
            return name[len("kafka_2.13-"):-len(".jar")]
    return "unknown"
