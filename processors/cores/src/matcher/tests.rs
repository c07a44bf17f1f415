//! The matcher core driven through [`crate::replay::step`], as the runtime drives it: records go
//! in as bytes and requests come out as bytes.

use std::collections::BTreeMap;

use tessera_contract::{
    Custody, Deadline, Event, InteractionRequested, Interest, OfferPublished, OfferWithdrawn,
    ParameterRange, Recommendation, SealedBox, SealedCredential, SubscriberRegistered,
    SubscriberRemoved, TimeRule, Window,
};
use tessera_state::{MemoryState, State};

use tessera_contract::sealing::PrivateKey;
use tessera_contract::signing::SigningKey;

use super::*;
use crate::merge::Entry;
use crate::registry;
use crate::replay::{Produced, RawRecord, step};

const OFFER_PARTITION: i32 = 2;

/// A matcher task and the position of the next record it reads.
struct Task<S> {
    core: Matcher,
    state: S,
    offset: i64,
    /// The task's partition number: offers come from [`OFFER_PARTITION`] whatever it is.
    task: i32,
}

impl Task<MemoryState> {
    fn new() -> Self {
        Task::with(MemoryState::new())
    }
}

impl<S: State> Task<S> {
    fn with(state: S) -> Self {
        Task {
            core: Matcher::default(),
            state,
            offset: 0,
            task: 0,
        }
    }

    fn position(&mut self, topic: usize, stamp: i64) -> Position {
        self.offset += 1;
        Position {
            topic,
            partition: if topic == InputTopic::Offers as usize {
                OFFER_PARTITION
            } else {
                0
            },
            task: self.task,
            offset: self.offset,
            stamp,
            effective: stamp,
        }
    }

    fn send(
        &mut self,
        topic: usize,
        stamp: i64,
        key: Option<&[u8]>,
        value: Option<Vec<u8>>,
    ) -> Vec<Produced> {
        self.send_signed(topic, stamp, key, value, None)
    }

    fn send_signed(
        &mut self,
        topic: usize,
        stamp: i64,
        key: Option<&[u8]>,
        value: Option<Vec<u8>>,
        signer: Option<&SigningKey>,
    ) -> Vec<Produced> {
        let at = self.position(topic, stamp);
        let name = self.core.inputs()[topic].clone();
        let signature = signer.map(|s| s.sign_record(&name, key, value.as_deref()).to_vec());
        let record = RawRecord {
            key: key.map(<[u8]>::to_vec),
            value,
            signature,
            refused: None,
        };
        step(&mut self.core, &mut self.state, Entry { at, item: record })
    }

    /// Sends `event` signed by `signer`, and returns everything it produced.
    fn signed_by(
        &mut self,
        signer: &SigningKey,
        topic: usize,
        stamp: i64,
        key: &str,
        event: Event,
    ) -> Vec<Produced> {
        let value = tessera_contract::encode(&event).unwrap();
        self.send_signed(
            topic,
            stamp,
            Some(key.as_bytes()),
            Some(value),
            Some(signer),
        )
    }

    /// Sends `event` signed by its author, as the honest party writes it.
    fn event(
        &mut self,
        topic: usize,
        stamp: i64,
        key: &str,
        event: Event,
    ) -> Vec<InteractionRequested> {
        let author = match &event {
            Event::SubscriberRegistered(e) => e.subscriber_id.clone(),
            Event::SubscriberRemoved(e) => e.subscriber_id.clone(),
            Event::OfferPublished(e) => e.provider_id.clone(),
            Event::OfferWithdrawn(e) => e.provider_id.clone(),
            _ => String::new(),
        };
        requests(self.signed_by(&signer_of(&author), topic, stamp, key, event))
    }

    fn register(
        &mut self,
        stamp: i64,
        subscriber: &str,
        interests: Vec<Interest>,
    ) -> Vec<InteractionRequested> {
        self.event(
            InputTopic::Subscribers as usize,
            stamp,
            subscriber,
            registered(subscriber, interests).into(),
        )
    }

    fn publish(&mut self, stamp: i64, offer: OfferPublished) -> Vec<InteractionRequested> {
        let key = offer.offer_id.clone();
        self.event(InputTopic::Offers as usize, stamp, &key, offer.into())
    }

    /// The subscribers an offer invites, in output order.
    fn invited(&mut self, stamp: i64, offer: OfferPublished) -> Vec<String> {
        self.publish(stamp, offer)
            .into_iter()
            .map(|r| r.subscriber_id)
            .collect()
    }
}

