package io.streamgauge.ks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The worker's configuration: one JSON file written by streamgauge's deployer.
 *
 * <pre>
 * {"bootstrap": "host:port", "application_id": "...", "instance_id": "instance-0",
 *  "job": "running_sum", "guarantee": "exactly_once" | "at_least_once",
 *  "topics": {"input": "...", "output": "...", "late": "..."},
 *  "state_dir": "...", "status_path": "...",
 *  "properties": {"name": "value", ...}, "static_membership": false,
 *  "leave_group_on_close": false, "close_timeout_ms": 30000}
 * </pre>
 *
 * The last three are optional; {@code properties} too (empty when absent).
 */
final class WorkerConfig {

    /** The configuration cannot be used: the message names every problem. */
    static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;

        Invalid(final String message) {
            super(message);
        }
    }

    final String bootstrap;
    final String applicationId;
    final String instanceId;
    final String job;
    final String guarantee;
    final String inputTopic;
    final String outputTopic;
    final String stateDir;
    final String statusPath;
    final Map<String, String> properties;
    final boolean staticMembership;
    final boolean leaveGroupOnClose;
    final long closeTimeoutMs;

    private WorkerConfig(final JsonNode root, final List<String> problems) {
        bootstrap = text(root, "bootstrap", problems);
        applicationId = text(root, "application_id", problems);
        instanceId = text(root, "instance_id", problems);
        job = text(root, "job", problems);
        guarantee = text(root, "guarantee", problems);
        final JsonNode topics = root.path("topics");
        inputTopic = text(topics, "input", problems, "topics.input");
        outputTopic = text(topics, "output", problems, "topics.output");
        stateDir = text(root, "state_dir", problems);
        statusPath = text(root, "status_path", problems);
        properties = stringMap(root.path("properties"), problems);
        staticMembership = flag(root, "static_membership", problems);
        leaveGroupOnClose = flag(root, "leave_group_on_close", problems);
        closeTimeoutMs = root.path("close_timeout_ms").asLong(30_000L);
        if (guarantee != null && !guarantee.equals("exactly_once") && !guarantee.equals("at_least_once")) {
            problems.add("guarantee must be exactly_once or at_least_once (found " + guarantee + ")");
        }
    }

    /** Reads and validates {@code path}. */
    static WorkerConfig load(final Path path, final ObjectMapper mapper) throws Invalid {
        final JsonNode root;
        try {
            root = mapper.readTree(path.toFile());
        } catch (final IOException e) {
            throw new Invalid("cannot read config " + path + ": " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw new Invalid("config " + path + " is not a JSON object");
        }
        final List<String> problems = new ArrayList<>();
        final WorkerConfig config = new WorkerConfig(root, problems);
        if (!problems.isEmpty()) {
            throw new Invalid("config " + path + ": " + String.join("; ", problems));
        }
        return config;
    }

    boolean exactlyOnce() {
        return "exactly_once".equals(guarantee);
    }

    /** The static member id of this instance's main consumer (KIP-345). */
    String groupInstanceId() {
        return applicationId + "-" + instanceId;
    }

    private static String text(final JsonNode node, final String field, final List<String> problems) {
        return text(node, field, problems, field);
    }

    private static String text(final JsonNode node, final String field, final List<String> problems,
                               final String label) {
        final JsonNode value = node.get(field);
        if (value == null || !value.isTextual() || value.asText().isEmpty()) {
            problems.add(label + " must be a non-empty string (found " + value + ")");
            return null;
        }
        return value.asText();
    }

    private static boolean flag(final JsonNode node, final String field, final List<String> problems) {
        final JsonNode value = node.get(field);
        if (value == null || value.isNull()) {
            return false;
        }
        if (!value.isBoolean()) {
            problems.add(field + " must be true or false (found " + value + ")");
            return false;
        }
        return value.asBoolean();
    }

    private static Map<String, String> stringMap(final JsonNode node, final List<String> problems) {
        final Map<String, String> out = new LinkedHashMap<>();
        if (node.isMissingNode() || node.isNull()) {
            return out;
        }
        if (!node.isObject()) {
            problems.add("properties must be an object of name -> string (found " + node + ")");
            return out;
        }
        for (final Map.Entry<String, JsonNode> e : node.properties()) {
            final JsonNode v = e.getValue();
            if (v.isContainerNode() || v.isNull()) {
                problems.add("properties." + e.getKey() + " must be a string (found " + v + ")");
            } else {
                out.put(e.getKey(), v.asText());
            }
        }
        return out;
    }
}
