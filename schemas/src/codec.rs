//! Avro single-object encoding of tessera events: `C3 01`, the writer schema's 8-byte CRC-64-AVRO
//! (Rabin) fingerprint in little-endian order, then the Avro binary body.
//!
//! The fingerprint lets any consumer tell a record's type from its first 10 bytes, which is how one
//! topic carries several event types without a registry service. Decoding never panics: anything
//! that is not a known event, or not all of one, is a [`DecodeError`] that a processor can turn
//! into a dead letter.
//!
//! The fingerprint also names the version: records written with any released version of an
//! event's schema ([`crate::evolution`], `schemas/avro/history/`) decode into the current event,
//! resolved by Avro's schema resolution, so every consumer (the processors' cores, the auditor,
//! the clients), all of which decode here, reads the history written before a schema change.
//! A fingerprint of no released version is still an [`DecodeError::UnknownSchema`].
//!
//! The fingerprint is the Avro specification's: CRC-64-AVRO of the schema's Parsing Canonical
//! Form, the one Java's `BinaryMessageEncoder`/`BinaryMessageDecoder` and Python's fastavro
//! compute, so their stock single-object coders read and write tessera's records. Records written
//! before tessera followed the specification carry the fingerprint of apache-avro's own canonical
//! form (see [`canonical_form`]); they still decode, and link digests are computed over that
//! earlier form ([`digest_form`]), so the verdict chains on logs of either kind stay as they
//! were written.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use sha2::Digest;

use crate::events::{Event, EventKind};
use crate::evolution;

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
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum DecodeError {
    /// Fewer bytes than the single-object header.
    #[error(
        "record too short for an Avro single-object header: {len} bytes, need at least {HEADER_LEN}"
    )]
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
    /// The header records written before the specification's fingerprint carry.
    earlier_header: [u8; HEADER_LEN],
    schema: &'static Schema,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

/// An earlier released version of an event's schema ([`crate::evolution`]), ready to read records
/// written with it as the current version, and to write current events as it would have.
struct Earlier {
    kind: EventKind,
    version: u32,
    header: [u8; HEADER_LEN],
    /// The header of its records written before the specification's fingerprint.
    earlier_header: [u8; HEADER_LEN],
    /// Reads its records resolved to the current schema.
    upgrade: GenericDatumReader<'static>,
    /// Reads current records resolved to it.
    downgrade: GenericDatumReader<'static>,
}

/// What a record's fingerprint names.
#[derive(Clone, Copy)]
enum Writer {
    /// The current schema of the kind.
    Current(EventKind),
    /// An earlier released version, by index in `Registry::earlier`.
    Earlier(usize),
}

struct Registry {
    by_kind: HashMap<EventKind, Known>,
    by_fingerprint: HashMap<u64, Writer>,
    earlier: Vec<Earlier>,
}

/// Parses a schema that lives as long as the process: leaking it once lets the cached readers and
/// writers borrow it without self-referential structs.
fn leaked(text: &str, file: &str) -> &'static Schema {
    Box::leak(Box::new(
        Schema::parse_str(text).unwrap_or_else(|e| panic!("{file} is not a valid schema: {e}")),
    ))
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
    let mut by_kind = HashMap::new();
    let mut by_fingerprint = HashMap::new();
    for &kind in EventKind::ALL {
        let schema = leaked(kind.schema_text(), kind.schema_file());
        let (header, earlier_header) = (header_for(schema), apache_avro_header(schema));
        let writer = GenericDatumWriter::builder(schema)
            .human_readable(false)
            .build()
            .unwrap_or_else(|e| panic!("{} cannot be written: {e}", kind.schema_file()));
        let reader = GenericDatumReader::builder(schema)
            .human_readable(false)
            .build()
            .unwrap_or_else(|e| panic!("{} cannot be read: {e}", kind.schema_file()));
        by_fingerprint.insert(fingerprint_of(&header), Writer::Current(kind));
        by_fingerprint.insert(fingerprint_of(&earlier_header), Writer::Current(kind));
        by_kind.insert(
            kind,
            Known {
                kind,
                header,
                earlier_header,
                schema,
                writer,
                reader,
            },
        );
    }
    // Earlier versions, oldest first, so that of two versions with one fingerprint (they differ
    // in docs or defaults only, not in what is on the wire) the newer reads. A version with the
    // current fingerprint is the current schema.
    let mut earlier = Vec::new();
    for &kind in EventKind::ALL {
        let current = by_kind[&kind].schema;
        for release in evolution::releases(kind) {
            let file = format!("{}/{}", evolution::HISTORY_DIR, release.path);
            let schema = leaked(release.text, &file);
            let (header, earlier_header) = (header_for(schema), apache_avro_header(schema));
            let fingerprint = fingerprint_of(&header);
            if matches!(by_fingerprint.get(&fingerprint), Some(Writer::Current(_))) {
                continue;
            }
            let resolving = |writer: &'static Schema, reader: &'static Schema| {
                GenericDatumReader::builder(writer)
                    .reader_schema(reader)
                    .human_readable(false)
                    .build()
                    .unwrap_or_else(|e| panic!("{file} cannot be resolved: {e}"))
            };
            by_fingerprint.insert(fingerprint, Writer::Earlier(earlier.len()));
            by_fingerprint.insert(
                fingerprint_of(&earlier_header),
                Writer::Earlier(earlier.len()),
            );
            earlier.push(Earlier {
                kind,
                version: release.version,
                header,
                earlier_header,
                upgrade: resolving(schema, current),
                downgrade: resolving(current, schema),
            });
        }
    }
    Registry {
        by_kind,
        by_fingerprint,
        earlier,
    }
});

