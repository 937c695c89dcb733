"""The harness's own speed, as ratios to the raw client ceiling measured in the same run (``bin/sg-bench``)."""
