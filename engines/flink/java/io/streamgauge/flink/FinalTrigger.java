package io.streamgauge.flink;

import org.apache.flink.streaming.api.windowing.triggers.Trigger;
import org.apache.flink.streaming.api.windowing.triggers.TriggerResult;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;

/**
 * Emit-final with grace folded into the trigger: a window fires once, and is purged, when the watermark
 * reaches {@code we - 1 + grace}. Flink's own event-time trigger fires at {@code we - 1} and again on each
 * record that arrives within allowed lateness; with this trigger and {@code allowedLateness(grace)} a
 * window has one result, and a record is late for it exactly when {@code we - 1 + grace <= watermark}
 * (Flink's {@code isWindowLate}), the catalogue's watermark rule.
 */
public final class FinalTrigger extends Trigger<Object, TimeWindow> {
    private static final long serialVersionUID = 1L;

    private final long graceMs;

    public FinalTrigger(final long graceMs) {
        this.graceMs = graceMs;
    }

    private long fireAt(final TimeWindow window) {
        return window.maxTimestamp() + graceMs;
    }

    @Override
    public TriggerResult onElement(final Object element, final long timestamp, final TimeWindow window,
                                   final TriggerContext ctx) {
        ctx.registerEventTimeTimer(fireAt(window));
        return TriggerResult.CONTINUE;
    }

    @Override
    public TriggerResult onEventTime(final long time, final TimeWindow window, final TriggerContext ctx) {
        return time == fireAt(window) ? TriggerResult.FIRE_AND_PURGE : TriggerResult.CONTINUE;
    }

    @Override
    public TriggerResult onProcessingTime(final long time, final TimeWindow window, final TriggerContext ctx) {
        return TriggerResult.CONTINUE;
    }

    @Override
    public void clear(final TimeWindow window, final TriggerContext ctx) {
        ctx.deleteEventTimeTimer(fireAt(window));
    }

    @Override
    public String toString() {
        return "FinalTrigger(grace=" + graceMs + "ms)";
    }
}
