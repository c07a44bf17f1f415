//! The timekeeper's promises under random input: random offers, withdrawals, invitations and
//! responses with random stamps on the three input partitions of one task, garbage and ticks
//! among them, delivered in random interleavings through the merge.
//!
//! Offers carry real sealed credentials, and every record a real signature: offers and
//! withdrawals their provider's, invitations the matcher's, responses their subscriber's, some
//! of them made with the wrong subscriber's key.
//!
//! Whatever the input, no offer releases more credentials than its capacity, no subscriber gets
//! an offer's credential twice, every release met the offer's rule, no forged response is
//! released, every released half opens for its responder, every response gets exactly one
//! verdict, and an offer closes at most once; whatever the delivery order, the outputs and the
//! state are identical byte for byte, sealed halves included.

use std::collections::{BTreeMap, BTreeSet};

mod support;

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use proptest::prelude::*;
use tessera_contract::rules::{Timing, request_id};
use tessera_contract::sealing::{Half, PrivateKey, Release, open_from_release, seal_offer};
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{OFFERS, REQUESTS, RESPONSES, Topic};
use tessera_contract::{
    Custody, Deadline, Event, OfferPublished, OfferWithdrawn, Recommendation, ResponseSubmitted,
    Tick, TimeRule, Window, Within, decode, encode,
};
use tessera_contract::{InteractionRequested, LogPosition, OfferTerms};
use tessera_cores::replay::{Produced, RawRecord};
use tessera_cores::timekeeper::Timekeeper;

/// Where every partition's stamps start.
const BASE: i64 = 1_000_000;
/// Offers `o0`..`o2` may be published; `o3` never is.
const PUBLISHED_OFFERS: u8 = 3;

/// One generated input record.
#[derive(Debug, Clone)]
enum Item {
    Publish {
        offer: u8,
        rule: TimeRule,
        capacity: Option<i32>,
    },
    Withdraw {
        offer: u8,
        rightful: bool,
    },
    Invite {
        offer: u8,
        subscriber: u8,
        right_id: bool,
    },
    Respond {
        offer: u8,
        subscriber: u8,
        event: u8,
        right_id: bool,
        /// Signed with another subscriber's key.
        forged: bool,
    },
    Tick,
    Garbage,
}

fn offer_id(n: u8) -> String {
    format!("o{n}")
}

fn subscriber_id(n: u8) -> String {
    format!("s{n}")
}

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn timekeeper_key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x70; 32]).unwrap()
}

fn subscriber_key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

/// Offer `n`'s credential: even offers in co-sign custody, odd ones in escrow.
fn credential(n: u8) -> tessera_contract::SealedCredential {
    let custody = if n.is_multiple_of(2) {
        Custody::CoSign
    } else {
        Custody::Escrow
    };
    let mut rng = ChaCha20Rng::from_seed([n; 32]);
    seal_offer(
        &offer_id(n),
        b"document",
        custody,
        &timekeeper_key().public_key(),
        &mut rng,
    )
    .unwrap()
    .credential
}

fn signer(seed: u8) -> SigningKey {
    SigningKey::derive(&subscriber_key(seed))
}

/// The provider P's, the withdrawing stranger Q's, and the matcher's signing keys.
const P: u8 = 0x50;
const Q: u8 = 0x51;
const MATCHER: u8 = 0x4d;

