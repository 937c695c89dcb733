"""The root of streamgauge's exceptions.

Every error a user can cause or fix (bad input, a missing tool, a broker that
will not start) is a :class:`StreamgaugeError`; the CLI prints its message and
exits with its ``exit_code`` instead of a traceback.
"""

from __future__ import annotations


class StreamgaugeError(Exception):
    """An error with a message meant for the user."""

    exit_code = 2


class ConfigError(StreamgaugeError):
    """Bad input: a file, a flag or a value that cannot be used as given."""


class CapabilityError(StreamgaugeError):
    """Something asked of a provider or engine that it cannot do."""


class ProcessError(StreamgaugeError):
    """A process the harness started failed or did not become ready."""
