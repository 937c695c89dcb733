package io.streamgauge.ks;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.metrics.JmxReporter;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.logging.log4j.LogManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * streamgauge's Kafka Streams worker: one Kafka Streams application instance running one job of the catalogue.
 *
 * Usage: {@code java -cp <classes>:<classpath> io.streamgauge.ks.Worker CONFIG.json} (see {@link WorkerConfig}).
 * It prints {@code streamgauge-ks: state <NEW>} on every state change, keeps the status file up to date (see
 * {@link Status}), and exits
 * <ul>
 *   <li>0 after SIGTERM when Kafka Streams closed cleanly within the close timeout,</li>
 *   <li>1 when a stream thread failed (the client shuts down: state ERROR), startup failed, or the close
 *       timed out,</li>
 *   <li>2 for a bad command line, config file, job name or Kafka Streams property.</li>
 * </ul>
 */
public final class Worker {

    static final int EXIT_OK = 0;
    static final int EXIT_FAILED = 1;
    static final int EXIT_USAGE = 2;

    private static final String PREFIX = "streamgauge-ks: ";
    private static final long STATUS_EVERY_MS = 1_000;

    private final WorkerConfig config;
    private final KafkaStreams streams;
    private final Status status;
    private final Logger log = LoggerFactory.getLogger(Worker.class);
    private final CountDownLatch finished = new CountDownLatch(1);
    private final ScheduledExecutorService statusThread = Executors.newSingleThreadScheduledExecutor(r -> {
        final Thread t = new Thread(r, "streamgauge-status");
        t.setDaemon(true);
        return t;
    });
    private boolean closed;
    private boolean closedCleanly;

    private Worker(final WorkerConfig config, final KafkaStreams streams, final Status status) {
        this.config = config;
        this.streams = streams;
        this.status = status;
    }

    public static void main(final String[] args) {
        System.exit(run(args));
    }

    /**
     * Runs the worker until it stops and returns the exit code. Once Kafka Streams exists, the JVM always
     * ends through the shutdown hook, which closes it, writes the final status and halts with the exit code.
     */
    static int run(final String[] args) {
        if (args.length != 1) {
            say("usage: java -cp CLASSPATH io.streamgauge.ks.Worker CONFIG.json");
            return EXIT_USAGE;
        }
        final WorkerConfig config;
        final Topology topology;
        final Properties props;
        try {
            config = WorkerConfig.load(Path.of(args[0]), Events.MAPPER);
            props = streamsProperties(config);
            topology = Jobs.build(config.job, config.inputTopic, config.outputTopic, props);
        } catch (final WorkerConfig.Invalid | Jobs.UnknownJob e) {
            say(e.getMessage());
            return EXIT_USAGE;
        }
        final Status status = new Status(Path.of(config.statusPath), config.applicationId, config.instanceId);
        if (!FenceTap.install(status::fenced)) {
            say("log4j-core is not the logging backend: fencings will not be counted");
        }
        final KafkaStreams streams;
        try {
            streams = new KafkaStreams(topology, props);
        } catch (final KafkaException e) {  // ConfigException, StreamsException: a property Kafka Streams refuses
            say("Kafka Streams refused the configuration: " + e.getMessage());
            return EXIT_USAGE;
        }
        return new Worker(config, streams, status).runUntilStopped(topology);
    }

