use std::collections::BTreeMap;

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use tessera_contract::rules::request_id;
use tessera_contract::sealing::{open_credential, seal_offer};
use tessera_contract::signing::SigningKey;
use tessera_contract::{
    CredentialDelivered, Custody, Deadline, Recommendation, Tick, Window, Within, decode, encode,
};
use tessera_state::MemoryState;

use super::*;
use crate::core::{Emission, Position, derived_id};
use crate::merge::Merge;
use crate::registry::{self, Inputs};
use crate::replay::{self, Produced, RawRecord};

/// 2025-11-25T09:00:00.000Z: a stamp that reads well in details.
const T: i64 = 1_764_061_200_000;
const PARTITION: i32 = 3;

const DOCUMENT: &[u8] = b"Document X\nfor the timely only\n";

fn rng(seed: &str) -> ChaCha20Rng {
    let mut bytes = [0u8; 32];
    for (b, s) in bytes.iter_mut().zip(seed.bytes()) {
        *b = s;
    }
    ChaCha20Rng::from_seed(bytes)
}

/// The timekeeper's key in these tests.
fn timekeeper_key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x70; 32]).unwrap()
}

/// Each subscriber's own key pair.
fn subscriber_key(subscriber_id: &str) -> PrivateKey {
    PrivateKey::from_bytes(format!("{subscriber_id:<32}").as_bytes()).unwrap()
}

/// The signing key of party `id` ("A" the provider, "matcher", or a subscriber).
fn signer_of(id: &str) -> SigningKey {
    SigningKey::derive(&subscriber_key(id))
}

/// The honest author of an input: the provider of offers and withdrawals, the matcher of
/// invitations, the subscriber of responses.
fn author(value: &Received) -> SigningKey {
    match value {
        Received::Offer(_) | Received::Withdrawal(_) => signer_of("A"),
        Received::Invitation(_) => signer_of("matcher"),
        Received::Response(response) => signer_of(&response.subscriber_id),
    }
}

fn event_of(value: &Received) -> Event {
    match value.clone() {
        Received::Offer(offer) => (*offer).into(),
        Received::Withdrawal(withdrawal) => withdrawal.into(),
        Received::Invitation(invitation) => invitation.into(),
        Received::Response(response) => response.into(),
    }
}

/// Offer `offer_id` with document X sealed in escrow custody to the timekeeper's key.
fn offer(offer_id: &str, time_rule: TimeRule) -> OfferPublished {
    tessera_contract::identity::with_package_signed(
        OfferPublished {
            event_id: format!("offer-event-{offer_id}"),
            offer_id: offer_id.into(),
            provider_id: "A".into(),
            signing_key: signer_of("A").verifying_key().to_bytes(),
            package_signature: Vec::new(),
            provider_endorsement: None,
            provider_contact: "a@example.org".into(),
            recommendation: Recommendation {
                identifier: "doc-X".into(),
                name: "Document X".into(),
                features: BTreeMap::new(),
                parameters: BTreeMap::new(),
            },
            time_rule,
            capacity: None,
            reward: None,
            decide_within: None,
            credential: seal_offer(
                offer_id,
                DOCUMENT,
                Custody::Escrow,
                &timekeeper_key().public_key(),
                &mut rng(offer_id),
            )
            .unwrap()
            .credential,
            invite_late: false,
        },
        &signer_of("A"),
    )
}

fn deadline(at: i64) -> TimeRule {
    TimeRule::Deadline(Deadline { at })
}

fn window(from: i64, to: i64) -> TimeRule {
    TimeRule::Window(Window { from, to })
}

fn within(duration_ms: i64) -> TimeRule {
    TimeRule::Within(Within { duration_ms })
}

fn invitation(offer_id: &str, subscriber_id: &str) -> InteractionRequested {
    InteractionRequested {
        event_id: format!("invitation-{offer_id}-{subscriber_id}"),
        request_id: request_id(offer_id, subscriber_id),
        offer_id: offer_id.into(),
        subscriber_id: subscriber_id.into(),
        subscriber_key: subscriber_key(subscriber_id).public_key().to_bytes(),
        subscriber_signing_key: signer_of(subscriber_id).verifying_key().to_bytes(),
        recommendation: offer(offer_id, deadline(T)).recommendation,
        offer: OfferTerms {
            position: LogPosition {
                topic: "tessera.offers".into(),
                partition: PARTITION,
                offset: 0,
                stamp: T,
            },
            time_rule: deadline(T),
        },
        provider_contact: "a@example.org".into(),
        decide_within: None,
    }
}

/// Response number `n` (its event id) of `subscriber_id`, naming the right invitation.
fn response(offer_id: &str, subscriber_id: &str, n: u32) -> ResponseSubmitted {
    ResponseSubmitted {
        event_id: format!("response-{n}"),
        offer_id: offer_id.into(),
        request_id: request_id(offer_id, subscriber_id),
        subscriber_id: subscriber_id.into(),
    }
}

fn withdrawal(offer_id: &str, provider_id: &str) -> OfferWithdrawn {
    OfferWithdrawn {
        event_id: format!("withdrawal-{offer_id}"),
        offer_id: offer_id.into(),
        provider_id: provider_id.into(),
        reason: None,
    }
}

/// A timekeeper with its state, fed by hand: each input gets the next offset of its topic and
/// an effective stamp equal to its stamp unless said otherwise.
struct Fixture {
    core: Timekeeper,
    state: MemoryState,
    offsets: [i64; 3],
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture {
            core: Timekeeper::new(timekeeper_key(), signer_of("matcher").verifying_key()),
            state: MemoryState::new(),
            offsets: [0; 3],
        }
    }
}

impl Fixture {
    fn at(&mut self, topic: usize, stamp: i64, effective: i64) -> Position {
        let offset = self.offsets[topic];
        self.offsets[topic] += 1;
        Position {
            topic,
            partition: PARTITION,
            task: PARTITION,
            offset,
            stamp,
            effective,
        }
    }

    /// Applies `value` at `at`, signed by its honest author.
    fn feed_at(&mut self, at: Position, value: Received) -> Vec<Emitted> {
        let signer = author(&value);
        self.feed_signed(at, value, &signer)
    }

