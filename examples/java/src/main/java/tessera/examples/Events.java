package tessera.examples;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DatumReader;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

/**
 * tessera's events from the .avsc files alone: schemas/avro/EVENT.avsc is each event's current
 * schema, schemas/avro/history/EVENT/vN.avsc its earlier releases. A record is Avro single-object
 * encoded (C3 01, the writer schema's CRC-64-AVRO fingerprint, the body), which Avro's
 * BinaryMessageDecoder reads; a decoder per event resolves a record of any of its releases to the
 * current schema, and BinaryMessageEncoder writes records tessera reads.
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
    /** The decoder of each release's event, by the release's fingerprint. */
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
                decoders.put(SchemaNormalization.parsingFingerprint64(writer), decoder);
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
        long fingerprint = ByteBuffer.wrap(value).order(ByteOrder.LITTLE_ENDIAN).getLong(2);
        BinaryMessageDecoder<GenericRecord> decoder = decoders.get(fingerprint);
        if (decoder == null) {
            throw new IOException(String.format("no schema has the fingerprint %016x", fingerprint));
        }
        return decoder.decode(value);
    }

    /** {@code record} single-object encoded with its own schema. */
    static byte[] encode(GenericRecord record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        new BinaryMessageEncoder<GenericRecord>(MODEL, record.getSchema()).encode(record, out);
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
