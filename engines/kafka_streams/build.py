"""Building streamgauge's Kafka Streams worker (``pom.xml``, ``java/``, ``resources/`` beside this file).

The build itself is the JVM peers' common one (:mod:`harness.api.javabuild`:
Maven-resolved classpath, javac, cached by content outside the tree). After
compiling, the worker is asked for every configuration name Kafka Streams
accepts (``ConfigNames.java``), which the engine checks pass-through
properties against.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.api.engine import Prerequisite
from harness.api.javabuild import SETUP, JavaBuild, JavaBuildError, JavaSources

HERE = Path(__file__).resolve().parent
MAIN_CLASS = "io.streamgauge.ks.Worker"
CONFIG_NAMES_CLASS = "io.streamgauge.ks.ConfigNames"


def _config_names_file(directory: Path) -> Path:
    return directory / "config-names.json"


def _write_config_names(build: JavaBuild) -> None:
    """Every configuration name Kafka Streams accepts, asked of Kafka Streams itself (ConfigNames.java)."""
    proc = subprocess.run(build.argv(CONFIG_NAMES_CLASS), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        msg = f"could not list Kafka Streams' configuration names (exit {proc.returncode}): {proc.stderr[-2000:]}"
        raise JavaBuildError(msg)
    _config_names_file(build.directory).write_text(proc.stdout)


SOURCES = JavaSources("kafka-streams", HERE, after_compile=_write_config_names)


def prepare(log: Callable[[str], None] = print) -> JavaBuild:
    """Resolve the classpath and compile the worker when not done yet; return the build."""
    return SOURCES.prepare(log)


def config_names() -> frozenset[str] | None:
    """The configuration names Kafka Streams accepts (from the build), None before the worker is built."""
    try:
        return frozenset(json.loads(_config_names_file(SOURCES.build_dir()).read_text()))
    except (OSError, ValueError):
        return None


def is_ready() -> bool:
    return SOURCES.is_ready()


def prerequisites() -> list[Prerequisite]:
    return SOURCES.prerequisites()


__all__ = ["MAIN_CLASS", "SETUP", "SOURCES", "config_names", "is_ready", "prepare", "prerequisites"]
