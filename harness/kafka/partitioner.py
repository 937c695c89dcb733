"""Kafka's default partitioner for keyed records, so the harness knows where a key lands.

Java's ``BuiltInPartitioner.partitionForKey`` and librdkafka's
``murmur2_random`` both send a record with a non-null key to
``toPositive(murmur2(key bytes)) % partitions``. Computing it here lets the
generator produce with an explicit partition that the workload transforms
(a lagging or idle partition) and the broker agree on.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` (``Utils.murmur2``): a signed 32-bit int, as Java returns it."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> _R
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not ``abs``, which overflows on MIN_VALUE)."""
    return n & 0x7FFFFFFF


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a record with key ``key`` (UTF-8)."""
    if partitions < 1:
        msg = f"partitions must be >= 1, found {partitions}"
        raise ValueError(msg)
    return to_positive(murmur2(key.encode())) % partitions