/// The requests among the outputs; any dead letter or other event fails the test.
fn requests(produced: Vec<Produced>) -> Vec<InteractionRequested> {
    produced
        .into_iter()
        .map(|p| match p {
            Produced::Output(output) => {
                assert_eq!(output.topic, 0);
                match tessera_contract::decode(&output.value).unwrap() {
                    Event::InteractionRequested(request) => {
                        assert_eq!(
                            output.key, request.offer_id,
                            "requests are keyed by offer id"
                        );
                        request
                    }
                    other => panic!("unexpected output {other:?}"),
                }
            }
            dead => panic!("unexpected dead letter {dead:?}"),
        })
        .collect()
}

/// A 32-byte stand-in for the subscriber's public key, its own for each subscriber, so a test
/// sees which key an invitation carries.
fn key_of(subscriber: &str) -> Vec<u8> {
    format!("{subscriber:<32}").into_bytes()
}

/// The signing key of party `id`, its own for each party.
fn signer_of(id: &str) -> SigningKey {
    let secret = format!("{id:>32}");
    SigningKey::derive(&PrivateKey::from_bytes(secret.as_bytes()).unwrap())
}

fn verifying_key_of(id: &str) -> Vec<u8> {
    signer_of(id).verifying_key().to_bytes()
}

/// The reasons of the dead letters among `produced`; any other output fails the test.
fn dead_letters(produced: Vec<Produced>) -> Vec<String> {
    produced
        .into_iter()
        .map(|p| match p {
            Produced::Output(output) => {
                assert_eq!(output.topic, registry::DEAD_LETTERS, "{output:?}");
                match tessera_contract::decode(&output.value).unwrap() {
                    Event::DeadLetter(letter) => letter.reason,
                    other => panic!("unexpected output {other:?}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn registered(subscriber: &str, interests: Vec<Interest>) -> SubscriberRegistered {
    SubscriberRegistered {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, subscriber.as_bytes()).to_string(),
        subscriber_id: subscriber.into(),
        contact: format!("{subscriber}@example.org"),
        public_key: key_of(subscriber),
        signing_key: verifying_key_of(subscriber),
        interests,
        webhook: None,
        endorsement: None,
        sealed_contact: None,
    }
}

fn wanting(identifier: &str) -> Interest {
    Interest {
        identifier: Some(identifier.into()),
        terms: vec![],
        features: BTreeMap::new(),
        ranges: vec![],
    }
}

fn terms(terms: &[&str]) -> Interest {
    Interest {
        identifier: None,
        terms: terms.iter().map(|t| t.to_string()).collect(),
        features: BTreeMap::new(),
        ranges: vec![],
    }
}

fn cheaper_than(max: i64) -> Interest {
    Interest {
        identifier: None,
        terms: vec![],
        features: BTreeMap::new(),
        ranges: vec![ParameterRange {
            name: "price".into(),
            min: None,
            max: Some(max),
        }],
    }
}

/// An offer of document `identifier` priced 9 900, open until stamp 1 000 000.
fn offer(offer_id: &str, identifier: &str) -> OfferPublished {
    let sealed = SealedBox {
        enc: vec![1; 32],
        ciphertext: vec![2; 48],
    };
    tessera_contract::identity::with_package_signed(
        OfferPublished {
            event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, offer_id.as_bytes())
                .to_string(),
            offer_id: offer_id.into(),
            provider_id: "A".into(),
            signing_key: verifying_key_of("A"),
            package_signature: Vec::new(),
            provider_endorsement: None,
            provider_contact: "a@example.org".into(),
            recommendation: Recommendation {
                identifier: identifier.into(),
                name: "Quarterly Report X".into(),
                features: BTreeMap::from([("format".into(), "pdf".into())]),
                parameters: BTreeMap::from([("price".into(), 9_900)]),
            },
            time_rule: TimeRule::Deadline(Deadline { at: 1_000_000 }),
            capacity: None,
            reward: None,
            decide_within: None,
            credential: SealedCredential {
                custody: Custody::CoSign,
                package: vec![3; 16],
                platform_half: sealed,
                escrow_half: None,
            },
            invite_late: false,
        },
        &signer_of("A"),
    )
}

#[test]
fn reads_one_subscribers_partition_and_every_offer_partition() {
    let core = Matcher::default();
    assert_eq!(core.name(), "matcher");
    assert_eq!(core.inputs(), ["tessera.subscribers", "tessera.offers"]);
    assert_eq!(core.outputs(), ["tessera.requests", "tessera.dead-letters"]);
    assert_eq!(core.broadcast_inputs(), [InputTopic::Offers as usize]);
}

#[test]
fn invites_every_matching_subscriber_with_the_offer_terms_deadlines_and_provider_contact() {
    let mut task = Task::new();
    assert!(task.register(10, "B2", vec![terms(&["report"])]).is_empty());
    assert!(task.register(11, "B1", vec![wanting("doc-X")]).is_empty());
    assert!(
        task.register(12, "B3", vec![wanting("doc-Y"), cheaper_than(9_899)])
            .is_empty()
    );
    let mut offer = offer("offer-1", "doc-X");
    offer.decide_within = Some(3_600_000);
    let requests = task.publish(100, offer.clone());
    let at = Position {
        topic: InputTopic::Offers as usize,
        partition: OFFER_PARTITION,
        task: 0,
        offset: 4,
        stamp: 100,
        effective: 100,
    };
    let expected: Vec<InteractionRequested> = ["B1", "B2"]
        .iter()
        .map(|subscriber| InteractionRequested {
            event_id: request_event_id(&at, &request_id("offer-1", subscriber)),
            request_id: request_id("offer-1", subscriber),
            offer_id: "offer-1".into(),
            subscriber_id: subscriber.to_string(),
            subscriber_key: key_of(subscriber),
            subscriber_signing_key: verifying_key_of(subscriber),
            recommendation: offer.recommendation.clone(),
            offer: OfferTerms {
                position: LogPosition {
                    topic: "tessera.offers".into(),
                    partition: OFFER_PARTITION,
                    offset: 4,
                    stamp: 100,
                },
                time_rule: offer.time_rule,
            },
            provider_contact: "a@example.org".into(),
            decide_within: Some(3_600_000),
        })
        .collect();
    assert_eq!(requests, expected);
}

#[test]
fn tasks_that_read_the_same_offer_give_their_invitations_distinct_event_ids() {
    let (mut one, mut other) = (Task::new(), Task::new());
    one.register(1, "B1", vec![wanting("doc-X")]);
    other.register(1, "B2", vec![wanting("doc-X")]);
    let first = one.publish(2, offer("offer-1", "doc-X"));
    let second = other.publish(2, offer("offer-1", "doc-X"));
    assert_eq!(first[0].offer.position, second[0].offer.position);
    assert_ne!(first[0].event_id, second[0].event_id);
    let mut again = Task::new();
    again.register(1, "B1", vec![wanting("doc-X")]);
    assert_eq!(
        again.publish(2, offer("offer-1", "doc-X")),
        first,
        "a replay writes the same ids"
    );
}

#[test]
fn a_subscriber_meeting_several_of_its_interests_is_invited_once() {
    let mut task = Task::new();
    let all = vec![
        wanting("doc-X"),
        terms(&["quarterly"]),
        cheaper_than(10_000),
        terms(&[]),
    ];
    task.register(1, "B1", all);
    assert_eq!(task.invited(2, offer("offer-1", "doc-X")), ["B1"]);
}

#[test]
fn a_republished_offer_id_invites_no_one_again() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    assert_eq!(task.invited(2, offer("offer-1", "doc-X")), ["B1"]);
    task.register(3, "B2", vec![wanting("doc-X")]);
    assert!(task.invited(4, offer("offer-1", "doc-X")).is_empty());
    assert_eq!(task.invited(5, offer("offer-2", "doc-X")), ["B1", "B2"]);
}

#[test]
fn re_registering_replaces_the_interests() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    task.register(2, "B1", vec![wanting("doc-Y")]);
    assert!(task.invited(3, offer("offer-1", "doc-X")).is_empty());
    assert_eq!(task.invited(4, offer("offer-2", "doc-Y")), ["B1"]);
}

#[test]
fn removal_ends_invitations_and_a_tombstone_changes_nothing() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    task.register(2, "B2", vec![wanting("doc-X")]);
    task.register(3, "B3", vec![wanting("doc-X")]);
    let removed = SubscriberRemoved {
        event_id: uuid::Uuid::nil().to_string(),
        subscriber_id: "B1".into(),
    };
    assert!(
        task.event(InputTopic::Subscribers as usize, 4, "B1", removed.into())
            .is_empty()
    );
    // Anyone can write a tombstone (it carries no event to sign): it must not remove B2.
    assert!(requests(task.send(InputTopic::Subscribers as usize, 5, Some(b"B2"), None)).is_empty());
    assert_eq!(task.invited(6, offer("offer-1", "doc-X")), ["B2", "B3"]);
}

