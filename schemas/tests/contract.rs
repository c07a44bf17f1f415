//! The contract holds: schema files and Rust types agree, every event round-trips through the
//! single-object codec, and garbage never panics the decoder. Records of earlier schema versions:
//! `tests/evolution.rs`.
//!
//! To (re)write the schema files from the Rust types after changing an event, run
//! `TESSERA_WRITE_SCHEMAS=1 cargo test -p tessera-contract --test contract` and review the diff.

use std::path::PathBuf;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use proptest::prelude::*;
use tessera_contract::codec::{self, DecodeError};
use tessera_contract::{EventKind, decode, encode, examples};

fn schema_path(kind: EventKind) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("avro")
        .join(kind.schema_file())
}

fn pretty(schema: &Schema) -> String {
    serde_json::to_string_pretty(schema).expect("schemas serialize") + "\n"
}

#[test]
fn schema_files_equal_the_rust_types() {
    let write = std::env::var_os("TESSERA_WRITE_SCHEMAS").is_some();
    let mut drifted = Vec::new();
    for &kind in EventKind::ALL {
        let derived = kind.derived_schema();
        if write {
            std::fs::write(schema_path(kind), pretty(&derived)).unwrap();
            continue;
        }
        let file = Schema::parse_str(kind.schema_text())
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", kind.schema_file()));
        // Full JSON equality: names, field order, types, logical types, defaults and docs.
        let file_json = serde_json::to_value(&file).unwrap();
        let derived_json = serde_json::to_value(&derived).unwrap();
        if file_json != derived_json {
            drifted.push(format!(
                "{}:\n  file:    {}\n  derived: {}",
                kind.schema_file(),
                file_json,
                derived_json
            ));
        }
    }
    assert!(
        drifted.is_empty(),
        "schema files and Rust types disagree:\n{}",
        drifted.join("\n")
    );
}

#[test]
fn every_schema_file_documents_every_field() {
    fn walk(value: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("type").and_then(|t| t.as_str()) == Some("record") {
                    let name = map["name"].as_str().unwrap_or("?");
                    for field in map["fields"].as_array().into_iter().flatten() {
                        let field_name = field["name"].as_str().unwrap_or("?");
                        if field
                            .get("doc")
                            .and_then(|d| d.as_str())
                            .is_none_or(str::is_empty)
                        {
                            missing.push(format!("{path}: {name}.{field_name}"));
                        }
                    }
                }
                for v in map.values() {
                    walk(v, path, missing);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, path, missing)),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for &kind in EventKind::ALL {
        let json: serde_json::Value = serde_json::from_str(kind.schema_text()).unwrap();
        walk(&json, kind.schema_file(), &mut missing);
    }
    assert!(missing.is_empty(), "fields without a doc: {missing:?}");
}

#[test]
fn every_kind_has_an_example_and_all_round_trip() {
    let examples = examples::all();
    for &kind in EventKind::ALL {
        assert!(
            examples.iter().any(|e| e.kind() == kind),
            "no example of {kind:?}"
        );
    }
    for event in examples {
        let bytes = encode(&event).unwrap();
        assert_eq!(codec::peek_kind(&bytes).unwrap(), event.kind());
        assert_eq!(decode(&bytes).unwrap(), event);
    }
}

