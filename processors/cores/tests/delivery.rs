//! The delivery worker's promises under random input: random offers (escrow or co-sign),
//! releases, repeated releases, closings, cosigns for the right recipient, the wrong one or no
//! release at all, repeated cosigns, ticks and garbage on the three input partitions of one task,
//! delivered in random interleavings through the merge.
//!
//! Whatever the input, a credential is delivered at most once, only to the recipient the
//! timekeeper released it to, with its offer's first package and a provider half that came from
//! the release or a cosign for that recipient; whatever the delivery order, the outputs and the
//! state are identical byte for byte. When every offer and decision is stamped before every
//! cosign, exactly the complete credentials are delivered.

use std::collections::{BTreeMap, BTreeSet};

mod support;

use proptest::prelude::*;
use tessera_contract::topics;
use tessera_contract::{
    CredentialDelivered, CredentialReleased, Custody, Event, ProviderShareReleased, SealedBox,
    examples,
};
use tessera_cores::delivery::Delivery;
use tessera_cores::replay::{Produced, RawRecord};

use support::fixtures::{
    self, BASE, credential_id, offer, offer_id, private_of, signer_of, subscriber_id, terms,
};

/// One generated input record.
#[derive(Debug, Clone)]
enum Item {
    Publish {
        offer: u8,
        escrow: bool,
        version: u8,
    },
    Release {
        offer: u8,
        subscriber: u8,
        escrow: bool,
        event: u8,
    },
    Close {
        offer: u8,
    },
    /// The matcher's invitation of a subscriber, on `tessera.requests`: its notice is the
    /// delivery's output too.
    Invite {
        offer: u8,
        subscriber: u8,
    },
    Cosign {
        offer: u8,
        credential_of: u8,
        to: u8,
        event: u8,
    },
    Tick,
    Garbage,
}

fn sealed(tag: u8, n: u8) -> SealedBox {
    SealedBox {
        enc: vec![tag; 32],
        ciphertext: vec![n; 48],
    }
}

fn package(offer: u8, version: u8) -> Vec<u8> {
    format!("package {offer}.{version}").into_bytes()
}

/// The escrow half a release of `offer` carries, so a delivery shows where its half came from.
fn escrow_half(offer: u8) -> SealedBox {
    sealed(2, offer)
}

/// The provider half of cosign event `event` of `offer`.
fn cosign_half(offer: u8, event: u8) -> SealedBox {
    sealed(3, offer * 16 + event)
}

fn delivery() -> Delivery {
    Delivery::new(
        private_of("delivery"),
        signer_of("timekeeper").verifying_key(),
        signer_of("matcher").verifying_key(),
    )
}

/// A generated item as the record its honest writer signs: offers and provider halves by P,
/// verdicts by the timekeeper.
fn record(item: &Item) -> RawRecord {
    let (key, event): (String, Event) = match *item {
        Item::Publish {
            offer,
            escrow,
            version,
        } => {
            let custody = if escrow {
                Custody::Escrow
            } else {
                Custody::CoSign
            };
            let mut published = examples::offer(&offer_id(offer), "P", custody);
            published.signing_key = signer_of("P").verifying_key().to_bytes();
            published.credential.package = package(offer, version);
            let published =
                tessera_contract::identity::with_package_signed(published, &signer_of("P"));
            (offer_id(offer), published.into())
        }
        Item::Release {
            offer,
            subscriber,
            escrow,
            event,
        } => (
            offer_id(offer),
            CredentialReleased {
                event_id: format!("release-{offer}-{subscriber}-{event}"),
                offer_id: offer_id(offer),
                credential_id: credential_id(offer, subscriber),
                subscriber_id: subscriber_id(subscriber),
                subscriber_signing_key: Vec::new(),
                request_id: "q".into(),
                response: terms().position,
                offer: terms(),
                platform_half: sealed(4, offer * 16 + subscriber),
                provider_half: escrow.then(|| escrow_half(offer)),
                link: Default::default(),
            }
            .into(),
        ),
        Item::Close { offer } => (
            offer_id(offer),
            examples::closed(&offer_id(offer), terms(), BASE + 501).into(),
        ),
        Item::Cosign {
            offer,
            credential_of,
            to,
            event,
        } => (
            offer_id(offer),
            ProviderShareReleased {
                event_id: format!("cosign-{offer}-{event}"),
                offer_id: offer_id(offer),
                credential_id: credential_id(offer, credential_of),
                subscriber_id: subscriber_id(to),
                provider_half: cosign_half(offer, event),
            }
            .into(),
        ),
        Item::Invite { offer, subscriber } => {
            let mut invitation = match examples::all()
                .into_iter()
                .find(|e| e.kind() == tessera_contract::EventKind::InteractionRequested)
            {
                Some(Event::InteractionRequested(e)) => e,
                _ => unreachable!("the examples hold an invitation"),
            };
            invitation.offer_id = offer_id(offer);
            invitation.subscriber_id = subscriber_id(subscriber);
            invitation.subscriber_key = private_of(&subscriber_id(subscriber))
                .public_key()
                .to_bytes();
            (offer_id(offer), invitation.into())
        }
        Item::Tick => return support::tick(),
        Item::Garbage => return support::garbage(),
    };
    let (topic, writer) = match &event {
        Event::OfferPublished(_) => (topics::OFFERS, "P"),
        Event::ProviderShareReleased(_) => (topics::COSIGNS, "P"),
        Event::InteractionRequested(_) => (topics::REQUESTS, "matcher"),
        _ => (topics::DECISIONS, "timekeeper"),
    };
    fixtures::signed(topic, key, &event, writer)
}