#[test]
fn interest_changes_apply_to_offers_received_after_them() {
    let mut task = Task::new();
    assert!(task.invited(10, offer("offer-1", "doc-X")).is_empty());
    assert!(
        task.register(20, "B1", vec![wanting("doc-X")]).is_empty(),
        "no invitation to earlier offers"
    );
    assert_eq!(task.invited(30, offer("offer-2", "doc-X")), ["B1"]);
    task.register(40, "B1", vec![wanting("doc-Y")]);
    assert!(task.invited(50, offer("offer-3", "doc-X")).is_empty());
}

#[test]
fn offers_the_timekeeper_rejects_invite_no_one() {
    let mut task = Task::new();
    task.register(1, "B1", vec![terms(&[])]);
    let mut blank = offer("blank", " ");
    blank.recommendation.identifier = " ".into();
    assert!(task.invited(2, blank).is_empty());
    let mut ended = offer("ended", "doc-X");
    ended.time_rule = TimeRule::Deadline(Deadline { at: 2 });
    assert!(task.invited(3, ended).is_empty());
    let mut reversed = offer("reversed", "doc-X");
    reversed.time_rule = TimeRule::Window(Window { from: 9, to: 8 });
    assert!(task.invited(4, reversed).is_empty());
    // The timekeeper keeps judging against the first, rejected offer of an id (a republication
    // is a DuplicateOffer), so a valid offer under the same id invites no one either.
    assert!(task.invited(5, offer("ended", "doc-X")).is_empty());
}

