use tessera_contract::sealing::PrivateKey;
use tessera_contract::sealing::notices::open_notice;
use tessera_contract::signing::SigningKey;
use tessera_contract::{
    CredentialAccepted, Custody, DeadLetter, EventKind, LogPosition, OfferClosed, OfferTerms,
    OfferWithdrawn, RejectReason, ResponseRejected, encode, examples,
};

use super::*;
use crate::registry::{self, Inputs};
use crate::testing::{self, Feeder, T, sealed};

const PARTITION: i32 = 4;

fn terms() -> OfferTerms {
    testing::terms(PARTITION)
}

/// The key file of `id`: provider "A", "timekeeper", "matcher", "delivery", a subscriber, or
/// anyone else.
fn key_of(id: &str) -> PrivateKey {
    PrivateKey::from_bytes(format!("{id:<32}").as_bytes()).unwrap()
}

/// The signing key of `id`.
fn signer_of(id: &str) -> SigningKey {
    SigningKey::derive(&key_of(id))
}

fn delivery() -> Delivery {
    Delivery::new(
        key_of("delivery"),
        signer_of("timekeeper").verifying_key(),
        signer_of("matcher").verifying_key(),
    )
}

/// The matcher's invitation of `subscriber_id` to offer `o`, with its pinned keys.
fn invitation(subscriber_id: &str) -> Received {
    let mut invitation = match examples::all()
        .into_iter()
        .find(|e| e.kind() == EventKind::InteractionRequested)
    {
        Some(Event::InteractionRequested(e)) => e,
        _ => unreachable!("the examples hold an invitation"),
    };
    invitation.event_id = format!("invitation-{subscriber_id}");
    invitation.request_id = format!("request-{subscriber_id}");
    invitation.offer_id = "o".into();
    invitation.subscriber_id = subscriber_id.into();
    invitation.subscriber_key = key_of(subscriber_id).public_key().to_bytes();
    invitation.subscriber_signing_key = signer_of(subscriber_id).verifying_key().to_bytes();
    Received::Invitation(Box::new(invitation))
}

/// `subscriber_id`'s acceptance of its credential `c-<subscriber>` of offer `o`.
fn accepted(subscriber_id: &str) -> Received {
    Received::Outcome(Outcome::Accepted(CredentialAccepted {
        event_id: format!("accepted-{subscriber_id}"),
        offer_id: "o".into(),
        credential_id: format!("c-{subscriber_id}"),
        subscriber_id: subscriber_id.into(),
    }))
}

fn offer(offer_id: &str, custody: Custody) -> Received {
    let mut offer = examples::offer(offer_id, "A", custody);
    offer.signing_key = signer_of("A").verifying_key().to_bytes();
    let offer = identity::with_package_signed(offer, &signer_of("A"));
    Received::News(OfferNews::Offer(Box::new(offer)))
}

/// The release of credential `c-<subscriber>` of offer `o`; `escrow` says whether it carries the
/// provider half.
fn release(subscriber_id: &str, escrow: bool) -> CredentialReleased {
    CredentialReleased {
        event_id: format!("release-{subscriber_id}"),
        offer_id: "o".into(),
        credential_id: format!("c-{subscriber_id}"),
        subscriber_id: subscriber_id.into(),
        subscriber_signing_key: signer_of(subscriber_id).verifying_key().to_bytes(),
        request_id: format!("request-{subscriber_id}"),
        response: LogPosition {
            topic: "tessera.responses".into(),
            partition: PARTITION,
            offset: 0,
            stamp: T + 10,
        },
        offer: terms(),
        platform_half: sealed(10),
        provider_half: escrow.then(|| sealed(20)),
        link: Default::default(),
    }
}

/// Cosign event `n` of credential `credential_id` of offer `o`, to `subscriber_id`.
fn share(credential_id: &str, subscriber_id: &str, n: u8) -> ProviderShareReleased {
    ProviderShareReleased {
        event_id: format!("cosign-{n}"),
        offer_id: "o".into(),
        credential_id: credential_id.into(),
        subscriber_id: subscriber_id.into(),
        provider_half: sealed(30 + n),
    }
}