/// CRC-64-AVRO as the Avro specification writes it out, apart from any library.
fn crc64_avro(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    let table: Vec<u64> = (0..256u64)
        .map(|i| (0..8).fold(i, |fp, _| (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg())))
        .collect();
    bytes.iter().fold(EMPTY, |fp, &b| {
        (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

#[test]
fn records_are_standard_single_object_encoding() {
    // The header names the schema by the specification's fingerprint: what Java's
    // SchemaNormalization.parsingFingerprint64 gives for the same .avsc (these two measured with
    // Avro 1.12.2), and what BinaryMessageDecoder and fastavro look a schema up by.
    let java = [
        (EventKind::Tick, 0x8914_d54b_5556_5959_u64),
        (EventKind::OfferClosed, 0xf9d5_efe7_d7b8_7dc8),
    ];
    for (kind, fingerprint) in java {
        assert_eq!(codec::fingerprint(kind), fingerprint, "{kind:?}");
    }
    for event in examples::all() {
        let kind = event.kind();
        let schema = Schema::parse_str(kind.schema_text()).unwrap();
        let form = codec::canonical_form(&schema);
        assert!(!form.contains(r#"{"type":"string"}"#) && !form.contains(r#"{"type":"long"}"#));
        let bytes = encode(&event).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let header = u64::from_le_bytes(bytes[2..10].try_into().unwrap());
        assert_eq!(header, codec::fingerprint(kind));
        assert_eq!(header, crc64_avro(form.as_bytes()), "{kind:?}");
        // The body is plain Avro binary of that schema, all of it.
        let mut body = &bytes[10..];
        GenericDatumReader::builder(&schema)
            .human_readable(false)
            .build()
            .unwrap()
            .read_value(&mut body)
            .unwrap_or_else(|e| panic!("{kind:?}'s body is not its schema's Avro binary: {e}"));
        assert!(body.is_empty(), "{kind:?} leaves bytes after its body");
    }
}

#[test]
fn every_event_leads_with_its_id_and_peek_event_id_reads_it() {
    for event in examples::all() {
        let bytes = encode(&event).unwrap();
        let fields = codec::fields(&bytes).unwrap();
        let (name, value) = &fields[0];
        assert_eq!(
            name,
            "event_id",
            "{:?} must lead with its event id",
            event.kind()
        );
        assert_eq!(
            codec::peek_event_id(&bytes).unwrap(),
            value.trim_matches('"')
        );
        assert!(
            codec::peek_event_id(&bytes[..11]).is_err(),
            "a cut id is an error"
        );
    }
}

#[test]
fn fields_name_nested_values_by_path() {
    let offer = examples::all()
        .into_iter()
        .find(|e| e.kind() == EventKind::OfferPublished)
        .unwrap();
    let fields = codec::fields(&encode(&offer).unwrap()).unwrap();
    let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"recommendation.identifier"), "{names:?}");
    assert!(names.contains(&"credential.platform_half.enc"), "{names:?}");
}

#[test]
fn foreign_and_short_records_are_typed_errors() {
    assert!(matches!(decode(b""), Err(DecodeError::TooShort { len: 0 })));
    assert!(matches!(
        decode(b"{\"json\": true}"),
        Err(DecodeError::BadMagic { .. })
    ));
    assert!(matches!(
        decode(&[0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0]),
        Err(DecodeError::UnknownSchema { .. })
    ));
    let mut padded = encode(&examples::all()[0]).unwrap();
    padded.push(0);
    assert!(matches!(
        decode(&padded),
        Err(DecodeError::TrailingBytes { extra: 1, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        which in 0usize..EventKind::ALL.len(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let kind = EventKind::ALL[which];
        let mut bytes = codec::header_for(&Schema::parse_str(kind.schema_text()).unwrap()).to_vec();
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes);
        let _ = codec::peek_event_id(&bytes);
        let _ = codec::fields(&bytes);
    }

    #[test]
    fn truncated_events_are_errors(which in 0usize..1000, cut in 0usize..10_000) {
        let events = examples::all();
        let event = &events[which % events.len()];
        let bytes = encode(event).unwrap();
        let cut = cut % bytes.len();
        prop_assert!(decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn corrupted_events_never_panic(which in 0usize..1000, at in 0usize..10_000, flip in 1u8..=255) {
        let events = examples::all();
        let mut bytes = encode(&events[which % events.len()]).unwrap();
        let at = at % bytes.len();
        bytes[at] ^= flip;
        let _ = decode(&bytes);
        let _ = codec::peek_event_id(&bytes);
        let _ = codec::fields(&bytes);
    }
}
