"""Consumer groups as engines of the embedded model see them: is the group stable with every member
holding its partitions, and how much input has it yet to commit."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec


def group_stable(client: AdminClient, group: str, members: int, partitions: int,
                 counted: Callable[[str], bool] = lambda topic: True) -> tuple[bool, str]:
    """(ready, how it stands): the group is stable, has ``members`` members and ``partitions`` assigned.

    Only partitions of topics ``counted`` accepts are counted (an engine may
    assign itself others, such as changelogs it restores from).
    """
    try:
        desc = client.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    except Exception as e:  # noqa: BLE001 - the group may not exist yet
        return False, f"group not described yet: {e}"
    assigned = sum(1 for m in desc.members if m.assignment for tp in m.assignment.topic_partitions
                   if counted(tp.topic))
    ok = desc.state == ConsumerGroupState.STABLE and len(desc.members) == members and assigned == partitions
    return ok, f"group {desc.state}, {len(desc.members)}/{members} members, {assigned}/{partitions} partitions assigned"


def group_lag(client: AdminClient, group: str, topic: str, partitions: int) -> int | None:
    """Records of ``topic`` that ``group`` has not committed yet (None when unknown).

    Meant for the input topic: internal topics are transactional under
    exactly_once, and their commit markers make end - committed a poor count.
    """
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    try:
        fut = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])
        committed = {tp.partition: tp.offset for tp in fut[group].result(timeout=10).topic_partitions}
        ends = client.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=10)
        return sum(max(0, f.result(timeout=10).offset - max(0, committed.get(tp.partition, 0)))
                   for tp, f in ends.items())
    except Exception:  # noqa: BLE001 - unknown lag is reported as None
        return None