fn record(item: &Item) -> RawRecord {
    let (key, event, topic, by): (String, Event, Topic, u8) = match item {
        Item::Publish {
            offer,
            rule,
            capacity,
        } => (
            offer_id(*offer),
            tessera_contract::identity::with_package_signed(
                OfferPublished {
                    event_id: uuid(1),
                    offer_id: offer_id(*offer),
                    provider_id: "P".into(),
                    signing_key: signer(P).verifying_key().to_bytes(),
                    package_signature: Vec::new(),
                    provider_endorsement: None,
                    provider_contact: "p@example.org".into(),
                    recommendation: Recommendation {
                        identifier: "doc".into(),
                        name: "Document".into(),
                        features: BTreeMap::new(),
                        parameters: BTreeMap::new(),
                    },
                    time_rule: *rule,
                    capacity: *capacity,
                    reward: None,
                    decide_within: None,
                    credential: credential(*offer),
                    invite_late: false,
                },
                &signer(P),
            )
            .into(),
            OFFERS,
            P,
        ),
        Item::Withdraw { offer, rightful } => (
            offer_id(*offer),
            OfferWithdrawn {
                event_id: uuid(2),
                offer_id: offer_id(*offer),
                provider_id: if *rightful { "P" } else { "Q" }.into(),
                reason: None,
            }
            .into(),
            OFFERS,
            if *rightful { P } else { Q },
        ),
        Item::Invite {
            offer,
            subscriber,
            right_id,
        } => (
            offer_id(*offer),
            InteractionRequested {
                event_id: uuid(3),
                request_id: invitation_id(*offer, *subscriber, *right_id),
                offer_id: offer_id(*offer),
                subscriber_id: subscriber_id(*subscriber),
                subscriber_key: subscriber_key(*subscriber).public_key().to_bytes(),
                subscriber_signing_key: signer(*subscriber).verifying_key().to_bytes(),
                recommendation: Recommendation {
                    identifier: "doc".into(),
                    name: "Document".into(),
                    features: BTreeMap::new(),
                    parameters: BTreeMap::new(),
                },
                offer: OfferTerms {
                    position: LogPosition {
                        topic: "tessera.offers".into(),
                        partition: support::PARTITION,
                        offset: 0,
                        stamp: BASE,
                    },
                    time_rule: TimeRule::Deadline(Deadline { at: BASE }),
                },
                provider_contact: "p@example.org".into(),
                decide_within: None,
            }
            .into(),
            REQUESTS,
            MATCHER,
        ),
        Item::Respond {
            offer,
            subscriber,
            event,
            right_id,
            forged,
        } => {
            let response = ResponseSubmitted {
                event_id: uuid(100 + u64::from(*event)),
                offer_id: offer_id(*offer),
                request_id: invitation_id(*offer, *subscriber, *right_id),
                subscriber_id: subscriber_id(*subscriber),
            };
            let by = if *forged { subscriber + 1 } else { *subscriber };
            (offer_id(*offer), response.into(), RESPONSES, by)
        }
        Item::Tick => (
            "tick".into(),
            Tick {
                event_id: uuid(4),
                ticker: "t".into(),
                seq: 0,
            }
            .into(),
            OFFERS,
            MATCHER,
        ),
        Item::Garbage => {
            return RawRecord {
                key: None,
                value: Some(vec![0xde, 0xad]),
                signature: None,
                refused: None,
            };
        }
    };
    let value = encode(&event).unwrap();
    let signature = signer(by).sign_record(topic.name, Some(key.as_bytes()), Some(&value));
    RawRecord {
        key: Some(key.into_bytes()),
        value: Some(value),
        signature: Some(signature.to_vec()),
        refused: None,
    }
}

fn invitation_id(offer: u8, subscriber: u8, right: bool) -> String {
    if right {
        request_id(&offer_id(offer), &subscriber_id(subscriber))
    } else {
        "forged-request".into()
    }
}

fn rule() -> impl Strategy<Value = TimeRule> {
    prop_oneof![
        (0i64..800).prop_map(|at| TimeRule::Deadline(Deadline { at: BASE + at })),
        (0i64..600, -10i64..400).prop_map(|(from, length)| TimeRule::Window(Window {
            from: BASE + from,
            to: BASE + from + length
        })),
        (-5i64..400).prop_map(|duration_ms| TimeRule::Within(Within { duration_ms })),
    ]
}

/// Mostly a small capacity, so it is reached; now and then an invalid one.
fn capacity() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![2 => Just(None), 4 => (1i32..3).prop_map(Some), 1 => Just(Some(0))]
}

/// Mostly an offer that may be published, now and then one that never is.
fn any_offer() -> impl Strategy<Value = u8> {
    prop_oneof![9 => 0..PUBLISHED_OFFERS, 1 => Just(PUBLISHED_OFFERS)]
}