#[test]
fn withdrawals_invite_no_one() {
    let mut task = Task::new();
    task.register(1, "B1", vec![terms(&[])]);
    let withdrawn = OfferWithdrawn {
        event_id: uuid::Uuid::nil().to_string(),
        offer_id: "offer-1".into(),
        provider_id: "A".into(),
        reason: None,
    };
    assert!(
        task.event(InputTopic::Offers as usize, 2, "offer-1", withdrawn.into())
            .is_empty()
    );
}

#[test]
fn records_that_do_not_fit_are_dead_letters_with_a_reason() {
    let core = Matcher::default();
    let encode = |event: Event| tessera_contract::encode(&event).unwrap();
    let subscriber = encode(registered("B1", vec![]).into());
    let published = encode(offer("offer-1", "doc-X").into());
    let reason = |topic, key: Option<&[u8]>, value: Option<&[u8]>| {
        core.decode(Raw { topic, key, value }).unwrap_err()
    };

    assert_eq!(
        reason(InputTopic::Subscribers as usize, None, Some(&subscriber)),
        "record has no key"
    );
    assert_eq!(
        reason(
            InputTopic::Subscribers as usize,
            Some(&[0xff]),
            Some(&subscriber)
        ),
        "record key is not UTF-8"
    );
    assert_eq!(
        reason(InputTopic::Subscribers as usize, Some(b""), None),
        "record key is empty"
    );
    assert!(
        reason(
            InputTopic::Subscribers as usize,
            Some(b"B2"),
            Some(&subscriber)
        )
        .contains("differs")
    );
    assert!(
        reason(
            InputTopic::Offers as usize,
            Some(b"offer-2"),
            Some(&published)
        )
        .contains("differs")
    );
    assert_eq!(
        reason(
            InputTopic::Subscribers as usize,
            Some(b"offer-1"),
            Some(&published)
        ),
        "a OfferPublished does not belong on input tessera.subscribers"
    );
    assert!(
        reason(InputTopic::Offers as usize, Some(b"B1"), Some(&subscriber))
            .contains("does not belong")
    );
    assert_eq!(
        reason(InputTopic::Offers as usize, Some(b"offer-1"), None),
        "record has no value"
    );
    assert!(
        reason(
            InputTopic::Offers as usize,
            Some(b"offer-1"),
            Some(b"not avro")
        )
        .contains("too short")
    );
    assert!(reason(2, Some(b"offer-1"), Some(&published)).contains("unknown"));

    assert_eq!(
        core.decode(Raw {
            topic: InputTopic::Subscribers as usize,
            key: Some(b"B1"),
            value: None
        }),
        Ok(MatcherRecord::Tombstone)
    );
}

#[test]
fn an_undecodable_record_is_a_dead_letter_and_changes_nothing() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    let before = task.state.clone();
    let produced = task.send(
        InputTopic::Subscribers as usize,
        2,
        Some(b"B1"),
        Some(b"garbage!garbage!".to_vec()),
    );
    assert!(matches!(produced.as_slice(), [Produced::DeadLetter { .. }]));
    assert_eq!(task.state, before);
}

