package io.streamgauge.ks;

import io.streamgauge.ks.Events.Agg;

import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

import java.time.Duration;
import java.util.List;
import java.util.Properties;

/**
 * The job catalogue: the Kafka Streams topology of each job of {@code scenarios/jobs.py}.
 *
 * Stores and repartition topics have explicit names, so the internal topics are stable and all start with
 * the application id: {@code <app>-sum-changelog}, {@code <app>-win-changelog},
 * {@code <app>-win-final-store-changelog} and, for the re-keyed jobs, {@code <app>-rekey-repartition}.
 */
final class Jobs {

    /** The job names this worker knows. */
    static final List<String> NAMES = List.of(
        "echo", "running_sum", "running_sum_rekeyed", "windowed_count", "sliding_sum", "windowed_count_rekeyed");

    /** A job reference may carry the catalogue's module: {@code scenarios.jobs:running_sum}. */
    private static final String MODULE_PREFIX = "scenarios.jobs:";

    private static final Serde<String> STRINGS = Serdes.String();

    private static final Duration TUMBLING_SIZE = Duration.ofMillis(5_000);
    private static final Duration SLIDING_SIZE = Duration.ofMillis(10_000);
    private static final Duration SLIDING_ADVANCE = Duration.ofMillis(5_000);
    private static final Duration GRACE = Duration.ofMillis(2_000);

    private Jobs() {
    }

    /** A job name that is not in the catalogue. */
    static final class UnknownJob extends Exception {
        private static final long serialVersionUID = 1L;

        UnknownJob(final String job) {
            super("unknown job " + job + "; this worker runs " + String.join(", ", NAMES));
        }
    }

    /** The catalogue name of a job reference ({@code running_sum} or {@code scenarios.jobs:running_sum}). */
    static String nameOf(final String job) {
        return job.startsWith(MODULE_PREFIX) ? job.substring(MODULE_PREFIX.length()) : job;
    }

    /** The topology of {@code job}, reading {@code input} and writing {@code output}. */
    static Topology build(final String job, final String input, final String output, final Properties props)
        throws UnknownJob {
        final StreamsBuilder builder = new StreamsBuilder();
        switch (nameOf(job)) {
            case "echo":
                echo(builder, input, output);
                break;
            case "running_sum":
                runningSum(source(builder, input).groupByKey(Grouped.with("sum-group", STRINGS, STRINGS)), output);
                break;
            case "running_sum_rekeyed":
                runningSum(rekeyed(source(builder, input)), output);
                break;
            case "windowed_count":
                windowed(source(builder, input).groupByKey(Grouped.with("win-group", STRINGS, STRINGS)),
                    TimeWindows.ofSizeAndGrace(TUMBLING_SIZE, GRACE), output);
                break;
            case "sliding_sum":
                windowed(source(builder, input).groupByKey(Grouped.with("win-group", STRINGS, STRINGS)),
                    TimeWindows.ofSizeAndGrace(SLIDING_SIZE, GRACE).advanceBy(SLIDING_ADVANCE), output);
                break;
            case "windowed_count_rekeyed":
                windowed(rekeyed(source(builder, input)), TimeWindows.ofSizeAndGrace(TUMBLING_SIZE, GRACE), output);
                break;
            default:
                throw new UnknownJob(job);
        }
        return builder.build(props);
    }

    /** echo: every input record to the output as it is (key, value bytes and timestamp). */
    private static void echo(final StreamsBuilder builder, final String input, final String output) {
        final Serde<byte[]> bytes = Serdes.ByteArray();
        builder.stream(input, Consumed.with(STRINGS, bytes).withName("source"))
            .to(output, Produced.with(STRINGS, bytes).withName("sink"));
    }

    private static KStream<String, String> source(final StreamsBuilder builder, final String input) {
        return builder.stream(input, Consumed.with(STRINGS, STRINGS).withName("source"));
    }

    /** Re-key by the group key g of the event's k; grouping then goes through {@code <app>-rekey-repartition}. */
    private static KGroupedStream<String, String> rekeyed(final KStream<String, String> events) {
        return events
            .selectKey((key, value) -> Events.groupOf(Events.parse(value).k), Named.as("group-key"))
            .groupByKey(Grouped.with("rekey", STRINGS, STRINGS));
    }

    /** A running count and sum per key, one output per input (its id, et, st), stamped with the input's et. */
    private static void runningSum(final KGroupedStream<String, String> grouped, final String output) {
        grouped
            .aggregate(Agg::new, (key, value, agg) -> agg.addRunning(Events.parse(value)), Named.as("sum"),
                Materialized.<String, Agg, KeyValueStore<Bytes, byte[]>>as("sum")
                    .withKeySerde(STRINGS).withValueSerde(Events.aggSerde()))
            .toStream(Named.as("sum-updates"))
            .processValues(PerRecordOutput::new, Named.as("sum-output"))
            .to(output, Produced.with(STRINGS, STRINGS).withName("sink"));
    }

    /** Windows of a key, aggregated and emitted once when they close (suppress until the window closes). */
    private static void windowed(final KGroupedStream<String, String> grouped, final TimeWindows windows,
                                 final String output) {
        grouped
            .windowedBy(windows)
            .aggregate(Agg::new, (key, value, agg) -> agg.addWindowed(Events.parse(value)), Named.as("win"),
                Materialized.<String, Agg, WindowStore<Bytes, byte[]>>as("win")
                    .withKeySerde(STRINGS).withValueSerde(Events.aggSerde()))
            .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()).withName("win-final"))
            .toStream(Named.as("win-closed"))
            .map(Jobs::perWindow, Named.as("win-output"))
            .to(output, Produced.with(STRINGS, STRINGS).withName("sink"));
    }

    private static KeyValue<String, String> perWindow(final Windowed<String> window, final Agg agg) {
        final String key = window.key();
        return KeyValue.pair(key, agg.perWindow(key, window.window().start(), window.window().end()));
    }

    /** The running aggregate's output record: its JSON, timestamped with the input's et (the record time). */
    private static final class PerRecordOutput implements FixedKeyProcessor<String, Agg, String> {
        private FixedKeyProcessorContext<String, String> context;

        @Override
        public void init(final FixedKeyProcessorContext<String, String> context) {
            this.context = context;
        }

        @Override
        public void process(final FixedKeyRecord<String, Agg> record) {
            final Agg agg = record.value();
            final FixedKeyRecord<String, String> out = record.withValue(agg.perRecord(record.key()));
            context.forward(agg.lastEt != null ? out.withTimestamp(agg.lastEt) : out);
        }
    }
}
