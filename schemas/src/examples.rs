//! One example of every event, with optional parts both present and absent: what the contract
//! tests round-trip, what the integration test sends through a real broker, and a quick way for a
//! reader to see an event's shape.

use std::collections::BTreeMap;

use crate::events::*;

fn id(n: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
}

fn sealed(tag: u8) -> SealedBox {
    SealedBox {
        enc: vec![tag; 32],
        ciphertext: vec![tag ^ 0xff; 48],
    }
}

fn position(topic: &str, offset: i64) -> LogPosition {
    LogPosition {
        topic: topic.to_string(),
        partition: 3,
        offset,
        stamp: 1_764_061_200_000 + offset,
    }
}

/// A link as the runtime fills it, for the input at `offset` of `topic` (its digests are
/// placeholders here, not computed).
fn link(topic: &str, offset: i64) -> Link {
    let byte = offset as u8;
    Link {
        previous: vec![byte; 32],
        source: position(topic, offset),
        input: vec![byte ^ 0x0f; 32],
        digest: vec![byte ^ 0xf0; 32],
    }
}

fn terms(time_rule: TimeRule) -> OfferTerms {
    OfferTerms {
        position: position("tessera.offers", 10),
        time_rule,
    }
}

fn recommendation() -> Recommendation {
    Recommendation {
        identifier: "doc-X".into(),
        name: "Quarterly report X".into(),
        features: BTreeMap::from([
            ("format".into(), "pdf".into()),
            ("lang".into(), "en".into()),
        ]),
        parameters: BTreeMap::from([("pages".into(), 42), ("price".into(), 9_900)]),
    }
}

/// An offer for tests to adjust: `offer_id` of `provider_id` in `custody`, document X with a
/// deadline of 2025-11-25T10:00:00Z, no capacity, no reward, a package that names the offer, and
/// halves filled with 1 (platform) and 2 (escrow, in escrow custody).
pub fn offer(offer_id: &str, provider_id: &str, custody: Custody) -> OfferPublished {
    let name = format!("offer/{offer_id}");
    OfferPublished {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
        offer_id: offer_id.into(),
        provider_id: provider_id.into(),
        signing_key: Vec::new(),
        package_signature: Vec::new(),
        provider_endorsement: None,
        provider_contact: format!("{provider_id}@example.org"),
        recommendation: recommendation(),
        time_rule: TimeRule::Deadline(Deadline {
            at: 1_764_064_800_000,
        }),
        capacity: None,
        reward: None,
        decide_within: None,
        credential: SealedCredential {
            custody,
            package: format!("package of {offer_id}").into_bytes(),
            platform_half: sealed(1),
            escrow_half: (custody == Custody::Escrow).then(|| sealed(2)),
        },
        invite_late: false,
    }
}

/// A close for tests to adjust: offer `offer_id`, with `terms`, closed at `closed_at` by its rule
/// (not withdrawn) with nothing requested, answered, released or rejected, and no link yet.
pub fn closed(offer_id: &str, offer: OfferTerms, closed_at: i64) -> OfferClosed {
    OfferClosed {
        event_id: format!("closed-{offer_id}"),
        offer_id: offer_id.into(),
        offer,
        closed_at,
        requested: 0,
        responded: 0,
        released: 0,
        rejected: 0,
        withdrawn: false,
        link: Default::default(),
    }
}

