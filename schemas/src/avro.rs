//! Avro schema pieces the derive macro cannot infer from a Rust type alone.
//!
//! Times are plain `i64` milliseconds in Rust (cheap to compare and hash in the cores) but must be
//! `timestamp-millis` on the wire so other Avro tools show them as times; event ids are `uuid`
//! strings; and maps are `BTreeMap`s so that encoding is byte-for-byte deterministic, which Avro's
//! derive does not know about. The functions here are passed to `#[avro(with = ...)]`.

use std::collections::HashSet;

use apache_avro::Schema;
use apache_avro::schema::{Name, NamespaceRef, UuidSchema};

/// `{"type": "long", "logicalType": "timestamp-millis"}`: milliseconds since the Unix epoch, UTC.
pub fn timestamp_millis(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::TimestampMillis
}

/// `["null", {"type": "long", "logicalType": "timestamp-millis"}]`.
pub fn optional_timestamp_millis(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    optional(Schema::TimestampMillis)
}

/// `{"type": "string", "logicalType": "uuid"}`.
pub fn uuid(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::Uuid(UuidSchema::String)
}

/// `{"type": "map", "values": "string"}` for a `BTreeMap<String, String>`.
pub fn string_map(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::map(Schema::String).build()
}

/// `{"type": "map", "values": "long"}` for a `BTreeMap<String, i64>`.
pub fn long_map(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::map(Schema::Long).build()
}

fn optional(schema: Schema) -> Schema {
    Schema::union(vec![Schema::Null, schema]).expect("null and a non-union form a valid union")
}