/// The generated lanes on the delivery's inputs: the first lane's invitations go to
/// `tessera.requests`, the rest of it to `tessera.offers`; `tessera.outcomes` stays empty.
fn lanes(items: &[Vec<(i64, Item)>; 3]) -> Vec<Vec<(i64, RawRecord)>> {
    let (invitations, offers): (Vec<_>, Vec<_>) = items[0]
        .iter()
        .cloned()
        .partition(|(_, item)| matches!(item, Item::Invite { .. }));
    let [offers, invitations, decisions, cosigns] = support::records(
        &[offers, invitations, items[1].clone(), items[2].clone()],
        record,
    )
    .try_into()
    .expect("four lanes");
    vec![offers, invitations, decisions, cosigns, Vec::new()]
}

/// Offers, and the invitations to them (read from `tessera.requests`, see [`lanes`]).
fn offers_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (0u8..3, any::<bool>(), 0u8..3)
            .prop_map(|(offer, escrow, version)| Item::Publish { offer, escrow, version }),
        4 => (offer(), 0u8..4).prop_map(|(offer, subscriber)| Item::Invite { offer, subscriber }),
        1 => Just(Item::Tick),
        1 => Just(Item::Garbage),
    ]
}

fn decisions_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        8 => (offer(), 0u8..4, any::<bool>(), prop_oneof![3 => Just(0u8), 1 => Just(1u8)])
            .prop_map(|(offer, subscriber, escrow, event)| Item::Release { offer, subscriber, escrow, event }),
        1 => offer().prop_map(|offer| Item::Close { offer }),
        1 => Just(Item::Tick),
    ]
}

fn cosigns_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        8 => (offer(), 0u8..4, 0u8..4, 0u8..4).prop_map(|(offer, credential_of, wrong, event)| {
            // Mostly for the recipient the credential is named after.
            let to = if wrong == 0 { (credential_of + 1) % 4 } else { credential_of };
            Item::Cosign { offer, credential_of, to, event }
        }),
        1 => Just(Item::Tick),
        1 => Just(Item::Garbage),
    ]
}

fn task(ordered: bool) -> impl Strategy<Value = [Vec<(i64, Item)>; 3]> {
    support::three_lanes(
        (offers_lane(), decisions_lane(), cosigns_lane()),
        [8, 30, 30],
        ordered,
    )
}

fn deliveries(produced: &[Produced]) -> Vec<CredentialDelivered> {
    let pick = |event| match event {
        Event::CredentialDelivered(delivered) => Some(delivered),
        _ => None,
    };
    // The inbox is keyed by recipient.
    support::keyed(produced, pick, |delivered| &delivered.subscriber_id)
}

