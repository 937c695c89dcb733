package io.streamgauge.flink;

import io.streamgauge.flink.Wire.Agg;
import io.streamgauge.flink.Wire.Event;
import io.streamgauge.flink.Wire.Out;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Properties;

/**
 * The job catalogue as Flink DataStream jobs: KafkaSource (offsets in checkpoints, per-partition
 * bounded-out-of-orderness watermarks with idleness) -> keyBy -> keyed state or an event-time window
 * -> one KafkaSink for the output and late topics (EXACTLY_ONCE: two-phase commit on checkpoints).
 *
 * Every operator has a uid, so a savepoint restores at another parallelism.
 */
final class Jobs {

    /** The job names this client knows. */
    static final List<String> NAMES = List.of(
        "echo", "running_sum", "running_sum_rekeyed", "windowed_count", "sliding_sum", "windowed_count_rekeyed");

    private static final String MODULE_PREFIX = "scenarios.jobs:";
    static final long BOUND_MS = 2_000;
    static final long GRACE_MS = 2_000;
    static final long TUMBLING_MS = 5_000;
    static final long SLIDING_SIZE_MS = 10_000;
    static final long SLIDING_SLIDE_MS = 5_000;

    private Jobs() {
    }

    /** The catalogue name of a job reference ({@code running_sum} or {@code scenarios.jobs:running_sum}). */
    static String nameOf(final String job) {
        return job.startsWith(MODULE_PREFIX) ? job.substring(MODULE_PREFIX.length()) : job;
    }

    /** Adds {@code config}'s job to {@code env}. */
    static void build(final StreamExecutionEnvironment env, final JobConfig config) {
        final DataStream<Event> in = env.fromSource(source(config), watermarks(config), "kafka-source")
            .uid("source").name("input");
        final String output = config.topic("output");
        final DataStream<Out> out;
        switch (nameOf(config.job)) {
            case "echo":
                out = in.map(new Echo(output)).uid("echo").name("echo");
                break;
            case "running_sum":
                out = in.keyBy(new ByKey()).process(new RunningSum(output)).uid("sum").name("running-sum");
                break;
            case "running_sum_rekeyed":
                out = in.keyBy(new ByGroup()).process(new RunningSum(output)).uid("sum").name("running-sum");
                break;
            case "windowed_count":
                out = windowed(in.keyBy(new ByKey()), config, false);
                break;
            case "sliding_sum":
                out = windowed(in.keyBy(new ByKey()), config, true);
                break;
            case "windowed_count_rekeyed":
                out = windowed(in.keyBy(new ByGroup()), config, false);
                break;
            default:
                throw new IllegalArgumentException("unknown job " + config.job + "; this client runs "
                    + String.join(", ", NAMES));
        }
        out.sinkTo(sink(config)).uid("sink").name("kafka-sink");
    }

    private static KafkaSource<Event> source(final JobConfig config) {
        final var builder = KafkaSource.<Event>builder()
            .setBootstrapServers(config.bootstrap)
            .setTopics(config.topic("input"))
            .setGroupId(config.groupId)
            .setStartingOffsets(OffsetsInitializer.earliest())
            .setProperty("isolation.level", "read_committed")
            .setProperty("client.id.prefix", config.groupId)
            .setDeserializer(new EventDeserializer());
        if (config.bounded) {  // to the end offsets at the job's start; then the job finishes
            builder.setBounded(OffsetsInitializer.latest());
        }
        return builder.build();
    }

    private static WatermarkStrategy<Event> watermarks(final JobConfig config) {
        final WatermarkStrategy<Event> bounded = WatermarkStrategy.<Event>forBoundedOutOfOrderness(
            Duration.ofMillis(BOUND_MS)).withTimestampAssigner(new EventTime());
        return config.idleTimeoutMs > 0 ? bounded.withIdleness(Duration.ofMillis(config.idleTimeoutMs)) : bounded;
    }

