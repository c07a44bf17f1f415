use tessera_contract::sealing::PrivateKey;
use tessera_contract::signing::{Signed, SigningKey};
use tessera_contract::{
    CredentialAccepted, CredentialDeclined, CredentialReleased, Custody, LogPosition, OfferTerms,
    Reward, encode, examples,
};

use super::rewards::{self, InputTopic};
use super::*;
use crate::news::OfferNews;
use crate::registry::{self, Inputs};
use crate::testing::{self, Feeder, T, sealed};

const PARTITION: i32 = 1;

fn terms() -> OfferTerms {
    testing::terms(PARTITION)
}

/// The signing key of `id`: a provider, a subscriber, "timekeeper" or "rewards".
fn signer_of(id: &str) -> SigningKey {
    SigningKey::derive(&PrivateKey::from_bytes(format!("{id:<32}").as_bytes()).unwrap())
}

fn rewards() -> Rewards {
    Rewards::new(signer_of("timekeeper").verifying_key())
}

fn ledger() -> Ledger {
    Ledger::new(signer_of("rewards").verifying_key())
}

fn offer(provider_id: &str, reward: Option<i64>) -> rewards::Received {
    offer_deciding_within(provider_id, reward, None)
}

/// Offer `o` of `provider_id` whose recipients have `decide_within` milliseconds to accept.
fn offer_deciding_within(
    provider_id: &str,
    reward: Option<i64>,
    decide_within: Option<i64>,
) -> rewards::Received {
    let mut offer = examples::offer("o", provider_id, Custody::CoSign);
    offer.signing_key = signer_of(provider_id).verifying_key().to_bytes();
    let mut offer = tessera_contract::identity::with_package_signed(offer, &signer_of(provider_id));
    offer.reward = reward.map(|amount| Reward {
        amount,
        currency: "EUR".into(),
    });
    offer.decide_within = decide_within;
    rewards::Received::News(OfferNews::Offer(Box::new(offer)))
}

/// The release of credential `c-<subscriber>` of offer `o`.
fn release(subscriber_id: &str) -> rewards::Received {
    rewards::Received::News(OfferNews::Release(Box::new(CredentialReleased {
        event_id: format!("release-{subscriber_id}"),
        offer_id: "o".into(),
        credential_id: format!("c-{subscriber_id}"),
        subscriber_id: subscriber_id.into(),
        subscriber_signing_key: signer_of(subscriber_id).verifying_key().to_bytes(),
        request_id: "q".into(),
        response: terms().position,
        offer: terms(),
        platform_half: sealed(2),
        provider_half: None,
        link: Default::default(),
    })))
}

/// Acceptance event `n` of credential `credential_id` of offer `o` by `subscriber_id`.
fn accepted(credential_id: &str, subscriber_id: &str, n: u8) -> rewards::Received {
    rewards::Received::Outcome(rewards::Outcome::Accepted(CredentialAccepted {
        event_id: format!("accepted-{n}"),
        offer_id: "o".into(),
        credential_id: credential_id.into(),
        subscriber_id: subscriber_id.into(),
    }))
}

fn declined(credential_id: &str, subscriber_id: &str, n: u8) -> rewards::Received {
    rewards::Received::Outcome(rewards::Outcome::Declined(CredentialDeclined {
        event_id: format!("declined-{n}"),
        offer_id: "o".into(),
        credential_id: credential_id.into(),
        subscriber_id: subscriber_id.into(),
        reason: Some("not what I wanted".into()),
    }))
}

/// Rewards fed by hand, everything keyed by offer `o` and signed by its honest writer.
fn feed(f: &mut Feeder<Rewards>, value: rewards::Received) -> Vec<Emitted> {
    let writer = match &value {
        rewards::Received::News(OfferNews::Offer(offer)) => signer_of(&offer.provider_id),
        rewards::Received::Outcome(outcome) => signer_of(outcome.subscriber_id()),
        _ => signer_of("timekeeper"),
    };
    feed_as(f, value, &writer)
}

