//! The matcher core driven through [`crate::replay::step`], as the runtime drives it: records go
//! in as bytes and requests come out as bytes.

use std::collections::BTreeMap;

use tessera_schemas::{
    Custody, Deadline, Event, InteractionRequested, Interest, OfferPublished, OfferWithdrawn,
    ParameterRange, Recommendation, SealedBox, SealedCredential, SubscriberRegistered,
    SubscriberRemoved, TimeRule, Window,
};
use tessera_state_stores::{Checkpoint, MemoryState, State, TaskStore};

use super::*;
use crate::merge::Entry;
use crate::replay::{Produced, RawRecord, step};

const OFFER_PARTITION: i32 = 2;

/// A matcher task and the position of the next record it reads.
struct Task<S> {
    core: Matcher,
    state: S,
    offset: i64,
}

impl Task<MemoryState> {
    fn new() -> Self {
        Task::with(MemoryState::new())
    }
}

impl<S: State> Task<S> {
    fn with(state: S) -> Self {
        Task {
            core: Matcher,
            state,
            offset: 0,
        }
    }

    fn position(&mut self, topic: usize, stamp: i64) -> Position {
        self.offset += 1;
        Position {
            topic,
            partition: if topic == OFFERS_INPUT {
                OFFER_PARTITION
            } else {
                0
            },
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
        let at = self.position(topic, stamp);
        let record = RawRecord {
            key: key.map(<[u8]>::to_vec),
            value,
        };
        step(&mut self.core, &mut self.state, Entry { at, item: record })
    }

    fn event(
        &mut self,
        topic: usize,
        stamp: i64,
        key: &str,
        event: Event,
    ) -> Vec<InteractionRequested> {
        let value = tessera_schemas::encode(&event).unwrap();
        requests(self.send(topic, stamp, Some(key.as_bytes()), Some(value)))
    }

    fn register(
        &mut self,
        stamp: i64,
        subscriber: &str,
        interests: Vec<Interest>,
    ) -> Vec<InteractionRequested> {
        self.event(
            SUBSCRIBERS_INPUT,
            stamp,
            subscriber,
            registered(subscriber, interests).into(),
        )
    }

    fn publish(&mut self, stamp: i64, offer: OfferPublished) -> Vec<InteractionRequested> {
        let key = offer.offer_id.clone();
        self.event(OFFERS_INPUT, stamp, &key, offer.into())
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
                match tessera_schemas::decode(&output.value).unwrap() {
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

fn registered(subscriber: &str, interests: Vec<Interest>) -> SubscriberRegistered {
    SubscriberRegistered {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, subscriber.as_bytes()).to_string(),
        subscriber_id: subscriber.into(),
        contact: format!("{subscriber}@example.org"),
        public_key: key_of(subscriber),
        interests,
        webhook: None,
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
    OfferPublished {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, offer_id.as_bytes()).to_string(),
        offer_id: offer_id.into(),
        provider_id: "A".into(),
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
        credential: SealedCredential {
            custody: Custody::CoSign,
            package: vec![3; 16],
            platform_half: sealed,
            escrow_half: None,
        },
    }
}

#[test]
fn reads_one_subscribers_partition_and_every_offer_partition() {
    let core = Matcher;
    assert_eq!(core.name(), "matcher");
    assert_eq!(core.inputs(), ["tessera.subscribers", "tessera.offers"]);
    assert_eq!(core.outputs(), ["tessera.requests"]);
    assert_eq!(core.broadcast_inputs(), [OFFERS_INPUT]);
}

#[test]
fn invites_every_matching_subscriber_with_the_offer_terms_and_provider_contact() {
    let mut task = Task::new();
    assert!(task.register(10, "B2", vec![terms(&["report"])]).is_empty());
    assert!(task.register(11, "B1", vec![wanting("doc-X")]).is_empty());
    assert!(
        task.register(12, "B3", vec![wanting("doc-Y"), cheaper_than(9_899)])
            .is_empty()
    );
    let offer = offer("offer-1", "doc-X");
    let requests = task.publish(100, offer.clone());
    let at = Position {
        topic: OFFERS_INPUT,
        partition: OFFER_PARTITION,
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
fn removal_and_tombstones_end_invitations() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    task.register(2, "B2", vec![wanting("doc-X")]);
    task.register(3, "B3", vec![wanting("doc-X")]);
    let removed = SubscriberRemoved {
        event_id: uuid::Uuid::nil().to_string(),
        subscriber_id: "B1".into(),
    };
    assert!(
        task.event(SUBSCRIBERS_INPUT, 4, "B1", removed.into())
            .is_empty()
    );
    assert!(requests(task.send(SUBSCRIBERS_INPUT, 5, Some(b"B2"), None)).is_empty());
    assert_eq!(task.invited(6, offer("offer-1", "doc-X")), ["B3"]);
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
        task.event(OFFERS_INPUT, 2, "offer-1", withdrawn.into())
            .is_empty()
    );
}

#[test]
fn records_that_do_not_fit_are_dead_letters_with_a_reason() {
    let core = Matcher;
    let encode = |event: Event| tessera_schemas::encode(&event).unwrap();
    let subscriber = encode(registered("B1", vec![]).into());
    let published = encode(offer("offer-1", "doc-X").into());
    let reason = |topic, key: Option<&[u8]>, value: Option<&[u8]>| {
        core.decode(topic, key, value).unwrap_err()
    };

    assert_eq!(
        reason(SUBSCRIBERS_INPUT, None, Some(&subscriber)),
        "record has no key"
    );
    assert_eq!(
        reason(SUBSCRIBERS_INPUT, Some(&[0xff]), Some(&subscriber)),
        "record key is not UTF-8"
    );
    assert_eq!(
        reason(SUBSCRIBERS_INPUT, Some(b""), None),
        "record key is empty"
    );
    assert!(reason(SUBSCRIBERS_INPUT, Some(b"B2"), Some(&subscriber)).contains("differs"));
    assert!(reason(OFFERS_INPUT, Some(b"offer-2"), Some(&published)).contains("differs"));
    assert_eq!(
        reason(SUBSCRIBERS_INPUT, Some(b"offer-1"), Some(&published)),
        "a OfferPublished does not belong on input tessera.subscribers"
    );
    assert!(reason(OFFERS_INPUT, Some(b"B1"), Some(&subscriber)).contains("does not belong"));
    assert_eq!(
        reason(OFFERS_INPUT, Some(b"offer-1"), None),
        "record has no value"
    );
    assert!(reason(OFFERS_INPUT, Some(b"offer-1"), Some(b"not avro")).contains("too short"));
    assert!(reason(2, Some(b"offer-1"), Some(&published)).contains("unknown"));

    assert_eq!(
        core.decode(SUBSCRIBERS_INPUT, Some(b"B1"), None),
        Ok(MatcherRecord::Removed {
            subscriber_id: "B1".into()
        })
    );
}

#[test]
fn an_undecodable_record_is_a_dead_letter_and_changes_nothing() {
    let mut task = Task::new();
    task.register(1, "B1", vec![wanting("doc-X")]);
    let before = task.state.clone();
    let produced = task.send(
        SUBSCRIBERS_INPUT,
        2,
        Some(b"B1"),
        Some(b"garbage!garbage!".to_vec()),
    );
    assert!(matches!(produced.as_slice(), [Produced::DeadLetter { .. }]));
    assert_eq!(task.state, before);
}

#[test]
fn an_aborted_transaction_takes_its_interest_changes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Task::with(TaskStore::open(dir.path()).unwrap());
    task.register(1, "B1", vec![wanting("doc-X")]);
    task.state.commit(&Checkpoint::default()).unwrap();
    task.register(2, "B1", vec![wanting("doc-Y")]);
    task.register(3, "B2", vec![wanting("doc-X")]);
    task.state.abort();
    assert_eq!(task.invited(4, offer("offer-1", "doc-X")), ["B1"]);
}
