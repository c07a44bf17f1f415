//! The names, keys and terms the property tests give their generated events, so an id means the
//! same in every test: offer `o1`, its credential for subscriber `s2` is `c-1-2`.
#![allow(dead_code)]

use proptest::prelude::*;
use tessera_contract::sealing::PrivateKey;
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::Topic;
use tessera_contract::{Deadline, Event, LogPosition, OfferTerms, TimeRule, encode};
use tessera_cores::replay::RawRecord;

/// Where every partition's stamps start.
pub(crate) const BASE: i64 = 1_000_000;

pub(crate) fn offer_id(offer: u8) -> String {
    format!("o{offer}")
}

/// The timekeeper names one credential per offer and recipient.
pub(crate) fn credential_id(offer: u8, subscriber: u8) -> String {
    format!("c-{offer}-{subscriber}")
}

pub(crate) fn subscriber_id(subscriber: u8) -> String {
    format!("s{subscriber}")
}

/// The terms every generated offer's verdicts quote: a deadline 500 ms after [`BASE`].
pub(crate) fn terms() -> OfferTerms {
    OfferTerms {
        position: LogPosition {
            topic: "tessera.offers".into(),
            partition: super::PARTITION,
            offset: 0,
            stamp: BASE,
        },
        time_rule: TimeRule::Deadline(Deadline { at: BASE + 500 }),
    }
}

/// The key file of a party or role, derived from its name: a provider, a subscriber,
/// "timekeeper", "matcher", "delivery" or "rewards".
pub(crate) fn private_of(id: &str) -> PrivateKey {
    PrivateKey::from_bytes(format!("{id:<32}").as_bytes()).unwrap()
}

/// The signing key of a party or role, derived from its key file.
pub(crate) fn signer_of(id: &str) -> SigningKey {
    SigningKey::derive(&private_of(id))
}

/// Offers `o0` to `o2`; `o3` is never published.
pub(crate) fn offer() -> impl Strategy<Value = u8> {
    prop_oneof![9 => 0u8..3, 1 => Just(3u8)]
}

/// `event` as the record `writer` signs on `topic` under `key`.
pub(crate) fn signed(topic: Topic, key: String, event: &Event, writer: &str) -> RawRecord {
    let value = encode(event).unwrap();
    let signature = signer_of(writer).sign_record(topic.name, Some(key.as_bytes()), Some(&value));
    RawRecord {
        key: Some(key.into_bytes()),
        value: Some(value),
        signature: Some(signature.to_vec()),
        refused: None,
    }
}
