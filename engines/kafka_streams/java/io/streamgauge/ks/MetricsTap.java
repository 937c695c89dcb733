package io.streamgauge.ks;

import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.metrics.KafkaMetric;
import org.apache.kafka.common.metrics.MetricsReporter;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A metrics reporter (configured through {@code metric.reporters}) that keeps totals of a few Kafka Streams
 * metrics across the removal of their sensors.
 *
 * Task-level metrics disappear when a task is closed (migrated away, closed dirty after a fencing, or at
 * shutdown) and thread-level ones when a thread ends, so summing {@code KafkaStreams.metrics()} would go
 * backwards. Here a removed metric's last value is added to a retired total when it is removed, and
 * {@link #total} is that plus the live metrics' values. Kafka instantiates this class once per client
 * (the Streams client and each of its consumers, producers and admin clients); all instances share the
 * static maps and keep only the metrics of the Streams groups.
 */
public final class MetricsTap implements MetricsReporter {

    static final String THREAD_GROUP = "stream-thread-metrics";
    static final String TASK_GROUP = "stream-task-metrics";

    private static final Set<String> THREAD_METRICS =
        Set.of("process-total", "commit-total", "task-created-total", "task-closed-total");
    private static final Set<String> TASK_METRICS = Set.of("dropped-records-total");

    private static final Map<MetricName, KafkaMetric> LIVE = new ConcurrentHashMap<>();
    private static final Map<String, Double> RETIRED = new ConcurrentHashMap<>();

    /** The total of metric {@code name} over every thread or task this process ever had. */
    static long total(final String name) {
        double sum = RETIRED.getOrDefault(name, 0.0);
        for (final Map.Entry<MetricName, KafkaMetric> e : LIVE.entrySet()) {
            if (e.getKey().name().equals(name)) {
                sum += valueOf(e.getValue());
            }
        }
        return (long) sum;
    }

    private static boolean tracked(final MetricName name) {
        return THREAD_GROUP.equals(name.group()) && THREAD_METRICS.contains(name.name())
            || TASK_GROUP.equals(name.group()) && TASK_METRICS.contains(name.name());
    }

    private static double valueOf(final KafkaMetric metric) {
        final Object value = metric.metricValue();
        if (value instanceof Number) {
            final double d = ((Number) value).doubleValue();
            return Double.isFinite(d) ? d : 0.0;
        }
        return 0.0;
    }

    @Override
    public void init(final List<KafkaMetric> metrics) {
        metrics.forEach(this::metricChange);
    }

    @Override
    public void metricChange(final KafkaMetric metric) {
        if (tracked(metric.metricName())) {
            final KafkaMetric previous = LIVE.put(metric.metricName(), metric);
            if (previous != null && previous != metric) {
                RETIRED.merge(previous.metricName().name(), valueOf(previous), Double::sum);
            }
        }
    }

    @Override
    public void metricRemoval(final KafkaMetric metric) {
        if (tracked(metric.metricName()) && LIVE.remove(metric.metricName(), metric)) {
            RETIRED.merge(metric.metricName().name(), valueOf(metric), Double::sum);
        }
    }

    @Override
    public void close() {
        // the totals outlive the clients: a closed client's metrics were retired by metricRemoval
    }

    @Override
    public void configure(final Map<String, ?> configs) {
        // nothing to configure
    }
}
