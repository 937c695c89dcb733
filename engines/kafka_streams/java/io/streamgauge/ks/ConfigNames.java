package io.streamgauge.ks;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.Set;
import java.util.TreeSet;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.streams.StreamsConfig;

/**
 * Prints, as a JSON array, every configuration name Kafka Streams accepts in its properties: its own, the
 * clients' (which it passes on), and the clients' and topics' behind each of its prefixes. streamgauge checks a
 * scenario's pass-through properties against this list before a run starts.
 */
public final class ConfigNames {
    private ConfigNames() {
    }

    public static void main(final String[] args) throws Exception {
        final Set<String> consumer = ConsumerConfig.configNames();
        final Set<String> producer = ProducerConfig.configNames();
        final Set<String> admin = AdminClientConfig.configNames();
        final Set<String> names = new TreeSet<>(StreamsConfig.configDef().names());
        names.addAll(consumer);
        names.addAll(producer);
        names.addAll(admin);
        for (final String c : consumer) {
            names.add(StreamsConfig.consumerPrefix(c));
            names.add(StreamsConfig.mainConsumerPrefix(c));
            names.add(StreamsConfig.restoreConsumerPrefix(c));
            names.add(StreamsConfig.globalConsumerPrefix(c));
        }
        for (final String p : producer) {
            names.add(StreamsConfig.producerPrefix(p));
        }
        for (final String a : admin) {
            names.add(StreamsConfig.adminClientPrefix(a));
        }
        for (final java.lang.reflect.Field f : TopicConfig.class.getFields()) {
            if (f.getName().endsWith("_CONFIG") && f.getType() == String.class) {
                names.add(StreamsConfig.topicPrefix((String) f.get(null)));
            }
        }
        System.out.println(new ObjectMapper().writeValueAsString(names));
    }
}
