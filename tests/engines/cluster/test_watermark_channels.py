"""Watermarks on the data plane: in-band events, held back by barrier alignment like records (no Kafka)."""

from __future__ import annotations

import asyncio

from engines.cluster import messages as m
from engines.cluster.aligner import BarrierAligner
from engines.cluster.taskmanager import InputGate
from engines.cluster.watermarks import WatermarkValve


def test_watermark_events_survive_the_wire():
    for msg in (m.Watermark(1_700_000_000_123), m.Watermark(-5), m.WatermarkStatus(True), m.WatermarkStatus(False)):
        frame = m.encode(msg)
        assert m._decoder.decode(frame[4:]) == msg


def drain(gate: InputGate, aligner: BarrierAligner, valve: WatermarkValve) -> list:
    """Take everything readable from the gate as a subtask does; return what it saw, in order."""

    async def run() -> list:
        seen: list = []
        while any(gate.queues[ch] and aligner.readable(ch) for ch in range(len(gate.queues))):
            ch, item = await gate.next(aligner)
            if isinstance(item, m.Buffer):
                seen += [rec[1] for rec in item.records]
            elif isinstance(item, m.Barrier):
                if aligner.on_barrier(ch, item.checkpoint_id) is not None:
                    seen.append(f"snapshot-{item.checkpoint_id}")
            elif isinstance(item, m.Watermark):
                update = valve.on_watermark(ch, item.timestamp)
                if update.watermark is not None:
                    seen.append(f"wm-{update.watermark}")
            elif isinstance(item, m.WatermarkStatus):
                update = valve.on_status(ch, item.idle)
                if update.watermark is not None:
                    seen.append(f"wm-{update.watermark}")
        return seen

    return asyncio.run(run())


def test_a_watermark_behind_a_barrier_waits_for_alignment():
    gate, aligner, valve = InputGate(2), BarrierAligner(2), WatermarkValve(2)
    gate.queues[0].extend([m.Watermark(100), m.Barrier(1), m.Watermark(900), m.Buffer([["k", "a1"]])])
    gate.queues[1].extend([m.Buffer([["k", "b1"]]), m.Watermark(500), m.Buffer([["k", "b2"]])])

    seen = drain(gate, aligner, valve)
    # channel 0 is blocked behind barrier 1: its watermark 900 is not seen, so the minimum stays 100
    assert seen == ["b1", "wm-100", "b2"]
    assert not aligner.readable(0)

    gate.queues[1].extend([m.Barrier(1), m.Watermark(700)])
    # aligned: channel 0's 900 counts now (min with channel 1's 500), then channel 1 moves on to 700
    assert drain(gate, aligner, valve) == ["snapshot-1", "wm-500", "wm-700", "a1"]


def test_an_idle_input_lets_the_others_advance_the_watermark():
    gate, aligner, valve = InputGate(2), BarrierAligner(2), WatermarkValve(2)
    gate.queues[0].extend([m.WatermarkStatus(True)])
    gate.queues[1].extend([m.Watermark(300), m.Watermark(400)])
    assert drain(gate, aligner, valve) == ["wm-300", "wm-400"]