/// The runtime aborts a transaction by dropping the store's writes since the last commit; the
/// index keeps nothing outside the state, so putting the committed state back takes back every
/// interest change in between.
#[test]
fn an_aborted_transaction_takes_its_interest_changes_back() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    let committed = task.state.clone();
    task.register(2, "B1", vec![wanting("doc-Y")]);
    task.register(3, "B2", vec![wanting("doc-X")]);
    task.state = committed;
    assert_eq!(task.invited(4, offer("offer-1", "doc-X")), ["B1"]);
}

#[test]
fn a_takeover_of_a_pinned_subscriber_is_refused_as_not_owner_and_changes_nothing() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    let before = task.state.clone();
    // The impostor registers B1 with its own keys, signed with them: the id is pinned to B1's.
    let mut takeover = registered("B1", vec![terms(&[])]);
    takeover.signing_key = verifying_key_of("impostor");
    takeover.public_key = key_of("impostor");
    let refused = dead_letters(task.signed_by(
        &signer_of("impostor"),
        InputTopic::Subscribers as usize,
        2,
        "B1",
        takeover.into(),
    ));
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].starts_with("NotOwner: registration of B1"),
        "{}",
        refused[0]
    );
    assert_eq!(task.state, before, "a refused registration changes nothing");
    // B1 is still invited with its own keys.
    let invited = task.publish(3, offer("offer-1", "doc-X"));
    assert_eq!(invited[0].subscriber_signing_key, verifying_key_of("B1"));
    assert_eq!(invited[0].subscriber_key, key_of("B1"));
}

#[test]
fn unsigned_and_forged_registrations_and_removals_are_refused_with_their_reason() {
    let mut task = Task::new();
    let unsigned = tessera_contract::encode(&registered("B1", vec![]).into()).unwrap();
    let refused = dead_letters(task.send(
        InputTopic::Subscribers as usize,
        1,
        Some(b"B1"),
        Some(unsigned),
    ));
    assert!(
        refused[0].starts_with("Unauthenticated: "),
        "{}",
        refused[0]
    );
    assert!(refused[0].contains("not signed"), "{}", refused[0]);
    // A registration carrying B1's key, signed by someone else, proves nothing.
    let forged = dead_letters(task.signed_by(
        &signer_of("impostor"),
        InputTopic::Subscribers as usize,
        2,
        "B1",
        registered("B1", vec![]).into(),
    ));
    assert!(forged[0].starts_with("Unauthenticated: "), "{}", forged[0]);
    task.register(3, "B1", vec![wanting("doc-X")]);
    let removal = SubscriberRemoved {
        event_id: uuid::Uuid::nil().to_string(),
        subscriber_id: "B1".into(),
    };
    let foreign = dead_letters(task.signed_by(
        &signer_of("impostor"),
        InputTopic::Subscribers as usize,
        4,
        "B1",
        removal.into(),
    ));
    assert!(
        foreign[0].starts_with("NotOwner: removal of B1"),
        "{}",
        foreign[0]
    );
    assert_eq!(task.invited(5, offer("offer-1", "doc-X")), ["B1"]);
}

#[test]
fn an_offer_not_signed_with_its_provider_key_invites_no_one() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    let forged = offer("offer-1", "doc-X");
    let produced = task.signed_by(
        &signer_of("impostor"),
        InputTopic::Offers as usize,
        2,
        "offer-1",
        forged.into(),
    );
    assert!(produced.is_empty(), "{produced:?}");
    // Its id is not taken: the provider's own offer under it still invites.
    assert_eq!(task.invited(3, offer("offer-1", "doc-X")), ["B1"]);
}

#[test]
fn with_a_trust_anchor_only_endorsed_subscribers_are_invited() {
    let anchor = signer_of("anchor");
    let mut task = Task::new();
    task.core = Matcher::new(Some(anchor.verifying_key()));
    let refused = dead_letters(task.signed_by(
        &signer_of("B1"),
        InputTopic::Subscribers as usize,
        1,
        "B1",
        registered("B1", vec![wanting("doc-X")]).into(),
    ));
    assert!(refused[0].starts_with("Unendorsed: "), "{}", refused[0]);
    let mut endorsed = registered("B2", vec![wanting("doc-X")]);
    let parts = identity::endorsement_parts("B2", &endorsed.public_key, &endorsed.signing_key);
    endorsed.endorsement = Some(
        anchor
            .sign_statement(identity::ENDORSEMENT_TAG, &parts)
            .to_vec(),
    );
    task.event(InputTopic::Subscribers as usize, 2, "B2", endorsed.into());
    // A provider's first offer must be endorsed too.
    let unendorsed = offer("offer-1", "doc-X");
    let refused = dead_letters(task.signed_by(
        &signer_of("A"),
        InputTopic::Offers as usize,
        3,
        "offer-1",
        unendorsed.into(),
    ));
    assert!(refused.is_empty(), "only the offer's own task reports it");
    let a_key = verifying_key_of("A");
    let parts = provider::endorsement_parts("A", &a_key);
    let endorsement = anchor
        .sign_statement(provider::ENDORSEMENT_TAG, &parts)
        .to_vec();
    let endorsed_offer = offer_as("offer-2", &signer_of("A"), Some(endorsement));
    assert_eq!(task.invited(4, endorsed_offer), ["B2"]);
}