fn closed() -> Received {
    Received::News(OfferNews::Closed(OfferClosed {
        event_id: "closed".into(),
        offer_id: "o".into(),
        offer: terms(),
        closed_at: T + 1001,
        requested: 2,
        responded: 2,
        released: 1,
        rejected: 1,
        withdrawn: false,
        link: Default::default(),
    }))
}

fn rejected(problem: OfferProblem) -> Received {
    Received::News(OfferNews::Rejected(OfferRejected {
        event_id: "rejected".into(),
        offer_id: "o".into(),
        provider_id: "A".into(),
        problem,
        offer: terms().position,
        detail: "the reward 0 EUR is not positive".into(),
        link: Default::default(),
    }))
}

/// The delivery fed by hand, everything keyed by offer `o`.
struct Fixture(Feeder<Delivery>);

impl Default for Fixture {
    fn default() -> Self {
        Fixture(Feeder::new(delivery(), PARTITION))
    }
}

impl Fixture {
    /// Feeds `value` under offer `o`, signed by its honest writer: offers and provider halves by
    /// provider A, invitations by the matcher, decisions by their recipient, verdicts by the
    /// timekeeper.
    fn feed(&mut self, value: Received) -> Vec<Emitted> {
        let writer = match &value {
            Received::News(OfferNews::Offer(_)) | Received::Share(_) => signer_of("A"),
            Received::Invitation(_) => signer_of("matcher"),
            Received::Outcome(outcome) => signer_of(outcome.subscriber_id()),
            _ => signer_of("timekeeper"),
        };
        self.feed_as(value, &writer)
    }

    fn feed_as(&mut self, value: Received, signer: &SigningKey) -> Vec<Emitted> {
        let (topic, event): (InputTopic, Option<Event>) = match &value {
            Received::News(OfferNews::Offer(offer)) => {
                (InputTopic::Offers, Some((**offer).clone().into()))
            }
            Received::Share(share) => (InputTopic::Cosigns, Some(share.clone().into())),
            Received::News(OfferNews::Release(release)) => {
                (InputTopic::Decisions, Some((**release).clone().into()))
            }
            Received::News(OfferNews::Rejected(rejected)) => {
                (InputTopic::Decisions, Some(rejected.clone().into()))
            }
            Received::News(OfferNews::Closed(closed)) => {
                (InputTopic::Decisions, Some(closed.clone().into()))
            }
            Received::News(OfferNews::Rejection(rejected)) => {
                (InputTopic::Decisions, Some((**rejected).clone().into()))
            }
            Received::Invitation(invitation) => {
                (InputTopic::Requests, Some((**invitation).clone().into()))
            }
            Received::Outcome(outcome) => {
                (InputTopic::Outcomes, Some(outcome.clone().into_event()))
            }
            Received::News(OfferNews::Passed) => (InputTopic::Decisions, None),
        };
        let signed = match event {
            Some(event) => signer.signed(topic.topic().name, b"o", &encode(&event).unwrap()),
            None => Signed::of(Some(b"o"), None, None),
        };
        self.0.feed_signed(topic as usize, "o", value, signed)
    }

    /// What feeding `value` produced, in words.
    fn says(&mut self, value: Received) -> Vec<String> {
        self.feed(value).iter().map(summary).collect()
    }

    fn released(&mut self, release: CredentialReleased) -> Vec<String> {
        self.says(Received::News(OfferNews::Release(Box::new(release))))
    }

    fn cosigned(&mut self, share: ProviderShareReleased) -> Vec<String> {
        self.says(Received::Share(share))
    }

    fn package_kept(&self) -> bool {
        PACKAGES.get(&self.0.state, "o").is_some()
    }
}