/// Rewards fed `value` under offer `o`, signed by `signer`.
fn feed_as(f: &mut Feeder<Rewards>, value: rewards::Received, signer: &SigningKey) -> Vec<Emitted> {
    let (topic, event): (InputTopic, Option<Event>) = match &value {
        rewards::Received::News(OfferNews::Offer(offer)) => {
            (InputTopic::Offers, Some((**offer).clone().into()))
        }
        rewards::Received::News(OfferNews::Release(release)) => {
            (InputTopic::Decisions, Some((**release).clone().into()))
        }
        rewards::Received::Outcome(outcome) => {
            (InputTopic::Outcomes, Some(outcome.clone().into_event()))
        }
        rewards::Received::News(OfferNews::Rejected(rejected)) => {
            (InputTopic::Decisions, Some(rejected.clone().into()))
        }
        rewards::Received::News(OfferNews::Closed(closed)) => {
            (InputTopic::Decisions, Some(closed.clone().into()))
        }
        rewards::Received::News(OfferNews::Rejection(rejected)) => {
            (InputTopic::Decisions, Some((**rejected).clone().into()))
        }
        rewards::Received::News(OfferNews::Passed) => (InputTopic::Decisions, None),
    };
    let signed = match event {
        Some(event) => signer.signed(topic.topic().name, b"o", &encode(&event).unwrap()),
        None => Signed::of(Some(b"o"), None, None),
    };
    f.feed_signed(topic as usize, "o", value, signed)
}

fn says(f: &mut Feeder<Rewards>, value: rewards::Received) -> Vec<String> {
    feed(f, value).iter().map(summary).collect()
}

/// The ledger credits `due`, fed by hand under its provider id and signed by the rewards core;
/// what it said, in words.
fn credit(f: &mut Feeder<Ledger>, due: RewardDue) -> Vec<String> {
    credit_as(f, due, &signer_of("rewards"))
}

fn credit_as(f: &mut Feeder<Ledger>, due: RewardDue, signer: &SigningKey) -> Vec<String> {
    let key = due.provider_id.clone();
    let value = encode(&due.clone().into()).unwrap();
    let signed = signer.signed(topics::LEDGER_CREDITS.name, key.as_bytes(), &value);
    f.feed_signed(0, &key, due, signed)
        .iter()
        .map(summary)
        .collect()
}

/// An output in a few words.
fn summary(output: &Emitted) -> String {
    match output.event().cloned().expect("the core emits events") {
        Event::RewardDue(e) => format!(
            "due {} {} to {} for {}",
            e.amount, e.currency, output.key, e.credential_id
        ),
        Event::RewardCredited(e) => format!(
            "credited {} {} to {} for {}, balance {}",
            e.amount, e.currency, output.key, e.credential_id, e.balance
        ),
        Event::DeadLetter(e) => format!("dead letter: {}", e.reason),
        other => format!("unexpected {:?}", other.kind()),
    }
}

fn due(provider_id: &str, credential_id: &str, amount: i64, currency: &str) -> RewardDue {
    RewardDue {
        event_id: format!("due-{provider_id}-{credential_id}"),
        provider_id: provider_id.into(),
        offer_id: "o".into(),
        credential_id: credential_id.into(),
        subscriber_id: "B1".into(),
        amount,
        currency: currency.into(),
        accepted: terms().position,
    }
}

/// Rewards with offer `o` of provider A, reward 250 EUR, released to B1 and B2.
fn released_to_b1_and_b2() -> Feeder<Rewards> {
    let mut f = Feeder::new(rewards(), PARTITION);
    feed(&mut f, offer("A", Some(250)));
    feed(&mut f, release("B1"));
    feed(&mut f, release("B2"));
    f
}

#[test]
fn an_accepted_credential_earns_its_offers_reward_for_the_provider() {
    let mut f = released_to_b1_and_b2();
    let outputs = feed(&mut f, accepted("c-B1", "B1", 1));
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].topic, registry::OUTPUT);
    assert_eq!(outputs[0].key, "A", "re-keyed by provider id");
    let Event::RewardDue(reward) = outputs[0].event().cloned().unwrap() else {
        panic!("expected a reward")
    };
    assert_eq!(
        (
            reward.offer_id.as_str(),
            reward.credential_id.as_str(),
            reward.subscriber_id.as_str()
        ),
        ("o", "c-B1", "B1")
    );
    assert_eq!((reward.amount, reward.currency.as_str()), (250, "EUR"));
    assert_eq!(
        reward.accepted,
        LogPosition {
            topic: "tessera.outcomes".into(),
            partition: PARTITION,
            offset: 0,
            stamp: T + 4,
        }
    );
}