    /// Applies `value` at `at`, signed by `signer`.
    fn feed_signed(&mut self, at: Position, value: Received, signer: &SigningKey) -> Vec<Emitted> {
        let key = value.offer_id().to_string();
        let bytes = encode(&event_of(&value)).unwrap();
        let signed = signer.signed(InputTopic::TOPICS[at.topic].name, key.as_bytes(), &bytes);
        let input = Input::Record {
            at,
            key: Some(key),
            value,
            signed,
        };
        self.core.apply(&mut self.state, input)
    }

    /// Applies `value` as the next record of its input, stamped `stamp`, signed by `signer`.
    fn feed_as(&mut self, stamp: i64, value: Received, signer: &SigningKey) -> Vec<Emitted> {
        let topic = match value {
            Received::Offer(_) | Received::Withdrawal(_) => InputTopic::Offers as usize,
            Received::Invitation(_) => InputTopic::Requests as usize,
            Received::Response(_) => InputTopic::Responses as usize,
        };
        let at = self.at(topic, stamp, stamp);
        self.feed_signed(at, value, signer)
    }

    fn feed(&mut self, stamp: i64, value: Received) -> Vec<Emitted> {
        let signer = author(&value);
        self.feed_as(stamp, value, &signer)
    }

    fn publish(&mut self, stamp: i64, offer: OfferPublished) -> Vec<Event> {
        events(&self.feed(stamp, Received::Offer(Box::new(offer))))
    }

    fn invite(&mut self, stamp: i64, offer_id: &str, subscribers: &[&str]) {
        for subscriber in subscribers {
            let outputs = self.feed(
                stamp,
                Received::Invitation(invitation(offer_id, subscriber)),
            );
            assert_eq!(outputs, vec![], "an invitation decides nothing");
        }
    }

    fn respond(&mut self, stamp: i64, response: ResponseSubmitted) -> Vec<Event> {
        events(&self.feed(stamp, Received::Response(response)))
    }

    /// Response number `n` of `subscriber_id` to offer `o`, received at `stamp`, and what it
    /// produced in words.
    fn answer(&mut self, stamp: i64, subscriber_id: &str, n: u32) -> Vec<String> {
        summaries(&self.respond(stamp, response("o", subscriber_id, n)))
    }

    fn tick(&mut self, stamp: i64) -> Vec<Event> {
        let at = self.at(InputTopic::Requests as usize, stamp, stamp);
        events(&self.core.apply(&mut self.state, Input::Tick { at }))
    }
}

fn events(outputs: &[Emitted]) -> Vec<Event> {
    outputs
        .iter()
        .map(|o| o.event().cloned().expect("the core emits events"))
        .collect()
}

/// An output in a few words, so a test can state a sequence of them.
fn summary(event: &Event) -> String {
    match event {
        Event::CredentialReleased(e) => format!("released {}", e.subscriber_id),
        Event::ResponseRejected(e) => format!("rejected {} {:?}", e.subscriber_id, e.reason),
        Event::OfferRejected(e) => format!("offer rejected {:?}", e.problem),
        Event::OfferClosed(e) => format!("closed {}", e.offer_id),
        Event::DeadLetter(e) => format!("dead letter: {}", e.reason),
        other => format!("unexpected {:?}", other.kind()),
    }
}

fn summaries(events: &[Event]) -> Vec<String> {
    events.iter().map(summary).collect()
}

/// The reason and detail of the one rejection in `events`.
fn why(events: &[Event]) -> (RejectReason, &str) {
    let rejected = rejection(events);
    (rejected.reason, rejected.detail.as_str())
}

fn rejection(events: &[Event]) -> &ResponseRejected {
    match events {
        [Event::ResponseRejected(rejected)] => rejected,
        other => panic!("expected one rejection, got {:?}", summaries(other)),
    }
}

/// A fixture with offer `o` published at `stamp` under `rule` and `subscribers` invited.
fn with_offer(stamp: i64, rule: TimeRule, subscribers: &[&str]) -> Fixture {
    let mut fixture = Fixture::default();
    assert_eq!(fixture.publish(stamp, offer("o", rule)), vec![]);
    fixture.invite(stamp, "o", subscribers);
    fixture
}

#[test]
fn a_deadline_is_met_at_it_and_before_it_not_after() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1", "s2", "s3"]);
    assert_eq!(tk.answer(T - 1, "s1", 1), ["released s1"]);
    assert_eq!(tk.answer(T, "s2", 2), ["released s2"]);
    let late = tk.respond(T + 1, response("o", "s3", 3));
    assert_eq!(summaries(&late), ["closed o", "rejected s3 TooLate"]);
    assert_eq!(
        rejection(&late[1..]).detail,
        "received 2025-11-25T09:00:00.001Z, deadline 2025-11-25T09:00:00.000Z"
    );
}

#[test]
fn a_window_includes_both_ends() {
    let subscribers = ["s1", "s2", "s3", "s4", "s5", "s6"];
    let mut tk = with_offer(T - 1_000, window(T, T + 100), &subscribers);
    let early = tk.respond(T - 1, response("o", "s1", 1));
    assert_eq!(summaries(&early), ["rejected s1 TooEarly"]);
    assert_eq!(
        rejection(&early).detail,
        "received 2025-11-25T08:59:59.999Z, window 2025-11-25T09:00:00.000Z .. 2025-11-25T09:00:00.100Z"
    );
    assert_eq!(tk.answer(T, "s2", 2), ["released s2"]);
    assert_eq!(tk.answer(T + 1, "s3", 3), ["released s3"]);
    assert_eq!(tk.answer(T + 99, "s4", 4), ["released s4"]);
    assert_eq!(tk.answer(T + 100, "s5", 5), ["released s5"]);
    assert_eq!(
        tk.answer(T + 101, "s6", 6),
        ["closed o", "rejected s6 TooLate"]
    );
}

#[test]
fn within_counts_from_the_offers_effective_stamp() {
    // The offer's broker clock stepped back: its stamp reads T - 500 but the partition had
    // reached T, and the rule counts from T.
    let mut tk = Fixture::default();
    let at = tk.at(InputTopic::Offers as usize, T - 500, T);
    assert_eq!(
        tk.feed_at(at, Received::Offer(Box::new(offer("o", within(100))))),
        vec![]
    );
    tk.invite(T, "o", &["s1", "s2", "s3"]);
    assert_eq!(tk.answer(T + 99, "s1", 1), ["released s1"]);
    let released = tk.respond(T + 100, response("o", "s2", 2));
    let Event::CredentialReleased(released) = &released[0] else {
        panic!("expected a release, got {:?}", summaries(&released));
    };
    assert_eq!(
        released.offer.position.stamp, T,
        "the offer's stamp is its effective one"
    );
    let late = tk.respond(T + 101, response("o", "s3", 3));
    assert_eq!(summaries(&late), ["closed o", "rejected s3 TooLate"]);
    assert_eq!(
        rejection(&late[1..]).detail,
        "received 2025-11-25T09:00:00.101Z, within 100 ms of the offer received \
         2025-11-25T09:00:00.000Z (until 2025-11-25T09:00:00.100Z)"
    );
}

