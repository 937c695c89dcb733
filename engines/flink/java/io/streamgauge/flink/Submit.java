package io.streamgauge.flink;

import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Submits a catalogue job to a running session cluster over REST, writes its job id to the status file and
 * exits. The job's classes are on the cluster's classpath, so no jar is uploaded (the cluster has no web
 * submission, only the REST job submission).
 */
public final class Submit {

    private Submit() {
    }

    public static void main(final String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: Submit CONFIG.json");
            System.exit(2);
        }
        final JobConfig config = JobConfig.read(Path.of(args[0]));
        final Configuration conf = new Configuration();
        config.flinkConfig.forEach(conf::setString);
        final StreamExecutionEnvironment env =
            StreamExecutionEnvironment.createRemoteEnvironment(config.restHost, config.restPort, conf);
        env.setParallelism(config.parallelism);
        Jobs.build(env, config);
        final JobClient client = env.executeAsync("streamgauge " + Jobs.nameOf(config.job));
        final ObjectNode status = Wire.MAPPER.createObjectNode();
        status.put("job_id", client.getJobID().toHexString());
        final Path path = Path.of(config.statusPath);
        final Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
        Files.writeString(tmp, Wire.MAPPER.writeValueAsString(status), StandardCharsets.UTF_8);
        Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.println("submitted " + client.getJobID());
        System.exit(0);
    }
}
