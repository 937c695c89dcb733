package io.streamgauge.ks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.TaskMetadata;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.processor.StateRestoreListener;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The worker's status file: the Kafka Streams state, its transitions, and counters from Kafka Streams' own
 * metrics and listeners, written atomically (a temporary file, then a rename).
 *
 * A restarted worker (same status path) carries on its predecessor's counters and transitions: each counter
 * is the predecessor's last written value plus this process's own. A SIGKILLed process writes nothing at
 * exit, so what it counted after its last write (at most a second) is lost.
 */
final class Status implements StateRestoreListener {

    /** Counters carried from one incarnation to the next (their names in the status file). */
    static final List<String> COUNTERS = List.of("rebalances", "restored_records", "restores", "dropped_records",
        "processed", "committed", "tasks_created", "tasks_closed", "tasks_assigned", "tasks_revoked", "fenced");

    private static final int MAX_TRANSITIONS = 1000;

    private final Path path;
    private final Object fileLock = new Object();  // one writer of the file at a time
    private final ObjectMapper mapper = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private final String applicationId;
    private final String instanceId;
    private final double startedAt = now();
    private final long incarnation;
    private final Map<String, Long> base = new LinkedHashMap<>();
    private final Map<String, Long> fencedBy = new TreeMap<>();
    private final Deque<Map<String, Object>> transitions = new ArrayDeque<>();

    private final AtomicLong rebalances = new AtomicLong();
    private final AtomicLong restoredRecords = new AtomicLong();
    private final AtomicLong restores = new AtomicLong();
    private final AtomicLong fenced = new AtomicLong();
    private long tasksAssigned;
    private long tasksRevoked;
    private Set<String> activeTasks = Set.of();
    private Set<String> standbyTasks = Set.of();
    private volatile String state = KafkaStreams.State.CREATED.name();
    private volatile String error;
    private volatile boolean closedCleanly;
    private KafkaStreams streams;

    Status(final Path path, final String applicationId, final String instanceId) {
        this.path = path;
        this.applicationId = applicationId;
        this.instanceId = instanceId;
        this.incarnation = carryOn() + 1;
    }

    /** The client whose metadata (assigned tasks) {@link #write} samples. */
    synchronized void attach(final KafkaStreams streams) {
        this.streams = streams;
    }

    // -- events ------------------------------------------------------------------------------------------

    /** A KafkaStreams state change (from its state listener). */
    synchronized void transition(final KafkaStreams.State from, final KafkaStreams.State to) {
        final Map<String, Object> t = new LinkedHashMap<>();
        t.put("t", now());
        t.put("from", from.name());
        t.put("to", to.name());
        transitions.addLast(t);
        while (transitions.size() > MAX_TRANSITIONS) {
            transitions.removeFirst();
        }
        if (to == KafkaStreams.State.REBALANCING) {
            rebalances.incrementAndGet();
        }
        state = to.name();
    }

    /** A fencing handled inside Kafka Streams (see {@link FenceTap}); {@code cause} names its innermost cause. */
    synchronized void fenced(final String cause) {
        fenced.incrementAndGet();
        fencedBy.merge(cause, 1L, Long::sum);
    }