/// An output in a few words: `delivered <credential> to <key>` or `dead letter: <reason>`.
fn summary(output: &Emitted) -> String {
    match output.event().cloned().expect("the core emits events") {
        Event::CredentialDelivered(e) => {
            assert_eq!(output.topic, registry::OUTPUT);
            format!("delivered {} to {}", e.credential_id, output.key)
        }
        Event::DeadLetter(e) => {
            assert_eq!(output.topic, registry::DEAD_LETTERS);
            format!("dead letter: {}", e.reason)
        }
        Event::Notice(e) => {
            assert_eq!(output.topic, registry::OUTPUT);
            let noticed = open_notice(&e.sealed, &output.key, &e.event_id, &key_of(&output.key))
                .expect("a notice opens with its recipient's key");
            format!("told {} of {:?}", output.key, noticed.event.kind())
        }
        other => format!("unexpected {:?}", other.kind()),
    }
}

fn delivered(output: &Emitted) -> CredentialDelivered {
    match output.event().cloned().unwrap() {
        Event::CredentialDelivered(e) => e,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

fn dead_letter(output: &Emitted) -> DeadLetter {
    match output.event().cloned().unwrap() {
        Event::DeadLetter(e) => e,
        other => panic!("expected a dead letter, got {other:?}"),
    }
}

#[test]
fn an_escrow_release_is_delivered_at_once_with_the_package_and_both_halves() {
    let mut f = Fixture::default();
    assert_eq!(f.feed(offer("o", Custody::Escrow)), vec![]);
    let outputs = f.feed(Received::News(OfferNews::Release(Box::new(release(
        "B1", true,
    )))));
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].key, "B1", "the inbox is keyed by subscriber id");
    let delivery = delivered(&outputs[0]);
    assert_eq!(delivery.credential_id, "c-B1");
    assert_eq!(delivery.offer_id, "o");
    assert_eq!(delivery.subscriber_id, "B1");
    assert_eq!(delivery.package, b"package of o");
    assert_eq!(delivery.platform_half, sealed(10));
    assert_eq!(delivery.provider_half, sealed(20));
    assert_eq!(delivery.attempts, 1);
}

#[test]
fn a_co_signed_release_waits_for_the_providers_half() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    assert_eq!(f.released(release("B1", false)), Vec::<String>::new());
    let outputs = f.feed(Received::Share(share("c-B1", "B1", 1)));
    assert_eq!(outputs.len(), 1);
    let delivery = delivered(&outputs[0]);
    assert_eq!(delivery.platform_half, sealed(10));
    assert_eq!(
        delivery.provider_half,
        sealed(31),
        "the cosign's half, not the release's"
    );
}

#[test]
fn a_credential_is_delivered_once_whatever_repeats() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    f.released(release("B1", false));
    assert_eq!(f.cosigned(share("c-B1", "B1", 1)), ["delivered c-B1 to B1"]);
    assert_eq!(
        f.cosigned(share("c-B1", "B1", 1)),
        Vec::<String>::new(),
        "the same cosign read again changes nothing"
    );
    assert_eq!(
        f.cosigned(share("c-B1", "B1", 2)),
        ["dead letter: credential c-B1 has its provider half already, from cosign cosign-1"]
    );
    assert_eq!(f.released(release("B1", false)), Vec::<String>::new());
    let mut other = release("B1", false);
    other.event_id = "another-release".into();
    assert_eq!(
        f.released(other),
        ["dead letter: credential c-B1 was released already by event release-B1"]
    );
}

#[test]
fn a_cosign_read_before_its_release_waits_for_it() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    assert_eq!(f.cosigned(share("c-B1", "B1", 1)), Vec::<String>::new());
    assert_eq!(
        f.cosigned(share("c-B1", "B1", 1)),
        Vec::<String>::new(),
        "the same cosign held twice is one"
    );
    assert_eq!(f.released(release("B1", false)), ["delivered c-B1 to B1"]);
    assert!(
        HELD.range(&f.0.state, "").is_empty(),
        "nothing is held after delivery"
    );
}