/// Offer `offer_id` of document X naming provider A, but carrying and signed with `signer`'s key.
fn offer_as(offer_id: &str, signer: &SigningKey, endorsement: Option<Vec<u8>>) -> OfferPublished {
    let mut offer = offer(offer_id, "doc-X");
    offer.signing_key = signer.verifying_key().to_bytes();
    offer.provider_endorsement = endorsement;
    tessera_contract::identity::with_package_signed(offer, signer)
}

#[test]
fn an_offer_in_another_providers_name_invites_no_one_and_its_own_task_says_why() {
    let impostor = signer_of("impostor");
    for task_partition in [0, OFFER_PARTITION] {
        let mut task = Task::new();
        task.task = task_partition;
        task.register(10, "B1", vec![wanting("doc-X")]);
        assert_eq!(
            task.publish(100, offer("offer-1", "doc-X")).len(),
            1,
            "A's first offer pins A"
        );
        let forged = offer_as("offer-2", &impostor, None);
        let produced = task.signed_by(
            &impostor,
            InputTopic::Offers as usize,
            101,
            "offer-2",
            forged.into(),
        );
        let invited = produced
            .iter()
            .filter(|p| matches!(p, Produced::Output(o) if o.topic == registry::OUTPUT))
            .count();
        assert_eq!(invited, 0, "the impostor's offer invites no one");
        let letters = dead_letters(produced.clone());
        if task_partition == OFFER_PARTITION {
            assert_eq!(letters.len(), 1, "{letters:?}");
            assert!(
                letters[0].starts_with(
                    "NotOwner: offer offer-2 names provider A but carries another key"
                ),
                "{letters:?}"
            );
        } else {
            assert!(
                letters.is_empty(),
                "only the offer's own task reports it: {letters:?}"
            );
        }
        assert_eq!(
            task.publish(102, offer("offer-3", "doc-X")).len(),
            1,
            "A still publishes"
        );
    }
}

#[test]
fn a_provider_rotates_its_key_with_an_endorsement_by_the_pinned_one() {
    use provider::{ENDORSEMENT_TAG, endorsement_parts};
    let mut task = Task::new();
    task.register(10, "B1", vec![wanting("doc-X")]);
    assert_eq!(task.publish(100, offer("offer-1", "doc-X")).len(), 1);
    let rotated = signer_of("A, rotated");
    let new_key = rotated.verifying_key().to_bytes();
    let endorsement =
        signer_of("A").sign_statement(ENDORSEMENT_TAG, &endorsement_parts("A", &new_key));
    let rotation = offer_as("offer-2", &rotated, Some(endorsement.to_vec()));
    let produced = task.signed_by(
        &rotated,
        InputTopic::Offers as usize,
        101,
        "offer-2",
        rotation.into(),
    );
    assert_eq!(requests(produced).len(), 1, "the rotation invites");
    let old = offer("offer-3", "doc-X");
    let produced = task.signed_by(
        &signer_of("A"),
        InputTopic::Offers as usize,
        102,
        "offer-3",
        old.into(),
    );
    assert!(
        requests(produced).is_empty(),
        "the old key no longer speaks for A"
    );
}

#[test]
fn an_undecodable_offer_gets_one_letter_from_the_task_of_its_partition() {
    for task_partition in [0, OFFER_PARTITION] {
        let mut task = Task::new();
        task.task = task_partition;
        let produced = task.send(
            InputTopic::Offers as usize,
            10,
            Some(b"junk"),
            Some(vec![0xff; 64]),
        );
        let letters: Vec<_> = produced
            .iter()
            .filter(|p| matches!(p, Produced::DeadLetter { .. }))
            .collect();
        let expected = usize::from(task_partition == OFFER_PARTITION);
        assert_eq!(
            letters.len(),
            expected,
            "task {task_partition}: {produced:?}"
        );
    }
}

/// `offer`, published to invite subscribers that register while it is open.
fn inviting_late(mut offer: OfferPublished) -> OfferPublished {
    offer.invite_late = true;
    offer
}

