//! Avro single-object encoding of tessera events: `C3 01`, the writer schema's 8-byte CRC-64-AVRO
//! (Rabin) fingerprint in little-endian order, then the Avro binary body.
//!
//! The fingerprint lets any consumer tell a record's type from its first 10 bytes, which is how one
//! topic carries several event types without a registry service. Decoding never panics: anything
//! that is not a known event, or not all of one, is a [`DecodeError`] that a processor can turn
//! into a dead letter.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::de::DeserializeOwned;

use crate::events::{Event, EventKind};

/// The two bytes every single-object encoded record starts with.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Magic plus fingerprint.
pub const HEADER_LEN: usize = 10;
/// The largest single allocation a decoder makes for one string, byte array, array or map.
/// Kafka's default record limit is 1 MiB; this leaves room while refusing absurd lengths that
/// random bytes declare.
pub const MAX_ALLOCATION: usize = 16 * 1024 * 1024;

/// Why bytes could not be decoded as a tessera event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the single-object header.
    #[error("record too short for an Avro single-object header: {len} bytes, need at least {HEADER_LEN}")]
    TooShort { len: usize },
    /// The record does not start with `C3 01`.
    #[error("not Avro single-object encoded: starts with {found:02x?}, expected c3 01")]
    BadMagic { found: [u8; 2] },
    /// The fingerprint names no schema this decoder knows.
    #[error("unknown writer schema fingerprint {fingerprint:016x}")]
    UnknownSchema { fingerprint: u64 },
    /// The body does not decode with the schema its header names.
    #[error("malformed {kind} body: {reason}")]
    Body { kind: &'static str, reason: String },
    /// The body decoded but bytes were left over.
    #[error("{extra} unexpected trailing bytes after a {kind} body")]
    TrailingBytes { kind: &'static str, extra: usize },
}

/// Why an event could not be encoded. Only a bug (an event whose Rust type drifted from its schema)
/// causes this; the schema-file test guards against it.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {kind}: {reason}")]
pub struct EncodeError {
    kind: &'static str,
    reason: String,
}

/// One known schema: the current one for its kind, ready to read and write.
struct Known {
    kind: EventKind,
    header: [u8; HEADER_LEN],
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

struct Registry {
    by_kind: HashMap<EventKind, Known>,
    by_fingerprint: HashMap<u64, EventKind>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
    let mut by_kind = HashMap::new();
    let mut by_fingerprint = HashMap::new();
    for &kind in EventKind::ALL {
        // The schemas live as long as the process; leaking them once lets the cached readers and
        // writers borrow them without self-referential structs.
        let schema: &'static Schema = Box::leak(Box::new(
            Schema::parse_str(kind.schema_text())
                .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", kind.schema_file())),
        ));
        let header = header_for(schema);
        let writer = GenericDatumWriter::builder(schema)
            .human_readable(false)
            .build()
            .unwrap_or_else(|e| panic!("{} cannot be written: {e}", kind.schema_file()));
        let reader = GenericDatumReader::builder(schema)
            .human_readable(false)
            .build()
            .unwrap_or_else(|e| panic!("{} cannot be read: {e}", kind.schema_file()));
        by_fingerprint.insert(fingerprint_of(&header), kind);
        by_kind.insert(kind, Known { kind, header, writer, reader });
    }
    Registry { by_kind, by_fingerprint }
});

/// The single-object header (`C3 01` + fingerprint) for records written with `schema`.
pub fn header_for(schema: &Schema) -> [u8; HEADER_LEN] {
    let fingerprint = schema.fingerprint::<Rabin>();
    let mut header = [0u8; HEADER_LEN];
    header[..2].copy_from_slice(&MAGIC);
    header[2..].copy_from_slice(&fingerprint.bytes[..8]);
    header
}

fn fingerprint_of(header: &[u8; HEADER_LEN]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&header[2..]);
    u64::from_le_bytes(bytes)
}

/// The CRC-64-AVRO fingerprint of the current schema of `kind`, as it appears in record headers.
pub fn fingerprint(kind: EventKind) -> u64 {
    fingerprint_of(&REGISTRY.by_kind[&kind].header)
}

