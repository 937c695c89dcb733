"""streamgauge: a benchmarking and conformance harness for stream processors."""

__version__ = "0.1.0"
