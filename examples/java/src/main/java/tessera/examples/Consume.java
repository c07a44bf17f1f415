package tessera.examples;

import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads tessera topics from the beginning to their current end and prints one line per record:
 * topic, partition, offset, the event's full name, its event_id, the id it is about, and the
 * SHA-256 of the record written back with its current schema (so any field decoded wrongly shows).
 *
 * <pre>java tessera.examples.Consume BROKERS SCHEMA_DIR TOPIC...</pre>
 */
public final class Consume {
    /** The field that names what an event is about: the first of these it has. */
    static final List<String> SUBJECTS =
            List.of("offer_id", "subscriber_id", "provider_id", "role", "ticker", "processor");

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: Consume BROKERS SCHEMA_DIR TOPIC...");
            System.exit(2);
        }
        Events events = new Events(Path.of(args[1]));
        Properties config = new Properties();
        config.put("bootstrap.servers", args[0]);
        config.put("isolation.level", "read_committed");
        config.put("enable.auto.commit", "false");
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (String topic : List.of(args).subList(2, args.length)) {
                consumer.partitionsFor(topic).forEach(p -> partitions.add(new TopicPartition(topic, p.partition())));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
            Instant deadline = Instant.now().plusSeconds(60);
            while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
                if (Instant.now().isAfter(deadline)) {
                    throw new IllegalStateException("the topics' ends were not reached in 60 s");
                }
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    System.out.println(line(events, record));
                }
            }
        }
    }

    static String line(Events events, ConsumerRecord<byte[], byte[]> record) throws Exception {
        String place = record.topic() + "\t" + record.partition() + "\t" + record.offset();
        if (record.value() == null) {
            return place + "\ttombstone";
        }
        GenericRecord event = events.decode(record.value());
        String subject = SUBJECTS.stream()
                .filter(f -> event.getSchema().getField(f) != null)
                .map(f -> String.valueOf(event.get(f)))
                .findFirst()
                .orElse("-");
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(Events.encode(event));
        return String.join("\t", place, event.getSchema().getFullName(), String.valueOf(event.get("event_id")),
                subject, HexFormat.of().formatHex(digest));
    }
}