/// Every event kind at least once; kinds with optional fields appear with them set and unset.
pub fn all() -> Vec<Event> {
    let deadline = TimeRule::Deadline(Deadline {
        at: 1_764_064_800_000,
    });
    let window = TimeRule::Window(Window {
        from: 1_764_061_200_000,
        to: 1_764_064_800_000,
    });
    let within = TimeRule::Within(Within {
        duration_ms: 3_600_000,
    });
    vec![
        SubscriberRegistered {
            event_id: id(1),
            subscriber_id: "B1".into(),
            contact: "b1@example.org".into(),
            public_key: vec![7; 32],
            signing_key: Vec::new(),
            interests: vec![Interest {
                identifier: Some("doc-X".into()),
                terms: vec!["report".into()],
                features: BTreeMap::from([("format".into(), "pdf".into())]),
                ranges: vec![ParameterRange {
                    name: "price".into(),
                    min: None,
                    max: Some(10_000),
                }],
            }],
            webhook: Some("https://b1.example.org/inbox".into()),
            endorsement: None,
            sealed_contact: None,
        }
        .into(),
        SubscriberRegistered {
            event_id: id(2),
            subscriber_id: "B2".into(),
            contact: "b2@example.org".into(),
            public_key: vec![8; 32],
            signing_key: Vec::new(),
            interests: vec![],
            webhook: None,
            endorsement: None,
            sealed_contact: Some(sealed(9)),
        }
        .into(),
        SubscriberRemoved {
            event_id: id(3),
            subscriber_id: "B3".into(),
        }
        .into(),
        OfferPublished {
            event_id: id(4),
            offer_id: "offer-1".into(),
            provider_id: "A".into(),
            signing_key: Vec::new(),
            package_signature: Vec::new(),
            provider_endorsement: None,
            provider_contact: "a@example.org".into(),
            recommendation: recommendation(),
            time_rule: deadline,
            capacity: Some(1),
            reward: Some(Reward {
                amount: 250,
                currency: "EUR".into(),
            }),
            decide_within: Some(86_400_000),
            credential: SealedCredential {
                custody: Custody::Escrow,
                package: vec![1; 40],
                platform_half: sealed(1),
                escrow_half: Some(sealed(2)),
            },
            invite_late: true,
        }
        .into(),
        OfferPublished {
            event_id: id(5),
            offer_id: "offer-2".into(),
            provider_id: "A".into(),
            signing_key: Vec::new(),
            package_signature: Vec::new(),
            provider_endorsement: None,
            provider_contact: "a@example.org".into(),
            recommendation: recommendation(),
            time_rule: window,
            capacity: None,
            reward: None,
            decide_within: None,
            credential: SealedCredential {
                custody: Custody::CoSign,
                package: vec![2; 16],
                platform_half: sealed(3),
                escrow_half: None,
            },
            invite_late: false,
        }
        .into(),
        OfferWithdrawn {
            event_id: id(6),
            offer_id: "offer-1".into(),
            provider_id: "A".into(),
            reason: Some("sold out".into()),
        }
        .into(),
        OfferWithdrawn {
            event_id: id(7),
            offer_id: "offer-2".into(),
            provider_id: "A".into(),
            reason: None,
        }
        .into(),
        InteractionRequested {
            event_id: id(8),
            request_id: "offer-1/B1".into(),
            offer_id: "offer-1".into(),
            subscriber_id: "B1".into(),
            subscriber_key: vec![7; 32],
            subscriber_signing_key: Vec::new(),
            recommendation: recommendation(),
            offer: terms(within),
            provider_contact: "a@example.org".into(),
            decide_within: Some(86_400_000),
        }
        .into(),
        ResponseSubmitted {
            event_id: id(9),
            offer_id: "offer-1".into(),
            request_id: "offer-1/B1".into(),
            subscriber_id: "B1".into(),
        }
        .into(),
        CredentialReleased {
            event_id: id(10),
            offer_id: "offer-1".into(),
            credential_id: "cred-1".into(),
            subscriber_id: "B1".into(),
            subscriber_signing_key: Vec::new(),
            request_id: "offer-1/B1".into(),
            response: position("tessera.responses", 11),
            offer: terms(deadline),
            platform_half: sealed(5),
            provider_half: Some(sealed(6)),
            link: link("tessera.responses", 11),
        }
        .into(),
        ResponseRejected {
            event_id: id(11),
            offer_id: "offer-1".into(),
            subscriber_id: "B2".into(),
            request_id: "offer-1/B2".into(),
            reason: RejectReason::TooLate,
            response: position("tessera.responses", 12),
            offer: Some(terms(deadline)),
            detail: "received 09:05:00.000Z, deadline 09:00:00.000Z".into(),
            link: link("tessera.responses", 12),
        }
        .into(),
        ResponseRejected {
            event_id: id(12),
            offer_id: "offer-9".into(),
            subscriber_id: "B2".into(),
            request_id: "offer-9/B2".into(),
            reason: RejectReason::UnknownOffer,
            response: position("tessera.responses", 13),
            offer: None,
            detail: "no offer offer-9 by stream time".into(),
            link: link("tessera.responses", 13),
        }
        .into(),
        OfferRejected {
            event_id: id(13),
            offer_id: "offer-3".into(),
            provider_id: "A".into(),
            problem: OfferProblem::WindowEndsBeforeStart,
            offer: position("tessera.offers", 14),
            detail: "window ends before it starts".into(),
            link: link("tessera.offers", 14),
        }
        .into(),
        OfferClosed {
            event_id: id(14),
            offer_id: "offer-1".into(),
            offer: terms(deadline),
            closed_at: 1_764_064_800_001,
            requested: 2,
            responded: 2,
            released: 1,
            rejected: 1,
            withdrawn: false,
            link: link("tessera.requests", 15),
        }
        .into(),
        ProviderShareReleased {
            event_id: id(15),
            offer_id: "offer-1".into(),
            credential_id: "cred-1".into(),
            subscriber_id: "B1".into(),
            provider_half: sealed(7),
        }
        .into(),
        PackageChunk {
            event_id: id(30),
            offer_id: "offer-1".into(),
            index: 0,
            sealed: vec![9; 64],
        }
        .into(),
        CredentialDelivered {
            event_id: id(16),
            credential_id: "cred-1".into(),
            offer_id: "offer-1".into(),
            subscriber_id: "B1".into(),
            package: vec![1, 2, 3],
            platform_half: sealed(5),
            provider_half: sealed(7),
            attempts: 1,
            provider_id: String::new(),
            provider_signing_key: Vec::new(),
            package_signature: Vec::new(),
        }
        .into(),
        DeliveryFailed {
            event_id: id(17),
            credential_id: "cred-2".into(),
            offer_id: "offer-1".into(),
            subscriber_id: "B2".into(),
            attempts: 5,
            reason: "webhook answered 503".into(),
        }
        .into(),
        Notice {
            event_id: id(31),
            subscriber_id: "B1".into(),
            sealed: sealed(8),
        }
        .into(),
        CredentialAccepted {
            event_id: id(18),
            offer_id: "offer-1".into(),
            credential_id: "cred-1".into(),
            subscriber_id: "B1".into(),
        }
        .into(),
        CredentialDeclined {
            event_id: id(19),
            offer_id: "offer-1".into(),
            credential_id: "cred-3".into(),
            subscriber_id: "B4".into(),
            reason: None,
        }
        .into(),
        RewardCredited {
            event_id: id(20),
            provider_id: "A".into(),
            offer_id: "offer-1".into(),
            credential_id: "cred-1".into(),
            amount: 250,
            currency: "EUR".into(),
            balance: 250,
            link: link("tessera.ledger-credits", 3),
        }
        .into(),
        RewardDue {
            event_id: id(24),
            provider_id: "A".into(),
            offer_id: "offer-1".into(),
            credential_id: "cred-1".into(),
            subscriber_id: "B1".into(),
            amount: 250,
            currency: "EUR".into(),
            accepted: position("tessera.outcomes", 7),
        }
        .into(),
        DeadLetter {
            event_id: id(21),
            processor: "timekeeper".into(),
            source_topic: "tessera.responses".into(),
            source_partition: 3,
            source_offset: 99,
            source_timestamp: Some(1_764_061_200_099),
            key: Some(b"offer-1".to_vec()),
            value: Some(vec![0xde, 0xad]),
            reason: "not Avro single-object encoded".into(),
            record_digest: Vec::new(),
            truncated: false,
            task: Some(3),
        }
        .into(),
        DeadLetter {
            event_id: id(22),
            processor: "matcher".into(),
            source_topic: "tessera.offers".into(),
            source_partition: 0,
            source_offset: 0,
            source_timestamp: None,
            key: None,
            value: None,
            reason: "empty record".into(),
            record_digest: Vec::new(),
            truncated: false,
            task: Some(0),
        }
        .into(),
        KeyPublished {
            event_id: id(24),
            role: KeyPublished::TIMEKEEPER.into(),
            suite: crate::sealing::SUITE.into(),
            public_key: vec![9; 32],
            signing_key: Vec::new(),
        }
        .into(),
        Tick {
            event_id: id(23),
            ticker: "ticker-1".into(),
            seq: 1,
        }
        .into(),
    ]
}