#[test]
fn a_credential_earns_once_however_often_it_is_accepted() {
    let mut f = released_to_b1_and_b2();
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 1)),
        ["due 250 EUR to A for c-B1"]
    );
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 1)),
        Vec::<String>::new(),
        "the same acceptance read again changes nothing"
    );
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 2)),
        ["dead letter: credential c-B1 was accepted already, by event accepted-1"]
    );
    assert_eq!(
        says(&mut f, accepted("c-B2", "B2", 3)),
        ["due 250 EUR to A for c-B2"]
    );
}

#[test]
fn a_declined_credential_earns_nothing_ever() {
    let mut f = released_to_b1_and_b2();
    assert_eq!(
        says(&mut f, declined("c-B1", "B1", 1)),
        Vec::<String>::new()
    );
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 2)),
        ["dead letter: credential c-B1 was declined already, by event declined-1"]
    );
}

#[test]
fn an_outcome_for_a_credential_never_released_is_dead_lettered() {
    let mut f = released_to_b1_and_b2();
    assert_eq!(
        says(&mut f, accepted("c-B3", "B3", 1)),
        ["dead letter: credential c-B3 of offer o was not released by 2025-11-25T09:00:00.004Z"]
    );
}

#[test]
fn only_the_recipient_settles_a_credential() {
    let mut f = released_to_b1_and_b2();
    assert_eq!(
        says(&mut f, accepted("c-B1", "B2", 1)),
        ["dead letter: credential c-B1 was released to B1, not B2"]
    );
    assert_eq!(
        says(&mut f, declined("c-B1", "B2", 2)),
        ["dead letter: credential c-B1 was released to B1, not B2"]
    );
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 3)),
        ["due 250 EUR to A for c-B1"]
    );
}

#[test]
fn an_offer_without_a_reward_earns_nothing_but_settles() {
    let mut f = Feeder::new(rewards(), PARTITION);
    feed(&mut f, offer("A", None));
    feed(&mut f, release("B1"));
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 1)),
        Vec::<String>::new()
    );
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 2)),
        ["dead letter: credential c-B1 was accepted already, by event accepted-1"]
    );
}

#[test]
fn the_first_offer_under_an_id_names_provider_and_reward() {
    let mut f = Feeder::new(rewards(), PARTITION);
    feed(&mut f, offer("A", Some(250)));
    feed(&mut f, offer("Z", Some(1_000_000)));
    feed(&mut f, release("B1"));
    feed(&mut f, rewards::Received::News(OfferNews::Passed));
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 1)),
        ["due 250 EUR to A for c-B1"]
    );
}

#[test]
fn a_second_release_of_a_credential_is_dead_lettered() {
    let mut f = released_to_b1_and_b2();
    assert_eq!(says(&mut f, release("B1")), Vec::<String>::new());
    let rewards::Received::News(OfferNews::Release(mut other)) = release("B1") else {
        unreachable!()
    };
    other.event_id = "another".into();
    other.subscriber_id = "B9".into();
    assert_eq!(
        says(&mut f, rewards::Received::News(OfferNews::Release(other))),
        ["dead letter: credential c-B1 was released already by event release-B1"]
    );
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 1)),
        ["due 250 EUR to A for c-B1"]
    );
}

