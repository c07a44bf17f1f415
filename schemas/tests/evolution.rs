//! Schema evolution holds: every released version of every event is FULL compatible with every
//! other, the current schema is released, and records written with any released version decode
//! into the current event.
//!
//! When `schema_history_is_full_compatible_and_current` fails, its message says what to do:
//! usually, release a changed schema by copying `schemas/avro/<event>.avsc` to
//! `schemas/avro/history/<event>/v<N+1>.avsc`. See docs/SCHEMAS.md.

use apache_avro::Schema;
use proptest::prelude::*;
use tessera_contract::codec::{self, DecodeError};
use tessera_contract::evolution::{self, Release};
use tessera_contract::{Event, EventKind, decode, encode, examples};

#[test]
fn schema_history_is_full_compatible_and_current() {
    let problems = evolution::problems();
    assert!(
        problems.is_empty(),
        "the released schema versions do not hold (docs/SCHEMAS.md):\n- {}",
        problems.join("\n- ")
    );
}

/// The newest release of `kind`.
fn newest(kind: EventKind) -> Release {
    *evolution::releases(kind).last().unwrap()
}

#[test]
fn every_released_version_decodes_into_the_current_event() {
    let mut earlier = 0;
    for event in examples::all() {
        let kind = event.kind();
        for release in evolution::releases(kind) {
            let old = codec::encode_as(&event, release.version).unwrap();
            let what = format!("{kind:?} v{}", release.version);
            assert_eq!(codec::peek_kind(&old).unwrap(), kind, "{what}");
            let current = encode(&event).unwrap();
            assert_eq!(
                codec::peek_event_id(&old).unwrap(),
                codec::peek_event_id(&current).unwrap(),
                "{what}"
            );
            let read = decode(&old).unwrap_or_else(|e| panic!("{what}: {e}"));
            // What the version carries survives: written again with it, the bytes are the same.
            assert_eq!(
                codec::encode_as(&read, release.version).unwrap(),
                old,
                "{what}"
            );
            assert!(codec::fields(&old).is_ok(), "{what}");
            if release == newest(kind) {
                assert_eq!(
                    old, current,
                    "{what}: the newest release is the current schema"
                );
                assert_eq!(codec::peek_version(&old).unwrap(), None, "{what}");
            } else if old != current {
                earlier += 1;
                assert_eq!(
                    codec::peek_version(&old).unwrap(),
                    Some(release.version),
                    "{what}"
                );
            }
        }
    }
    assert!(
        earlier > 0,
        "no example was written with an earlier version"
    );
}

#[test]
fn an_offer_of_version_3_reads_with_the_field_version_4_added_at_its_default() {
    // v4 of OfferPublished added `provider_endorsement` (["null", "bytes"], default null).
    let mut offer = examples::offer("o1", "A", tessera_contract::Custody::CoSign);
    offer.signing_key = vec![7; 32];
    offer.package_signature = vec![8; 64];
    offer.provider_endorsement = Some(vec![9; 64]);
    let v3 = codec::encode_as(&offer.clone().into(), 3).unwrap();
    let v3_schema =
        Schema::parse_str(evolution::releases(EventKind::OfferPublished)[2].text).unwrap();
    assert_eq!(&v3[..codec::HEADER_LEN], &codec::header_for(&v3_schema));
    let Event::OfferPublished(read) = decode(&v3).unwrap() else {
        panic!("an offer");
    };
    assert_eq!(
        read.provider_endorsement, None,
        "v3 has no endorsement: the default"
    );
    offer.provider_endorsement = None;
    assert_eq!(read, offer, "everything v3 has comes through");
    let fields = codec::fields(&v3).unwrap();
    assert!(
        fields.contains(&("provider_endorsement".into(), "null".into())),
        "{fields:?}"
    );
}

#[test]
fn an_offer_of_version_4_reads_with_no_decision_deadline() {
    // v5 of OfferPublished added `decide_within` (["null", "long"], default null): an offer
    // written before it sets no deadline, so its acceptances earn as they always did.
    let mut offer = examples::offer("o1", "A", tessera_contract::Custody::CoSign);
    offer.decide_within = Some(60_000);
    let v4 = codec::encode_as(&offer.clone().into(), 4).unwrap();
    let Event::OfferPublished(read) = decode(&v4).unwrap() else {
        panic!("an offer");
    };
    assert_eq!(read.decide_within, None, "v4 has no deadline: the default");
    offer.decide_within = None;
    assert_eq!(read, offer, "everything v4 has comes through");
}

#[test]
fn a_version_never_released_is_still_unknown() {
    // OfferWithdrawn with a field more, compatible but not in the history: its records are
    // dead letters, not guesses.
    let mut json: serde_json::Value =
        serde_json::from_str(EventKind::OfferWithdrawn.schema_text()).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "note", "type": ["null", "string"], "default": null}
        ));
    let schema = Schema::parse(&json).unwrap();
    let mut bytes = codec::header_for(&schema).to_vec();
    let current = encode(
        &examples::all()
            .into_iter()
            .find(|e| e.kind() == EventKind::OfferWithdrawn)
            .unwrap(),
    )
    .unwrap();
    bytes.extend_from_slice(&current[codec::HEADER_LEN..]);
    bytes.push(0); // the note's union branch: null
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::UnknownSchema { .. })
    ));
    assert!(codec::peek_kind(&bytes).is_err());
}

/// The headers of every earlier version whose wire form differs from the current one.
fn earlier_headers() -> Vec<[u8; codec::HEADER_LEN]> {
    EventKind::ALL
        .iter()
        .flat_map(|&kind| evolution::releases(kind))
        .map(|release| codec::header_for(&Schema::parse_str(release.text).unwrap()))
        .filter(|header| codec::peek_version(header).is_ok_and(|v| v.is_some()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bodies_behind_an_earlier_header_never_panic(
        which in 0usize..1000,
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let headers = earlier_headers();
        let mut bytes = headers[which % headers.len()].to_vec();
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes);
        let _ = codec::peek_event_id(&bytes);
        let _ = codec::fields(&bytes);
    }

    #[test]
    fn corrupted_earlier_records_never_panic(which in 0usize..1000, at in 0usize..10_000, flip in 1u8..=255) {
        let events = examples::all();
        let event = &events[which % events.len()];
        let releases = evolution::releases(event.kind());
        let mut bytes = codec::encode_as(event, releases[which % releases.len()].version).unwrap();
        let at = at % bytes.len();
        bytes[at] ^= flip;
        let _ = decode(&bytes);
        let _ = codec::fields(&bytes);
    }
}
