//! The attacks of issue "Trust", replayed on the real broker with nothing but the write access
//! every provider and subscriber has: each must fail with its named reason while the honest flow
//! beside it goes on.
//!
//! The processors run on the runtime (as `tessera demo` runs them). Provider A publishes
//! document X in co-sign custody; B1 and B2 are registered and invited. Then, in order:
//!
//! - **Subscriber takeover.** An impostor registers `B1` with its own key: refused on the log as
//!   `NotOwner`, and B1 is still invited with its own keys.
//! - **Impersonated response.** The impostor answers as B1 with its key: `Forged`, and the real B1
//!   is released after it.
//! - **Forged invitation.** The impostor writes an InteractionRequested to `tessera.requests`
//!   inviting itself: dead-lettered by the timekeeper and the delivery worker as
//!   `Unauthenticated`, so no notice tells anyone of it, and its response is `NotInvited`.
//! - **Provider impersonation.** The impostor publishes an offer naming provider A with its own
//!   key: A's first offer pinned A's key, so the matcher invites no one to it and dead-letters it
//!   as `NotOwner`.
//! - **Foreign withdrawal.** Someone without A's key withdraws A's offer naming provider A:
//!   dead-lettered as `NotOwner`, and B2, answering after it, is released, not `Withdrawn`.
//! - **Forged release.** The impostor writes a CredentialReleased naming itself to
//!   `tessera.decisions`: A's agent refuses it as `Unauthenticated` and co-signs only B1's real
//!   release; B1 opens document X.
//! - **Forged release and provider half to the delivery worker.** The forged release, and junk
//!   offered as the provider half of B1's credential, are dead-lettered by the delivery worker
//!   (`Unauthenticated`, `NotOwner`); the delivery worker puts only the genuine credential in B1's
//!   inbox.
//! - **Forged delivery.** The impostor seals a document of its own to B1 under B1's credential
//!   id and puts it in B1's inbox first, its package signed with its own key and naming A: B1
//!   refuses it (`Unauthenticated`: not the pinned delivery worker's) and opens A's document X.
//! - **Forged outcome and minted reward.** The impostor accepts B1's credential in B1's name, and
//!   writes a RewardDue for A straight onto `tessera.ledger-credits`: the ledger refuses them as
//!   `NotOwner` and `Unauthenticated`, and only B1's own acceptance credits A.
//! - **Forged timekeeper key.** The impostor publishes its own key on `tessera.keys`: a client that
//!   pinned the timekeeper refuses it (`NotPinned`), and one given the right fingerprint too.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use std::path::Path;
use std::time::Duration;

use tessera::demo::Processors;
use tessera_contract::identity;
use tessera_contract::rules::request_id;
use tessera_contract::sealing::{self, Half, PrivateKey, PublicKey, Release};
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{self as catalogue, DEAD_LETTERS, DECISIONS, REQUESTS, Topic};
use tessera_contract::{
    CredentialAccepted, CredentialDelivered, CredentialReleased, Custody, Event,
    InteractionRequested, ProviderShareReleased, Reward, RewardDue, SealedBox,
};
use tessera_producers::agent::Acted;
use tessera_producers::client::read_to_end;
use tessera_producers::keys::{self, Halves, Pinning, PlatformKeyError};
use tessera_producers::provider::{self, Sealing};
use tessera_producers::subscriber::{self, Choice, Decision};

mod support;
use support::World;

const DOCUMENT_X: &[u8] = b"Quarterly report X\nonly for the timely and the genuine\n";
const OFFER: &str = "offer-X";
/// What A earns per accepted credential, in minor units.
const REWARD: i64 = 250;