    /** The exception that stopped a stream thread (the client then shuts down: state ERROR). */
    void failed(final Throwable e) {
        final StringBuilder why = new StringBuilder(e.toString());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            why.append(" <- ").append(c);
        }
        error = why.toString();
    }

    void closed(final boolean clean) {
        closedCleanly = clean;
    }

    boolean hasFailed() {
        return error != null;
    }

    @Override
    public void onRestoreStart(final TopicPartition partition, final String store, final long start, final long end) {
        // counted by batch and at the end
    }

    @Override
    public void onBatchRestored(final TopicPartition partition, final String store, final long batchEndOffset,
                                final long numRestored) {
        restoredRecords.addAndGet(numRestored);
    }

    @Override
    public void onRestoreEnd(final TopicPartition partition, final String store, final long totalRestored) {
        restores.incrementAndGet();
    }

    // -- the file ----------------------------------------------------------------------------------------

    /**
     * Writes the status file now (tmp file + atomic rename); an I/O error is logged, not thrown.
     *
     * Kafka Streams is asked for its assignment, and the file is written, outside this object's lock, so a
     * state listener (running on a stream thread) never waits for either.
     */
    void write() {
        final Set<ThreadMetadata> threads = assignment();
        final Map<String, Object> snapshot;
        synchronized (this) {
            if (threads != null) {
                sampleTasks(threads);
            }
            snapshot = snapshot();
        }
        synchronized (fileLock) {
            final Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
            try {
                mapper.writeValue(tmp.toFile(), snapshot);
                Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (final IOException e) {
                System.out.println("streamgauge-ks: cannot write status " + path + ": " + e);
            }
        }
    }

    /** {@link #write}, for the status thread: an unexpected error is reported and the next write tries again. */
    void writeSafely() {
        try {
            write();
        } catch (final RuntimeException e) {
            System.out.println("streamgauge-ks: status write failed: " + e);
        }
    }

    private Map<String, Object> snapshot() {
        final Map<String, Long> current = new LinkedHashMap<>();
        current.put("rebalances", rebalances.get());
        current.put("restored_records", restoredRecords.get());
        current.put("restores", restores.get());
        current.put("dropped_records", MetricsTap.total("dropped-records-total"));
        current.put("processed", MetricsTap.total("process-total"));
        current.put("committed", MetricsTap.total("commit-total"));
        current.put("tasks_created", MetricsTap.total("task-created-total"));
        current.put("tasks_closed", MetricsTap.total("task-closed-total"));
        current.put("tasks_assigned", tasksAssigned);
        current.put("tasks_revoked", tasksRevoked);
        current.put("fenced", fenced.get());
        final Map<String, Object> out = new LinkedHashMap<>();
        out.put("engine", "kafka_streams");
        out.put("application_id", applicationId);
        out.put("instance_id", instanceId);
        out.put("pid", ProcessHandle.current().pid());
        out.put("incarnation", incarnation);
        out.put("started_at", startedAt);
        out.put("written_at", now());
        out.put("state", state);
        out.put("error", error);
        out.put("closed_cleanly", closedCleanly);
        out.put("transitions", new ArrayList<>(transitions));
        for (final String name : COUNTERS) {
            out.put(name, base.getOrDefault(name, 0L) + current.get(name));
        }
        out.put("fenced_by", new TreeMap<>(fencedBy));
        out.put("active_tasks", new ArrayList<>(activeTasks));
        out.put("standby_tasks", new ArrayList<>(standbyTasks));
        return out;
    }

    /** The stream threads' metadata while RUNNING or REBALANCING, else null (nothing assigned to sample). */
    private Set<ThreadMetadata> assignment() {
        final KafkaStreams client;
        synchronized (this) {
            client = streams;
        }
        if (client == null || !sampled(client.state())) {
            return null;
        }
        try {
            return client.metadataForLocalThreads();
        } catch (final RuntimeException e) {  // the state changed meanwhile: nothing to sample now
            return null;
        }
    }

    /** Compares the assigned tasks with the last sample: tasks that came and went count as assigned / revoked. */
    private void sampleTasks(final Set<ThreadMetadata> threads) {
        final Set<String> active = new TreeSet<>();
        final Set<String> standby = new TreeSet<>();
        for (final ThreadMetadata thread : threads) {
            thread.activeTasks().forEach(t -> active.add(taskName(t)));
            thread.standbyTasks().forEach(t -> standby.add(taskName(t)));
        }
        tasksAssigned += active.stream().filter(t -> !activeTasks.contains(t)).count();
        tasksRevoked += activeTasks.stream().filter(t -> !active.contains(t)).count();
        activeTasks = active;
        standbyTasks = standby;
    }

    /** States in which the assignment means something (not closing: tasks closed then are not revoked). */
    private static boolean sampled(final KafkaStreams.State state) {
        return state == KafkaStreams.State.RUNNING || state == KafkaStreams.State.REBALANCING;
    }

    private static String taskName(final TaskMetadata task) {
        return task.taskId().toString();
    }

    /** Loads the predecessor's counters and transitions; returns its incarnation (0 when there is none). */
    private long carryOn() {
        final JsonNode old;
        try {
            old = mapper.readTree(path.toFile());
        } catch (final IOException e) {
            return 0;
        }
        if (old == null || !old.isObject()) {
            return 0;
        }
        for (final String name : COUNTERS) {
            base.put(name, old.path(name).asLong(0));
        }
        for (final Map.Entry<String, JsonNode> e : old.path("fenced_by").properties()) {
            fencedBy.put(e.getKey(), e.getValue().asLong(0));
        }
        for (final JsonNode t : old.path("transitions")) {
            final Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("t", t.path("t").asDouble());
            entry.put("from", t.path("from").asText());
            entry.put("to", t.path("to").asText());
            transitions.addLast(entry);
        }
        while (transitions.size() > MAX_TRANSITIONS) {
            transitions.removeFirst();
        }
        return old.path("incarnation").asLong(0);
    }

    private static double now() {
        final Instant i = Instant.now();
        return i.getEpochSecond() + i.getNano() / 1e9;
    }
}