#[test]
fn responses_are_judged_on_their_effective_stamp() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1"]);
    // Read with stamp T - 10, but the responses partition had already reached T + 5.
    let at = tk.at(InputTopic::Responses as usize, T - 10, T + 5);
    let late = events(&tk.feed_at(at, Received::Response(response("o", "s1", 1))));
    assert_eq!(summaries(&late), ["closed o", "rejected s1 TooLate"]);
    assert_eq!(rejection(&late[1..]).response.stamp, T + 5);
}

#[test]
fn a_response_to_no_offer_is_rejected_as_unknown() {
    let mut tk = Fixture::default();
    let rejected = tk.respond(T, response("nowhere", "s1", 1));
    let rejected = rejection(&rejected);
    assert_eq!(rejected.reason, RejectReason::UnknownOffer);
    assert_eq!(rejected.offer, None);
    assert_eq!(
        rejected.detail,
        "no offer nowhere was on the log by 2025-11-25T09:00:00.000Z"
    );
}

#[test]
fn a_response_needs_its_own_invitation() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1"]);
    let stranger = tk.respond(T - 5, response("o", "s2", 1));
    assert_eq!(rejection(&stranger).reason, RejectReason::NotInvited);
    let mut wrong_request = response("o", "s1", 2);
    wrong_request.request_id = request_id("o", "s2");
    let wrong = tk.respond(T - 4, wrong_request);
    assert_eq!(rejection(&wrong).reason, RejectReason::NotInvited);
    assert!(
        rejection(&wrong)
            .detail
            .contains("was invited under request")
    );
    assert_eq!(tk.answer(T - 3, "s1", 3), ["released s1"]);
}

#[test]
fn a_subscriber_is_released_once_and_a_response_judged_once() {
    let mut tk = with_offer(T - 1_000, window(T - 100, T), &["s1"]);
    assert_eq!(tk.answer(T - 101, "s1", 1), ["rejected s1 TooEarly"]);
    // The same response again is a duplicate, even though its first verdict was a rejection.
    let again = tk.respond(T - 50, response("o", "s1", 1));
    assert_eq!(
        why(&again),
        (
            RejectReason::Duplicate,
            "response response-1 was judged already"
        )
    );
    // A new response of a rejected responder is judged anew.
    assert_eq!(tk.answer(T - 49, "s1", 2), ["released s1"]);
    let second = tk.respond(T - 48, response("o", "s1", 3));
    assert_eq!(
        why(&second),
        (
            RejectReason::Duplicate,
            "subscriber s1 has the credential of offer o already"
        )
    );
}

#[test]
fn capacity_counts_releases_only() {
    let mut offer = offer("o", window(T, T + 100));
    offer.capacity = Some(2);
    let mut tk = Fixture::default();
    assert_eq!(tk.publish(T - 1_000, offer), vec![]);
    tk.invite(T - 1_000, "o", &["s1", "s2", "s3", "s4"]);
    assert_eq!(tk.answer(T - 1, "s1", 1), ["rejected s1 TooEarly"]);
    assert_eq!(tk.answer(T, "s2", 2), ["released s2"]);
    assert_eq!(tk.answer(T + 1, "s3", 3), ["released s3"]);
    let full = tk.respond(T + 2, response("o", "s4", 4));
    assert_eq!(
        why(&full),
        (
            RejectReason::CapacityReached,
            "all 2 credentials of offer o were released already"
        )
    );
    let s1 = tk.respond(T + 3, response("o", "s1", 5));
    assert_eq!(rejection(&s1).reason, RejectReason::CapacityReached);
}

#[test]
fn an_offer_closes_once_strictly_after_its_rule_with_its_counts() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1", "s2", "s3"]);
    tk.respond(T - 10, response("o", "s1", 1));
    tk.respond(T - 9, response("o", "s4", 2));
    tk.respond(T - 8, response("o", "s1", 3));
    assert_eq!(tk.tick(T), vec![], "the deadline itself is still in time");
    let closed = tk.tick(T + 1);
    let [Event::OfferClosed(closed)] = closed.as_slice() else {
        panic!("expected the offer to close, got {:?}", summaries(&closed));
    };
    assert_eq!(
        (
            closed.requested,
            closed.responded,
            closed.released,
            closed.rejected
        ),
        (3, 3, 1, 2)
    );
    assert_eq!(closed.closed_at, T + 1);
    assert!(!closed.withdrawn);
    assert_eq!(closed.offer.time_rule, deadline(T));
    assert_eq!(closed.offer.position.stamp, T - 1_000);
    assert_eq!(tk.tick(T + 1_000), vec![]);
    // Responses after the close are still judged.
    let late = tk.respond(T + 2_000, response("o", "s2", 4));
    assert_eq!(summaries(&late), ["rejected s2 TooLate"]);
}

/// The state's entries under `prefix` (a table's key prefix).
fn entries_under(state: &MemoryState, prefix: &str) -> usize {
    state
        .entries()
        .keys()
        .filter(|key| key.starts_with(prefix.as_bytes()))
        .count()
}

/// A million responses, each to an offer id never published, leave the state as it was.
#[test]
fn a_million_responses_to_unknown_offers_cost_no_state() {
    let n = 1_000_000;
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1"]);
    let before = tk.state.entries();
    let signed = Signed::of(None, None, None);
    for i in 0..n {
        let at = tk.at(InputTopic::Responses as usize, T - 500, T - 500);
        let response = response(&format!("unknown-{i}"), "s1", i);
        let input = Input::Record {
            at,
            key: Some(response.offer_id.clone()),
            value: Received::Response(response),
            signed: signed.clone(),
        };
        let outputs = tk.core.apply(&mut tk.state, input);
        assert_eq!(outputs.len(), 1, "one verdict per response");
    }
    assert_eq!(
        tk.state.entries(),
        before,
        "{n} responses to no offer changed the state"
    );
    // The same response again is rejected the same way: nothing recorded it.
    let again = tk.respond(T - 400, response("unknown-0", "s1", 0));
    assert_eq!(why(&again).0, RejectReason::UnknownOffer);
}