    /** The Kafka Streams configuration: the worker's settings, then {@code properties} verbatim. */
    static Properties streamsProperties(final WorkerConfig config) {
        final Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, config.applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, config.bootstrap);
        p.put(StreamsConfig.CLIENT_ID_CONFIG, config.instanceId);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
            config.exactlyOnce() ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.STATE_DIR_CONFIG, config.stateDir);
        if (config.staticMembership) {
            p.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG), config.groupInstanceId());
        } else if (config.leaveGroupOnClose) {  // Kafka Streams' consumers do not leave the group when closed
            p.put(StreamsConfig.mainConsumerPrefix("internal.leave.group.on.close"), "true");
        }
        p.putAll(config.properties);
        p.put(StreamsConfig.METRIC_REPORTER_CLASSES_CONFIG,
            reporters(config.properties.get(StreamsConfig.METRIC_REPORTER_CLASSES_CONFIG)));
        return p;
    }

    /** The metric reporters: the given ones (JMX by default) and {@link MetricsTap}, which the status needs. */
    private static String reporters(final String given) {
        final String tap = MetricsTap.class.getName();
        if (given == null) {
            return JmxReporter.class.getName() + "," + tap;
        }
        return given.contains(tap) ? given : given.isBlank() ? tap : given + "," + tap;
    }

    private int runUntilStopped(final Topology topology) {
        log.info("job {} ({}), topology:\n{}", Jobs.nameOf(config.job), config.guarantee, topology.describe());
        status.attach(streams);
        streams.setStateListener(this::onStateChange);
        streams.setGlobalStateRestoreListener(status);
        streams.setUncaughtExceptionHandler(this::onThreadFailure);
        Runtime.getRuntime().addShutdownHook(new Thread(this::onShutdownSignal, "streamgauge-shutdown"));
        status.write();
        statusThread.scheduleWithFixedDelay(status::writeSafely, STATUS_EVERY_MS, STATUS_EVERY_MS,
            TimeUnit.MILLISECONDS);
        try {
            streams.start();
        } catch (final RuntimeException e) {
            status.failed(e);
            say("Kafka Streams did not start: " + e);
            return exitCode(close());
        }
        awaitFinished();  // ERROR after a failed stream thread (or NOT_RUNNING, closed by the shutdown hook)
        return exitCode(close());
    }

    /** 0 when Kafka Streams closed cleanly and no stream thread failed, else 1. */
    private int exitCode(final boolean closedCleanly) {
        return closedCleanly && !status.hasFailed() ? EXIT_OK : EXIT_FAILED;
    }

    private void onStateChange(final KafkaStreams.State to, final KafkaStreams.State from) {
        status.transition(from, to);
        say("state " + to);
        requestStatusWrite();
        if (to == KafkaStreams.State.ERROR || to == KafkaStreams.State.NOT_RUNNING) {
            finished.countDown();
        }
    }

    private StreamThreadExceptionResponse onThreadFailure(final Throwable e) {
        status.failed(e);
        log.error("stream thread failed; shutting this Kafka Streams client down", e);
        say("stream thread failed: " + e);
        return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    }

    private void requestStatusWrite() {
        try {
            statusThread.execute(status::writeSafely);
        } catch (final RejectedExecutionException e) {
            // closing: the final status is written by close()
        }
    }

    private void awaitFinished() {
        try {
            finished.await();
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * The JVM is ending: SIGTERM or SIGINT, or the main thread's System.exit after a failure. Closes Kafka
     * Streams within the close timeout (or waits for the main thread's close), writes the final status and
     * halts with {@link #exitCode}: 0 after a clean close, 1 after a failure or a close that timed out
     * (rather than the JVM's 143 for SIGTERM).
     */
    private void onShutdownSignal() {
        if (!isClosed()) {
            say("shutdown requested: closing Kafka Streams (timeout " + config.closeTimeoutMs + " ms)");
        }
        final boolean clean = close();
        final int code = exitCode(clean);
        say("closed " + (clean ? "cleanly" : "with a timeout or an error") + "; exit " + code);
        System.out.flush();
        LogManager.shutdown();  // log4j's own shutdown hook is disabled (log4j2.properties): flush it here
        Runtime.getRuntime().halt(code);
    }

    private synchronized boolean isClosed() {
        return closed;
    }

    /** Closes the client once (idempotent, from the main thread or the shutdown hook); true when clean. */
    private synchronized boolean close() {
        if (closed) {
            return closedCleanly;
        }
        closed = true;
        final KafkaStreams.CloseOptions options = new KafkaStreams.CloseOptions()
            .timeout(Duration.ofMillis(config.closeTimeoutMs))
            .leaveGroup(config.leaveGroupOnClose && config.staticMembership);
        try {
            closedCleanly = streams.close(options);
        } catch (final RuntimeException e) {
            log.error("closing Kafka Streams failed", e);
            closedCleanly = false;
        }
        statusThread.shutdown();
        awaitStatusThread();
        status.closed(closedCleanly);
        status.write();
        return closedCleanly;
    }

    private void awaitStatusThread() {
        try {
            if (!statusThread.awaitTermination(5, TimeUnit.SECONDS)) {
                say("status writer did not stop within 5 s");
            }
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static void say(final String line) {
        System.out.println(PREFIX + line);
    }
}
