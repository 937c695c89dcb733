package io.streamgauge.ks;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Configuration;
import org.apache.logging.log4j.core.config.LoggerConfig;
import org.apache.logging.log4j.core.config.Property;

import java.util.function.Consumer;

/**
 * Counts the fencings Kafka Streams handles internally, from its own log.
 *
 * A stream thread that is fenced (its producer got fenced by a newer epoch under exactly_once, or its offset
 * commit was refused because the group moved on) gets a {@code TaskMigratedException}; the thread catches it
 * in its run loop ({@code StreamThread.handleTaskMigrated}), logs "Detected that the thread is being fenced"
 * at WARN with the exception, closes all its tasks dirty and rejoins the group. No metric counts that, and
 * no listener sees it, so this appender, attached to the StreamThread logger, does. The handler receives
 * the name of the innermost cause (e.g. {@code ProducerFencedException}, {@code CommitFailedException}).
 */
final class FenceTap extends AbstractAppender {

    static final String STREAM_THREAD_LOGGER = "org.apache.kafka.streams.processor.internals.StreamThread";
    private static final String FENCED_MESSAGE = "Detected that the thread is being fenced";

    private final Consumer<String> onFenced;

    private FenceTap(final Consumer<String> onFenced) {
        super("streamgauge-fence-tap", null, null, true, Property.EMPTY_ARRAY);
        this.onFenced = onFenced;
    }

    /**
     * Attaches a tap to the StreamThread logger's configuration; false when log4j-core is not the logging
     * backend (then fencings go uncounted).
     */
    static boolean install(final Consumer<String> onFenced) {
        if (!(LogManager.getContext(false) instanceof LoggerContext)) {
            return false;
        }
        final LoggerContext context = (LoggerContext) LogManager.getContext(false);
        final Configuration config = context.getConfiguration();
        final FenceTap tap = new FenceTap(onFenced);
        tap.start();
        config.addAppender(tap);
        LoggerConfig logger = config.getLoggerConfig(STREAM_THREAD_LOGGER);
        if (!logger.getName().equals(STREAM_THREAD_LOGGER)) {  // inherited: give the logger a config of its own
            logger = new LoggerConfig(STREAM_THREAD_LOGGER, null, true);
            config.addLogger(STREAM_THREAD_LOGGER, logger);
        }
        logger.addAppender(tap, Level.WARN, null);
        context.updateLoggers();
        return true;
    }

    @Override
    public void append(final LogEvent event) {
        if (!STREAM_THREAD_LOGGER.equals(event.getLoggerName())) {
            return;
        }
        final Throwable thrown = event.getThrown();
        final String message = event.getMessage() == null ? "" : event.getMessage().getFormattedMessage();
        if (message.contains(FENCED_MESSAGE)) {
            onFenced.accept(rootCauseName(thrown));
        }
    }

    private static String rootCauseName(final Throwable thrown) {
        if (thrown == null) {
            return "unknown";
        }
        Throwable t = thrown;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName();
    }
}
