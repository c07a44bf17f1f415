//! The ledger's promises under random input: random offers with or without a reward and a
//! decision deadline, releases,
//! acceptances and declines (repeated, by the recipient or by someone else, for credentials
//! released or not), ticks and garbage on the three input partitions of the rewards task,
//! delivered in random interleavings through the merge; then the rewards it re-keyed, each read
//! one or more times, through the balances core.
//!
//! Whatever the input, a credential is credited at most once, only when its recipient accepted it
//! by the offer's decision deadline, and every balance is the sum of its credits; whatever the
//! delivery order, both cores' outputs and states are identical byte for byte. When every offer
//! and release is stamped before every outcome, exactly the credentials whose first outcome by
//! their recipient that is not a late acceptance is an acceptance earn.

use std::collections::{BTreeMap, BTreeSet};

mod support;

use proptest::prelude::*;
use tessera_contract::topics::{self, Topic};
use tessera_contract::{
    CredentialAccepted, CredentialDeclined, CredentialReleased, Custody, Event, Reward,
    RewardCredited, SealedBox, examples,
};
use tessera_cores::ledger::{Ledger, Rewards};
use tessera_cores::replay::{Produced, RawRecord};

use support::fixtures::{
    self, BASE, credential_id, offer, offer_id, signer_of, subscriber_id, terms,
};
use tessera_state::MemoryState;

/// One generated input record.
#[derive(Debug, Clone)]
enum Item {
    Publish {
        offer: u8,
        provider: u8,
        reward: Option<i64>,
        decide_within: Option<i64>,
    },
    Release {
        offer: u8,
        subscriber: u8,
    },
    Outcome {
        offer: u8,
        credential_of: u8,
        by: u8,
        accepted: bool,
        event: u8,
    },
    Tick,
    Garbage,
}

fn provider_id(provider: u8) -> String {
    format!("P{provider}")
}

fn sealed() -> SealedBox {
    SealedBox {
        enc: vec![1; 32],
        ciphertext: vec![2; 48],
    }
}

fn record(item: &Item) -> RawRecord {
    let (key, event, topic, writer): (String, Event, Topic, String) = match *item {
        Item::Publish {
            offer,
            provider,
            reward,
            decide_within,
        } => {
            let mut published =
                examples::offer(&offer_id(offer), &provider_id(provider), Custody::CoSign);
            published.reward = reward.map(|amount| Reward {
                amount,
                currency: "EUR".into(),
            });
            published.decide_within = decide_within;
            published.signing_key = signer_of(&provider_id(provider)).verifying_key().to_bytes();
            let published = tessera_contract::identity::with_package_signed(
                published,
                &signer_of(&provider_id(provider)),
            );
            (
                offer_id(offer),
                published.into(),
                topics::OFFERS,
                provider_id(provider),
            )
        }
        Item::Release { offer, subscriber } => (
            offer_id(offer),
            CredentialReleased {
                event_id: format!("release-{offer}-{subscriber}"),
                offer_id: offer_id(offer),
                credential_id: credential_id(offer, subscriber),
                subscriber_id: subscriber_id(subscriber),
                subscriber_signing_key: signer_of(&subscriber_id(subscriber))
                    .verifying_key()
                    .to_bytes(),
                request_id: "q".into(),
                response: terms().position,
                offer: terms(),
                platform_half: sealed(),
                provider_half: None,
                link: Default::default(),
            }
            .into(),
            topics::DECISIONS,
            "timekeeper".into(),
        ),
        Item::Outcome {
            offer,
            credential_of,
            by,
            accepted,
            event,
        } => {
            let event_id = format!("outcome-{offer}-{event}");
            let writer = subscriber_id(by);
            let (offer_id, credential_id, subscriber_id) = (
                offer_id(offer),
                credential_id(offer, credential_of),
                subscriber_id(by),
            );
            let event = if accepted {
                CredentialAccepted {
                    event_id,
                    offer_id: offer_id.clone(),
                    credential_id,
                    subscriber_id,
                }
                .into()
            } else {
                CredentialDeclined {
                    event_id,
                    offer_id: offer_id.clone(),
                    credential_id,
                    subscriber_id,
                    reason: None,
                }
                .into()
            };
            (offer_id, event, topics::OUTCOMES, writer)
        }
        Item::Tick => return support::tick(),
        Item::Garbage => return support::garbage(),
    };
    fixtures::signed(topic, key, &event, &writer)
}

fn offers_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (
            0u8..3,
            0u8..2,
            proptest::option::weighted(0.8, 1i64..1000),
            // Deadlines about as long as the outcomes' stamps run, so some acceptances miss them.
            proptest::option::of(0i64..400),
        )
            .prop_map(|(offer, provider, reward, decide_within)| Item::Publish {
                offer,
                provider,
                reward,
                decide_within,
            }),
        1 => Just(Item::Tick),
        1 => Just(Item::Garbage),
    ]
}