fn offers_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (0..PUBLISHED_OFFERS, rule(), capacity())
            .prop_map(|(offer, rule, capacity)| Item::Publish { offer, rule, capacity }),
        1 => (0..PUBLISHED_OFFERS, proptest::bool::weighted(0.7))
            .prop_map(|(offer, rightful)| Item::Withdraw { offer, rightful }),
        2 => Just(Item::Tick),
        1 => Just(Item::Garbage),
    ]
}

fn requests_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (any_offer(), 0u8..4, proptest::bool::weighted(0.9))
            .prop_map(|(offer, subscriber, right_id)| Item::Invite { offer, subscriber, right_id }),
        1 => Just(Item::Tick),
    ]
}

fn responses_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        8 => (any_offer(), 0u8..4, 0u8..16, proptest::bool::weighted(0.9), proptest::bool::weighted(0.1))
            .prop_map(|(offer, subscriber, event, right_id, forged)| Item::Respond { offer, subscriber, event, right_id, forged }),
        1 => Just(Item::Tick),
        1 => Just(Item::Garbage),
    ]
}

/// The three input partitions of one task: per record, a stamp step (which may be negative, as
/// a broker clock may step back) and the item. Most offers are published early on, so that most
/// responses find theirs; later items on the offers lane repeat or withdraw them.
fn task() -> impl Strategy<Value = [Vec<(i64, Item)>; 3]> {
    let step = || -5i64..40;
    let publish = |offer| {
        proptest::option::weighted(0.85, (step(), rule(), capacity())).prop_map(move |p| {
            p.map(|(step, rule, capacity)| {
                (
                    step,
                    Item::Publish {
                        offer,
                        rule,
                        capacity,
                    },
                )
            })
        })
    };
    let first_offers = (0..PUBLISHED_OFFERS).map(publish).collect::<Vec<_>>();
    let lane =
        |items: BoxedStrategy<Item>, most| proptest::collection::vec((step(), items), 0..most);
    (
        first_offers,
        lane(offers_lane().boxed(), 6),
        lane(requests_lane().boxed(), 30),
        lane(responses_lane().boxed(), 40),
    )
        .prop_map(|(first, later, requests, mut responses)| {
            let offers = first.into_iter().flatten().chain(later).collect();
            // Responses start a little later, so that most find their invitation.
            if let Some((step, _)) = responses.first_mut() {
                *step += 150;
            }
            [offers, requests, responses]
        })
}