#[test]
fn a_closed_offer_keeps_its_terms_and_loses_its_invitations_and_judged_responses() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1", "s2"]);
    assert_eq!(tk.answer(T - 10, "s1", 1), ["released s1"]);
    assert_eq!(tk.answer(T - 9, "s2", 2), ["released s2"]);
    assert_eq!(summaries(&tk.tick(T + 1)), ["closed o"]);
    // Within the grace period a retried response is still named a duplicate, and nothing new
    // is recorded for the closed offer.
    let retried = tk.respond(T + 10, response("o", "s1", 1));
    assert_eq!(why(&retried).0, RejectReason::Duplicate);
    let judged = entries_under(&tk.state, "judged/");
    assert_eq!(tk.answer(T + 11, "s1", 3), ["rejected s1 Duplicate"]);
    assert_eq!(entries_under(&tk.state, "judged/"), judged);
    let late_invitation = tk.feed(T + 12, Received::Invitation(invitation("o", "s3")));
    assert!(
        matches!(&events(&late_invitation)[..], [Event::DeadLetter(l)] if l.reason.contains("closed")),
        "{late_invitation:?}"
    );
    assert_eq!(entries_under(&tk.state, "invitation/"), 2);

    // After it, they are gone; the offer's terms and counts stay.
    let pruned_at = T + 1 + PRUNE_AFTER_MS;
    assert_eq!(tk.core.next_due(&tk.state), Some(pruned_at));
    assert_eq!(
        tk.tick(pruned_at),
        vec![],
        "not before the grace period has passed"
    );
    assert_eq!(entries_under(&tk.state, "invitation/"), 2);
    assert_eq!(tk.tick(pruned_at + 1), vec![]);
    assert_eq!(entries_under(&tk.state, "invitation/"), 0);
    assert_eq!(entries_under(&tk.state, "judged/"), 0);
    assert_eq!(entries_under(&tk.state, "offer/"), 1);
    assert_eq!(tk.core.next_due(&tk.state), None, "no timer is left");
    // A retry now is judged by the offer as closed.
    let retried = tk.respond(pruned_at + 2, response("o", "s1", 1));
    assert_eq!(
        why(&retried),
        (
            RejectReason::TooLate,
            "offer o closed at 2025-11-25T09:00:00.001Z"
        )
    );
    // And a second offer under the id is still refused.
    let again = tk.publish(pruned_at + 3, offer("o", deadline(pruned_at + 10_000)));
    assert!(
        matches!(&again[..], [Event::OfferRejected(r)] if r.problem == OfferProblem::DuplicateOffer)
    );
}

#[test]
fn offers_close_in_the_order_their_rules_end() {
    let mut tk = Fixture::default();
    tk.publish(T, offer("b", deadline(T + 20)));
    tk.publish(T, offer("a", within(30)));
    tk.publish(T, offer("c", window(T + 5, T + 10)));
    let closed = tk.tick(T + 100);
    assert_eq!(summaries(&closed), ["closed c", "closed b", "closed a"]);
    let ids: std::collections::BTreeSet<_> = closed
        .iter()
        .map(|e| match e {
            Event::OfferClosed(c) => c.event_id.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "each output of one input has its own event id"
    );
}

#[test]
fn a_withdrawal_closes_the_offer_and_later_responses_are_withdrawn() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1", "s2"]);
    tk.respond(T - 100, response("o", "s1", 1));
    let closed = events(&tk.feed(T - 50, Received::Withdrawal(withdrawal("o", "A"))));
    let [Event::OfferClosed(closed)] = closed.as_slice() else {
        panic!("expected the offer to close, got {:?}", summaries(&closed));
    };
    assert!(closed.withdrawn);
    assert_eq!(closed.closed_at, T - 50);
    assert_eq!(
        (closed.requested, closed.responded, closed.released),
        (2, 1, 1)
    );
    let withdrawn = tk.respond(T - 40, response("o", "s2", 2));
    assert_eq!(
        why(&withdrawn),
        (
            RejectReason::Withdrawn,
            "offer o was withdrawn at 2025-11-25T08:59:59.950Z"
        )
    );
    assert_eq!(
        tk.tick(T + 1),
        vec![],
        "a withdrawn offer does not close again"
    );
}

#[test]
fn withdrawals_that_cannot_take_effect_are_dead_letters() {
    let mut tk = with_offer(T - 1_000, deadline(T), &[]);
    let mut invalid = offer("bad", window(T, T - 1));
    invalid.provider_id = "A".into();
    tk.publish(T - 1_000, invalid);
    let cases = [
        (
            withdrawal("o", "B"),
            "NotOwner: provider B cannot withdraw offer o of provider A",
        ),
        (
            withdrawal("nowhere", "A"),
            "there is no offer nowhere to withdraw",
        ),
        (
            withdrawal("bad", "A"),
            "offer bad was rejected, so it cannot be withdrawn",
        ),
    ];
    for (withdrawal, reason) in cases {
        let outputs = tk.feed(T - 500, Received::Withdrawal(withdrawal.clone()));
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].topic, registry::DEAD_LETTERS);
        assert_eq!(outputs[0].key, "tessera.offers");
        let Event::DeadLetter(letter) = outputs[0].event().cloned().unwrap() else {
            panic!("expected a dead letter");
        };
        assert_eq!(letter.reason, reason);
        assert_eq!(letter.processor, "timekeeper");
        assert_eq!(letter.source_topic, "tessera.offers");
        assert_eq!(letter.source_partition, PARTITION);
        assert_eq!(
            letter.source_offset,
            tk.offsets[InputTopic::Offers as usize] - 1
        );
        assert_eq!(letter.source_timestamp, Some(T - 500));
        assert_eq!(letter.key.as_deref(), Some(withdrawal.offer_id.as_bytes()));
        let value = decode(letter.value.as_deref().unwrap()).unwrap();
        assert_eq!(value, Event::OfferWithdrawn(withdrawal));
    }
    tk.tick(T + 1);
    let closed = events(&tk.feed(T + 2, Received::Withdrawal(withdrawal("o", "A"))));
    assert_eq!(
        summaries(&closed),
        ["dead letter: offer o had already closed at 2025-11-25T09:00:00.001Z"]
    );
}