/// Encodes an event with its current schema.
pub fn encode(event: &Event) -> Result<Vec<u8>, EncodeError> {
    let known = &REGISTRY.by_kind[&event.kind()];
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&known.header);
    event.write_body(&known.writer, &mut out).map_err(|e| EncodeError {
        kind: known.kind.name(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Reads the header only: which event type the bytes claim to be. Cheap; lets a consumer skip
/// records (ticks, other types) without decoding their bodies.
pub fn peek_kind(bytes: &[u8]) -> Result<EventKind, DecodeError> {
    let fingerprint = read_header(bytes)?;
    REGISTRY
        .by_fingerprint
        .get(&fingerprint)
        .copied()
        .ok_or(DecodeError::UnknownSchema { fingerprint })
}

/// Decodes bytes written with the current schema of any tessera event.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let kind = peek_kind(bytes)?;
    let known = &REGISTRY.by_kind[&kind];
    let mut body = &bytes[HEADER_LEN..];
    let event = Event::read_body(kind, &known.reader, &mut body).map_err(|e| DecodeError::Body {
        kind: kind.name(),
        reason: e.to_string(),
    })?;
    ensure_consumed(kind.name(), body)?;
    Ok(event)
}

/// The event id of an encoded event, read without decoding the body. Every tessera event's first
/// field is its `event_id` (the contract tests hold every schema to it), so the id is the Avro
/// string right after the header: an auditor matching millions of records by id skips the body.
pub fn peek_event_id(bytes: &[u8]) -> Result<&str, DecodeError> {
    let kind = peek_kind(bytes)?;
    let malformed = |reason: &str| DecodeError::Body {
        kind: kind.name(),
        reason: reason.to_string(),
    };
    let body = &bytes[HEADER_LEN..];
    // An Avro string: its length as a zigzag varint, then the UTF-8 bytes.
    let mut length: u64 = 0;
    let mut read = 0;
    loop {
        let byte = *body.get(read).ok_or_else(|| malformed("the event id is cut short"))?;
        length |= u64::from(byte & 0x7f) << (7 * read);
        read += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if read >= 10 {
            return Err(malformed("the event id's length is not a varint"));
        }
    }
    let length = (length >> 1) as i64 ^ -((length & 1) as i64);
    let id = usize::try_from(length)
        .ok()
        .and_then(|len| body.get(read..read.checked_add(len)?))
        .ok_or_else(|| malformed("the event id's length is out of range"))?;
    std::str::from_utf8(id).map_err(|_| malformed("the event id is not UTF-8"))
}

/// An encoded event's fields as `(path, value)` pairs in schema order, nested fields joined by
/// dots (`response.stamp`): what an auditor shows when two records that should be equal differ.
/// Bytes show as hex, long ones cut short with their length.
pub fn fields(bytes: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let kind = peek_kind(bytes)?;
    let known = &REGISTRY.by_kind[&kind];
    let mut body = &bytes[HEADER_LEN..];
    let value = known.reader.read_value(&mut body).map_err(|e| DecodeError::Body {
        kind: kind.name(),
        reason: e.to_string(),
    })?;
    ensure_consumed(kind.name(), body)?;
    let mut out = Vec::new();
    flatten(String::new(), &value, &mut out);
    Ok(out)
}

fn flatten(path: String, value: &apache_avro::types::Value, out: &mut Vec<(String, String)>) {
    use apache_avro::types::Value;
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        Value::Record(fields) => {
            for (name, value) in fields {
                flatten(join(name), value, out);
            }
        }
        Value::Union(_, value) => flatten(path, value, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(format!("{path}[{i}]"), item, out);
            }
        }
        Value::Map(entries) => {
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for key in keys {
                flatten(format!("{path}[{key:?}]"), &entries[key], out);
            }
        }
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => out.push((path, hex(bytes))),
        Value::String(text) => out.push((path, format!("{text:?}"))),
        Value::Uuid(id) => out.push((path, id.to_string())),
        Value::Enum(_, symbol) => out.push((path, symbol.clone())),
        Value::Null => out.push((path, "null".into())),
        Value::Boolean(b) => out.push((path, b.to_string())),
        Value::Int(n) => out.push((path, n.to_string())),
        Value::Long(n) | Value::TimestampMillis(n) => out.push((path, n.to_string())),
        other => out.push((path, format!("{other:?}"))),
    }
}

