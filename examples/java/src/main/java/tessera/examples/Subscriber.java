package tessera.examples;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.function.Predicate;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A tessera subscriber in Java, with the JDK's Ed25519 and X25519 and nothing of tessera's code.
 *
 * <pre>
 * java tessera.examples.Subscriber register BROKERS PREFIX SCHEMA_DIR KEY_DIR ID IDENTIFIER
 * java tessera.examples.Subscriber respond  BROKERS PREFIX SCHEMA_DIR KEY_DIR ID
 * </pre>
 *
 * {@code register} makes the subscriber's keys (kept in KEY_DIR) and writes SubscriberRegistered
 * with a need for offers of IDENTIFIER: the first registration of an id pins the keys it carries,
 * so it is signed with the signing key it carries. {@code respond} waits for the matcher's
 * InteractionRequested naming the subscriber, answers it with ResponseSubmitted, and waits for
 * the timekeeper's verdict on it.
 */
public final class Subscriber {
    /** The header that carries a record's signature. */
    static final String SIGNATURE_HEADER = "tessera.signature";

    public static void main(String[] args) throws Exception {
        if (args.length < 6 || !List.of("register", "respond").contains(args[0])
                || (args[0].equals("register") && args.length < 7)) {
            System.err.println("usage: Subscriber register BROKERS PREFIX SCHEMA_DIR KEY_DIR ID IDENTIFIER");
            System.err.println("       Subscriber respond BROKERS PREFIX SCHEMA_DIR KEY_DIR ID");
            System.exit(2);
        }
        Subscriber subscriber = new Subscriber(args[1], args[2], new Events(Path.of(args[3])), Path.of(args[4]), args[5]);
        if (args[0].equals("register")) {
            subscriber.register(args[6]);
        } else {
            subscriber.respond();
        }
    }

    private final String brokers;
    private final String prefix;
    private final Events events;
    private final Path keyFile;
    private final String id;

    Subscriber(String brokers, String prefix, Events events, Path keys, String id) {
        this.brokers = brokers;
        this.prefix = prefix;
        this.events = events;
        this.keyFile = keys.resolve(id + ".ed25519");
        this.id = id;
    }

    void register(String identifier) throws Exception {
        KeyPair signing = KeyPairGenerator.getInstance("Ed25519").generateKeyPair();
        KeyPair sealing = KeyPairGenerator.getInstance("X25519").generateKeyPair();
        Files.write(keyFile, signing.getPrivate().getEncoded());
        Files.setPosixFilePermissions(keyFile, PosixFilePermissions.fromString("rw-------"));
        Schema schema = events.schema("SubscriberRegistered");
        GenericRecord interest = new GenericData.Record(schema.getField("interests").schema().getElementType());
        interest.put("identifier", identifier);
        interest.put("terms", List.of());
        interest.put("features", Map.of());
        interest.put("ranges", List.of());
        GenericRecord registration = new GenericData.Record(schema);
        registration.put("event_id", UUID.randomUUID().toString());
        registration.put("subscriber_id", id);
        registration.put("contact", id + "@example.org");
        registration.put("public_key", ByteBuffer.wrap(raw(sealing.getPublic().getEncoded())));
        registration.put("signing_key", ByteBuffer.wrap(raw(signing.getPublic().getEncoded())));
        registration.put("interests", List.of(interest));
        RecordMetadata written = write("tessera.subscribers", id, registration, signing.getPrivate());
        System.out.printf("registered %s at partition %d offset %d%n", id, written.partition(), written.offset());
    }

    void respond() throws Exception {
        PrivateKey signing = KeyFactory.getInstance("Ed25519").generatePrivate(new PKCS8EncodedKeySpec(Files.readAllBytes(keyFile)));
        GenericRecord invitation = await("tessera.requests", "InteractionRequested");
        String offer = invitation.get("offer_id").toString();
        String request = invitation.get("request_id").toString();
        System.out.printf("invited to %s (request %s)%n", offer, request);
        GenericRecord response = new GenericData.Record(events.schema("ResponseSubmitted"));
        response.put("event_id", UUID.randomUUID().toString());
        response.put("offer_id", offer);
        response.put("request_id", request);
        response.put("subscriber_id", id);
        RecordMetadata written = write("tessera.responses", offer, response, signing);
        System.out.printf("responded at partition %d offset %d%n", written.partition(), written.offset());
        GenericRecord release = await("tessera.decisions", "CredentialReleased");
        System.out.printf("released credential %s of %s%n", release.get("credential_id"), release.get("offer_id"));
    }

    /** Writes {@code event} to {@code topic} under {@code key}, signed as tessera's readers check. */
    RecordMetadata write(String topic, String key, GenericRecord event, PrivateKey signing) throws Exception {
        byte[] value = Events.encode(event);
        Signature signer = Signature.getInstance("Ed25519");
        signer.initSign(signing);
        signer.update(signedMessage(topic, key.getBytes(StandardCharsets.UTF_8), value));
        ProducerRecord<String, byte[]> record = new ProducerRecord<>(prefix + topic, key, value);
        record.headers().add(SIGNATURE_HEADER, signer.sign());
        Properties config = new Properties();
        config.put("bootstrap.servers", brokers);
        try (KafkaProducer<String, byte[]> producer =
                new KafkaProducer<>(config, new StringSerializer(), new ByteArraySerializer())) {
            return producer.send(record).get();
        }
    }

    /**
     * What a record's signature covers (schemas/src/signing.rs): the tag, then the topic's name
     * without the installation's prefix and the SHA-256 of key and value, each part preceded by
     * its length as a big-endian u32. The digest writes key and value each as 1, its length as a
     * big-endian u64, and its bytes.
     */
    static byte[] signedMessage(String topic, byte[] key, byte[] value) throws Exception {
        MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
        for (byte[] part : List.of(key, value)) {
            sha256.update((byte) 1);
            sha256.update(ByteBuffer.allocate(8).putLong(part.length).array());
            sha256.update(part);
        }
        byte[] digest = sha256.digest();
        byte[] tag = "tessera/v1 signed record".getBytes(StandardCharsets.UTF_8);
        byte[] name = topic.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(tag.length + 4 + name.length + 4 + digest.length)
                .put(tag)
                .putInt(name.length).put(name)
                .putInt(digest.length).put(digest)
                .array();
    }

    /** The 32-byte key at the end of an Ed25519 or X25519 key's X.509 encoding. */
    static byte[] raw(byte[] x509) {
        return Arrays.copyOfRange(x509, x509.length - 32, x509.length);
    }

    /** The first {@code event} naming this subscriber on {@code topic}; fails after a minute. */
    GenericRecord await(String topic, String event) throws Exception {
        Properties config = new Properties();
        config.put("bootstrap.servers", brokers);
        config.put("isolation.level", "read_committed");
        config.put("enable.auto.commit", "false");
        Predicate<GenericRecord> wanted = r -> r.getSchema().getName().equals(event)
                && id.equals(String.valueOf(r.get("subscriber_id")));
        try (KafkaConsumer<String, byte[]> consumer =
                new KafkaConsumer<>(config, new StringDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            consumer.partitionsFor(prefix + topic).forEach(p -> partitions.add(new TopicPartition(p.topic(), p.partition())));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Instant deadline = Instant.now().plusSeconds(60);
            while (Instant.now().isBefore(deadline)) {
                for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    GenericRecord decoded = record.value() == null ? null : events.decode(record.value());
                    if (decoded != null && wanted.test(decoded)) {
                        return decoded;
                    }
                }
            }
        }
        throw new IllegalStateException("no " + event + " naming " + id + " on " + prefix + topic + " within 60 s");
    }
}
