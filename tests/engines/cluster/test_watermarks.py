"""Per-partition source watermarks and the multi-input watermark valve, no Kafka."""

from __future__ import annotations

import pytest

from engines.cluster.watermarks import NOTHING, SourceWatermarks, WatermarkUpdate, WatermarkValve


class FakeClock:
    """A wall clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def source(clock: FakeClock, partitions=(0, 1), bound_ms: int = 2000, idle_timeout_ms: int | None = 5000):
    return SourceWatermarks(partitions, bound_ms, idle_timeout_ms, clock=clock)


# -- sources ------------------------------------------------------------------------------------------
def test_a_partition_watermark_is_max_event_time_minus_bound_minus_one(clock):
    wm = source(clock, partitions=(0,))
    assert wm.partition_watermark(0) is None
    wm.on_record(0, 10_000)
    wm.on_record(0, 9_000)  # out of order: the max stays
    assert wm.partition_watermark(0) == 10_000 - 2000 - 1
    assert wm.poll() == WatermarkUpdate(watermark=7_999)


def test_the_source_watermark_is_the_min_over_its_partitions_and_waits_for_each(clock):
    wm = source(clock)
    wm.on_record(0, 20_000)
    assert wm.poll() == NOTHING  # partition 1 has no record yet: it holds the watermark back
    wm.on_record(1, 12_000)
    assert wm.poll() == WatermarkUpdate(watermark=9_999)
    wm.on_record(1, 30_000)
    assert wm.poll() == WatermarkUpdate(watermark=17_999)
    assert wm.poll() == NOTHING  # announced once


def test_the_source_watermark_never_goes_backwards(clock):
    wm = source(clock, partitions=(0,))
    wm.on_record(0, 10_000)
    assert wm.poll().watermark == 7_999
    wm.on_record(0, 5_000)
    assert wm.poll() == NOTHING
    assert wm.watermark == 7_999


def test_an_idle_partition_is_excluded_and_rejoins_with_its_next_record(clock):
    wm = source(clock)
    wm.on_record(0, 10_000)
    wm.on_record(1, 50_000)
    assert wm.poll().watermark == 7_999
    clock.now += 3
    wm.on_record(1, 60_000)  # partition 0 falls silent
    clock.now += 2.5         # 5.5 s since partition 0's last record, 2.5 s since partition 1's
    assert wm.is_idle(0) and not wm.is_idle(1)
    assert wm.poll() == WatermarkUpdate(watermark=57_999)  # partition 1 alone now
    wm.on_record(0, 11_000)   # active again, far behind: it holds the watermark, never moves it back
    assert not wm.is_idle(0)
    wm.on_record(1, 70_000)
    assert wm.poll() == NOTHING
    wm.on_record(0, 70_000)
    assert wm.poll() == WatermarkUpdate(watermark=67_999)


def test_a_silent_partition_that_never_had_a_record_goes_idle_too(clock):
    wm = source(clock)
    wm.on_record(0, 10_000)
    assert wm.poll() == NOTHING
    clock.now += 5
    wm.on_record(0, 10_000)
    assert wm.poll() == WatermarkUpdate(watermark=7_999)


def test_all_partitions_idle_declares_the_subtask_idle_until_a_record(clock):
    wm = source(clock)
    wm.on_record(0, 10_000)
    wm.on_record(1, 10_000)
    assert wm.poll() == WatermarkUpdate(watermark=7_999)
    clock.now += 5
    assert wm.poll() == WatermarkUpdate(idle=True)
    assert wm.poll() == NOTHING
    assert wm.on_record(1, 20_000) is True   # announce "active" before emitting the record
    assert wm.on_record(1, 21_000) is False  # once
    assert wm.poll() == WatermarkUpdate(watermark=18_999)  # partition 0 is still idle


def test_a_source_without_partitions_is_idle_from_the_start(clock):
    assert source(clock, partitions=()).poll() == WatermarkUpdate(idle=True)


def test_without_an_idle_timeout_a_silent_partition_holds_the_watermark_forever(clock):
    wm = source(clock, idle_timeout_ms=None)
    wm.on_record(0, 10_000)
    clock.now += 3600
    assert wm.poll() == NOTHING


def test_records_without_event_time_keep_a_partition_active_but_set_no_watermark(clock):
    wm = source(clock, partitions=(0,))
    wm.on_record(0, None)
    assert wm.poll() == NOTHING
    assert wm.partition_watermark(0) is None


# -- the valve ------------------------------------------------------------------------------------------
def test_the_valve_takes_the_min_over_channels_once_each_has_a_watermark():
    valve = WatermarkValve(3)
    assert valve.on_watermark(0, 500) == NOTHING
    assert valve.on_watermark(1, 300) == NOTHING
    assert valve.on_watermark(2, 400) == WatermarkUpdate(watermark=300)
    assert valve.on_watermark(0, 600) == NOTHING  # channel 1 is still the minimum
    assert valve.on_watermark(1, 700) == WatermarkUpdate(watermark=400)
    assert valve.watermark == 400


def test_the_valve_never_goes_backwards_nor_takes_an_older_channel_watermark():
    valve = WatermarkValve(2)
    valve.on_watermark(0, 500)
    assert valve.on_watermark(1, 500) == WatermarkUpdate(watermark=500)
    assert valve.on_watermark(1, 200) == NOTHING
    assert valve.watermarks[1] == 500
    assert valve.on_watermark(0, 900) == NOTHING
    assert valve.on_watermark(1, 800) == WatermarkUpdate(watermark=800)


def test_an_idle_channel_is_excluded_and_rejoins_without_moving_the_watermark_back():
    valve = WatermarkValve(2)
    valve.on_watermark(0, 100)
    valve.on_watermark(1, 1_000)
    assert valve.watermark == 100
    assert valve.on_status(0, idle=True) == WatermarkUpdate(watermark=1_000)
    assert valve.on_watermark(1, 2_000) == WatermarkUpdate(watermark=2_000)
    assert valve.on_status(0, idle=False) == NOTHING       # 100 < 2000: held, not moved back
    assert valve.on_watermark(1, 3_000) == NOTHING         # channel 0 holds it now
    assert valve.on_watermark(0, 2_500) == WatermarkUpdate(watermark=2_500)


def test_all_channels_idle_makes_the_task_idle_without_advancing():
    valve = WatermarkValve(2)
    valve.on_watermark(0, 100)
    valve.on_watermark(1, 200)
    assert valve.on_status(0, idle=True) == WatermarkUpdate(watermark=200)
    assert valve.on_status(1, idle=True) == WatermarkUpdate(idle=True)
    assert valve.all_idle
    assert valve.on_watermark(1, 900) == NOTHING  # an idle channel's watermark is kept, not used
    assert valve.on_status(1, idle=False) == WatermarkUpdate(watermark=900, idle=False)


def test_a_valve_needs_a_channel():
    with pytest.raises(ValueError):
        WatermarkValve(0)