fn withdrawal(offer_id: &str, provider_id: &str) -> OfferWithdrawn {
    OfferWithdrawn {
        event_id: uuid::Uuid::nil().to_string(),
        offer_id: offer_id.into(),
        provider_id: provider_id.into(),
        reason: None,
    }
}

impl Task<MemoryState> {
    /// A task holding offer-1 of document X, published at 100 to invite late until 1 000 000.
    fn with_open_offer() -> Self {
        let mut task = Task::new();
        task.publish(100, inviting_late(offer("offer-1", "doc-X")));
        task
    }
}

impl<S: State> Task<S> {
    /// The offers that invite the subscriber registering with `interests`, in output order.
    fn invited_to(
        &mut self,
        stamp: i64,
        subscriber: &str,
        interests: Vec<Interest>,
    ) -> Vec<String> {
        self.register(stamp, subscriber, interests)
            .into_iter()
            .map(|r| {
                assert_eq!(r.subscriber_id, subscriber);
                r.offer_id
            })
            .collect()
    }

    /// Withdraws offer-1 naming provider `provider`, signed by `signer`: all it produced.
    fn withdraw(&mut self, stamp: i64, provider: &str, signer: &str) -> Vec<Produced> {
        let withdrawn = withdrawal("offer-1", provider).into();
        let offers = InputTopic::Offers as usize;
        self.signed_by(&signer_of(signer), offers, stamp, "offer-1", withdrawn)
    }

    /// The offers that invite the subscriber registering for document X.
    fn wants_doc_x(&mut self, stamp: i64, subscriber: &str) -> Vec<String> {
        self.invited_to(stamp, subscriber, vec![wanting("doc-X")])
    }

    /// Moves stream time to `stamp` with a tick.
    fn tick(&mut self, stamp: i64) -> Vec<Emitted> {
        let at = self.position(InputTopic::Subscribers as usize, stamp);
        self.core.apply(&mut self.state, Input::Tick { at })
    }
}

/// Whether offer `offer_id` of document X is kept open.
fn is_open(state: &MemoryState, offer_id: &str) -> bool {
    open::matching(state, &[wanting("doc-X")]).contains_key(offer_id)
}

/// State `before` offer-1 was published, once `subscriber` registered for document X at 200 and
/// offer-1 closed: only what every offer by A leaves, its id marked seen and A's key pinned.
fn left_behind(before: MemoryState, subscriber: &str) -> MemoryState {
    let mut expected = Task::with(before);
    expected.register(200, subscriber, vec![wanting("doc-X")]);
    SEEN.put(&mut expected.state, "offer-1", &());
    let pin = provider::check(None, &offer("offer-1", "doc-X"), None).unwrap();
    PROVIDERS.put(&mut expected.state, "A", &pin);
    expected.state
}

#[test]
fn a_subscriber_registering_while_an_offer_is_open_gets_the_invitation_a_match_would_make() {
    // Everything the offer forwards, its decision deadline included, reaches a late invitation.
    let offered = || OfferPublished {
        decide_within: Some(60_000),
        ..inviting_late(offer("offer-1", "doc-X"))
    };
    let mut late = Task::new();
    assert!(late.publish(100, offered()).is_empty());
    let requests = late.register(200, "B1", vec![wanting("doc-X")]);
    let registration = Position {
        topic: InputTopic::Subscribers as usize,
        partition: 0,
        task: 0,
        offset: 2,
        stamp: 200,
        effective: 200,
    };
    // The same offer, at the same place, with B1 registered before it.
    let mut early = Task::new();
    early.register(50, "B1", vec![wanting("doc-X")]);
    // The offer at the offset it has in `late`.
    early.offset = 0;
    let mut forward = early.publish(100, offered());
    assert_eq!(forward.len(), 1);
    assert_eq!(forward[0].decide_within, Some(60_000));
    forward[0].event_id = request_event_id(&registration, &request_id("offer-1", "B1"));
    assert_eq!(
        requests, forward,
        "the same invitation, its event id from the registration"
    );
    assert_eq!(
        requests[0].offer.position.offset, 1,
        "it cites the offer's place"
    );
    assert_eq!(requests[0].offer.position.stamp, 100);
}