/// The single-object header (`C3 01` + fingerprint) for records written with `schema`: the
/// fingerprint of its Parsing Canonical Form, as the Avro specification defines it.
pub fn header_for(schema: &Schema) -> [u8; HEADER_LEN] {
    header_of(canonical_form(schema).as_bytes())
}

/// The header tessera wrote before it followed the specification: the fingerprint of
/// apache-avro's own canonical form.
fn apache_avro_header(schema: &Schema) -> [u8; HEADER_LEN] {
    header_of(schema.canonical_form().as_bytes())
}

fn header_of(canonical: &[u8]) -> [u8; HEADER_LEN] {
    let fingerprint = <Rabin as Digest>::digest(canonical);
    let mut header = [0u8; HEADER_LEN];
    header[..2].copy_from_slice(&MAGIC);
    header[2..].copy_from_slice(&fingerprint[..8]);
    header
}

/// The Parsing Canonical Form of `schema` as the Avro specification defines it. apache-avro (up
/// to 0.22 at least, AVRO-4004) strips a logical type but keeps its primitive as an object,
/// `{"type":"long"}`, where the specification, Java's Avro and fastavro write `"long"`. In a
/// canonical form, which has no whitespace, only such a left-over wrapper reads `{"type":"<a
/// primitive>"}`: a complex type has more attributes.
pub fn canonical_form(schema: &Schema) -> String {
    const PRIMITIVES: [&str; 8] = [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];
    let mut form = schema.canonical_form();
    for primitive in PRIMITIVES {
        form = form.replace(
            &format!(r#"{{"type":"{primitive}"}}"#),
            &format!(r#""{primitive}""#),
        );
    }
    form
}

/// `bytes`, a record of a known schema, with the header tessera wrote before it followed the
/// specification's fingerprint, as two slices to read in turn (no copy of the record: every
/// linked verdict is hashed this way). Link digests hash this form, so a verdict chain reads the
/// same whichever header its records were written with; anything else is returned as it is.
pub fn digest_form(bytes: &[u8]) -> [&[u8]; 2] {
    let Ok(writer) = writer_of(bytes) else {
        return [bytes, &[]];
    };
    let header = match writer {
        Writer::Current(kind) => &REGISTRY.by_kind[&kind].earlier_header,
        Writer::Earlier(i) => &REGISTRY.earlier[i].earlier_header,
    };
    [header, &bytes[HEADER_LEN..]]
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
    event
        .write_body(&known.writer, &mut out)
        .map_err(|e| EncodeError {
            kind: known.kind.name(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// Encodes an event with released version `version` of its schema ([`crate::evolution`]), as a
/// writer built against that version would have: fields the version lacks are left out. For tests
/// and fixtures of schema evolution; processors and clients write the current version
/// ([`encode`]). A version whose wire form is the current one's encodes as [`encode`] does.
pub fn encode_as(event: &Event, version: u32) -> Result<Vec<u8>, EncodeError> {
    let kind = event.kind();
    let error = |reason: String| EncodeError {
        kind: kind.name(),
        reason,
    };
    let current = encode(event)?;
    let release = evolution::releases(kind)
        .into_iter()
        .find(|r| r.version == version)
        .ok_or_else(|| error(format!("{} has no released version {version}", kind.name())))?;
    let header = header_for(&Schema::parse_str(release.text).map_err(|e| error(e.to_string()))?);
    match REGISTRY.by_fingerprint.get(&fingerprint_of(&header)) {
        Some(&Writer::Earlier(i)) => downgrade(&current, i)
            .ok_or_else(|| error(format!("cannot be written as version {version}"))),
        _ => Ok(current),
    }
}

/// Reads the header only: which event type the bytes claim to be. Cheap; lets a consumer skip
/// records (ticks, other types) without decoding their bodies. Records written with an earlier
/// released version of an event's schema are of that event.
pub fn peek_kind(bytes: &[u8]) -> Result<EventKind, DecodeError> {
    Ok(match writer_of(bytes)? {
        Writer::Current(kind) => kind,
        Writer::Earlier(i) => REGISTRY.earlier[i].kind,
    })
}

/// The released version of its event's schema a record was written with ([`crate::evolution`]),
/// `None` for the current schema.
pub fn peek_version(bytes: &[u8]) -> Result<Option<u32>, DecodeError> {
    Ok(match writer_of(bytes)? {
        Writer::Current(_) => None,
        Writer::Earlier(i) => Some(REGISTRY.earlier[i].version),
    })
}

fn writer_of(bytes: &[u8]) -> Result<Writer, DecodeError> {
    let fingerprint = read_header(bytes)?;
    REGISTRY
        .by_fingerprint
        .get(&fingerprint)
        .copied()
        .ok_or(DecodeError::UnknownSchema { fingerprint })
}

/// Decodes bytes written with any released version of any tessera event's schema into the current
/// version of the event: a record of an earlier version is resolved to the current schema (fields
/// it lacks take their defaults), so history written before a schema change still reads.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    match writer_of(bytes)? {
        Writer::Current(kind) => {
            let known = &REGISTRY.by_kind[&kind];
            let mut body = &bytes[HEADER_LEN..];
            let event = Event::read_body(kind, &known.reader, &mut body).map_err(|e| {
                DecodeError::Body {
                    kind: kind.name(),
                    reason: e.to_string(),
                }
            })?;
            ensure_consumed(kind.name(), body)?;
            Ok(event)
        }
        Writer::Earlier(i) => {
            let earlier = &REGISTRY.earlier[i];
            let kind = earlier.kind;
            let value = read_value(kind, &earlier.upgrade, bytes)?;
            Event::from_value(kind, &value).map_err(|e| DecodeError::Body {
                kind: kind.name(),
                reason: e.to_string(),
            })
        }
    }
}

/// Re-encodes `current`, a record written with the current schema of its event, as the writer of
/// `like` (a record of the same event) would have written it: with the version `like` was written
/// with, and with its header (the specification's fingerprint, or the one tessera wrote before).
/// `None` when `like` is of another event, and when its version cannot carry all of `current` (a
/// field it lacks is not at its default). An auditor compares what a replay derives with what an
/// older processor wrote this way.
pub fn encode_like(current: &[u8], like: &[u8]) -> Option<Vec<u8>> {
    let mut written = match writer_of(like).ok()? {
        Writer::Earlier(i) => downgrade(current, i)?,
        Writer::Current(kind) if peek_kind(current).ok()? == kind => current.to_vec(),
        Writer::Current(_) => return None,
    };
    written[..HEADER_LEN].copy_from_slice(&like[..HEADER_LEN]);
    (decode(&written).ok()? == decode(current).ok()?).then_some(written)
}

/// `current`, a record of the current schema, written as the earlier version `i` of its event,
/// without what that version lacks.
fn downgrade(current: &[u8], i: usize) -> Option<Vec<u8>> {
    let Ok(Writer::Current(kind)) = writer_of(current) else {
        return None;
    };
    let earlier = &REGISTRY.earlier[i];
    if earlier.kind != kind {
        return None;
    }
    let value = read_value(kind, &earlier.downgrade, current).ok()?;
    let mut out = earlier.header.to_vec();
    write_sorted(&value, &mut out).ok()?;
    Some(out)
}

/// Writes a value resolved to a schema in Avro's binary encoding, with map entries in key order:
/// the order every tessera writer uses (its maps are `BTreeMap`s), which apache-avro's own writer
/// of generic values (whose maps are `HashMap`s) does not keep. Covers the types tessera's
/// schemas use.
fn write_sorted(value: &apache_avro::types::Value, out: &mut Vec<u8>) -> Result<(), String> {
    use apache_avro::types::Value;
    fn long(n: i64, out: &mut Vec<u8>) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    fn bytes(b: &[u8], out: &mut Vec<u8>) {
        long(b.len() as i64, out);
        out.extend_from_slice(b);
    }
    match value {
        Value::Null => {}
        Value::Boolean(b) => out.push(u8::from(*b)),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => long(i64::from(*n), out),
        Value::Long(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n)
        | Value::TimeMicros(n) => long(*n, out),
        Value::Float(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Double(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bytes(b) => bytes(b, out),
        Value::String(text) => bytes(text.as_bytes(), out),
        Value::Uuid(id) => bytes(id.to_string().as_bytes(), out),
        Value::Fixed(_, b) => out.extend_from_slice(b),
        Value::Enum(index, _) => long(i64::from(*index), out),
        Value::Union(index, inner) => {
            long(i64::from(*index), out);
            write_sorted(inner, out)?;
        }
        Value::Array(items) => {
            if !items.is_empty() {
                long(items.len() as i64, out);
                for item in items {
                    write_sorted(item, out)?;
                }
            }
            out.push(0);
        }
        Value::Map(entries) => {
            if !entries.is_empty() {
                long(entries.len() as i64, out);
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort();
                for key in keys {
                    bytes(key.as_bytes(), out);
                    write_sorted(&entries[key], out)?;
                }
            }
            out.push(0);
        }
        Value::Record(fields) => {
            for (_, field) in fields {
                write_sorted(field, out)?;
            }
        }
        other => return Err(format!("no tessera schema holds {other:?}")),
    }
    Ok(())
}

/// Reads the body of `bytes` with `reader`, all of it.
fn read_value(
    kind: EventKind,
    reader: &GenericDatumReader<'static>,
    bytes: &[u8],
) -> Result<apache_avro::types::Value, DecodeError> {
    let mut body = &bytes[HEADER_LEN..];
    let value = reader
        .read_value(&mut body)
        .map_err(|e| DecodeError::Body {
            kind: kind.name(),
            reason: e.to_string(),
        })?;
    ensure_consumed(kind.name(), body)?;
    Ok(value)
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
        let byte = *body
            .get(read)
            .ok_or_else(|| malformed("the event id is cut short"))?;
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
///
/// A record of an earlier version shows as resolved to the current schema, so that it compares
/// field by field with a current one.
pub fn fields(bytes: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let value = match writer_of(bytes)? {
        Writer::Current(kind) => read_value(kind, &REGISTRY.by_kind[&kind].reader, bytes)?,
        Writer::Earlier(i) => {
            let earlier = &REGISTRY.earlier[i];
            read_value(earlier.kind, &earlier.upgrade, bytes)?
        }
    };
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
    let digits: String = bytes
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples;

    /// The path that reads earlier versions ends in `Event::from_value`: every event type must
    /// come out of a generic value as it comes out of its bytes, before any of them gets a
    /// second version.
    #[test]
    fn every_event_reads_from_a_resolved_value_as_from_its_bytes() {
        for event in examples::all() {
            let kind = event.kind();
            let bytes = encode(&event).unwrap();
            let value = read_value(kind, &REGISTRY.by_kind[&kind].reader, &bytes).unwrap();
            assert_eq!(Event::from_value(kind, &value).unwrap(), event, "{kind:?}");
        }
    }
}

#[cfg(test)]
mod sorted_tests {
    use super::*;
    use crate::examples;

    /// The writer of resolved values writes what apache-avro writes for the current schema.
    #[test]
    fn write_sorted_writes_what_the_codec_writes() {
        for event in examples::all() {
            let kind = event.kind();
            let bytes = encode(&event).unwrap();
            let value = read_value(kind, &REGISTRY.by_kind[&kind].reader, &bytes).unwrap();
            let mut out = bytes[..HEADER_LEN].to_vec();
            write_sorted(&value, &mut out).unwrap();
            assert_eq!(out, bytes, "{kind:?}");
        }
    }

    #[test]
    fn records_with_the_header_tessera_wrote_before_read_and_hash_alike() {
        for event in crate::examples::all() {
            let kind = event.kind();
            let bytes = encode(&event).unwrap();
            let mut earlier = bytes.clone();
            earlier[..HEADER_LEN].copy_from_slice(&REGISTRY.by_kind[&kind].earlier_header);
            // Every event has a logical-typed field (its uuid event id), so the headers differ.
            assert_ne!(earlier, bytes, "{kind:?}");
            assert_eq!(decode(&earlier).unwrap(), event, "{kind:?}");
            assert_eq!(peek_kind(&earlier).unwrap(), kind);
            assert_eq!(encode_like(&bytes, &earlier).as_deref(), Some(&earlier[..]));
            assert_eq!(digest_form(&bytes).concat(), digest_form(&earlier).concat());
        }
    }
}
