"""Key groups: keyed state is sharded into max-parallelism key groups.

A key's group is murmur3_32 of its UTF-8 bytes modulo the max parallelism
(128); a subtask owns a contiguous range of key groups, so rescaling moves
whole groups. Never Python's salted ``hash()``.
"""

from __future__ import annotations

MAX_PARALLELISM = 128

_C1, _C2 = 0xCC9E2D51, 0x1B873593
_MASK = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit, unsigned."""
    h = seed & _MASK
    n = len(data)
    full = n - n % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = _rotl((k * _C1) & _MASK, 15) * _C2 & _MASK
        h = (_rotl(h ^ k, 13) * 5 + 0xE6546B64) & _MASK
    tail = data[full:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = _rotl((k * _C1) & _MASK, 15) * _C2 & _MASK
        h ^= k
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def key_group(key: str, max_parallelism: int = MAX_PARALLELISM) -> int:
    return murmur3_32(key.encode()) % max_parallelism


def operator_index(group: int, parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> int:
    """The subtask that owns key group ``group`` (contiguous ranges, as Flink assigns them)."""
    return group * parallelism // max_parallelism


def key_group_range(subtask: int, parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> range:
    """The key groups subtask ``subtask`` of ``parallelism`` owns."""
    start = (subtask * max_parallelism + parallelism - 1) // parallelism
    end = ((subtask + 1) * max_parallelism + parallelism - 1) // parallelism
    return range(start, end)


def subtask_for_key(key: str, parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> int:
    return operator_index(key_group(key, max_parallelism), parallelism, max_parallelism)


def inherited_sinks(restored_from: set[int], subtask: int, parallelism: int) -> set[int]:
    """The sink subtasks of a checkpoint that subtask ``subtask`` of ``parallelism`` takes over, besides its own:
    those a scale-down leaves without a successor of their index (subtask ``j >= parallelism`` goes to
    ``j % parallelism``), so their write-ahead logs are committed and their transactional ids fenced."""
    return {j for j in restored_from if j >= parallelism and j % parallelism == subtask}