#[test]
fn a_held_cosign_for_another_recipient_is_refused_when_the_release_names_who_it_was() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    f.cosigned(share("c-B1", "B2", 1));
    f.cosigned(share("c-B1", "B1", 2));
    assert_eq!(
        f.released(release("B1", false)),
        [
            "dead letter: credential c-B1 was released to B1, not B2",
            "delivered c-B1 to B1"
        ]
    );
}

#[test]
fn a_cosign_for_another_recipient_never_delivers() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    f.released(release("B1", false));
    assert_eq!(
        f.cosigned(share("c-B1", "B2", 1)),
        ["dead letter: credential c-B1 was released to B1, not B2"]
    );
    assert_eq!(f.cosigned(share("c-B1", "B1", 2)), ["delivered c-B1 to B1"]);
}

#[test]
fn a_cosign_the_timekeeper_never_released_is_dead_lettered_when_the_offer_closes() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    f.released(release("B1", false));
    assert_eq!(
        f.cosigned(share("c-B2", "B2", 7)),
        Vec::<String>::new(),
        "held"
    );
    let outputs = f.feed(closed());
    assert_eq!(
        outputs.iter().map(summary).collect::<Vec<_>>(),
        [
            "dead letter: offer o closed at 2025-11-25T09:00:01.001Z without releasing credential c-B2"
        ]
    );
    let letter = dead_letter(&outputs[0]);
    assert_eq!(
        outputs[0].key, "tessera.cosigns",
        "dead letters are keyed by source topic"
    );
    assert_eq!(letter.processor, "delivery");
    assert_eq!(letter.source_topic, "tessera.cosigns");
    assert_eq!(
        (
            letter.source_partition,
            letter.source_offset,
            letter.source_timestamp
        ),
        (PARTITION, 0, Some(T + 3)),
        "the held cosign's own place, not the closing's"
    );
    assert_eq!(letter.key.as_deref(), Some(&b"o"[..]));
    assert_eq!(
        letter.value,
        Some(encode(&share("c-B2", "B2", 7).into()).unwrap()),
        "the cosign, byte for byte"
    );
    assert_eq!(
        f.cosigned(share("c-B3", "B3", 8)),
        [
            "dead letter: offer o closed at 2025-11-25T09:00:01.001Z without releasing credential c-B3"
        ],
        "after the end a stranger is refused at once"
    );
}

#[test]
fn a_cosign_for_an_offer_not_on_the_log_is_dead_lettered_at_once() {
    let mut f = Fixture::default();
    assert_eq!(
        f.cosigned(share("c-B1", "B1", 1)),
        ["dead letter: no offer o was on the log by 2025-11-25T09:00:00.001Z"]
    );
}

#[test]
fn a_cosign_for_an_escrow_release_is_refused() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    assert_eq!(f.released(release("B1", true)), ["delivered c-B1 to B1"]);
    assert_eq!(
        f.cosigned(share("c-B1", "B1", 1)),
        ["dead letter: credential c-B1 was released with the provider half in escrow"]
    );
}

#[test]
fn a_late_cosign_of_a_released_credential_is_delivered_after_the_offer_closed() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    f.released(release("B1", false));
    assert_eq!(f.says(closed()), Vec::<String>::new());
    assert!(
        f.package_kept(),
        "a release still waits for its provider half"
    );
    assert_eq!(f.cosigned(share("c-B1", "B1", 1)), ["delivered c-B1 to B1"]);
    assert!(
        !f.package_kept(),
        "the offer ended and everything was delivered"
    );
}

#[test]
fn the_package_goes_once_the_offer_ended_with_everything_delivered() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    f.released(release("B1", true));
    assert!(f.package_kept(), "more releases may come");
    f.says(closed());
    assert!(!f.package_kept());
    let credential = CREDENTIALS.get(&f.0.state, &pair("o", "c-B1")).unwrap();
    assert!(credential.delivered);
    assert_eq!(
        (credential.platform_half, credential.provider_half),
        (None, None),
        "delivered halves are not kept"
    );
}

