//! Releases to rewards on the real broker: the delivery worker and the ledger (both of its cores)
//! run on the runtime, the test writes what the timekeeper, the providers' agents and the
//! subscribers would, and checks that each complete credential reaches its recipient's inbox
//! once, that each accepted credential is credited once, that what cannot take effect is
//! dead-lettered, and that `tessera ledger balance` prints the balance.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tessera::kafka::KafkaArgs;
use tessera_contract::sealing::PrivateKey;
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{self as catalogue, Topic};
use tessera_contract::*;
use tessera_cores::delivery::Delivery;
use tessera_cores::ledger::{Ledger, Rewards};
use tessera_producers::client::{Writer, read_to_end};
use tessera_producers::keys;
use tessera_runtime::{self as runtime, Config};

const PARTITIONS: i32 = 3;
/// 2025-11-25T09:00:00.000Z: the offers' terms, which the delivery and the ledger only carry.
const T: i64 = 1_764_061_200_000;

/// The delivery worker and the ledger on their own topics.
struct Stack {
    kafka: KafkaArgs,
    writer: Writer,
    stop: Arc<AtomicBool>,
    processors: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _state: tempfile::TempDir,
    /// Each offer's provider, as written: its co-signs are signed with the provider's key.
    providers: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Stack {
    async fn start() -> Stack {
        let kafka = support::installation(PARTITIONS).await;
        let state = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        // One state directory for all, as `tessera run` has: each core's name keeps its tasks
        // apart.
        let mut config = Config::new(
            kafka.client_config().unwrap(),
            "0",
            state.path().to_path_buf(),
        );
        config.topic_prefix = kafka.topic_prefix.clone();
        // The processors sign what they write; the ledger believes releases signed by the
        // timekeeper and rewards signed by itself.
        let ledger_key = signer_of("ledger");
        let rewards = Rewards::new(signer_of("timekeeper").verifying_key());
        let ledger = Ledger::new(ledger_key.verifying_key());
        config.signer = Some(Arc::new(ledger_key));
        let processors = vec![
            tokio::spawn(runtime::run(
                Delivery::new(
                    private_of("delivery"),
                    signer_of("timekeeper").verifying_key(),
                    signer_of("matcher").verifying_key(),
                ),
                config.clone(),
                stop.clone(),
            )),
            tokio::spawn(runtime::run(rewards, config.clone(), stop.clone())),
            tokio::spawn(runtime::run(ledger, config, stop.clone())),
        ];
        Stack {
            writer: Writer::new(&kafka.client_config().unwrap()).unwrap(),
            kafka,
            stop,
            processors,
            _state: state,
            providers: Default::default(),
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for processor in self.processors {
            processor.await.unwrap().unwrap();
        }
    }

    /// Writes `event`, signed by its honest writer: an offer or co-sign by its provider, a
    /// verdict by the timekeeper, an outcome by the subscriber it names.
    async fn write(&self, topic: Topic, key: &str, event: impl Into<Event>) {
        let event = event.into();
        let writer = match &event {
            Event::OfferPublished(e) => {
                let mut providers = self.providers.lock().unwrap();
                providers.insert(e.offer_id.clone(), e.provider_id.clone());
                signer_of(&e.provider_id)
            }
            Event::ProviderShareReleased(e) => {
                signer_of(&self.providers.lock().unwrap()[&e.offer_id])
            }
            Event::CredentialAccepted(e) => signer_of(&e.subscriber_id),
            Event::CredentialDeclined(e) => signer_of(&e.subscriber_id),
            _ => signer_of("timekeeper"),
        };
        let prefix = &self.kafka.topic_prefix;
        self.writer
            .write_as(&writer, prefix, topic, key, &event)
            .await
            .unwrap();
    }

    /// Every event on `topic` keyed `key` (ticks skipped), committed ones only.
    async fn read(&self, topic: Topic, key: &str) -> Vec<Event> {
        let config = self.kafka.client_config().unwrap();
        let name = topic.full_name(&self.kafka.topic_prefix);
        read_to_end(&config, &name, None)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.key.as_deref() == Some(key))
            .filter_map(|r| r.event.and_then(Result::ok))
            .collect()
    }

    /// Reads `topic` under `key` until it holds `n` events; fails after a minute.
    async fn wait_for(&self, topic: Topic, key: &str, n: usize) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = self.read(topic, key).await;
            if events.len() >= n {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} events keyed {key} on {}: {events:#?}",
                events.len(),
                topic.name
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

fn event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn sealed(tag: u8) -> SealedBox {
    SealedBox {
        enc: vec![tag; 32],
        ciphertext: vec![tag; 48],
    }
}

fn terms() -> OfferTerms {
    OfferTerms {
        position: LogPosition {
            topic: "tessera.offers".into(),
            partition: 0,
            offset: 0,
            stamp: T,
        },
        time_rule: TimeRule::Deadline(Deadline { at: T }),
    }
}

/// The signing key of party or role `id`, its own for each.
fn signer_of(id: &str) -> SigningKey {
    SigningKey::derive(&private_of(id))
}

/// Party `id`'s key file, derived from its id.
fn private_of(id: &str) -> PrivateKey {
    let digest = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.as_bytes()).into_bytes();
    let mut secret = [0u8; 32];
    secret[..16].copy_from_slice(&digest);
    secret[16..].copy_from_slice(&digest);
    PrivateKey::from_bytes(&secret).unwrap()
}

fn offer(offer_id: &str, provider_id: &str, custody: Custody, reward: i64) -> OfferPublished {
    let mut offer = examples::offer(offer_id, provider_id, custody);
    offer.signing_key = signer_of(provider_id).verifying_key().to_bytes();
    offer.reward = Some(Reward {
        amount: reward,
        currency: "EUR".into(),
    });
    tessera_contract::identity::with_package_signed(offer, &signer_of(provider_id))
}

fn release(offer_id: &str, subscriber_id: &str, escrow: bool) -> CredentialReleased {
    CredentialReleased {
        event_id: event_id(),
        offer_id: offer_id.into(),
        credential_id: format!("{offer_id}/{subscriber_id}"),
        subscriber_id: subscriber_id.into(),
        subscriber_signing_key: signer_of(subscriber_id).verifying_key().to_bytes(),
        request_id: "q".into(),
        response: terms().position,
        offer: terms(),
        platform_half: sealed(10),
        provider_half: escrow.then(|| sealed(20)),
        link: Default::default(),
    }
}

fn cosign(offer_id: &str, subscriber_id: &str) -> ProviderShareReleased {
    ProviderShareReleased {
        event_id: event_id(),
        offer_id: offer_id.into(),
        credential_id: format!("{offer_id}/{subscriber_id}"),
        subscriber_id: subscriber_id.into(),
        provider_half: sealed(30),
    }
}

fn accepted(offer_id: &str, credential_of: &str, by: &str) -> CredentialAccepted {
    CredentialAccepted {
        event_id: event_id(),
        offer_id: offer_id.into(),
        credential_id: format!("{offer_id}/{credential_of}"),
        subscriber_id: by.into(),
    }
}

fn closed(offer_id: &str) -> OfferClosed {
    OfferClosed {
        event_id: event_id(),
        offer_id: offer_id.into(),
        offer: terms(),
        closed_at: T,
        requested: 2,
        responded: 2,
        released: 2,
        rejected: 0,
        withdrawn: false,
        link: Default::default(),
    }
}

fn delivered(events: &[Event]) -> BTreeMap<String, CredentialDelivered> {
    let mut by_credential = BTreeMap::new();
    for event in events {
        let Event::CredentialDelivered(delivery) = event else {
            panic!("unexpected {event:?} in an inbox")
        };
        let again = by_credential.insert(delivery.credential_id.clone(), delivery.clone());
        assert!(
            again.is_none(),
            "{} delivered twice",
            delivery.credential_id
        );
    }
    by_credential
}

fn reasons(events: &[Event]) -> Vec<String> {
    let mut reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::DeadLetter(letter) => Some(format!("{}: {}", letter.processor, letter.reason)),
            _ => None,
        })
        .collect();
    reasons.sort();
    reasons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_are_delivered_and_credited_once() {
    let stack = Stack::start().await;
    let (escrowed, cosigned) = (unique("escrowed"), unique("cosigned"));
    let (provider, b1, b2) = (unique("A"), unique("B1"), unique("B2"));
    let stranger = unique("B3");

    stack
        .write(
            catalogue::OFFERS,
            &escrowed,
            offer(&escrowed, &provider, Custody::Escrow, 250),
        )
        .await;
    stack
        .write(
            catalogue::OFFERS,
            &cosigned,
            offer(&cosigned, &provider, Custody::CoSign, 100),
        )
        .await;
    stack
        .write(
            catalogue::DECISIONS,
            &escrowed,
            release(&escrowed, &b1, true),
        )
        .await;
    stack
        .write(
            catalogue::DECISIONS,
            &cosigned,
            release(&cosigned, &b1, false),
        )
        .await;
    stack
        .write(
            catalogue::DECISIONS,
            &cosigned,
            release(&cosigned, &b2, false),
        )
        .await;
    // B1's provider half, its agent sending it again, and a half for a credential never released.
    let share = cosign(&cosigned, &b1);
    stack
        .write(catalogue::COSIGNS, &cosigned, share.clone())
        .await;
    stack.write(catalogue::COSIGNS, &cosigned, share).await;
    stack
        .write(catalogue::COSIGNS, &cosigned, cosign(&cosigned, &stranger))
        .await;
    stack
        .write(catalogue::DECISIONS, &cosigned, closed(&cosigned))
        .await;

    // B1 accepts both credentials, one acceptance delivered twice; B2 was never sent its
    // provider half, so it declines; a stranger accepts B2's credential.
    let acceptance = accepted(&escrowed, &b1, &b1);
    stack
        .write(catalogue::OUTCOMES, &escrowed, acceptance.clone())
        .await;
    stack
        .write(catalogue::OUTCOMES, &escrowed, acceptance)
        .await;
    stack
        .write(
            catalogue::OUTCOMES,
            &cosigned,
            accepted(&cosigned, &b1, &b1),
        )
        .await;
    let declined = CredentialDeclined {
        event_id: event_id(),
        offer_id: cosigned.clone(),
        credential_id: format!("{cosigned}/{b2}"),
        subscriber_id: b2.clone(),
        reason: Some("never opened".into()),
    };
    stack.write(catalogue::OUTCOMES, &cosigned, declined).await;
    stack
        .write(
            catalogue::OUTCOMES,
            &cosigned,
            accepted(&cosigned, &b2, &stranger),
        )
        .await;

    let inbox = delivered(&stack.wait_for(catalogue::DELIVERIES, &b1, 2).await);
    stack.wait_for(catalogue::LEDGER, &provider, 2).await;
    let letters = [
        stack
            .wait_for(catalogue::DEAD_LETTERS, catalogue::COSIGNS.name, 1)
            .await,
        stack
            .wait_for(catalogue::DEAD_LETTERS, catalogue::OUTCOMES.name, 1)
            .await,
    ]
    .concat();
    // Whatever would come twice would come by now: the processors commit every 100 ms.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let escrow_delivery = &inbox[&format!("{escrowed}/{b1}")];
    assert_eq!(
        escrow_delivery.package,
        format!("package of {escrowed}").into_bytes()
    );
    assert_eq!(escrow_delivery.provider_half, sealed(20), "the escrow half");
    let cosign_delivery = &inbox[&format!("{cosigned}/{b1}")];
    assert_eq!(cosign_delivery.platform_half, sealed(10));
    assert_eq!(
        cosign_delivery.provider_half,
        sealed(30),
        "the provider's own half"
    );
    assert_eq!(
        delivered(&stack.read(catalogue::DELIVERIES, &b1).await).len(),
        2
    );
    assert!(
        stack.read(catalogue::DELIVERIES, &b2).await.is_empty(),
        "B2 has no provider half"
    );
    assert!(
        stack
            .read(catalogue::DELIVERIES, &stranger)
            .await
            .is_empty()
    );

    let credits = stack.read(catalogue::LEDGER, &provider).await;
    let mut credited: Vec<(String, i64)> = credits
        .iter()
        .map(|event| match event {
            Event::RewardCredited(credit) => (credit.credential_id.clone(), credit.amount),
            other => panic!("unexpected {other:?} on the ledger"),
        })
        .collect();
    credited.sort();
    let mut expected = vec![
        (format!("{escrowed}/{b1}"), 250),
        (format!("{cosigned}/{b1}"), 100),
    ];
    expected.sort();
    assert_eq!(
        credited, expected,
        "each accepted credential once, the declined one never"
    );
    let balances = support::balances(&credits);
    assert_eq!(*balances.last().unwrap(), 350);

    let letters_now = [
        stack
            .read(catalogue::DEAD_LETTERS, catalogue::COSIGNS.name)
            .await,
        stack
            .read(catalogue::DEAD_LETTERS, catalogue::OUTCOMES.name)
            .await,
    ]
    .concat();
    assert_eq!(reasons(&letters_now), reasons(&letters));
    assert_eq!(
        reasons(&letters_now),
        vec![
            format!(
                "delivery: offer {cosigned} closed at 2025-11-25T09:00:00.000Z without releasing credential {cosigned}/{stranger}"
            ),
            format!(
                "ledger-rewards: credential {cosigned}/{b2} was released to {b2}, not {stranger}"
            ),
        ]
    );

    // As `tessera run ledger` does: `ledger balance` counts the credits signed by the key it
    // finds there, which the operator's fingerprint pins.
    keys::publish(
        &stack.writer,
        &stack.kafka.topic_prefix,
        keys::Role::Ledger,
        &private_of("ledger"),
    )
    .await
    .unwrap();
    let balance = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["ledger", "balance", &provider])
        .env("TESSERA_BROKERS", support::brokers())
        .env("TESSERA_TOPIC_PREFIX", &stack.kafka.topic_prefix)
        .env(
            "TESSERA_LEDGER_FINGERPRINT",
            signer_of("ledger").verifying_key().fingerprint(),
        )
        .output()
        .unwrap();
    assert!(balance.status.success(), "{balance:?}");
    assert_eq!(
        String::from_utf8_lossy(&balance.stdout),
        format!("{provider}: 350 EUR\n")
    );

    stack.stop().await;
}
