package io.streamgauge.flink;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** The job client's configuration, written by the flink engine as JSON (engines/flink/__init__.py). */
final class JobConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    final String restHost;
    final int restPort;
    final String job;
    final String guarantee;
    final String bootstrap;
    final Map<String, String> topics = new LinkedHashMap<>();
    final String groupId;
    final String transactionalIdPrefix;
    final int parallelism;
    final long idleTimeoutMs;
    final long transactionTimeoutMs;
    /** The source reads to the end offsets at its start and the job finishes (a bounded workload). */
    final boolean bounded;
    final Map<String, String> flinkConfig = new LinkedHashMap<>();
    final String statusPath;

    private JobConfig(final JsonNode node) {
        restHost = required(node, "rest_host").asText();
        restPort = required(node, "rest_port").asInt();
        job = required(node, "job").asText();
        guarantee = required(node, "guarantee").asText();
        bootstrap = required(node, "bootstrap").asText();
        required(node, "topics").fields().forEachRemaining(e -> topics.put(e.getKey(), e.getValue().asText()));
        groupId = required(node, "group_id").asText();
        transactionalIdPrefix = required(node, "transactional_id_prefix").asText();
        parallelism = required(node, "parallelism").asInt();
        idleTimeoutMs = node.path("idle_timeout_ms").asLong(0);
        transactionTimeoutMs = required(node, "transaction_timeout_ms").asLong();
        bounded = node.path("bounded").asBoolean(false);
        node.path("flink_config").fields().forEachRemaining(e -> flinkConfig.put(e.getKey(), e.getValue().asText()));
        statusPath = required(node, "status_path").asText();
    }

    static JobConfig read(final Path path) throws IOException {
        return new JobConfig(Wire.MAPPER.readTree(Files.readString(path)));
    }

    boolean exactlyOnce() {
        return "exactly_once".equals(guarantee);
    }

    String topic(final String logical) {
        final String name = topics.get(logical);
        if (name == null) {
            throw new IllegalArgumentException("no topic for " + logical + " in the job config (has " + topics.keySet()
                + ")");
        }
        return name;
    }

    private static JsonNode required(final JsonNode node, final String field) {
        final JsonNode value = node.get(field);
        if (value == null || value.isNull()) {
            throw new IllegalArgumentException("job config has no " + field);
        }
        return value;
    }
}