/// The promises that hold in any delivery order.
fn check_promises(
    items: &[Vec<(i64, Item)>; 3],
    produced: &[Produced],
) -> Result<(), TestCaseError> {
    let mut first_package: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (_, item) in &items[0] {
        if let Item::Publish { offer, version, .. } = *item {
            first_package
                .entry(offer_id(offer))
                .or_insert(package(offer, version));
        }
    }
    let mut delivered = BTreeSet::new();
    for delivery in deliveries(produced) {
        prop_assert!(
            delivered.insert(delivery.credential_id.clone()),
            "{} delivered twice",
            delivery.credential_id
        );
        let released = items[1].iter().any(|(_, item)| {
            matches!(*item, Item::Release { offer, subscriber, .. }
                if credential_id(offer, subscriber) == delivery.credential_id
                    && subscriber_id(subscriber) == delivery.subscriber_id)
        });
        prop_assert!(released, "delivered without a release: {:?}", delivery);
        prop_assert_eq!(
            Some(&delivery.package),
            first_package.get(&delivery.offer_id)
        );
        prop_assert_eq!(delivery.attempts, 1);
        let half_from_release = items[1].iter().any(|(_, item)| {
            matches!(*item, Item::Release { offer, subscriber, escrow: true, .. }
                if credential_id(offer, subscriber) == delivery.credential_id
                    && escrow_half(offer) == delivery.provider_half)
        });
        let half_from_cosign = items[2].iter().any(|(_, item)| {
            matches!(*item, Item::Cosign { offer, credential_of, to, event }
                if credential_id(offer, credential_of) == delivery.credential_id
                    && subscriber_id(to) == delivery.subscriber_id
                    && cosign_half(offer, event) == delivery.provider_half)
        });
        prop_assert!(
            half_from_release || half_from_cosign,
            "a provider half from nowhere: {:?}",
            delivery
        );
    }
    Ok(())
}

/// The credentials that must be delivered when every offer and decision precedes every cosign:
/// the first release of each credential of a published offer, read before the offer closed, in
/// escrow or with a cosign for its recipient.
fn complete(items: &[Vec<(i64, Item)>; 3]) -> BTreeSet<String> {
    let published: BTreeSet<u8> = items[0]
        .iter()
        .filter_map(|(_, item)| match *item {
            Item::Publish { offer, .. } => Some(offer),
            _ => None,
        })
        .collect();
    let mut closed = BTreeSet::new();
    let mut released: BTreeMap<String, (u8, u8, bool)> = BTreeMap::new();
    for (_, item) in &items[1] {
        match *item {
            Item::Close { offer } => {
                closed.insert(offer);
            }
            Item::Release {
                offer,
                subscriber,
                escrow,
                ..
            } if !closed.contains(&offer) => {
                released
                    .entry(credential_id(offer, subscriber))
                    .or_insert((offer, subscriber, escrow));
            }
            _ => {}
        }
    }
    released
        .into_iter()
        .filter(|(_, (offer, subscriber, escrow))| {
            published.contains(offer)
                && (*escrow
                    || items[2].iter().any(|(_, item)| {
                        matches!(*item, Item::Cosign { offer: o, credential_of, to, .. }
                            if o == *offer && credential_of == *subscriber && to == *subscriber)
                    }))
        })
        .map(|(credential, _)| credential)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_credential_is_delivered_at_most_once_whatever_the_delivery_order(
        items in task(false),
        schedules in proptest::collection::vec(proptest::collection::vec(0usize..64, 0..200), 4),
    ) {
        let lanes = lanes(&items);
        let (expected, expected_state) = support::deliver(delivery(), BASE, &lanes, &mut std::iter::empty());
        check_promises(&items, &expected)?;
        for schedule in schedules {
            let (produced, state) = support::deliver(delivery(), BASE, &lanes, &mut schedule.into_iter());
            prop_assert_eq!(&produced, &expected);
            prop_assert_eq!(&state, &expected_state);
        }
    }

    #[test]
    fn exactly_the_complete_credentials_are_delivered(
        items in task(true),
        schedule in proptest::collection::vec(0usize..64, 0..200),
    ) {
        let (produced, _) = support::deliver(delivery(), BASE, &lanes(&items), &mut schedule.into_iter());
        check_promises(&items, &produced)?;
        let delivered: BTreeSet<String> =
            deliveries(&produced).into_iter().map(|d| d.credential_id).collect();
        prop_assert_eq!(delivered, complete(&items));
    }
}
