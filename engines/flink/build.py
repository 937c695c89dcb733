"""Building and launching streamgauge's Apache Flink peer from Maven jars alone (no flink-dist).

``pom.xml`` resolves Flink (runtime, streaming, clients, RocksDB state
backend), the Kafka connector and log4j; ``java/`` holds the job catalogue
and the job client, compiled at first use and cached by content
(:mod:`harness.api.javabuild`). The cluster's processes are started the way
Flink's own scripts start them: the entry point classes with ``--configDir``
(Flink 2.x reads ``config.yaml`` only), the module flags Flink's
``env.java.opts.all`` sets for Java 17, and the memory flags and dynamic
properties ``BashJavaUtils`` computes from the configuration.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.api.engine import Prerequisite
from harness.api.javabuild import SETUP, JavaBuild, JavaBuildError, JavaSources

HERE = Path(__file__).resolve().parent
SOURCES = JavaSources("flink", HERE)

JOBMANAGER_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
SUBMIT_CLASS = "io.streamgauge.flink.Submit"
BASH_JAVA_UTILS = "org.apache.flink.runtime.util.bash.BashJavaUtils"
RESULT_PREFIX = "BASH_JAVA_UTILS_EXEC_RESULT:"

#: Flink's env.java.opts.all for Java 17+ (its config.yaml): the JDK internals Flink reaches into
JAVA17_FLAGS: tuple[str, ...] = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
)


def prepare(log: Callable[[str], None] = print) -> JavaBuild:
    """Resolve the classpath and compile the job sources when not done yet; return the build."""
    return SOURCES.prepare(log)


def is_ready() -> bool:
    return SOURCES.is_ready()


def prerequisites() -> list[Prerequisite]:
    return SOURCES.prerequisites()


def flink_version(build: JavaBuild) -> str:
    """Flink's version, from the flink-runtime jar on the classpath."""
    return build.jar_version("flink-runtime")


def connector_version(build: JavaBuild) -> str:
    """The Kafka connector's version, from its jar on the classpath."""
    return build.jar_version("flink-connector-kafka")


def resource_params(build: JavaBuild, conf_dir: Path, role: str) -> tuple[list[str], list[str]]:
    """(JVM memory flags, dynamic properties) for a ``jobmanager`` or ``taskmanager`` under ``conf_dir``,
    as Flink's scripts get them from BashJavaUtils."""
    command = {"jobmanager": "GET_JM_RESOURCE_PARAMS", "taskmanager": "GET_TM_RESOURCE_PARAMS"}[role]
    argv = build.argv(BASH_JAVA_UTILS, command, "--configDir", str(conf_dir))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        msg = f"flink: could not compute the {role}'s memory settings ({BASH_JAVA_UTILS}): {e}"
        raise JavaBuildError(msg) from e
    results = [line[len(RESULT_PREFIX):] for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or len(results) < 2:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        msg = (f"flink: the {role}'s memory settings could not be computed from {conf_dir / 'config.yaml'} "
               f"(exit {proc.returncode}):\n{tail}")
        raise JavaBuildError(msg)
    return results[0].split(), results[1].split()


__all__ = ["JAVA17_FLAGS", "JOBMANAGER_CLASS", "SETUP", "SOURCES", "SUBMIT_CLASS", "TASKMANAGER_CLASS",
           "connector_version", "flink_version", "is_ready", "prepare", "prerequisites", "resource_params"]