    private static KafkaSink<Out> sink(final JobConfig config) {
        final Properties producer = new Properties();
        producer.setProperty("transaction.timeout.ms", Long.toString(config.transactionTimeoutMs));
        return KafkaSink.<Out>builder()
            .setBootstrapServers(config.bootstrap)
            .setKafkaProducerConfig(producer)
            .setRecordSerializer(new OutSerializer())
            .setDeliveryGuarantee(config.exactlyOnce() ? DeliveryGuarantee.EXACTLY_ONCE
                : DeliveryGuarantee.AT_LEAST_ONCE)
            .setTransactionalIdPrefix(config.transactionalIdPrefix)
            .build();
    }

    /** keyBy -> window (grace in the trigger) -> one result per window, and late records from the side output. */
    private static DataStream<Out> windowed(final KeyedStream<Event, String> keyed, final JobConfig config,
                                            final boolean sliding) {
        final WindowAssigner<Object, TimeWindow> assigner = sliding
            ? SlidingEventTimeWindows.of(Duration.ofMillis(SLIDING_SIZE_MS), Duration.ofMillis(SLIDING_SLIDE_MS))
            : TumblingEventTimeWindows.of(Duration.ofMillis(TUMBLING_MS));
        final OutputTag<Event> lateTag = new OutputTag<>("late", TypeInformation.of(Event.class));
        final SingleOutputStreamOperator<Out> results = keyed
            .window(assigner)
            .allowedLateness(Duration.ofMillis(GRACE_MS))
            .trigger(new FinalTrigger(GRACE_MS))
            .sideOutputLateData(lateTag)
            .aggregate(new WindowAgg(), new WindowResult(config.topic("output")))
            .uid("win").name("window");
        final long size = sliding ? SLIDING_SIZE_MS : TUMBLING_MS;
        final long slide = sliding ? SLIDING_SLIDE_MS : TUMBLING_MS;
        final boolean rekeyed = nameOf(config.job).endsWith("_rekeyed");
        final DataStream<Out> late = results.getSideOutput(lateTag)
            .flatMap(new LateRecords(config.topic("late"), size, slide, rekeyed)).uid("late").name("late");
        return results.union(late);
    }

    // -- functions ----------------------------------------------------------------------------------------

    /** Reads an input record: its value as an event, its timestamp kept. */
    static final class EventDeserializer implements KafkaRecordDeserializationSchema<Event> {
        private static final long serialVersionUID = 1L;

        @Override
        public void deserialize(final ConsumerRecord<byte[], byte[]> record, final Collector<Event> out) {
            out.collect(Wire.parse(new String(record.value(), StandardCharsets.UTF_8), record.timestamp()));
        }

        @Override
        public TypeInformation<Event> getProducedType() {
            return TypeInformation.of(Event.class);
        }
    }

    /** Writes an output record to its topic, keyed, through Kafka's default partitioner. */
    static final class OutSerializer implements KafkaRecordSerializationSchema<Out> {
        private static final long serialVersionUID = 1L;

        @Override
        public ProducerRecord<byte[], byte[]> serialize(final Out out, final KafkaSinkContext context,
                                                        final Long timestamp) {
            return new ProducerRecord<>(out.topic, null, out.ts, out.key.getBytes(StandardCharsets.UTF_8),
                out.value.getBytes(StandardCharsets.UTF_8));
        }
    }

    static final class EventTime implements SerializableTimestampAssigner<Event> {
        private static final long serialVersionUID = 1L;

        @Override
        public long extractTimestamp(final Event event, final long recordTimestamp) {
            return event.eventTime();
        }
    }