#[test]
fn a_release_read_before_its_offer_is_delivered_when_the_offer_comes() {
    let mut f = Fixture::default();
    assert_eq!(f.released(release("B1", true)), Vec::<String>::new());
    assert_eq!(
        f.says(offer("o", Custody::Escrow)),
        ["delivered c-B1 to B1"]
    );
    assert_eq!(f.says(offer("o", Custody::Escrow)), Vec::<String>::new());
}

#[test]
fn an_offer_read_after_its_end_keeps_its_package_only_for_waiting_releases() {
    let mut f = Fixture::default();
    f.says(closed());
    assert_eq!(f.says(offer("o", Custody::Escrow)), Vec::<String>::new());
    assert!(!f.package_kept(), "nothing waits for it");
    let mut g = Fixture::default();
    g.released(release("B1", false));
    g.says(closed());
    g.says(offer("o", Custody::CoSign));
    assert!(
        g.package_kept(),
        "B1's credential waits for its provider half"
    );
    assert_eq!(g.cosigned(share("c-B1", "B1", 1)), ["delivered c-B1 to B1"]);
    assert!(!g.package_kept());
}

#[test]
fn only_an_offers_first_package_counts() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    let Received::News(OfferNews::Offer(mut second)) = offer("o", Custody::Escrow) else {
        unreachable!()
    };
    second.credential.package = b"another package".to_vec();
    let second = Box::new(identity::with_package_signed(*second, &signer_of("A")));
    f.feed(Received::News(OfferNews::Offer(second)));
    assert_eq!(f.feed(rejected(OfferProblem::DuplicateOffer)), vec![]);
    let outputs = f.feed(Received::News(OfferNews::Release(Box::new(release(
        "B1", true,
    )))));
    assert_eq!(delivered(&outputs[0]).package, b"package of o");
}

#[test]
fn a_rejected_offer_ends_and_its_held_cosigns_are_dead_lettered() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    f.cosigned(share("c-B1", "B1", 1));
    assert_eq!(
        f.says(rejected(OfferProblem::NonPositiveReward)),
        [
            "dead letter: offer o was rejected (the reward 0 EUR is not positive) without releasing credential c-B1"
        ]
    );
    assert!(!f.package_kept());
}

#[test]
fn a_release_after_the_offers_end_is_refused() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    f.says(closed());
    assert_eq!(
        f.released(release("B1", true)),
        [
            "dead letter: offer o closed at 2025-11-25T09:00:01.001Z; nothing is released after an offer's end"
        ]
    );
}

#[test]
fn withdrawals_and_rejected_responses_deliver_nothing() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    let withdrawal = OfferWithdrawn {
        event_id: "w".into(),
        offer_id: "o".into(),
        provider_id: "A".into(),
        reason: None,
    };
    let rejection = ResponseRejected {
        event_id: "r".into(),
        offer_id: "o".into(),
        subscriber_id: "B2".into(),
        request_id: "q".into(),
        reason: RejectReason::TooLate,
        response: terms().position,
        offer: Some(terms()),
        detail: "late".into(),
        link: Default::default(),
    };
    let core = delivery();
    let decoded = core
        .decode(Raw {
            topic: InputTopic::Offers as usize,
            key: Some(b"o"),
            value: Some(&encode(&withdrawal.into()).unwrap()),
        })
        .unwrap();
    assert_eq!(decoded, Received::News(OfferNews::Passed));
    let decoded = core
        .decode(Raw {
            topic: InputTopic::Decisions as usize,
            key: Some(b"o"),
            value: Some(&encode(&rejection.clone().into()).unwrap()),
        })
        .unwrap();
    assert_eq!(
        decoded,
        Received::News(OfferNews::Rejection(Box::new(rejection)))
    );
    assert_eq!(
        f.feed(decoded),
        vec![],
        "B2 was not invited: no one is told"
    );
}

