"""The seeded schedule and its disorder transforms (no Kafka needed)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.kafka.partitioner import partition_for
from harness.workload.events import KeySkew
from harness.workload.schedule import Schedule, Send
from harness.workload.transforms import Disorder, Idle, Lagging, Late

T0 = 1_700_000_000.0
T0_MS = int(T0 * 1000)


@pytest.fixture
def schedule_factory():
    """Build a schedule of 1000 events/s for 10 s over 50 keys, seed 7, with the transforms given."""
    def make(**overrides: Any) -> Schedule:
        fields: dict[str, Any] = {"seed": 7, "keys": 50, "rate": 1000.0, "duration_s": 10.0, "t0": T0, "partitions": 4}
        fields.update(overrides)
        return Schedule(**fields)
    return make


def sends_by_id(schedule: Schedule) -> dict[int, Send]:
    return {send.event["id"]: send for send in schedule}


def scheduled_ms(schedule: Schedule, event_id: int) -> int:
    return schedule.scheduled_us(event_id) // 1000


ALL = {"disorder": Disorder(0.1, 2000), "late": Late(0.01, 60_000), "lagging": Lagging(0, 5000),
       "idle": Idle(1, 2000, 3000)}


def test_the_same_seed_gives_the_same_sends(schedule_factory):
    first = list(schedule_factory(**ALL))
    second = list(schedule_factory(**ALL))

    assert first == second
    assert len(first) == 10_000


def test_another_seed_gives_other_content(schedule_factory):
    a = [(s.event["k"], s.event["v"]) for s in schedule_factory(seed=7)]
    b = [(s.event["k"], s.event["v"]) for s in schedule_factory(seed=8)]

    assert a != b


def test_transforms_change_neither_ids_keys_nor_values(schedule_factory):
    plain = sends_by_id(schedule_factory())
    transformed = sends_by_id(schedule_factory(**ALL))

    assert plain.keys() == transformed.keys() == set(range(10_000))
    for i, send in plain.items():
        assert (send.event["k"], send.event["v"]) == (transformed[i].event["k"], transformed[i].event["v"])


def test_adding_a_transform_does_not_change_another_transforms_choices(schedule_factory):
    late_only = sends_by_id(schedule_factory(late=Late(0.05, 60_000)))
    with_disorder = sends_by_id(schedule_factory(late=Late(0.05, 60_000), disorder=Disorder(0.3, 2000)))
    disorder_only = sends_by_id(schedule_factory(disorder=Disorder(0.3, 2000)))

    assert {i for i, s in late_only.items() if s.event.get("dl")} == \
        {i for i, s in with_disorder.items() if s.event.get("dl")}
    moved = {i for i, s in disorder_only.items() if s.event["et"] != scheduled_ms(schedule_factory(), i)}
    moved_too = {i for i, s in with_disorder.items()
                 if not s.event.get("dl") and s.event["et"] != scheduled_ms(schedule_factory(), i)}
    assert moved_too == moved - {i for i, s in with_disorder.items() if s.event.get("dl")}


def test_without_transforms_event_time_is_the_scheduled_time(schedule_factory):
    schedule = schedule_factory()

    for send in schedule:
        assert send.event["et"] == send.at_us // 1000 == scheduled_ms(schedule, send.event["id"])
        assert send.event["st"] == send.at_us
        assert "dl" not in send.event


def test_disorder_moves_about_the_fraction_back_by_at_most_max_delay(schedule_factory):
    schedule = schedule_factory(disorder=Disorder(0.2, 2000))

    delays = [scheduled_ms(schedule, s.event["id"]) - s.event["et"] for s in schedule]

    moved = [d for d in delays if d]
    assert 0.17 < len(moved) / len(delays) < 0.23
    assert all(0 < d <= 2000 for d in moved)
    assert max(moved) > 1500 and min(moved) < 500  # spread over (0, max_delay]
    assert all(s.at_us == schedule.scheduled_us(s.event["id"]) for s in schedule)  # sent on time


def test_late_marks_exactly_the_definitely_late_events(schedule_factory):
    schedule = schedule_factory(late=Late(0.01, 60_000, after_ms=0), disorder=Disorder(0.5, 2000))

    sends = list(schedule)
    late = [s for s in sends if s.event.get("dl") == 1]

    assert 70 < len(late) < 130
    assert all(s.event["et"] == scheduled_ms(schedule, s.event["id"]) - 60_000 for s in late)
    on_time = [s for s in sends if "dl" not in s.event]
    assert all(scheduled_ms(schedule, s.event["id"]) - s.event["et"] <= 2000 for s in on_time)
    assert {s.event.get("dl") for s in sends} == {None, 1}


def test_every_send_names_kafkas_partition_of_its_key(schedule_factory):
    for send in schedule_factory():
        assert send.partition == partition_for(send.event["k"], 4)


def test_without_partitions_the_producer_partitions(schedule_factory):
    assert {s.partition for s in schedule_factory(partitions=None)} == {None}


def test_a_lagging_partition_has_every_event_time_moved_back(schedule_factory):
    schedule = schedule_factory(lagging=Lagging(2, 5000))

    for send in schedule:
        expected = scheduled_ms(schedule, send.event["id"]) - (5000 if send.partition == 2 else 0)
        assert send.event["et"] == expected


def test_late_events_of_a_lagging_partition_lag_too(schedule_factory):
    schedule = schedule_factory(lagging=Lagging(0, 5000), late=Late(0.05, 60_000))

    late_on_lagging = [s for s in schedule if s.event.get("dl") and s.partition == 0]

    assert late_on_lagging
    assert all(s.event["et"] == scheduled_ms(schedule, s.event["id"]) - 65_000 for s in late_on_lagging)


def test_an_idle_partition_sends_nothing_then_catches_up_with_old_event_times(schedule_factory):
    schedule = schedule_factory(idle=Idle(1, 2000, 3000))
    start_us, end_us = int(T0 * 1e6) + 2_000_000, int(T0 * 1e6) + 5_000_000

    sends = list(schedule)

    held = [s for s in sends if s.partition == 1 and start_us <= schedule.scheduled_us(s.event["id"]) < end_us]
    assert len(held) > 100
    assert all(s.at_us == end_us and s.event["st"] == end_us for s in held)
    assert all(s.event["et"] == scheduled_ms(schedule, s.event["id"]) for s in held)  # old event times
    assert not [s for s in sends if s.partition == 1 and start_us <= s.at_us < end_us]  # silent while idle
    assert [s.event["id"] for s in held] == sorted(s.event["id"] for s in held)  # in order
    assert [s.at_us for s in sends] == sorted(s.at_us for s in sends)  # send order
    burst_at = sends.index(held[0])
    assert sends[burst_at:burst_at + len(held)] == held  # one burst
    others = [s for s in sends if s not in held]
    assert all(s.at_us == schedule.scheduled_us(s.event["id"]) for s in others)
    assert Counter(s.event["id"] for s in sends) == Counter(range(10_000))


def test_an_idle_period_reaching_the_end_of_the_load_is_still_released(schedule_factory):
    schedule = schedule_factory(duration_s=1.0, idle=Idle(3, 500, 500))

    sends = list(schedule)

    assert len(sends) == 1000
    assert sends[-1].at_us == int(T0 * 1e6) + 1_000_000 and sends[-1].partition == 3


def test_zipf_skew_still_works(schedule_factory):
    counts = Counter(s.event["k"] for s in schedule_factory(skew=KeySkew("zipf", 1.1)))

    assert counts.most_common(1)[0][0] == "k0"


@pytest.mark.parametrize("name", ["lagging", "idle"])
def test_a_transform_that_names_a_partition_needs_the_partition_count(schedule_factory, name):
    with pytest.raises(ConfigError, match="partitions"):
        schedule_factory(partitions=None, **{name: ALL[name]})


def test_a_transform_that_names_a_missing_partition_is_refused(schedule_factory):
    with pytest.raises(ConfigError, match="below the topic's 4 partitions, found 4"):
        schedule_factory(lagging=Lagging(4, 100))


def test_no_event_is_made_late_before_the_warm_up(schedule_factory):
    schedule = schedule_factory(late=Late(0.05, 60_000, after_ms=2000))
    first = schedule.scheduled_us(0)
    late = [s for s in schedule if s.event.get("dl") == 1]
    assert late, "some events after the warm-up are late"
    assert all(s.at_us - first >= 2_000_000 for s in late)


def test_on_a_fixed_event_epoch_two_runs_write_the_same_events_whenever_they_start(schedule_factory):
    epoch = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    first = list(schedule_factory(event_epoch_ms=epoch, t0=T0 + 0.0004, disorder=Disorder(0.2, 1500)))
    later = list(schedule_factory(event_epoch_ms=epoch, t0=T0 + 86_400.0009, disorder=Disorder(0.2, 1500)))

    def content(sends: list[Send]) -> list[tuple]:
        return [(s.partition, s.event["id"], s.event["k"], s.event["v"], s.event["et"]) for s in sends]

    assert content(first) == content(later)
    assert [s.event["st"] for s in first] != [s.event["st"] for s in later]  # latency stays on the wall clock
    undisturbed = list(schedule_factory(event_epoch_ms=epoch))
    assert [s.event["et"] for s in undisturbed[:3]] == [epoch, epoch + 1, epoch + 2]