    static final class ByKey implements KeySelector<Event, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(final Event event) {
            return event.k;
        }
    }

    static final class ByGroup implements KeySelector<Event, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(final Event event) {
            return Wire.groupOf(event.k);
        }
    }

    static final class Echo implements MapFunction<Event, Out> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        Echo(final String topic) {
            this.topic = topic;
        }

        @Override
        public Out map(final Event event) {
            return new Out(topic, event.k, event.raw, event.ts);
        }
    }

    /** Per key: n := n + 1, s := s + v, one output per input, the state in Flink's keyed ValueState. */
    static final class RunningSum extends KeyedProcessFunction<String, Event, Out> {
        private static final long serialVersionUID = 1L;
        private final String topic;
        private transient ValueState<Agg> state;

        RunningSum(final String topic) {
            this.topic = topic;
        }

        @Override
        public void open(final OpenContext context) {
            state = getRuntimeContext().getState(new ValueStateDescriptor<>("sum", Agg.class));
        }

        @Override
        public void processElement(final Event event, final Context ctx, final Collector<Out> out)
            throws Exception {
            final Agg agg = state.value() == null ? new Agg() : state.value();
            agg.n += 1;
            agg.s += event.v;
            state.update(agg);
            final String key = ctx.getCurrentKey();
            out.collect(new Out(topic, key, Wire.perRecord(event, key, agg), event.ts));
        }
    }

    /** The window aggregate: n, s, the id checksum mod 2^53, and the latest send time. */
    static final class WindowAgg implements AggregateFunction<Event, Agg, Agg> {
        private static final long serialVersionUID = 1L;

        @Override
        public Agg createAccumulator() {
            return new Agg();
        }

        @Override
        public Agg add(final Event event, final Agg acc) {
            acc.n += 1;
            acc.s += event.v;
            acc.h = (acc.h + Wire.idChecksum(event.id)) & Wire.CHECKSUM_MASK;
            acc.stMax = Math.max(acc.stMax, event.st == null ? 0L : event.st);
            return acc;
        }

        @Override
        public Agg getResult(final Agg acc) {
            return acc;
        }

        @Override
        public Agg merge(final Agg a, final Agg b) {
            final Agg out = new Agg();
            out.n = a.n + b.n;
            out.s = a.s + b.s;
            out.h = (a.h + b.h) & Wire.CHECKSUM_MASK;
            out.stMax = Math.max(a.stMax, b.stMax);
            return out;
        }
    }

    /** A fired window's result record: key, bounds, aggregate; record timestamp = we. */
    static final class WindowResult extends ProcessWindowFunction<Agg, Out, String, TimeWindow> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        WindowResult(final String topic) {
            this.topic = topic;
        }

        @Override
        public void process(final String key, final Context ctx, final Iterable<Agg> aggs, final Collector<Out> out) {
            final TimeWindow w = ctx.window();
            for (final Agg agg : aggs) {
                out.collect(new Out(topic, key, Wire.perWindow(key, w.getStart(), w.getEnd(), agg), w.getEnd()));
            }
        }
    }

    /**
     * One late record per window of a record Flink's window operator put on the late side output. Flink
     * side-outputs a record only when every one of its windows is late, so each of them is named.
     */
    static final class LateRecords implements FlatMapFunction<Event, Out> {
        private static final long serialVersionUID = 1L;
        private final String topic;
        private final long size;
        private final long slide;
        private final boolean rekeyed;

        LateRecords(final String topic, final long size, final long slide, final boolean rekeyed) {
            this.topic = topic;
            this.size = size;
            this.slide = slide;
            this.rekeyed = rekeyed;
        }

        @Override
        public void flatMap(final Event event, final Collector<Out> out) {
            final long ts = event.eventTime();
            final String key = rekeyed ? Wire.groupOf(event.k) : event.k;
            final long last = ts - Math.floorMod(ts, slide);
            long first = last;
            while (first - slide > ts - size) {
                first -= slide;
            }
            for (long start = first; start <= last; start += slide) {
                out.collect(new Out(topic, key, Wire.late(event, key, start, start + size), ts));
            }
        }
    }
}