#[test]
fn records_off_their_topic_or_key_are_refused_by_the_decoder() {
    let core = delivery();
    let cosign = encode(&share("c-B1", "B1", 1).into()).unwrap();
    assert_eq!(
        core.decode(Raw {
            topic: InputTopic::Decisions as usize,
            key: Some(b"o"),
            value: Some(&cosign)
        }),
        Err("ProviderShareReleased does not belong on tessera.decisions".into())
    );
    assert_eq!(
        core.decode(Raw {
            topic: InputTopic::Cosigns as usize,
            key: Some(b"p"),
            value: Some(&cosign)
        }),
        Err("the record key \"p\" is not the event's offer id \"o\"".into())
    );
    assert_eq!(
        core.decode(Raw {
            topic: InputTopic::Cosigns as usize,
            key: None,
            value: Some(&cosign)
        }),
        Err("the record has no key; expected \"o\"".into())
    );
    assert!(
        core.decode(Raw {
            topic: InputTopic::Cosigns as usize,
            key: Some(b"o"),
            value: Some(&[1, 2, 3])
        })
        .is_err()
    );
    assert!(matches!(
        core.decode(Raw {
            topic: InputTopic::Cosigns as usize,
            key: Some(b"o"),
            value: Some(&cosign)
        }),
        Ok(Received::Share(_))
    ));
}

#[test]
fn verdicts_not_signed_by_the_timekeeper_and_halves_not_signed_by_the_provider_deliver_nothing() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::CoSign));
    // A forged release to M, and a forged close that would end the offer early.
    let forged = f.feed_as(
        Received::News(OfferNews::Release(Box::new(release("M", true)))),
        &signer_of("M"),
    );
    let said: Vec<String> = forged.iter().map(summary).collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("Unauthenticated: "), "{said:?}");
    let early = f.feed_as(closed(), &signer_of("M"));
    assert!(
        early
            .iter()
            .map(summary)
            .all(|s| s.contains("Unauthenticated: ")),
        "{early:?}"
    );
    // B1's genuine release, and a provider half for it signed by someone else than A.
    assert!(f.released(release("B1", false)).is_empty());
    let stranger = f.feed_as(Received::Share(share("c-B1", "B1", 1)), &signer_of("M"));
    let said: Vec<String> = stranger.iter().map(summary).collect();
    assert!(
        said[0].contains("NotOwner: the provider half for credential c-B1"),
        "{said:?}"
    );
    // A's own half completes the credential, once.
    let delivered = f.cosigned(share("c-B1", "B1", 2));
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(!delivered[0].contains("dead letter"), "{delivered:?}");
}

#[test]
fn each_invitee_is_told_of_its_invitation_verdict_and_close_sealed_to_it_alone() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    assert_eq!(
        f.says(invitation("B1")),
        ["told B1 of InteractionRequested"]
    );
    assert_eq!(
        f.says(invitation("B2")),
        ["told B2 of InteractionRequested"]
    );
    assert_eq!(
        f.released(release("B1", true)),
        ["told B1 of CredentialReleased", "delivered c-B1 to B1"]
    );
    let rejection = ResponseRejected {
        event_id: "r".into(),
        offer_id: "o".into(),
        subscriber_id: "B2".into(),
        request_id: "request-B2".into(),
        reason: RejectReason::TooLate,
        response: terms().position,
        offer: Some(terms()),
        detail: "late".into(),
        link: Default::default(),
    };
    let rejected = |rejection: &ResponseRejected| {
        Received::News(OfferNews::Rejection(Box::new(rejection.clone())))
    };
    assert_eq!(
        f.says(rejected(&rejection)),
        ["told B2 of ResponseRejected"]
    );
    assert_eq!(
        f.says(closed()),
        ["told B1 of OfferClosed", "told B2 of OfferClosed"]
    );
    assert_eq!(f.says(accepted("B1")), ["told B1 of CredentialAccepted"]);
    let late = ResponseRejected {
        event_id: "r-late".into(),
        ..rejection
    };
    assert_eq!(
        f.says(rejected(&late)),
        ["told B2 of ResponseRejected"],
        "a response judged after the close is still told"
    );
    f.0.pass(crate::timekeeper::PRUNE_AFTER_MS + 1);
    f.says(accepted("B1"));
    assert!(
        INVITEES.range(&f.0.state, "").is_empty(),
        "invitees are forgotten an hour after their offer closes"
    );
    assert_eq!(f.says(rejected(&late)), Vec::<String>::new());
}