#[test]
fn an_acceptance_after_the_decision_deadline_earns_nothing_and_says_it_was_late() {
    let mut f = Feeder::new(rewards(), PARTITION);
    // B1 and B2 have 1 s from their release (stamped T + 2 and T + 3) to accept.
    feed(&mut f, offer_deciding_within("A", Some(250), Some(1_000)));
    feed(&mut f, release("B1"));
    feed(&mut f, release("B2"));
    f.pass(998);
    // Stamped T + 1002: the last millisecond of B1's second, the bound is inclusive.
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 1)),
        ["due 250 EUR to A for c-B1"]
    );
    f.pass(1);
    // Stamped T + 1004, a millisecond past B2's.
    assert_eq!(
        says(&mut f, accepted("c-B2", "B2", 2)),
        [
            "dead letter: Late: credential c-B2 of offer o was accepted at \
             2025-11-25T09:00:01.004Z, after its decision deadline 2025-11-25T09:00:01.003Z \
             (1000 ms after its release at 2025-11-25T09:00:00.003Z); it earns nothing"
        ]
    );
    assert_eq!(
        says(&mut f, accepted("c-B2", "B2", 3)),
        [
            "dead letter: Late: credential c-B2 of offer o was accepted at \
             2025-11-25T09:00:01.005Z, after its decision deadline 2025-11-25T09:00:01.003Z \
             (1000 ms after its release at 2025-11-25T09:00:00.003Z); it earns nothing"
        ],
        "a late acceptance settles nothing, so none earns later either"
    );
    assert_eq!(
        says(&mut f, declined("c-B2", "B2", 4)),
        Vec::<String>::new(),
        "a decline is never late: it earns nothing anyway"
    );
    assert_eq!(
        says(&mut f, accepted("c-B2", "B2", 5)),
        ["dead letter: credential c-B2 was declined already, by event declined-4"]
    );
}

#[test]
fn without_a_decision_deadline_an_acceptance_earns_however_late() {
    let mut f = released_to_b1_and_b2();
    f.pass(365 * 24 * 3_600_000);
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 1)),
        ["due 250 EUR to A for c-B1"]
    );
}

#[test]
fn the_rewards_decoder_takes_only_its_inputs_events_under_their_offer_id() {
    let core = rewards();
    let closed = encode(&tessera_contract::examples::closed("o", terms(), T).into()).unwrap();
    assert!(matches!(
        core.decode(Raw {
            topic: InputTopic::Decisions as usize,
            key: Some(b"o"),
            value: Some(&closed)
        }),
        Ok(rewards::Received::News(OfferNews::Closed(_)))
    ));
    assert_eq!(
        core.decode(Raw {
            topic: InputTopic::Outcomes as usize,
            key: Some(b"o"),
            value: Some(&closed)
        }),
        Err("OfferClosed does not belong on tessera.outcomes".into())
    );
    let rewards::Received::Outcome(rewards::Outcome::Accepted(acceptance)) =
        accepted("c-B1", "B1", 1)
    else {
        unreachable!()
    };
    let acceptance = encode(&acceptance.into()).unwrap();
    assert_eq!(
        core.decode(Raw {
            topic: InputTopic::Outcomes as usize,
            key: Some(b"B1"),
            value: Some(&acceptance)
        }),
        Err("the record key \"B1\" is not the event's offer id \"o\"".into())
    );
    assert_eq!(
        core.decode(Raw {
            topic: InputTopic::Outcomes as usize,
            key: Some(b"o"),
            value: Some(&acceptance)
        }),
        Ok(accepted("c-B1", "B1", 1))
    );
}

#[test]
fn balances_add_up_per_provider_and_currency() {
    let mut f = Feeder::new(ledger(), PARTITION);
    assert_eq!(
        credit(&mut f, due("A", "c1", 250, "EUR")),
        ["credited 250 EUR to A for c1, balance 250"]
    );
    assert_eq!(
        credit(&mut f, due("A", "c2", 100, "EUR")),
        ["credited 100 EUR to A for c2, balance 350"]
    );
    assert_eq!(
        credit(&mut f, due("A", "c3", 7, "points")),
        ["credited 7 points to A for c3, balance 7"]
    );
    assert_eq!(
        credit(&mut f, due("B", "c4", 1, "EUR")),
        ["credited 1 EUR to B for c4, balance 1"]
    );
}

