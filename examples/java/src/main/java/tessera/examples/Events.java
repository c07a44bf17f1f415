package tessera.examples;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DatumReader;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;

/**
 * tessera's events from the .avsc files alone: schemas/avro/EVENT.avsc is each event's current
 * schema, schemas/avro/history/EVENT/vN.avsc its earlier releases. A record is Avro single-object
 * encoded (C3 01, the writer schema's CRC-64-AVRO fingerprint, the body), which Avro's
 * BinaryMessageDecoder reads; a decoder per event resolves a record of any of its releases to the
 * current schema.
 *
 * <p>The fingerprint is that of the schema's canonical form as tessera's Avro library (the Rust
 * apache-avro 0.22) writes it, which keeps a primitive with a logical type an object,
 * {"type":"string"} where the specification (and Avro's SchemaNormalization) writes "string"
 * (docs/SCHEMAS.md). BinaryMessageDecoder knows schemas only by the specification's fingerprint
 * (a SchemaStore's answer is filed under it too), so {@link #decode} puts that one in the header
 * before decoding, and {@link #encode} writes tessera's header itself.
 */
final class Events {
    /**
     * Generic records whose maps keep the order they were written in, so that a record written
     * back (see {@link #encode}) has the same bytes: Avro's default HashMap would shuffle them.
     */
    static final GenericData MODEL = new GenericData() {
        @Override
        @SuppressWarnings("rawtypes")
        public DatumReader createDatumReader(Schema writer, Schema reader) {
            return new GenericDatumReader<Object>(writer, reader, this) {
                @Override
                protected Object newMap(Object old, int size) {
                    return new LinkedHashMap<>(size);
                }
            };
        }
    };

    private final Map<String, Schema> current = new HashMap<>();
    /** Each release's specification fingerprint, by tessera's. */
    private final Map<Long, Long> standard = new HashMap<>();
    private final Map<Long, BinaryMessageDecoder<GenericRecord>> decoders = new HashMap<>();

    Events(Path schemas) throws IOException {
        for (Path file : list(schemas)) {
            String event = file.getFileName().toString().replace(".avsc", "");
            Schema schema = parse(file);
            current.put(schema.getName(), schema);
            BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(MODEL, schema);
            Path history = schemas.resolve("history").resolve(event);
            List<Path> releases = new ArrayList<>(List.of(file));
            releases.addAll(Files.isDirectory(history) ? list(history) : List.of());
            for (Path release : releases) {
                Schema writer = parse(release);
                decoder.addSchema(writer);
                standard.put(fingerprint(writer), SchemaNormalization.parsingFingerprint64(writer));
                decoders.put(fingerprint(writer), decoder);
            }
        }
    }

    /** The CRC-64-AVRO fingerprint of {@code schema}'s canonical form as tessera writes it. */
    static long fingerprint(Schema schema) {
        return SchemaNormalization.fingerprint64(canonical(schema, new HashSet<>()).getBytes(StandardCharsets.UTF_8));
    }

    private static String canonical(Schema schema, Set<String> defined) {
        String type = "\"type\":\"" + schema.getType().getName() + "\"";
        switch (schema.getType()) {
            case RECORD, ENUM, FIXED -> {
                String name = "\"" + schema.getFullName() + "\"";
                if (!defined.add(schema.getFullName())) {
                    return name;
                }
                String rest = switch (schema.getType()) {
                    case RECORD -> "\"fields\":[" + schema.getFields().stream()
                            .map(f -> "{\"name\":\"" + f.name() + "\",\"type\":" + canonical(f.schema(), defined) + "}")
                            .collect(Collectors.joining(",")) + "]";
                    case ENUM -> "\"symbols\":[" + schema.getEnumSymbols().stream()
                            .map(s -> "\"" + s + "\"").collect(Collectors.joining(",")) + "]";
                    default -> "\"size\":" + schema.getFixedSize();
                };
                return "{\"name\":" + name + "," + type + "," + rest + "}";
            }
            case ARRAY -> {
                return "{" + type + ",\"items\":" + canonical(schema.getElementType(), defined) + "}";
            }
            case MAP -> {
                return "{" + type + ",\"values\":" + canonical(schema.getValueType(), defined) + "}";
            }
            case UNION -> {
                return "[" + schema.getTypes().stream().map(s -> canonical(s, defined)).collect(Collectors.joining(",")) + "]";
            }
            default -> {
                return schema.getLogicalType() != null ? "{" + type + "}" : "\"" + schema.getType().getName() + "\"";
            }
        }
    }

    /** The current schema of the event named {@code name} (without the namespace). */
    Schema schema(String name) {
        Schema schema = current.get(name);
        if (schema == null) {
            throw new IllegalArgumentException("no schema for " + name);
        }
        return schema;
    }

    /** The record in {@code value}, resolved to its event's current schema. */
    GenericRecord decode(byte[] value) throws IOException {
        if (value.length < 10) {
            throw new IOException("a record of " + value.length + " bytes is not single-object encoded");
        }
        ByteBuffer header = ByteBuffer.wrap(value.clone()).order(ByteOrder.LITTLE_ENDIAN);
        long fingerprint = header.getLong(2);
        BinaryMessageDecoder<GenericRecord> decoder = decoders.get(fingerprint);
        if (decoder == null) {
            throw new IOException(String.format("no schema has the fingerprint %016x", fingerprint));
        }
        return decoder.decode(header.putLong(2, standard.get(fingerprint)).array());
    }

    /** {@code record} single-object encoded with its own schema. */
    static byte[] encode(GenericRecord record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0xC3);
        out.write(0x01);
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fingerprint(record.getSchema())).array());
        BinaryEncoder body = EncoderFactory.get().directBinaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(record.getSchema(), MODEL).write(record, body);
        body.flush();
        return out.toByteArray();
    }

    private static Schema parse(Path file) throws IOException {
        // A parser per file: the files repeat shared types (LogPosition, Interest, ...).
        return new Schema.Parser().parse(file.toFile());
    }

    private static List<Path> list(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return new ArrayList<>(files.filter(f -> f.toString().endsWith(".avsc")).sorted().toList());
        }
    }
}