#[test]
fn a_second_offer_under_an_id_is_rejected_and_the_first_stays() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1"]);
    let mut second = offer("o", deadline(T + 1_000));
    second.event_id = "second".into();
    let rejected = tk.publish(T - 900, second);
    let [Event::OfferRejected(rejected)] = rejected.as_slice() else {
        panic!("expected a rejection, got {:?}", summaries(&rejected));
    };
    assert_eq!(rejected.problem, OfferProblem::DuplicateOffer);
    assert_eq!(rejected.offer.offset, 1, "the second offer's own position");
    assert_eq!(
        rejected.detail,
        "offer o was already published at 2025-11-25T08:59:59.000Z partition 3 offset 0"
    );
    let late = tk.respond(T + 500, response("o", "s1", 1));
    assert_eq!(summaries(&late), ["closed o", "rejected s1 TooLate"]);
}

#[test]
fn invalid_offers_are_rejected_with_their_problem_and_never_close() {
    let stamp = T;
    let mut empty = offer("empty", deadline(T + 10));
    empty.recommendation.identifier = String::new();
    let cases = [
        (
            offer("backwards", window(T + 10, T + 9)),
            OfferProblem::WindowEndsBeforeStart,
        ),
        (offer("zero", within(0)), OfferProblem::NonPositiveDuration),
        (
            offer("negative", within(-5)),
            OfferProblem::NonPositiveDuration,
        ),
        (offer("past", deadline(T - 1)), OfferProblem::AlreadyEnded),
        (empty, OfferProblem::EmptyIdentifier),
    ];
    let mut tk = Fixture::default();
    for (offer, problem) in cases {
        let offer_id = offer.offer_id.clone();
        let rejected = tk.publish(stamp, offer);
        let [Event::OfferRejected(rejected)] = rejected.as_slice() else {
            panic!(
                "{offer_id}: expected a rejection, got {:?}",
                summaries(&rejected)
            );
        };
        assert_eq!(rejected.problem, problem, "{offer_id}");
        tk.invite(stamp, &offer_id, &["s1"]);
        let response = tk.respond(stamp, response(&offer_id, "s1", 0));
        assert_eq!(rejection(&response).reason, RejectReason::InvalidOffer);
        assert!(rejection(&response).offer.is_some());
        assert!(
            rejection(&response)
                .detail
                .starts_with(&format!("offer {offer_id} was rejected: "))
        );
    }
    assert_eq!(
        tk.publish(stamp, offer("now", deadline(T))),
        vec![],
        "a deadline at the stamp is valid"
    );
    assert_eq!(summaries(&tk.tick(T + 1_000_000)), ["closed now"]);
}

#[test]
fn a_release_carries_the_evidence_and_the_key_halves() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1", "s2"]);
    let outputs = tk.feed(T - 10, Received::Response(response("o", "s1", 1)));
    assert_eq!(outputs[0].topic, registry::OUTPUT);
    assert_eq!(outputs[0].key, "o");
    let released = events(&outputs);
    let [Event::CredentialReleased(released)] = released.as_slice() else {
        panic!("expected a release, got {:?}", summaries(&released));
    };
    assert_eq!(
        released.response,
        LogPosition {
            topic: "tessera.responses".into(),
            partition: PARTITION,
            offset: 0,
            stamp: T - 10,
        }
    );
    assert_eq!(released.offer.position.topic, "tessera.offers");
    assert_eq!(released.offer.position.offset, 0);
    assert_eq!(released.offer.time_rule, deadline(T));
    assert_eq!(released.request_id, request_id("o", "s1"));
    assert!(released.provider_half.is_some(), "escrow: both halves");
    assert_eq!(released.credential_id, credential_id("o", "s1"));
    assert_ne!(credential_id("o", "s1"), credential_id("o", "s2"));
    let at = Position {
        topic: InputTopic::Responses as usize,
        partition: PARTITION,
        task: PARTITION,
        offset: 0,
        stamp: T - 10,
        effective: T - 10,
    };
    assert_eq!(released.event_id, derived_id("timekeeper", &at, 0));
}

#[test]
fn a_conflicting_invitation_is_a_dead_letter_and_a_repeated_one_changes_nothing() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1"]);
    tk.invite(T - 900, "o", &["s1"]);
    let mut conflicting = invitation("o", "s1");
    conflicting.request_id = "other".into();
    let outputs = tk.feed(T - 800, Received::Invitation(conflicting));
    assert_eq!(outputs[0].key, "tessera.requests");
    assert_eq!(
        summaries(&events(&outputs)),
        [format!(
            "dead letter: subscriber s1 was already invited to offer o under request {}",
            request_id("o", "s1")
        )]
    );
    let closed = tk.tick(T + 1);
    let [Event::OfferClosed(closed)] = closed.as_slice() else {
        panic!("expected the offer to close");
    };
    assert_eq!(closed.requested, 1);
}

/// `event` under `key` as read from `topic`, signed by `signer`.
fn raw(
    event: impl Into<Event>,
    key: &str,
    topic: tessera_contract::topics::Topic,
    signer: &str,
) -> RawRecord {
    let value = encode(&event.into()).unwrap();
    let signature = signer_of(signer).sign_record(topic.name, Some(key.as_bytes()), Some(&value));
    RawRecord {
        key: Some(key.as_bytes().to_vec()),
        value: Some(value),
        signature: Some(signature.to_vec()),
        refused: None,
    }
}