impl World {
    fn key_file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }

    /// Registers `id` with the key in key file `holder` (created if missing).
    async fn register(&self, id: &str, holder: &str) -> PrivateKey {
        support::register(&self.writer, self.prefix(), id, &self.key_file(holder)).await
    }

    async fn publish(&self) {
        self.publish_as(OFFER, &self.halves()).await;
    }

    /// Publishes offer `offer_id` of document X naming provider A, signed with the key in
    /// `halves`.
    async fn publish_as(&self, offer_id: &str, halves: &Halves) {
        let doc = support::DocX {
            document: DOCUMENT_X,
            custody: Custody::CoSign,
            timekeeper: &self.timekeeper,
            reward: Some(Reward {
                amount: REWARD,
                currency: "EUR".into(),
            }),
            decide_within: None,
            invite_late: true,
        };
        support::publish_doc_x(&self.writer, self.prefix(), offer_id, halves, doc).await;
    }

    async fn respond(&self, subscriber_id: &str, key: &PrivateKey) {
        support::respond(&self.writer, self.prefix(), OFFER, subscriber_id, key).await;
    }

    /// The reason of the dead letter from `processor` whose reason starts with `start`, once it
    /// is on the log.
    async fn dead_letter(&self, processor: &str, start: &str) -> String {
        self.dead_letter_naming(processor, start, "").await
    }

    /// The reason of the first dead letter of `processor` starting with `start` and naming
    /// `naming`, once it is on the log.
    async fn dead_letter_naming(&self, processor: &str, start: &str, naming: &str) -> String {
        let name = DEAD_LETTERS.full_name(self.prefix());
        for _ in 0..120 {
            let found = read_to_end(&self.config, &name, None)
                .await
                .unwrap()
                .into_iter()
                .find_map(|r| match r.event {
                    Some(Ok(Event::DeadLetter(letter)))
                        if letter.processor == processor
                            && letter.reason.starts_with(start)
                            && letter.reason.contains(naming) =>
                    {
                        Some(letter.reason)
                    }
                    _ => None,
                });
            if let Some(reason) = found {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("no dead letter of the {processor} starting {start:?} on {name}");
    }

    /// The verdict on `subscriber`'s response, once it is on the log.
    async fn verdict(&self, subscriber: &str, count: usize) -> Vec<Event> {
        let decisions = self.wait_for(DECISIONS, OFFER, count).await;
        decisions
            .into_iter()
            .filter(|e| match e {
                Event::CredentialReleased(r) => r.subscriber_id == subscriber,
                Event::ResponseRejected(r) => r.subscriber_id == subscriber,
                _ => false,
            })
            .collect()
    }
}

fn reasons(verdicts: &[Event]) -> Vec<String> {
    verdicts
        .iter()
        .map(|e| match e {
            Event::CredentialReleased(_) => "Released".to_string(),
            Event::ResponseRejected(r) => format!("{:?}", r.reason),
            other => format!("{other:?}"),
        })
        .collect()
}

/// A delivery of `document`, sealed to `recipient` by `forger` under `release`'s credential id,
/// naming `release`'s provider; its package signed by the forger, as is all it can sign.
fn inbox_forgery(
    forger: &PrivateKey,
    recipient: &PublicKey,
    release: &CredentialReleased,
    document: &[u8],
) -> CredentialDelivered {
    let sealing = Sealing {
        target_data: document,
        custody: Custody::Escrow,
        timekeeper: &forger.public_key(),
    };
    let sealed = provider::seal(&release.offer_id, sealing).unwrap();
    let to_recipient = Release {
        offer_id: &release.offer_id,
        subscriber_id: &release.subscriber_id,
        credential_id: &release.credential_id,
    };
    let credential = sealed.credential;
    let reseal = |sealed: &SealedBox, which: Half| {
        let half = sealing::open_from_provider(sealed, which, &release.offer_id, forger).unwrap();
        sealing::seal_to_responder(&half, which, &to_recipient, recipient).unwrap()
    };
    let signer = SigningKey::derive(forger);
    CredentialDelivered {
        event_id: uuid::Uuid::new_v4().to_string(),
        credential_id: release.credential_id.clone(),
        offer_id: release.offer_id.clone(),
        subscriber_id: release.subscriber_id.clone(),
        platform_half: reseal(&credential.platform_half, Half::Platform),
        provider_half: reseal(credential.escrow_half.as_ref().unwrap(), Half::Provider),
        package_signature: identity::sign_package(&signer, &release.offer_id, &credential.package)
            .to_vec(),
        package: credential.package,
        attempts: 1,
        provider_id: "A".into(),
        provider_signing_key: signer.verifying_key().to_bytes(),
    }
}

/// Signs `event` with `signer` and writes it where the honest writer would.
async fn forge(world: &World, signer: &SigningKey, topic: Topic, key: &str, event: Event) {
    world
        .writer
        .write_as(signer, world.prefix(), topic, key, &event)
        .await
        .unwrap();
}

fn stranger(dir: &Path, name: &str) -> SigningKey {
    let (key, _) = keys::load_or_create(&dir.join(format!("{name}.key"))).unwrap();
    SigningKey::derive(&key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_attack_fails_with_its_named_reason_while_the_honest_flow_goes_on() {
    let (world, timekeeper_key) = World::new(3).await;
    let timekeeper_signing = SigningKey::derive(&timekeeper_key).verifying_key();
    let state = world.dir.path().join("state");
    let processors = Processors::start(&world.kafka, &state, timekeeper_key).unwrap();

    let b1 = world.register("B1", "B1").await;
    let b2 = world.register("B2", "B2").await;

    // Subscriber takeover: the impostor, holding none of B1's files, registers B1.
    let impostor = world.register("B1", "impostor").await;
    let takeover = world
        .dead_letter("matcher", "NotOwner: registration of B1")
        .await;
    assert!(
        takeover.contains("not signed by the key pinned for B1"),
        "{takeover}"
    );

    world.publish().await;
    let invitations = world.wait_for(REQUESTS, OFFER, 2).await;
    // Provider impersonation: an offer in A's name, signed with the impostor's own key.
    world
        .publish_as("offer-Y", &Halves::new(world.dir.path().join("not-A")))
        .await;
    let impersonation = world
        .dead_letter("matcher", "NotOwner: offer offer-Y names provider A")
        .await;
    assert!(
        impersonation.contains("carries another key than the one pinned for A"),
        "{impersonation}"
    );
    let requests = read_to_end(&world.config, &REQUESTS.full_name(world.prefix()), None)
        .await
        .unwrap();
    assert!(
        !requests.iter().any(|r| r.key.as_deref() == Some("offer-Y")),
        "no one is invited to the impostor's offer"
    );
    let b1_invitation = invitations
        .iter()
        .find_map(|e| match e {
            Event::InteractionRequested(r) if r.subscriber_id == "B1" => Some(r.clone()),
            _ => None,
        })
        .expect("B1 is invited");
    assert_eq!(
        b1_invitation.subscriber_key,
        b1.public_key().to_bytes(),
        "B1 is invited with its own key, not the impostor's"
    );

    // Impersonated response: the impostor answers as B1, first.
    world.respond("B1", &impostor).await;
    assert_eq!(reasons(&world.verdict("B1", 1).await), ["Forged"]);
    world.respond("B1", &b1).await;
    assert_eq!(
        reasons(&world.verdict("B1", 2).await),
        ["Forged", "Released"]
    );

    // Forged invitation: the impostor invites itself, as M, with its own keys.
    let forger = SigningKey::derive(&impostor);
    let invitation = InteractionRequested {
        event_id: uuid::Uuid::new_v4().to_string(),
        request_id: request_id(OFFER, "M"),
        offer_id: OFFER.into(),
        subscriber_id: "M".into(),
        subscriber_key: impostor.public_key().to_bytes(),
        subscriber_signing_key: forger.verifying_key().to_bytes(),
        ..b1_invitation.clone()
    };
    forge(&world, &forger, REQUESTS, OFFER, invitation.into()).await;
    let forged = world.dead_letter("timekeeper", "Unauthenticated:").await;
    assert!(forged.contains("the matcher"), "{forged}");
    // Nor is anyone told of it: the delivery worker believes the matcher's signature too.
    world
        .dead_letter_naming("delivery", "Unauthenticated:", "the matcher")
        .await;
    // A notice would have been written in the dead letter's transaction, so it would show now.
    let m_inbox = world.wait_for(catalogue::DELIVERIES, "M", 0).await;
    assert!(m_inbox.is_empty(), "M is told of nothing: {m_inbox:?}");
    world.respond("M", &impostor).await;
    assert_eq!(reasons(&world.verdict("M", 3).await), ["NotInvited"]);

    // Foreign withdrawal: A's name, someone else's key.
    provider::withdraw(
        &world.writer,
        world.prefix(),
        OFFER,
        "A",
        Some("sold out".into()),
        &stranger(world.dir.path(), "not-A"),
    )
    .await
    .unwrap();
    let withdrawal = world
        .dead_letter("timekeeper", "NotOwner: the withdrawal of offer")
        .await;
    assert!(
        withdrawal.contains("is not signed by its provider A"),
        "{withdrawal}"
    );
    world.respond("B2", &b2).await;
    assert_eq!(reasons(&world.verdict("B2", 4).await), ["Released"]);

    // Forged release: the impostor releases the credential to itself.
    let decisions = world.wait_for(DECISIONS, OFFER, 4).await;
    let genuine = support::released(&decisions, "B1");
    let counterfeit = CredentialReleased {
        event_id: uuid::Uuid::new_v4().to_string(),
        credential_id: uuid::Uuid::new_v4().to_string(),
        subscriber_id: "M".into(),
        request_id: request_id(OFFER, "M"),
        platform_half: SealedBox {
            enc: vec![1; 32],
            ciphertext: vec![2; 48],
        },
        ..genuine.clone()
    };
    forge(
        &world,
        &forger,
        DECISIONS,
        OFFER,
        counterfeit.clone().into(),
    )
    .await;
    world.wait_for(DECISIONS, OFFER, 5).await;
    // The delivery worker believes the timekeeper's signature, not the record's place.
    let release = world
        .dead_letter_naming("delivery", "Unauthenticated:", "the timekeeper")
        .await;
    assert!(release.contains("the timekeeper"), "{release}");
    // Forged provider half: junk for B1's genuine credential, before A's agent sends the real one.
    let junk = ProviderShareReleased {
        event_id: uuid::Uuid::new_v4().to_string(),
        offer_id: OFFER.into(),
        credential_id: genuine.credential_id.clone(),
        subscriber_id: "B1".into(),
        provider_half: SealedBox {
            enc: vec![3; 32],
            ciphertext: vec![4; 48],
        },
    };
    forge(&world, &forger, catalogue::COSIGNS, OFFER, junk.into()).await;
    let half = world
        .dead_letter("delivery", "NotOwner: the provider half for credential")
        .await;
    assert!(half.contains("is not signed by offer"), "{half}");
    // Forged delivery: a document of the impostor's own, sealed to B1 (HPKE base mode does not
    // say who sealed), under B1's genuine credential id, in B1's inbox before the real one.
    let counterfeit_document = b"Pay the invoice to account 666\n";
    let forged_delivery =
        inbox_forgery(&impostor, &b1.public_key(), &genuine, counterfeit_document);
    assert_eq!(
        subscriber::open(&forged_delivery, &b1).unwrap().as_slice(),
        counterfeit_document,
        "without the checks, B1 would open the forgery as A's"
    );
    forge(
        &world,
        &forger,
        catalogue::DELIVERIES,
        "B1",
        forged_delivery.clone().into(),
    )
    .await;
    let inbox = read_to_end(
        &world.config,
        &catalogue::DELIVERIES.full_name(world.prefix()),
        None,
    )
    .await
    .unwrap();
    let written = inbox
        .iter()
        .find(|r| matches!(&r.event, Some(Ok(Event::CredentialDelivered(d))) if d.event_id == forged_delivery.event_id))
        .expect("the forgery is in B1's inbox");
    let refused = subscriber::check_delivered(&processors.delivery, written, &forged_delivery);
    assert!(
        refused
            .as_ref()
            .is_err_and(|why| why.starts_with("Unauthenticated: the delivery of credential")),
        "{refused:?}"
    );
    let acted = world.run_provider_agent(timekeeper_signing).await;
    let mut cosigned = Vec::new();
    for act in &acted {
        match act {
            Acted::Cosigned(r, _) => cosigned.push(r.subscriber_id.clone()),
            Acted::Refused(r, why) if r.credential_id == counterfeit.credential_id => {
                assert!(
                    why.starts_with("Unauthenticated: the release is not the pinned timekeeper's"),
                    "{why}"
                );
            }
            other => panic!("unexpected: {other}"),
        }
    }
    cosigned.sort();
    assert_eq!(cosigned, ["B1", "B2"], "{acted:?}");
    assert!(
        acted.iter().any(|a| matches!(a, Acted::Refused(..))),
        "{acted:?}"
    );

    // B1 opens document X with both halves, skipping the forgery first in its inbox; nothing was
    // ever sealed to the impostor.
    world.credentials("B1", 2).await;
    let (_, delivered) = subscriber::delivered(
        &world.config,
        world.prefix(),
        &processors.delivery,
        "B1",
        &Choice::Offer(OFFER.into()),
    )
    .await
    .unwrap();
    assert_eq!(
        subscriber::open(&delivered, &b1).unwrap().as_slice(),
        DOCUMENT_X
    );
    assert!(subscriber::open(&delivered, &impostor).is_err());

    // Forged outcome: the impostor accepts B1's credential in B1's name, so that A is paid.
    let forged = CredentialAccepted {
        event_id: uuid::Uuid::new_v4().to_string(),
        offer_id: OFFER.into(),
        credential_id: delivered.credential_id.clone(),
        subscriber_id: "B1".into(),
    };
    forge(&world, &forger, catalogue::OUTCOMES, OFFER, forged.into()).await;
    let outcome = world
        .dead_letter("ledger-rewards", "NotOwner: the outcome of credential")
        .await;
    assert!(
        outcome.contains("not signed by its recipient B1's pinned key"),
        "{outcome}"
    );
    // Minted reward: a RewardDue written straight to the ledger's internal topic.
    let minted = RewardDue {
        event_id: uuid::Uuid::new_v4().to_string(),
        provider_id: "A".into(),
        offer_id: OFFER.into(),
        credential_id: "minted".into(),
        subscriber_id: "M".into(),
        amount: 1_000_000,
        currency: "EUR".into(),
        accepted: genuine.response.clone(),
    };
    forge(
        &world,
        &forger,
        catalogue::LEDGER_CREDITS,
        "A",
        minted.into(),
    )
    .await;
    world.dead_letter("ledger", "Unauthenticated:").await;
    // B1's own acceptance earns A the reward, once.
    let b1_signer = SigningKey::derive(&b1);
    subscriber::decide(
        &world.writer,
        world.prefix(),
        &delivered,
        Decision::Accept,
        &b1_signer,
    )
    .await
    .unwrap();
    let credits = world.wait_for(catalogue::LEDGER, "A", 1).await;
    let balances = support::balances(&credits);
    assert_eq!(balances, [REWARD], "only B1's own acceptance credits A");

    // Forged timekeeper key: a client that pinned the real one refuses the impostor's.
    let pin_file = world.dir.path().join("timekeeper.pin");
    let pinning = Pinning::FirstUse(pin_file.clone());
    let first = keys::fetch(
        &world.config,
        world.prefix(),
        keys::Role::Timekeeper,
        &pinning,
    )
    .await
    .unwrap();
    assert_eq!(first.keys.signing, timekeeper_signing);
    assert!(first.first_use.is_some(), "the first use is said");
    keys::publish(
        &world.writer,
        world.prefix(),
        keys::Role::Timekeeper,
        &impostor,
    )
    .await
    .unwrap();
    for pinning in [
        pinning,
        Pinning::Fingerprint(timekeeper_signing.fingerprint()),
    ] {
        let refused = keys::fetch(
            &world.config,
            world.prefix(),
            keys::Role::Timekeeper,
            &pinning,
        )
        .await;
        assert!(
            matches!(refused, Err(PlatformKeyError::NotPinned { .. })),
            "{pinning:?}: {refused:?}"
        );
    }
    // And an unsigned key record is refused whatever the pin.
    let unsigned = tessera_contract::KeyPublished {
        event_id: uuid::Uuid::new_v4().to_string(),
        role: "timekeeper".into(),
        suite: tessera_contract::sealing::SUITE.into(),
        public_key: impostor.public_key().to_bytes(),
        signing_key: timekeeper_signing.to_bytes(),
    };
    world
        .writer
        .write(
            &catalogue::KEYS.full_name(world.prefix()),
            "timekeeper",
            &unsigned.into(),
        )
        .await
        .unwrap();
    let refused = keys::fetch(
        &world.config,
        world.prefix(),
        keys::Role::Timekeeper,
        &Pinning::Fingerprint(timekeeper_signing.fingerprint()),
    )
    .await;
    assert!(
        matches!(refused, Err(PlatformKeyError::Unauthenticated { .. })),
        "{refused:?}"
    );
    processors.stop().await.unwrap();
}