fn decisions_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        8 => (offer(), 0u8..3).prop_map(|(offer, subscriber)| Item::Release { offer, subscriber }),
        1 => Just(Item::Tick),
    ]
}

fn outcomes_lane() -> impl Strategy<Value = Item> {
    prop_oneof![
        8 => (offer(), 0u8..4, 0u8..5, proptest::bool::weighted(0.7), 0u8..6).prop_map(
            |(offer, credential_of, wrong, accepted, event)| {
                // Mostly by the recipient the credential is named after.
                let by = if wrong == 0 { (credential_of + 1) % 4 } else { credential_of };
                Item::Outcome { offer, credential_of, by, accepted, event }
            }
        ),
        1 => Just(Item::Tick),
        1 => Just(Item::Garbage),
    ]
}

fn task(ordered: bool) -> impl Strategy<Value = [Vec<(i64, Item)>; 3]> {
    support::three_lanes(
        (offers_lane(), decisions_lane(), outcomes_lane()),
        [8, 20, 40],
        ordered,
    )
}

/// The rewards core's outputs on `tessera.ledger-credits`, each read `repeats[i]` times, as the
/// one partition of the balances task.
fn credits_lane(produced: &[Produced], repeats: &[usize]) -> Vec<(i64, RawRecord)> {
    let mut lane = Vec::new();
    let dues = produced.iter().filter_map(|p| match p {
        Produced::Output(output) if output.topic == 0 => Some(output),
        _ => None,
    });
    for (n, output) in dues.enumerate() {
        // Signed as the runtime signs the rewards core's outputs.
        let signature = signer_of("rewards").sign_record(
            topics::LEDGER_CREDITS.name,
            Some(output.key.as_bytes()),
            Some(&output.value),
        );
        let record = RawRecord {
            key: Some(output.key.clone().into_bytes()),
            value: Some(output.value.clone()),
            signature: Some(signature.to_vec()),
            refused: None,
        };
        for _ in 0..repeats.get(n).copied().unwrap_or(1) {
            lane.push((1, record.clone()));
        }
    }
    lane
}

fn credited(produced: &[Produced]) -> Vec<RewardCredited> {
    let pick = |event| match event {
        Event::RewardCredited(credit) => Some(credit),
        _ => None,
    };
    // The ledger is keyed by provider.
    support::keyed(produced, pick, |credit| &credit.provider_id)
}

/// Both cores over the task in the order `schedule` picks; what the balances core credited and
/// both states.
fn run(
    items: &[Vec<(i64, Item)>; 3],
    repeats: &[usize],
    schedule: Vec<usize>,
) -> (Vec<Produced>, Vec<Produced>, MemoryState, MemoryState) {
    let mut schedule = schedule.into_iter();
    let rewards_core = Rewards::new(signer_of("timekeeper").verifying_key());
    let ledger_core = Ledger::new(signer_of("rewards").verifying_key());
    let (rewards, rewards_state) = support::deliver(
        rewards_core,
        BASE,
        &support::records(items, record),
        &mut schedule,
    );
    let credits = credits_lane(&rewards, repeats);
    let (ledger, ledger_state) = support::deliver(ledger_core, BASE, &[credits], &mut schedule);
    (rewards, ledger, rewards_state, ledger_state)
}

/// The effective stamp of each item of each lane as [`support::deliver`] stamps them: the largest
/// stamp of its lane so far.
fn effective(items: &[Vec<(i64, Item)>; 3]) -> [Vec<i64>; 3] {
    items.clone().map(|lane| {
        let (mut stamp, mut largest) = (BASE, i64::MIN);
        lane.iter()
            .map(|(step, _)| {
                stamp += step;
                largest = largest.max(stamp);
                largest
            })
            .collect()
    })
}

/// Each offer's first publication: its provider, reward and decision deadline.
type FirstTerms = BTreeMap<String, (String, Option<i64>, Option<i64>)>;

fn first_terms(items: &[Vec<(i64, Item)>; 3]) -> FirstTerms {
    let mut first = FirstTerms::new();
    for (_, item) in &items[0] {
        if let Item::Publish {
            offer,
            provider,
            reward,
            decide_within,
        } = *item
        {
            first
                .entry(offer_id(offer))
                .or_insert((provider_id(provider), reward, decide_within));
        }
    }
    first
}

