"""What an engine package may use of the harness, re-exported: engines import only ``harness.api``.

Errors, the process supervisor, topic administration, the cache directory,
and the Java and Maven helpers a JVM peer needs. Keeping the surface here
means a change inside the harness does not reach into every engine.
"""

from __future__ import annotations

from harness.errors import CapabilityError, ConfigError, ProcessError, StreamgaugeError
from harness.kafka.client import admin, create_topics, delete_topics, list_topics, read_all, stable_and_end_offsets
from harness.kafka.coordinator import coordinator_queries
from harness.kafka.java import Java, JavaError, find_java
from harness.kafka.local import free_ports
from harness.kafka.maven import MavenError, resolve_classpath
from harness.paths import cache_dir
from harness.proc import SUPERVISOR, ManagedProcess, wait_until

__all__ = [
    "SUPERVISOR", "CapabilityError", "ConfigError", "Java", "JavaError", "ManagedProcess", "MavenError",
    "ProcessError", "StreamgaugeError", "admin", "cache_dir", "coordinator_queries", "create_topics", "delete_topics", "find_java",
    "free_ports",
    "list_topics", "read_all", "resolve_classpath", "stable_and_end_offsets", "wait_until",
]
