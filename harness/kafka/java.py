"""Finding the machine's Java (17 or newer) for the local broker."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from harness.errors import StreamgaugeError

MIN_JAVA = 17


class JavaError(StreamgaugeError):
    """No usable Java: missing, unrunnable or older than 17."""


@dataclass(frozen=True)
class Java:
    path: str
    major: int
    version: str


def _parse_version(text: str) -> tuple[int, str] | None:
    m = re.search(r'version "([^"]+)"', text)
    if not m:
        return None
    version = m.group(1)
    parts = re.findall(r"\d+", version)
    if not parts:
        return None
    major = int(parts[0])
    if major == 1 and len(parts) > 1:  # 1.8.0_392 style
        major = int(parts[1])
    return major, version


def find_java() -> Java:
    """The java to run Kafka with: $STREAMGAUGE_JAVA, else $JAVA_HOME/bin/java, else PATH."""
    candidates = []
    if os.environ.get("STREAMGAUGE_JAVA"):
        candidates.append(("STREAMGAUGE_JAVA", os.environ["STREAMGAUGE_JAVA"]))
    elif os.environ.get("JAVA_HOME"):
        candidates.append(("JAVA_HOME", os.path.join(os.environ["JAVA_HOME"], "bin", "java")))
    else:
        found = shutil.which("java")
        if found:
            candidates.append(("PATH", found))
    if not candidates:
        msg = (f"Java {MIN_JAVA}+ not found: no `java` on PATH and JAVA_HOME is not set. "
               f"The local Kafka provider needs it: install it (apt-get install openjdk-17-jdk-headless) "
               f"or point JAVA_HOME at a JDK {MIN_JAVA}+; or use an existing broker with "
               f"--provider external --bootstrap HOST:PORT")
        raise JavaError(msg)
    origin, path = candidates[0]
    try:
        out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        msg = f"Java from {origin} ({path}) could not be run: {e}. Point JAVA_HOME at a JDK {MIN_JAVA}+"
        raise JavaError(msg) from e
    parsed = _parse_version(out.stderr + out.stdout)
    if parsed is None:
        msg = f"Java from {origin} ({path}) did not report a version (exit {out.returncode}): {out.stderr.strip()[:200]}"
        raise JavaError(msg)
    major, version = parsed
    if major < MIN_JAVA:
        msg = (f"Java from {origin} ({path}) is version {version}; Kafka 4 needs Java {MIN_JAVA} or newer. "
               f"Point JAVA_HOME at a JDK {MIN_JAVA}+")
        raise JavaError(msg)
    return Java(path, major, version)