/// Checks what one run produced against the promises that do not depend on delivery order.
fn check_promises(
    items: &[Vec<(i64, Item)>; 3],
    produced: &[Produced],
) -> Result<(), TestCaseError> {
    // The first offer published under an id is the one that stays.
    let mut first_offers: BTreeMap<String, (TimeRule, Option<i32>)> = BTreeMap::new();
    for (_, item) in &items[0] {
        if let Item::Publish {
            offer,
            rule,
            capacity,
        } = item
        {
            first_offers
                .entry(offer_id(*offer))
                .or_insert((*rule, *capacity));
        }
    }
    let responses: BTreeSet<i64> = items[2]
        .iter()
        .enumerate()
        .filter(|(_, (_, item))| matches!(item, Item::Respond { .. }))
        .map(|(offset, _)| offset as i64)
        .collect();
    let forged: BTreeSet<i64> = items[2]
        .iter()
        .enumerate()
        .filter(|(_, (_, item))| matches!(item, Item::Respond { forged: true, .. }))
        .map(|(offset, _)| offset as i64)
        .collect();

    let mut verdicts: BTreeMap<i64, usize> = BTreeMap::new();
    let mut released: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut closes: BTreeMap<String, usize> = BTreeMap::new();
    for output in produced.iter().filter_map(|p| match p {
        Produced::Output(output) => Some(output),
        Produced::DeadLetter { .. } => None,
    }) {
        match decode(&output.value).unwrap() {
            Event::CredentialReleased(release) => {
                *verdicts.entry(release.response.offset).or_default() += 1;
                let (rule, _) = first_offers[&release.offer_id];
                prop_assert_eq!(
                    release.offer.time_rule,
                    rule,
                    "judged by the first offer's rule"
                );
                prop_assert_eq!(
                    rule.judge(release.offer.position.stamp, release.response.stamp),
                    Timing::InTime,
                    "released out of time: {:?}",
                    release
                );
                prop_assert!(
                    !forged.contains(&release.response.offset),
                    "a forged response was released: {:?}",
                    release
                );
                let subscriber: u8 = release.subscriber_id[1..].parse().unwrap();
                let bound = Release {
                    offer_id: &release.offer_id,
                    subscriber_id: &release.subscriber_id,
                    credential_id: &release.credential_id,
                };
                prop_assert!(
                    open_from_release(
                        &release.platform_half,
                        Half::Platform,
                        &bound,
                        &subscriber_key(subscriber)
                    )
                    .is_ok(),
                    "the released half does not open for its responder"
                );
                released
                    .entry(release.offer_id)
                    .or_default()
                    .push(release.subscriber_id);
            }
            Event::ResponseRejected(rejection) => {
                *verdicts.entry(rejection.response.offset).or_default() += 1;
            }
            Event::OfferClosed(closed) => {
                let ends_at = closed.offer.time_rule.ends_at(closed.offer.position.stamp);
                prop_assert!(
                    closed.withdrawn || closed.closed_at > ends_at,
                    "closed early: {:?}",
                    closed
                );
                *closes.entry(closed.offer_id).or_default() += 1;
            }
            Event::OfferRejected(_) | Event::DeadLetter(_) => {}
            other => prop_assert!(false, "unexpected output {:?}", other.kind()),
        }
    }

    let judged: BTreeSet<i64> = verdicts.keys().copied().collect();
    prop_assert_eq!(
        &judged,
        &responses,
        "every response is judged, and only responses"
    );
    prop_assert!(
        verdicts.values().all(|&n| n == 1),
        "one verdict per response: {:?}",
        verdicts
    );
    for (offer, subscribers) in &released {
        let (_, capacity) = first_offers[offer];
        if let Some(capacity) = capacity {
            prop_assert!(
                subscribers.len() <= capacity as usize,
                "{offer}: {subscribers:?} over {capacity}"
            );
        }
        let distinct: BTreeSet<_> = subscribers.iter().collect();
        prop_assert_eq!(
            distinct.len(),
            subscribers.len(),
            "{} released someone twice",
            offer
        );
    }
    prop_assert!(
        closes.values().all(|&n| n == 1),
        "an offer closes once: {:?}",
        closes
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn verdicts_keep_their_promises_whatever_the_delivery_order(
        items in task(),
        schedules in proptest::collection::vec(proptest::collection::vec(0usize..64, 0..200), 4),
    ) {
        let lanes: Vec<Vec<(i64, RawRecord)>> = items
            .iter()
            .map(|lane| lane.iter().map(|(step, item)| (*step, record(item))).collect())
            .collect();
        // Delivery in partition order, one partition after the other, is the reference.
        let timekeeper = || Timekeeper::new(timekeeper_key(), signer(MATCHER).verifying_key());
        let (expected, expected_state) = support::deliver(timekeeper(), BASE, &lanes, &mut std::iter::empty());
        check_promises(&items, &expected)?;
        // Signatures checked and seals made ahead of a batch change nothing: each record stepped
        // alone, with nothing prepared, gives the same.
        let (unprepared, unprepared_state) =
            support::deliver_unprepared(timekeeper(), BASE, &lanes, &mut std::iter::empty());
        prop_assert_eq!(&unprepared, &expected);
        prop_assert_eq!(&unprepared_state, &expected_state);
        for schedule in schedules {
            let (produced, state) = support::deliver(timekeeper(), BASE, &lanes, &mut schedule.into_iter());
            prop_assert_eq!(&produced, &expected);
            prop_assert_eq!(&state, &expected_state);
        }
    }
}