#[test]
fn the_ledger_credits_a_credential_at_most_once() {
    let mut f = Feeder::new(ledger(), PARTITION);
    credit(&mut f, due("A", "c1", 250, "EUR"));
    assert_eq!(
        credit(&mut f, due("A", "c1", 250, "EUR")),
        Vec::<String>::new(),
        "the same reward read again changes nothing"
    );
    let mut again = due("A", "c1", 250, "EUR");
    again.event_id = "another".into();
    assert_eq!(
        credit(&mut f, again),
        ["dead letter: credential c1 of offer o was credited already, by reward due-A-c1"]
    );
    assert_eq!(
        credit(&mut f, due("A", "c2", 1, "EUR")),
        ["credited 1 EUR to A for c2, balance 251"]
    );
}

#[test]
fn rewards_that_cannot_be_credited_leave_the_balance_alone() {
    let mut f = Feeder::new(ledger(), PARTITION);
    assert_eq!(
        credit(&mut f, due("A", "c1", 0, "EUR")),
        ["dead letter: the reward 0 EUR is not positive"]
    );
    credit(&mut f, due("A", "c2", i64::MAX, "EUR"));
    assert_eq!(
        credit(&mut f, due("A", "c3", 1, "EUR")),
        [format!(
            "dead letter: crediting 1 EUR to a balance of {} would overflow",
            i64::MAX
        )]
    );
    assert_eq!(
        credit(&mut f, due("A", "c3", 1, "points")),
        ["credited 1 points to A for c3, balance 1"],
        "a refused reward is not marked credited"
    );
}

#[test]
fn the_ledger_decoder_wants_rewards_under_their_provider_id() {
    let core = ledger();
    let bytes = encode(&due("A", "c1", 1, "EUR").into()).unwrap();
    assert_eq!(
        core.decode(Raw {
            topic: 0,
            key: Some(b"A"),
            value: Some(&bytes)
        }),
        Ok(due("A", "c1", 1, "EUR"))
    );
    assert_eq!(
        core.decode(Raw {
            topic: 0,
            key: Some(b"o"),
            value: Some(&bytes)
        }),
        Err("the record key \"o\" is not the event's provider id \"A\"".into())
    );
    assert!(
        core.decode(Raw {
            topic: 0,
            key: Some(b"A"),
            value: None
        })
        .is_err()
    );
}

#[test]
fn an_outcome_not_signed_by_the_recipient_earns_nothing_and_is_refused_as_not_owner() {
    let mut f = released_to_b1_and_b2();
    // B2 accepts B1's credential in B1's name, signed with its own key.
    let forged = feed_as(&mut f, accepted("c-B1", "B1", 1), &signer_of("B2"));
    let said: Vec<String> = forged.iter().map(summary).collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with(
            "dead letter: NotOwner: the outcome of credential c-B1 is not signed by its recipient \
             B1's pinned key"
        ),
        "{said:?}"
    );
    // B1's own acceptance still earns, once.
    assert_eq!(
        says(&mut f, accepted("c-B1", "B1", 2)),
        ["due 250 EUR to A for c-B1"]
    );
}

#[test]
fn a_release_not_signed_by_the_timekeeper_releases_nothing() {
    let mut f = Feeder::new(rewards(), PARTITION);
    feed(&mut f, offer("A", Some(250)));
    let forged = feed_as(&mut f, release("B9"), &signer_of("B9"));
    let said: Vec<String> = forged.iter().map(summary).collect();
    assert!(
        said[0].starts_with("dead letter: Unauthenticated: "),
        "{said:?}"
    );
    let outcome = says(&mut f, accepted("c-B9", "B9", 1));
    assert!(outcome[0].contains("was not released"), "{outcome:?}");
}

#[test]
fn a_reward_not_signed_by_the_rewards_core_mints_nothing() {
    let mut f = Feeder::new(ledger(), PARTITION);
    let minted = credit_as(&mut f, due("A", "c1", 1_000_000, "EUR"), &signer_of("A"));
    assert_eq!(minted.len(), 1);
    assert!(
        minted[0].starts_with("dead letter: Unauthenticated: "),
        "{minted:?}"
    );
    assert_eq!(
        credit(&mut f, due("A", "c2", 5, "EUR")),
        ["credited 5 EUR to A for c2, balance 5"]
    );
}