/// Whether the acceptance at effective stamp `stamp` of `credential` of offer `offer` missed the
/// offer's decision deadline, counted from the credential's first release.
fn late(
    items: &[Vec<(i64, Item)>; 3],
    terms: &FirstTerms,
    (offer, credential): (u8, &str),
    stamp: i64,
) -> bool {
    let Some((_, _, Some(within))) = terms.get(&offer_id(offer)) else {
        return false;
    };
    let stamps = effective(items);
    let released = items[1].iter().zip(&stamps[1]).find_map(|((_, item), at)| {
        matches!(*item, Item::Release { offer, subscriber } if credential_id(offer, subscriber) == credential)
            .then_some(*at)
    });
    released.is_some_and(|released| stamp > released + within)
}

/// The promises that hold in any delivery order.
fn check_promises(items: &[Vec<(i64, Item)>; 3], ledger: &[Produced]) -> Result<(), TestCaseError> {
    let first_terms = first_terms(items);
    let outcome_stamps = &effective(items)[2];
    let mut seen = BTreeSet::new();
    let mut balances: BTreeMap<String, i64> = BTreeMap::new();
    for credit in credited(ledger) {
        prop_assert!(
            seen.insert(credit.credential_id.clone()),
            "{} credited twice",
            credit.credential_id
        );
        let accepted_in_time = items[2].iter().zip(outcome_stamps).any(|((_, item), &at)| {
            matches!(*item, Item::Outcome { offer, credential_of, by, accepted: true, .. }
                if credential_id(offer, credential_of) == credit.credential_id
                    && by == credential_of
                    && !late(items, &first_terms, (offer, &credit.credential_id), at))
        });
        prop_assert!(
            accepted_in_time,
            "credited without an acceptance in time: {:?}",
            credit
        );
        let released = items[1].iter().any(|(_, item)| {
            matches!(*item, Item::Release { offer, subscriber }
                if credential_id(offer, subscriber) == credit.credential_id)
        });
        prop_assert!(released, "credited without a release: {:?}", credit);
        let (provider, reward, _) = &first_terms[&credit.offer_id];
        prop_assert_eq!(&credit.provider_id, provider);
        prop_assert_eq!(Some(credit.amount), *reward);
        let balance = balances.entry(credit.provider_id.clone()).or_default();
        *balance += credit.amount;
        prop_assert_eq!(
            credit.balance,
            *balance,
            "the balance is the sum of the credits"
        );
    }
    Ok(())
}

/// The credentials that must earn when every offer and release precedes every outcome: those
/// released for an offer with a reward whose first outcome by their recipient, late acceptances
/// left out (they settle nothing), is an acceptance.
fn earning(items: &[Vec<(i64, Item)>; 3]) -> BTreeSet<String> {
    let terms = first_terms(items);
    let outcome_stamps = &effective(items)[2];
    let mut rewarded = BTreeMap::new();
    for (_, item) in &items[0] {
        if let Item::Publish { offer, reward, .. } = *item {
            rewarded.entry(offer).or_insert(reward.is_some());
        }
    }
    let released: BTreeSet<String> = items[1]
        .iter()
        .filter_map(|(_, item)| match *item {
            Item::Release { offer, subscriber } => Some(credential_id(offer, subscriber)),
            _ => None,
        })
        .collect();
    let mut first_outcome: BTreeMap<String, (u8, bool)> = BTreeMap::new();
    for ((_, item), &at) in items[2].iter().zip(outcome_stamps) {
        if let Item::Outcome {
            offer,
            credential_of,
            by,
            accepted,
            ..
        } = *item
        {
            let credential = credential_id(offer, credential_of);
            if by == credential_of
                && released.contains(&credential)
                && rewarded.contains_key(&offer)
                && !(accepted && late(items, &terms, (offer, &credential), at))
            {
                first_outcome.entry(credential).or_insert((offer, accepted));
            }
        }
    }
    first_outcome
        .into_iter()
        .filter(|(_, (offer, accepted))| *accepted && rewarded[offer])
        .map(|(credential, _)| credential)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_credential_is_credited_at_most_once_whatever_the_delivery_order(
        items in task(false),
        repeats in proptest::collection::vec(1usize..4, 0..20),
        schedules in proptest::collection::vec(proptest::collection::vec(0usize..64, 0..300), 4),
    ) {
        let expected = run(&items, &repeats, Vec::new());
        check_promises(&items, &expected.1)?;
        for schedule in schedules {
            let outcome = run(&items, &repeats, schedule);
            prop_assert_eq!(&outcome, &expected);
        }
    }

    #[test]
    fn exactly_the_accepted_credentials_earn(
        items in task(true),
        repeats in proptest::collection::vec(1usize..4, 0..20),
        schedule in proptest::collection::vec(0usize..64, 0..300),
    ) {
        let (_, ledger, _, _) = run(&items, &repeats, schedule);
        check_promises(&items, &ledger)?;
        let earned: BTreeSet<String> = credited(&ledger).into_iter().map(|c| c.credential_id).collect();
        prop_assert_eq!(earned, earning(&items));
    }
}