/// Bytes in hex, the first 32 of longer ones with the length.
fn hex(bytes: &[u8]) -> String {
    const SHOWN: usize = 32;
    let digits: String = bytes.iter().take(SHOWN).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > SHOWN {
        format!("{digits}… ({} bytes)", bytes.len())
    } else {
        digits
    }
}

fn read_header(bytes: &[u8]) -> Result<u64, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    if bytes[..2] != MAGIC {
        return Err(DecodeError::BadMagic {
            found: [bytes[0], bytes[1]],
        });
    }
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&bytes[2..HEADER_LEN]);
    Ok(u64::from_le_bytes(fingerprint))
}

fn ensure_consumed(kind: &'static str, rest: &[u8]) -> Result<(), DecodeError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::TrailingBytes {
            kind,
            extra: rest.len(),
        })
    }
}

/// Reads records written with other versions of a schema: the schema-evolution path.
///
/// A consumer built against a newer schema (say, one with an added optional field) registers the
/// writer schemas it may meet; each record's fingerprint picks its writer schema, and Avro schema
/// resolution maps it onto the reader's schema, filling added fields from their defaults.
#[derive(Default)]
pub struct Decoder {
    writers: HashMap<u64, Schema>,
}

impl Decoder {
    /// A decoder that knows every current tessera schema as a writer schema.
    pub fn new() -> Self {
        let writers = EventKind::ALL
            .iter()
            .map(|&kind| {
                let schema = Schema::parse_str(kind.schema_text()).expect("checked by REGISTRY");
                (fingerprint(kind), schema)
            })
            .collect();
        Decoder { writers }
    }

    /// Also accept records written with `schema`.
    pub fn with_writer_schema(mut self, schema: Schema) -> Self {
        self.writers
            .insert(fingerprint_of(&header_for(&schema)), schema);
        self
    }

    /// Decodes a record written with any known writer schema into `T`, whose schema is `reader`.
    pub fn decode_as<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        reader: &Schema,
    ) -> Result<T, DecodeError> {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
        let fingerprint = read_header(bytes)?;
        let writer = self
            .writers
            .get(&fingerprint)
            .ok_or(DecodeError::UnknownSchema { fingerprint })?;
        let name = "record";
        let body_error = |e: apache_avro::Error| DecodeError::Body {
            kind: name,
            reason: e.to_string(),
        };
        let datum_reader = GenericDatumReader::builder(writer)
            .reader_schema(reader)
            .human_readable(false)
            .build()
            .map_err(body_error)?;
        let mut body = &bytes[HEADER_LEN..];
        let value = datum_reader.read_value(&mut body).map_err(body_error)?;
        ensure_consumed(name, body)?;
        apache_avro::from_value::<T>(&value).map_err(body_error)
    }

    /// Decodes a record written with any known writer schema of a tessera event into the current
    /// version of that event.
    pub fn decode(&self, bytes: &[u8]) -> Result<Event, DecodeError> {
        if let Ok(event) = decode(bytes) {
            return Ok(event);
        }
        let fingerprint = read_header(bytes)?;
        let writer = self
            .writers
            .get(&fingerprint)
            .ok_or(DecodeError::UnknownSchema { fingerprint })?;
        let kind = EventKind::ALL
            .iter()
            .copied()
            .find(|k| writer_name(writer).as_deref() == Some(k.name()))
            .ok_or(DecodeError::UnknownSchema { fingerprint })?;
        let known = &REGISTRY.by_kind[&kind];
        let body_error = |e: apache_avro::Error| DecodeError::Body {
            kind: kind.name(),
            reason: e.to_string(),
        };
        let current = Schema::parse_str(kind.schema_text()).expect("checked by REGISTRY");
        let datum_reader = GenericDatumReader::builder(writer)
            .reader_schema(&current)
            .human_readable(false)
            .build()
            .map_err(body_error)?;
        let mut body = &bytes[HEADER_LEN..];
        let value = datum_reader.read_value(&mut body).map_err(body_error)?;
        ensure_consumed(known.kind.name(), body)?;
        Event::from_value(kind, &value).map_err(body_error)
    }
}

fn writer_name(schema: &Schema) -> Option<String> {
    schema.name().map(|n| n.name().to_string())
}