#[test]
fn absence_is_decided_in_merge_order() {
    // Invitations and offers stamped with a response are applied before it (lower rank); those
    // stamped after it are not seen by it.
    let lanes: [Vec<(i64, RawRecord)>; 3] = [
        vec![
            (
                T,
                raw(offer("o", deadline(T + 1_000)), "o", topics::OFFERS, "A"),
            ),
            (
                T + 20,
                raw(
                    offer("same", deadline(T + 1_000)),
                    "same",
                    topics::OFFERS,
                    "A",
                ),
            ),
            (
                T + 21,
                raw(
                    offer("later", deadline(T + 1_000)),
                    "later",
                    topics::OFFERS,
                    "A",
                ),
            ),
        ],
        vec![
            (
                T + 10,
                raw(invitation("o", "s1"), "o", topics::REQUESTS, "matcher"),
            ),
            (
                T + 11,
                raw(invitation("o", "s2"), "o", topics::REQUESTS, "matcher"),
            ),
            (
                T + 20,
                raw(
                    invitation("same", "s1"),
                    "same",
                    topics::REQUESTS,
                    "matcher",
                ),
            ),
        ],
        vec![
            (
                T + 10,
                raw(response("o", "s1", 1), "o", topics::RESPONSES, "s1"),
            ),
            (
                T + 10,
                raw(response("o", "s2", 2), "o", topics::RESPONSES, "s2"),
            ),
            (
                T + 20,
                raw(response("same", "s1", 3), "same", topics::RESPONSES, "s1"),
            ),
            (
                T + 20,
                raw(response("later", "s1", 4), "later", topics::RESPONSES, "s1"),
            ),
        ],
    ];
    let mut merge = Merge::new(3);
    for (topic, lane) in lanes.into_iter().enumerate() {
        for (offset, (stamp, record)) in lane.into_iter().enumerate() {
            merge
                .push(topic, PARTITION, offset as i64, stamp, record)
                .unwrap();
        }
        merge.finish(topic);
    }
    let mut core = Timekeeper::new(timekeeper_key(), signer_of("matcher").verifying_key());
    let mut state = MemoryState::new();
    let verdicts: Vec<String> = replay::drain(&mut core, &mut state, &mut merge)
        .into_iter()
        .map(|produced| match produced {
            Produced::Output(output) => summary(&decode(&output.value).unwrap()),
            Produced::DeadLetter { reason, .. } => reason,
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            "released s1",
            "rejected s2 NotInvited",
            "released s1",
            "rejected s1 UnknownOffer"
        ]
    );
}

#[test]
fn decode_accepts_only_the_events_of_each_input_keyed_by_their_offer_id() {
    let tk = Timekeeper::new(timekeeper_key(), signer_of("matcher").verifying_key());
    let bytes = |event: Event| encode(&event).unwrap();
    let offer_bytes = bytes(offer("o", deadline(T)).into());
    let response_bytes = bytes(response("o", "s1", 1).into());
    let accepted = |topic, bytes: &[u8]| {
        tk.decode(Raw {
            topic,
            key: Some(b"o"),
            value: Some(bytes),
        })
        .unwrap()
    };
    let withdrawal = bytes(withdrawal("o", "A").into());
    let invitation = bytes(invitation("o", "s1").into());
    let received = [
        accepted(InputTopic::Offers as usize, &offer_bytes),
        accepted(InputTopic::Offers as usize, &withdrawal),
        accepted(InputTopic::Requests as usize, &invitation),
        accepted(InputTopic::Responses as usize, &response_bytes),
    ];
    assert!(matches!(
        received,
        [
            Received::Offer(_),
            Received::Withdrawal(_),
            Received::Invitation(_),
            Received::Response(_)
        ]
    ));

    let mut no_id = response("", "s1", 1);
    no_id.offer_id = String::new();
    let tick = Tick {
        event_id: "t".into(),
        ticker: "t".into(),
        seq: 0,
    };
    let reason = |topic, key: Option<&[u8]>, value: Option<&[u8]>| {
        tk.decode(Raw { topic, key, value }).unwrap_err()
    };
    let wrong_topic = reason(
        InputTopic::Responses as usize,
        Some(b"o"),
        Some(&offer_bytes),
    );
    assert_eq!(
        wrong_topic,
        "OfferPublished does not belong on tessera.responses"
    );
    let wrong_topic = reason(
        InputTopic::Offers as usize,
        Some(b"o"),
        Some(&response_bytes),
    );
    assert_eq!(
        wrong_topic,
        "ResponseSubmitted does not belong on tessera.offers"
    );
    let tick = reason(
        InputTopic::Requests as usize,
        Some(b"o"),
        Some(&bytes(tick.into())),
    );
    assert_eq!(tick, "Tick does not belong on tessera.requests");
    let no_key = reason(InputTopic::Responses as usize, None, Some(&response_bytes));
    assert_eq!(no_key, "the record has no key; expected \"o\"");
    let binary_key = reason(
        InputTopic::Responses as usize,
        Some(&[0xff, 0xfe]),
        Some(&response_bytes),
    );
    assert_eq!(binary_key, "the record key is not UTF-8");
    let other_key = reason(
        InputTopic::Responses as usize,
        Some(b"p"),
        Some(&response_bytes),
    );
    assert_eq!(
        other_key,
        "the record key \"p\" is not the event's offer id \"o\""
    );
    let empty = reason(
        InputTopic::Responses as usize,
        Some(b""),
        Some(&bytes(no_id.into())),
    );
    assert_eq!(empty, "the offer id is empty");
    let tombstone = reason(InputTopic::Responses as usize, Some(b"o"), None);
    assert_eq!(tombstone, "the record has no value");
    let no_input = reason(3, Some(b"o"), Some(&response_bytes));
    assert_eq!(no_input, "there is no input 3");
    let garbage = reason(
        InputTopic::Responses as usize,
        Some(b"o"),
        Some(&[0xde, 0xad]),
    );
    assert!(garbage.contains("too short"), "{garbage}");
}

#[test]
fn the_core_names_its_topics_from_the_catalogue() {
    let tk = Timekeeper::new(timekeeper_key(), signer_of("matcher").verifying_key());
    assert_eq!(tk.name(), "timekeeper");
    assert_eq!(
        tk.inputs(),
        ["tessera.offers", "tessera.requests", "tessera.responses"]
    );
    assert_eq!(tk.outputs(), ["tessera.decisions", "tessera.dead-letters"]);
}

/// What the delivery worker would hand the responder of `released` for `offer`.
fn delivered(offer: &OfferPublished, released: &CredentialReleased) -> CredentialDelivered {
    CredentialDelivered {
        event_id: "00000000-0000-4000-8000-000000000001".into(),
        credential_id: released.credential_id.clone(),
        offer_id: released.offer_id.clone(),
        subscriber_id: released.subscriber_id.clone(),
        package: offer.credential.package.clone(),
        platform_half: released.platform_half.clone(),
        provider_half: released.provider_half.clone().expect("escrow custody"),
        attempts: 1,
        provider_id: String::new(),
        provider_signing_key: Vec::new(),
        package_signature: Vec::new(),
    }
}

fn released(events: &[Event]) -> &CredentialReleased {
    match events {
        [Event::CredentialReleased(released)] => released,
        other => panic!("expected one release, got {:?}", summaries(other)),
    }
}

