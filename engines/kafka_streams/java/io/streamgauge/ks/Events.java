package io.streamgauge.ks;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;

/**
 * The input events, the aggregate state and the output records of the catalogue's jobs.
 *
 * The arithmetic mirrors {@code harness.api.pipeline} and {@code scenarios.jobs} exactly:
 * {@link #idChecksum}, {@link #groupOf}, and the fields and order of the outputs.
 */
final class Events {

    static final ObjectMapper MAPPER = new ObjectMapper();

    /** {@code CHECKSUM_MOD - 1}: window checksums are kept modulo 2^53 (JSON-safe integers). */
    static final long CHECKSUM_MASK = (1L << 53) - 1;

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private Events() {
    }

    /** One input event: {"id": int, "k": str, "v": int, "et": int ms, "st": int µs}; et and st may be absent. */
    static final class Event {
        final long id;
        final String k;
        final long v;
        final Long et;
        final Long st;

        private Event(final long id, final String k, final long v, final Long et, final Long st) {
            this.id = id;
            this.k = k;
            this.v = v;
            this.et = et;
            this.st = st;
        }
    }

    /** Parses an input value; an event without an integer id or v, or without a string k, is an error. */
    static Event parse(final String value) {
        final JsonNode node;
        try {
            node = MAPPER.readTree(value);
        } catch (final JsonProcessingException e) {
            throw new IllegalArgumentException("input value is not JSON: " + abbreviate(value), e);
        }
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException("input value is not a JSON object: " + abbreviate(value));
        }
        return new Event(integer(node, "id", value), string(node, "k", value), integer(node, "v", value),
            optionalInteger(node, "et"), optionalInteger(node, "st"));
    }

    /**
     * An id's contribution to a window's checksum: {@code ((id * 0x9E3779B97F4A7C15) mod 2^64) >> 11}.
     *
     * Java's long multiplication wraps modulo 2^64 exactly like Python's {@code & 0xFFFFFFFFFFFFFFFF};
     * {@code >>>} shifts the unsigned value, leaving 53 bits.
     */
    static long idChecksum(final long id) {
        return (id * GOLDEN) >>> 11;
    }

    /** The derived group key: {@code "g%02d" % (crc32(utf8(k)) % 64)} (CRC32's value is unsigned). */
    static String groupOf(final String k) {
        final CRC32 crc = new CRC32();
        crc.update(k.getBytes(StandardCharsets.UTF_8));
        return String.format("g%02d", crc.getValue() % 64);
    }

    /**
     * The state of a running or windowed aggregate: count n, sum s, checksum h, max send time st_max, and
     * the id / et / st of the last event added (the per-input output of a running aggregate names them).
     */
    static final class Agg {
        long n;
        long s;
        long h;
        long stMax;
        long lastId;
        Long lastEt;
        Long lastSt;

        /** The running aggregate's step, as a new state: {"n": n + 1, "s": s + v}, remembering the event. */
        Agg addRunning(final Event e) {
            final Agg next = new Agg();
            next.n = n + 1;
            next.s = s + e.v;
            next.lastId = e.id;
            next.lastEt = e.et;
            next.lastSt = e.st;
            return next;
        }

        /** The window aggregate's step, as a new state: n + 1, s + v, (h + idChecksum(id)) mod 2^53,
         *  max(st_max, st or 0). */
        Agg addWindowed(final Event e) {
            final Agg next = new Agg();
            next.n = n + 1;
            next.s = s + e.v;
            next.h = (h + idChecksum(e.id)) & CHECKSUM_MASK;
            next.stMax = Math.max(stMax, e.st == null ? 0L : e.st);
            return next;
        }

        /** The running aggregate's output: {"id", "k", "n", "s", "et", "st"} of the last input. */
        String perRecord(final String key) {
            final ObjectNode out = MAPPER.createObjectNode();
            out.put("id", lastId);
            out.put("k", key);
            out.put("n", n);
            out.put("s", s);
            out.put("et", lastEt);
            out.put("st", lastSt);
            return write(out);
        }

        /** The window aggregate's output: {"k", "ws", "we", "n", "s", "h", "st_max"}. */
        String perWindow(final String key, final long start, final long end) {
            final ObjectNode out = MAPPER.createObjectNode();
            out.put("k", key);
            out.put("ws", start);
            out.put("we", end);
            out.put("n", n);
            out.put("s", s);
            out.put("h", h);
            out.put("st_max", stMax);
            return write(out);
        }
    }

    /** A compact binary serde of {@link Agg} for the state stores and their changelogs (58 bytes, versioned). */
    static Serde<Agg> aggSerde() {
        return Serdes.serdeFrom(new AggSerializer(), new AggDeserializer());
    }

    private static final byte AGG_FORMAT = 1;
    private static final int AGG_BYTES = 2 + 7 * Long.BYTES;

    private static final class AggSerializer implements Serializer<Agg> {
        @Override
        public byte[] serialize(final String topic, final Agg agg) {
            if (agg == null) {
                return null;
            }
            final ByteBuffer buf = ByteBuffer.allocate(AGG_BYTES);
            buf.put(AGG_FORMAT);
            buf.put((byte) ((agg.lastEt != null ? 1 : 0) | (agg.lastSt != null ? 2 : 0)));
            buf.putLong(agg.n).putLong(agg.s).putLong(agg.h).putLong(agg.stMax).putLong(agg.lastId);
            buf.putLong(agg.lastEt != null ? agg.lastEt : 0L).putLong(agg.lastSt != null ? agg.lastSt : 0L);
            return buf.array();
        }
    }

    private static final class AggDeserializer implements Deserializer<Agg> {
        @Override
        public Agg deserialize(final String topic, final byte[] data) {
            if (data == null) {
                return null;
            }
            if (data.length != AGG_BYTES || data[0] != AGG_FORMAT) {
                throw new SerializationException("not an aggregate state of format " + AGG_FORMAT
                    + " (" + data.length + " bytes from " + topic + ")");
            }
            final ByteBuffer buf = ByteBuffer.wrap(data, 1, AGG_BYTES - 1);
            final byte present = buf.get();
            final Agg agg = new Agg();
            agg.n = buf.getLong();
            agg.s = buf.getLong();
            agg.h = buf.getLong();
            agg.stMax = buf.getLong();
            agg.lastId = buf.getLong();
            final long et = buf.getLong();
            final long st = buf.getLong();
            agg.lastEt = (present & 1) != 0 ? et : null;
            agg.lastSt = (present & 2) != 0 ? st : null;
            return agg;
        }
    }

    private static long integer(final JsonNode node, final String field, final String value) {
        final JsonNode f = node.get(field);
        if (f == null || !f.isIntegralNumber()) {
            throw new IllegalArgumentException("input event has no integer " + field + ": " + abbreviate(value));
        }
        return f.longValue();  // a BigInteger's low 64 bits: the same checksum as Python's arbitrary ints
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

    private static String write(final ObjectNode node) {
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