#[test]
fn a_notice_opens_with_its_recipients_key_only_and_names_where_the_event_sat() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    let told = f.feed(invitation("B1"));
    let Some(Event::Notice(notice)) = told[0].event().cloned() else {
        panic!("expected a notice, got {told:?}");
    };
    let noticed = open_notice(&notice.sealed, "B1", &notice.event_id, &key_of("B1")).unwrap();
    assert_eq!(noticed.at.topic, "tessera.requests");
    assert_eq!(noticed.at.partition, PARTITION);
    let Event::InteractionRequested(invited) = noticed.event else {
        panic!("the notice holds the invitation");
    };
    assert_eq!(invited.subscriber_id, "B1");
    for other in ["B2", "delivery", "matcher"] {
        assert!(
            open_notice(&notice.sealed, "B1", &notice.event_id, &key_of(other)).is_err(),
            "{other} opens B1's notice"
        );
    }
}

#[test]
fn a_forged_invitation_or_decision_is_told_to_no_one() {
    let mut f = Fixture::default();
    f.feed(offer("o", Custody::Escrow));
    let forged = f.feed_as(invitation("B1"), &signer_of("M"));
    let said: Vec<String> = forged.iter().map(summary).collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("dead letter: Unauthenticated: "),
        "{said:?}"
    );
    f.feed(invitation("B1"));
    f.released(release("B1", true));
    assert_eq!(
        f.feed_as(accepted("B1"), &signer_of("M")),
        vec![],
        "an acceptance B1 did not sign is not told to B1 (the ledger dead-letters it)"
    );
}

#[test]
fn an_audit_without_the_key_derives_every_notice_and_takes_its_box_from_the_log() {
    let feed_all = |f: &mut Fixture| -> Vec<Emitted> {
        let mut all = f.feed(offer("o", Custody::Escrow));
        for input in [invitation("B1"), invitation("B2")] {
            all.extend(f.feed(input));
        }
        all.extend(f.feed(Received::News(OfferNews::Release(Box::new(release(
            "B1", true,
        ))))));
        all.extend(f.feed(closed()));
        all
    };
    let mut keyed = Fixture::default();
    let logged_outputs = feed_all(&mut keyed);
    let mut logged = LoggedNotices::new(signer_of("delivery").verifying_key());
    for output in &logged_outputs {
        let value = encode(output.event().unwrap()).unwrap();
        let signed = signer_of("delivery").sign_record(
            topics::DELIVERIES.name,
            Some(output.key.as_bytes()),
            Some(&value),
        );
        logged.learn(
            Some(output.key.as_bytes()),
            Some(&value[..]),
            Some(&signed[..]),
        );
    }
    // A notice under the delivery's name that it did not sign is not taken.
    let forged = encode(logged_outputs[0].event().unwrap()).unwrap();
    logged.learn(Some(b"B1"), Some(&forged[..]), Some(&[0; 64][..]));
    assert_eq!(logged.unsigned(), 1);
    assert_eq!(logged.taken(), 5);
    let core = Delivery::without_key(
        logged,
        signer_of("timekeeper").verifying_key(),
        signer_of("matcher").verifying_key(),
    );
    let mut replay = Fixture(Feeder::new(core, PARTITION));
    let replayed = feed_all(&mut replay);
    let events = |outputs: &[Emitted]| -> Vec<Event> {
        outputs
            .iter()
            .map(|o| o.event().cloned().unwrap())
            .collect()
    };
    assert_eq!(events(&replayed), events(&logged_outputs));
}