#[test]
fn released_halves_open_for_the_responder_only_and_a_replay_seals_the_same_bytes() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1"]);
    let outputs = tk.feed(T - 10, Received::Response(response("o", "s1", 1)));
    let events = events(&outputs);
    let delivered = delivered(&offer("o", deadline(T)), released(&events));
    let opened = open_credential(&delivered, &subscriber_key("s1")).unwrap();
    assert_eq!(opened.as_slice(), DOCUMENT);
    assert!(open_credential(&delivered, &subscriber_key("s2")).is_err());
    assert!(open_credential(&delivered, &timekeeper_key()).is_err());

    let mut replay = with_offer(T - 1_000, deadline(T), &["s1"]);
    let again = replay.feed(T - 10, Received::Response(response("o", "s1", 1)));
    assert_eq!(again, outputs, "byte for byte, sealed halves included");
}

#[test]
fn a_response_not_signed_by_the_pinned_key_is_forged_and_never_released() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1", "s2"]);
    // s2 answers for s1 with its own key.
    let impostor = tk.feed_as(
        T - 50,
        Received::Response(response("o", "s1", 1)),
        &signer_of("s2"),
    );
    let impostor = events(&impostor);
    let (reason, detail) = why(&impostor);
    assert_eq!(reason, RejectReason::Forged);
    assert!(
        detail.starts_with("response response-1 is not signed by subscriber s1's pinned key"),
        "{detail}"
    );
    // An unsigned response proves nothing either.
    let key = "o".to_string();
    let at = tk.at(InputTopic::Responses as usize, T - 40, T - 40);
    let unsigned = tk.core.apply(
        &mut tk.state,
        Input::Record {
            at,
            key: Some(key),
            value: Received::Response(response("o", "s1", 2)),
            signed: Signed::of(Some(b"o"), None, None),
        },
    );
    assert_eq!(why(&events(&unsigned)).0, RejectReason::Forged);
    // Forged responses released nothing, so s1's own response is released.
    assert_eq!(tk.answer(T - 20, "s1", 5), ["released s1"]);
    // A forged response is Forged even when its subscriber has the credential already.
    let late = tk.feed_as(
        T - 10,
        Received::Response(response("o", "s1", 6)),
        &signer_of("s2"),
    );
    assert_eq!(why(&events(&late)).0, RejectReason::Forged);
    let closed = tk.tick(T + 1);
    let [Event::OfferClosed(closed)] = closed.as_slice() else {
        panic!("expected the offer to close");
    };
    assert_eq!((closed.released, closed.rejected), (1, 3));
}

#[test]
fn an_invitation_without_a_usable_key_cannot_be_answered() {
    let mut tk = with_offer(T - 1_000, deadline(T), &[]);
    let mut keyless = invitation("o", "s1");
    keyless.subscriber_signing_key = vec![1; 31];
    tk.feed(T - 500, Received::Invitation(keyless));
    let refused = tk.respond(T - 10, response("o", "s1", 1));
    assert_eq!(
        why(&refused),
        (
            RejectReason::Forged,
            "subscriber s1 has no usable pinned key to check the response with: \
             an Ed25519 verifying key is 32 bytes, not 31"
        )
    );
}

#[test]
fn a_forged_invitation_is_a_dead_letter_and_its_key_is_never_sealed_to() {
    let mut tk = with_offer(T - 1_000, deadline(T), &[]);
    // Anyone can write tessera.requests: an invitation of s1 carrying the forger's keys.
    let mut forged = invitation("o", "s1");
    forged.subscriber_key = subscriber_key("forger").public_key().to_bytes();
    forged.subscriber_signing_key = signer_of("forger").verifying_key().to_bytes();
    let outputs = tk.feed_as(T - 500, Received::Invitation(forged), &signer_of("forger"));
    let letters = summaries(&events(&outputs));
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].starts_with("dead letter: Unauthenticated: the signature does not verify"),
        "{letters:?}"
    );
    // The forger's response, signed with its own key, finds no invitation.
    let answered = tk.feed_as(
        T - 10,
        Received::Response(response("o", "s1", 1)),
        &signer_of("forger"),
    );
    assert_eq!(why(&events(&answered)).0, RejectReason::NotInvited);
}

#[test]
fn an_offer_not_signed_with_its_provider_key_is_rejected_and_keeps_no_id() {
    let mut tk = Fixture::default();
    let rejected = tk.feed_as(
        T - 1_000,
        Received::Offer(Box::new(offer("o", deadline(T)))),
        &signer_of("forger"),
    );
    let rejected = events(&rejected);
    let [Event::OfferRejected(rejected)] = rejected.as_slice() else {
        panic!("expected a rejection");
    };
    assert_eq!(rejected.problem, OfferProblem::Unauthenticated);
    // The provider's own offer under the same id is not a duplicate.
    assert_eq!(tk.publish(T - 900, offer("o", deadline(T))), vec![]);
}

#[test]
fn a_withdrawal_not_signed_by_the_offers_provider_is_refused_as_not_owner() {
    let mut tk = with_offer(T - 1_000, deadline(T), &["s1"]);
    // The forger names the right provider; only the key tells.
    let outputs = tk.feed_as(
        T - 500,
        Received::Withdrawal(withdrawal("o", "A")),
        &signer_of("forger"),
    );
    let letters = summaries(&events(&outputs));
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].starts_with(
            "dead letter: NotOwner: the withdrawal of offer o is not signed by its provider A"
        ),
        "{letters:?}"
    );
    assert_eq!(tk.answer(T - 10, "s1", 1), ["released s1"]);
}

#[test]
fn an_offer_whose_halves_do_not_open_with_the_timekeepers_key_is_a_bad_credential() {
    let mut to_another = offer("other-key", deadline(T));
    to_another.credential = seal_offer(
        "other-key",
        DOCUMENT,
        Custody::CoSign,
        &subscriber_key("stranger").public_key(),
        &mut rng("other"),
    )
    .unwrap()
    .credential;
    let mut other_offer = offer("moved", deadline(T));
    other_offer.credential = offer("elsewhere", deadline(T)).credential;
    let mut no_escrow = offer("no-escrow", deadline(T));
    no_escrow.credential.escrow_half = None;
    let signed = |offer| identity::with_package_signed(offer, &signer_of("A"));
    let (to_another, other_offer) = (signed(to_another), signed(other_offer));
    let cases = [
        (to_another, "the platform half does not open"),
        (other_offer, "the platform half does not open"),
        (
            no_escrow,
            "escrow custody without the provider half sealed to the timekeeper",
        ),
    ];
    let mut tk = Fixture::default();
    for (offer, detail) in cases {
        let offer_id = offer.offer_id.clone();
        let rejected = tk.publish(T - 1_000, offer);
        let [Event::OfferRejected(rejected)] = rejected.as_slice() else {
            panic!(
                "{offer_id}: expected a rejection, got {:?}",
                summaries(&rejected)
            );
        };
        assert_eq!(rejected.problem, OfferProblem::BadCredential, "{offer_id}");
        assert!(
            rejected.detail.starts_with(detail),
            "{offer_id}: {}",
            rejected.detail
        );
    }
}

