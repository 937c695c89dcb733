"""Kafka's default partitioner: murmur2 against Kafka's own test vectors, and the partition it picks."""

from __future__ import annotations

import pytest

from harness.kafka.partitioner import murmur2, partition_for, to_positive

# the murmur2 test vectors of Kafka's Java client (its Utils tests)
KAFKA_VECTORS = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("text", "expected"), KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(text, expected):
    assert murmur2(text.encode()) == expected


def test_murmur2_covers_every_tail_length_and_stays_a_signed_32_bit_int():
    for length in range(0, 9):
        h = murmur2(b"x" * length)
        assert -(2**31) <= h < 2**31


def test_to_positive_clears_the_sign_bit_like_kafka():
    assert to_positive(-973932308) == -973932308 & 0x7FFFFFFF
    assert to_positive(-(2**31)) == 0
    assert to_positive(479470107) == 479470107


def test_partition_for_is_to_positive_murmur2_modulo_partitions():
    for text, h in KAFKA_VECTORS.items():
        assert partition_for(text, 6) == (h & 0x7FFFFFFF) % 6
    assert partition_for("k1", 1) == 0


def test_partition_for_hashes_utf8_bytes():
    assert partition_for("ключ", 7) == to_positive(murmur2("ключ".encode())) % 7


def test_partition_for_refuses_no_partitions():
    with pytest.raises(ValueError, match="partitions"):
        partition_for("a", 0)