#[test]
fn a_late_registration_is_invited_up_to_the_rules_last_stamp_and_not_after() {
    let mut task = Task::with_open_offer();
    let mut within = offer("offer-2", "doc-X");
    within.time_rule = TimeRule::Within(tessera_contract::Within { duration_ms: 1_000 });
    task.publish(200, inviting_late(within));
    assert_eq!(
        task.wants_doc_x(1_200, "B1"),
        ["offer-1", "offer-2"],
        "a Within rule counts from the offer's stamp, inclusive"
    );
    assert_eq!(task.wants_doc_x(1_201, "B2"), ["offer-1"]);
    assert_eq!(
        task.wants_doc_x(1_000_000, "B3"),
        ["offer-1"],
        "every bound is inclusive"
    );
    assert!(task.wants_doc_x(1_000_001, "B4").is_empty());
}

#[test]
fn a_withdrawn_offer_invites_no_one_late() {
    let mut task = Task::with_open_offer();
    assert!(task.withdraw(150, "A", "A").is_empty());
    assert!(task.wants_doc_x(200, "B1").is_empty());
}

#[test]
fn a_withdrawal_not_signed_by_the_offers_key_changes_nothing() {
    let mut task = Task::with_open_offer();
    let before = task.state.clone();
    // Naming A but signed by another key; and signed by its author, who is not A.
    let forged = task.withdraw(110, "A", "impostor");
    assert!(
        forged.is_empty(),
        "the timekeeper reports it, not the matcher"
    );
    assert!(task.withdraw(120, "impostor", "impostor").is_empty());
    assert_eq!(task.state, before);
    assert_eq!(task.wants_doc_x(200, "B1"), ["offer-1"]);
}

#[test]
fn a_subscriber_is_invited_to_an_offer_once_however_often_it_registers() {
    let mut task = Task::new();
    task.register(10, "B1", vec![wanting("doc-X")]);
    task.register(20, "B2", vec![wanting("doc-Y")]);
    assert_eq!(
        task.invited(100, inviting_late(offer("offer-1", "doc-X"))),
        ["B1"]
    );
    assert!(
        task.invited_to(200, "B1", vec![terms(&["report"])])
            .is_empty(),
        "invited when the offer arrived"
    );
    assert_eq!(
        task.wants_doc_x(300, "B2"),
        ["offer-1"],
        "an added interest the offer meets invites"
    );
    assert!(task.wants_doc_x(400, "B2").is_empty());
    let removed = SubscriberRemoved {
        event_id: uuid::Uuid::nil().to_string(),
        subscriber_id: "B2".into(),
    };
    task.event(InputTopic::Subscribers as usize, 500, "B2", removed.into());
    assert!(task.wants_doc_x(600, "B2").is_empty());
}

#[test]
fn an_offer_published_without_late_invitations_invites_only_those_registered_before() {
    let mut task = Task::new();
    task.register(10, "B1", vec![wanting("doc-X")]);
    let before = task.state.clone();
    assert_eq!(task.invited(100, offer("offer-1", "doc-X")), ["B1"]);
    assert!(task.wants_doc_x(200, "B2").is_empty());
    assert_eq!(
        task.core.next_due(&task.state),
        None,
        "nothing of it is kept open"
    );
    // Beside what every offer leaves and B2's registration, it left nothing in state.
    assert_eq!(task.state, left_behind(before, "B2"));
}

#[test]
fn an_offer_leaves_the_state_when_its_rule_ends() {
    let mut task = Task::new();
    task.register(10, "B1", vec![wanting("doc-X")]);
    let mut offer_1 = offer("offer-1", "doc-X");
    offer_1.time_rule = TimeRule::Deadline(Deadline { at: 1_000 });
    task.register(20, "B2", vec![wanting("doc-Y")]);
    let before = task.state.clone();
    assert_eq!(task.invited(100, inviting_late(offer_1)), ["B1"]);
    assert_eq!(task.wants_doc_x(200, "B2"), ["offer-1"]);
    assert_eq!(task.core.next_due(&task.state), Some(1_000));
    assert!(task.tick(1_000).is_empty());
    assert!(is_open(&task.state, "offer-1"), "open at its last stamp");
    assert!(task.tick(1_001).is_empty());
    assert_eq!(task.core.next_due(&task.state), None);
    // Only what every offer leaves is left, and B2's new interests.
    assert_eq!(task.state, left_behind(before, "B2"));
}

#[test]
fn a_withdrawn_offer_leaves_the_state_and_its_timer_finds_nothing() {
    let mut task = Task::new();
    let before = task.state.clone();
    task.publish(100, inviting_late(offer("offer-1", "doc-X")));
    task.register(200, "B1", vec![wanting("doc-X")]);
    task.withdraw(300, "A", "A");
    assert!(!is_open(&task.state, "offer-1"));
    assert!(task.tick(1_000_001).is_empty());
    assert_eq!(task.state, left_behind(before, "B1"));
}