#[test]
fn a_cosigned_release_carries_the_platform_half_only() {
    let mut cosigned = offer("o", deadline(T));
    cosigned.credential = seal_offer(
        "o",
        DOCUMENT,
        Custody::CoSign,
        &timekeeper_key().public_key(),
        &mut rng("co-sign"),
    )
    .unwrap()
    .credential;
    let cosigned = identity::with_package_signed(cosigned, &signer_of("A"));
    let mut tk = Fixture::default();
    assert_eq!(tk.publish(T - 1_000, cosigned), vec![]);
    tk.invite(T - 1_000, "o", &["s1"]);
    let events = tk.respond(T - 10, response("o", "s1", 1));
    let released = released(&events);
    assert_eq!(released.provider_half, None);
    assert_eq!(released.platform_half.ciphertext.len(), 48);
}

/// The inputs of a small day: an offer whose halves do not open, and a deadline offer with two
/// responders in time, one late and one stranger.
fn a_day(tk: &mut Fixture) -> Vec<Emitted> {
    let mut sealed_elsewhere = offer("bad", deadline(T));
    sealed_elsewhere.credential = offer("elsewhere", deadline(T)).credential;
    let sealed_elsewhere = identity::with_package_signed(sealed_elsewhere, &signer_of("A"));
    let mut outputs = tk.feed(T - 2_000, Received::Offer(Box::new(sealed_elsewhere)));
    outputs.extend(tk.feed(
        T - 1_000,
        Received::Offer(Box::new(offer("o", deadline(T)))),
    ));
    for subscriber in ["s1", "s2", "s3"] {
        outputs.extend(tk.feed(T - 1_000, Received::Invitation(invitation("o", subscriber))));
    }
    outputs.extend(tk.feed(T - 500, Received::Response(response("o", "s1", 1))));
    outputs.extend(tk.feed(T - 400, Received::Response(response("o", "s2", 2))));
    outputs.extend(tk.feed(T - 300, Received::Response(response("o", "stranger", 3))));
    outputs.extend(tk.feed(T + 1, Received::Response(response("o", "s3", 4))));
    outputs
}

/// What an auditor without the key learns from `outputs`, each signed by `signer`.
fn logged(outputs: &[Emitted], signer: &SigningKey) -> LoggedHalves {
    let mut logged = LoggedHalves::new(SigningKey::derive(&timekeeper_key()).verifying_key());
    for output in outputs {
        let value = encode(output.event().expect("the timekeeper emits events")).unwrap();
        let signature = signer.sign_record(
            topics::DECISIONS.name,
            Some(output.key.as_bytes()),
            Some(&value),
        );
        logged.learn(Some(output.key.as_bytes()), Some(&value), Some(&signature));
    }
    logged
}

fn without_key(logged: LoggedHalves) -> Fixture {
    Fixture {
        core: Timekeeper::without_key(logged, signer_of("matcher").verifying_key()),
        ..Fixture::default()
    }
}

#[test]
fn without_the_key_a_replay_derives_every_verdict_byte_for_byte() {
    let written = a_day(&mut Fixture::default());
    assert_eq!(
        summaries(&events(&written)),
        [
            "offer rejected BadCredential",
            "released s1",
            "released s2",
            "rejected stranger NotInvited",
            "closed o",
            "rejected s3 TooLate"
        ]
    );
    let timekeeper = SigningKey::derive(&timekeeper_key());
    let logged = logged(&written, &timekeeper);
    assert_eq!(logged.bad_credentials(), 1);
    assert_eq!(a_day(&mut without_key(logged)), written);
}

#[test]
fn without_the_key_only_what_the_timekeeper_signed_is_taken() {
    let written = a_day(&mut Fixture::default());
    let logged = logged(&written, &signer_of("forger"));
    assert_eq!(
        logged.unsigned(),
        3,
        "two releases and the BadCredential rejection"
    );
    let replayed = events(&a_day(&mut without_key(logged)));
    assert_eq!(
        summaries(&replayed),
        [
            "rejected s1 InvalidOffer",
            "rejected s2 InvalidOffer",
            "rejected stranger NotInvited",
            "closed bad",
            "closed o",
            "rejected s3 TooLate"
        ],
        "the offer the forger called bad is judged on its own, and no release can be derived \
         from unsigned halves"
    );
    let (_, detail) = why(&replayed[..1]);
    assert!(
        detail.ends_with("signed by the timekeeper is on the log"),
        "{detail}"
    );
}

#[test]
fn without_the_key_a_release_of_the_wrong_shape_is_not_taken() {
    let mut written = a_day(&mut Fixture::default());
    for output in &mut written {
        if let Emission::Event(event) = &mut output.value
            && let Event::CredentialReleased(release) = event.as_mut()
        {
            release.platform_half.ciphertext.pop();
        }
    }
    let timekeeper = SigningKey::derive(&timekeeper_key());
    let replayed = events(&a_day(&mut without_key(logged(&written, &timekeeper))));
    let (reason, detail) = why(&replayed[1..2]);
    assert_eq!(reason, RejectReason::InvalidOffer);
    assert!(
        detail.contains("the platform half is not a sealed half"),
        "{detail}"
    );
}

#[test]
fn an_offer_whose_package_its_provider_did_not_sign_is_rejected_and_not_kept() {
    let mut repackaged = offer("o", deadline(T));
    repackaged.credential.package = offer("other", deadline(T)).credential.package;
    let mut tk = Fixture::default();
    let rejected = tk.publish(T - 1_000, repackaged);
    let [Event::OfferRejected(rejected)] = rejected.as_slice() else {
        panic!("{:?}", summaries(&rejected));
    };
    assert_eq!(rejected.problem, OfferProblem::Unauthenticated);
    assert!(
        rejected
            .detail
            .contains("does not verify with provider A's key"),
        "{}",
        rejected.detail
    );
    assert_eq!(
        tk.publish(T - 900, offer("o", deadline(T))),
        vec![],
        "the genuine offer under the id is still taken"
    );
}
