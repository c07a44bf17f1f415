"""Reads tessera topics from the beginning to their current end and prints one line per record.

    python consume.py BROKERS SCHEMA_DIR TOPIC...

Each line is tab-separated: topic, partition, offset, the event's full name, its event_id, the id
it is about, and the SHA-256 of the record written back with its current schema (so any field
decoded wrongly shows). Only the .avsc files are needed: schemas/avro/EVENT.avsc is each event's
current schema, schemas/avro/history/EVENT/vN.avsc its earlier releases. A record is Avro
single-object encoded: C3 01, the CRC-64-AVRO fingerprint of the writer schema's Parsing
Canonical Form, then the body.
"""

import hashlib
import io
import json
import sys
import time
from pathlib import Path

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
# The field that names what an event is about: the first of these it has.
SUBJECTS = ("offer_id", "subscriber_id", "provider_id", "role", "ticker", "processor")


def parse(text):
    # A fresh namespace per file: the files repeat shared types (LogPosition, Interest, ...).
    schema = fastavro.parse_schema(json.loads(text), named_schemas={})
    bytes_defaults(schema)
    return schema


def bytes_defaults(schema):
    """Turns the defaults of bytes fields into bytes: a schema writes them as JSON strings, which
    fastavro hands on unchanged to a record of an earlier release lacking the field, and then
    cannot write back."""
    if isinstance(schema, list):
        for branch in schema:
            bytes_defaults(branch)
    elif isinstance(schema, dict):
        for field in schema.get("fields", []):
            if field["type"] == "bytes" and isinstance(field.get("default"), str):
                field["default"] = field["default"].encode("latin-1")
            bytes_defaults(field["type"])
        for nested in ("items", "values"):
            bytes_defaults(schema.get(nested))


def header(text):
    """The single-object header of records written with the schema in `text`."""
    form = to_parsing_canonical_form(fastavro.parse_schema(json.loads(text), named_schemas={}))
    return MAGIC + bytes.fromhex(fingerprint(form, "CRC-64-AVRO"))


def load(schemas):
    """Every release of every event by its header: (writer schema, current schema, current
    header)."""
    by_header = {}
    for path in sorted(schemas.glob("*.avsc")):
        text = path.read_text()
        current = (parse(text), header(text))
        releases = sorted((schemas / "history" / path.stem).glob("v*.avsc"))
        for release in [text] + [r.read_text() for r in releases]:
            by_header[header(release)] = (parse(release),) + current
    return by_header


def decode(by_header, value):
    """The record in `value` resolved to its event's current schema, that schema, its header."""
    if value[:10] not in by_header:
        raise ValueError(f"not a tessera event: header {value[:10].hex()}")
    writer, current, current_header = by_header[value[:10]]
    event = fastavro.schemaless_reader(io.BytesIO(value[10:]), writer, current)
    return event, current, current_header


def line(by_header, message):
    place = f"{message.topic()}\t{message.partition()}\t{message.offset()}"
    if message.value() is None:
        return f"{place}\ttombstone"
    event, schema, schema_header = decode(by_header, message.value())
    subject = next((str(event[f]) for f in SUBJECTS if f in event), "-")
    written = io.BytesIO()
    fastavro.schemaless_writer(written, schema, event)
    digest = hashlib.sha256(schema_header + written.getvalue()).hexdigest()
    return f"{place}\t{schema['name']}\t{event['event_id']}\t{subject}\t{digest}"


def main(brokers, schemas, topics):
    by_header = load(Path(schemas))
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            # Required by the client, unused: partitions are assigned, offsets never committed.
            "group.id": "tessera-examples",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    metadata = consumer.list_topics(timeout=10)
    partitions = [
        TopicPartition(topic, partition, OFFSET_BEGINNING)
        for topic in topics
        for partition in metadata.topics[topic].partitions
    ]
    consumer.assign(partitions)
    unread = {(p.topic, p.partition) for p in partitions}
    deadline = time.monotonic() + 60
    while unread:
        if time.monotonic() > deadline:
            sys.exit(f"the ends of {sorted(unread)} were not reached in 60 s")
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                sys.exit(f"consume failed: {message.error()}")
            unread.discard((message.topic(), message.partition()))
            continue
        print(line(by_header, message))
    consumer.close()


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: consume.py BROKERS SCHEMA_DIR TOPIC...")
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
