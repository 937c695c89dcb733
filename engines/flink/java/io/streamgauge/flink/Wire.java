package io.streamgauge.flink;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;

/**
 * The wire format of the catalogue's jobs (docs/jobs.md): input events, aggregate state, output records.
 *
 * The arithmetic is the catalogue's: {@link #idChecksum}, {@link #groupOf}, and the fields of the outputs.
 */
public final class Wire {

    static final ObjectMapper MAPPER = new ObjectMapper();

    /** Window checksums are kept modulo 2^53 (JSON-safe integers). */
    static final long CHECKSUM_MASK = (1L << 53) - 1;

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private Wire() {
    }

    /** One input event as read: its fields, its raw value (echo copies it) and its record timestamp. */
    public static final class Event implements Serializable {
        private static final long serialVersionUID = 1L;
        public long id;
        public String k;
        public long v;
        public Long et;
        public Long st;
        public long ts;
        public String raw;

        public Event() {
        }

        /** The event time: the et field, else the record timestamp. */
        public long eventTime() {
            return et != null ? et : ts;
        }
    }

    /** An output record: topic, key, JSON value and timestamp (one sink writes the output and late topics). */
    public static final class Out implements Serializable {
        private static final long serialVersionUID = 1L;
        public String topic;
        public String key;
        public String value;
        public long ts;

        public Out() {
        }

        Out(final String topic, final String key, final String value, final long ts) {
            this.topic = topic;
            this.key = key;
            this.value = value;
            this.ts = ts;
        }
    }

    /** The state of a running or windowed aggregate: count, sum, checksum, max send time. */
    public static final class Agg implements Serializable {
        private static final long serialVersionUID = 1L;
        public long n;
        public long s;
        public long h;
        public long stMax;

        public Agg() {
        }
    }

    /** Parses an input value; an event without an integer id or v, or without a string k, is an error. */
    static Event parse(final String value, final long timestamp) {
        final JsonNode node;
        try {
            node = MAPPER.readTree(value);
        } catch (final JsonProcessingException e) {
            throw new IllegalArgumentException("input value is not JSON: " + abbreviate(value), e);
        }
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException("input value is not a JSON object: " + abbreviate(value));
        }
        final Event e = new Event();
        e.id = integer(node, "id", value);
        e.k = string(node, "k", value);
        e.v = integer(node, "v", value);
        e.et = optionalInteger(node, "et");
        e.st = optionalInteger(node, "st");
        e.ts = timestamp;
        e.raw = value;
        return e;
    }

    /** An id's contribution to a window's checksum: {@code ((id * 0x9E3779B97F4A7C15) mod 2^64) >>> 11}. */
    static long idChecksum(final long id) {
        return (id * GOLDEN) >>> 11;
    }

    /** The derived group key: {@code "g%02d"} of crc32(utf8(k)) mod 64 (CRC32's value is unsigned). */
    static String groupOf(final String k) {
        final CRC32 crc = new CRC32();
        crc.update(k.getBytes(StandardCharsets.UTF_8));
        return String.format("g%02d", crc.getValue() % 64);
    }

    /** The running aggregate's output after {@code e}: {"id", "k", "n", "s", "et", "st"}. */
    static String perRecord(final Event e, final String key, final Agg agg) {
        final ObjectNode out = MAPPER.createObjectNode();
        out.put("id", e.id);
        out.put("k", key);
        out.put("n", agg.n);
        out.put("s", agg.s);
        out.put("et", e.et);
        out.put("st", e.st);
        return write(out);
    }

    /** A window result: {"k", "ws", "we", "n", "s", "h", "st_max"}. */
    static String perWindow(final String key, final long start, final long end, final Agg agg) {
        final ObjectNode out = MAPPER.createObjectNode();
        out.put("k", key);
        out.put("ws", start);
        out.put("we", end);
        out.put("n", agg.n);
        out.put("s", agg.s);
        out.put("h", agg.h);
        out.put("st_max", agg.stMax);
        return write(out);
    }

    /** A late declaration: {"id", "k" (the window's key), "et", "ws", "we", "why"}. */
    static String late(final Event e, final String key, final long start, final long end) {
        final ObjectNode out = MAPPER.createObjectNode();
        out.put("id", e.id);
        out.put("k", key);
        out.put("et", e.eventTime());
        out.put("ws", start);
        out.put("we", end);
        out.put("why", "watermark passed");
        return write(out);
    }

    private static long integer(final JsonNode node, final String field, final String value) {
        final JsonNode f = node.get(field);
        if (f == null || !f.isIntegralNumber()) {
            throw new IllegalArgumentException("input event has no integer " + field + ": " + abbreviate(value));
        }
        return f.longValue();
    }

    private static Long optionalInteger(final JsonNode node, final String field) {
        final JsonNode f = node.get(field);
        return f != null && f.isIntegralNumber() ? f.longValue() : null;
    }

    private static String string(final JsonNode node, final String field, final String value) {
        final JsonNode f = node.get(field);
        if (f == null || !f.isTextual()) {
            throw new IllegalArgumentException("input event has no string " + field + ": " + abbreviate(value));
        }
        return f.asText();
    }

    static String write(final ObjectNode node) {
        try {
            return MAPPER.writeValueAsString(node);
        } catch (final JsonProcessingException e) {
            throw new IllegalStateException("cannot write output JSON", e);
        }
    }

    private static String abbreviate(final String value) {
        if (value == null) {
            return "null";
        }
        return value.length() <= 200 ? value : value.substring(0, 200) + "...";
    }
}
