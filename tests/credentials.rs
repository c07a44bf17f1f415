//! Credentials end to end on the real broker: the matcher, the timekeeper and the delivery worker
//! run on the runtime, a provider publishes document X in co-sign and in escrow custody, B1
//! answers both with a real proof, B2 answers with a proof made with someone else's key, the
//! provider's agent co-signs, and B1 (not B2) opens what is delivered to its inbox. Afterwards no
//! record on any topic holds the target data, the data key or a half, raw or in hex.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use tessera::demo::Processors;
use tessera::kafka::KafkaArgs;
use tessera::topics;
use tessera_processors::delivery::Delivery;
use tessera_processors::runtime::{self, Config};
use tessera_producers::agent::{self, Acted, Agent};
use tessera_producers::client::{Writer, read_partition_of, read_to_end};
use tessera_producers::keys::{self, Halves};
use tessera_producers::provider::{self, OfferRequest, RuleSpec, Sealing};
use tessera_producers::subscriber::{self, Choice, Registration, Responder};
use tessera_producers::when::Zone;
use tessera_schemas::sealing::{self, Half, KeyHalf, PrivateKey, PublicKey};
use tessera_schemas::topics::{self as catalogue, DECISIONS, DELIVERIES, REQUESTS, Topic};
use tessera_schemas::{CredentialReleased, Custody, Event, RejectReason};

const DOCUMENT_X: &[u8] = b"Quarterly report X\nRevenue rose in every region; costs fell.\n";

struct World {
    kafka: KafkaArgs,
    config: ClientConfig,
    writer: Writer,
    dir: tempfile::TempDir,
    timekeeper_key: PrivateKey,
    timekeeper: PublicKey,
}

impl World {
    fn prefix(&self) -> &str {
        &self.kafka.topic_prefix
    }

    async fn register(&self, id: &str) -> PrivateKey {
        let key_file = self.dir.path().join(format!("{id}.key"));
        subscriber::register(
            &self.writer,
            self.prefix(),
            Registration {
                subscriber_id: id.into(),
                contact: format!("{id}@example.org"),
                interests: vec![tessera_producers::interest::parse("id=doc-X").unwrap()],
                webhook: None,
                key_file: key_file.clone(),
            },
        )
        .await
        .unwrap();
        keys::load(&key_file).unwrap()
    }

    async fn publish(&self, offer_id: &str, custody: Custody) {
        let request = OfferRequest {
            offer_id: offer_id.into(),
            provider_id: "A".into(),
            provider_contact: "a@example.org".into(),
            identifier: "doc-X".into(),
            name: "Quarterly report X".into(),
            features: vec![],
            parameters: vec![],
            rule: RuleSpec::Within(600_000),
            zone: Zone::Utc,
            capacity: None,
            reward: None,
        };
        let sealing = Sealing {
            target_data: DOCUMENT_X,
            custody,
            timekeeper: &self.timekeeper,
        };
        let built = provider::build(request, sealing, chrono::Utc::now()).unwrap();
        provider::publish(&self.writer, self.prefix(), built, &self.halves())
            .await
            .unwrap();
    }

    async fn offer(&self, offer_id: &str) -> tessera_schemas::OfferPublished {
        match &self.wait_for(catalogue::OFFERS, offer_id, 1).await[0] {
            Event::OfferPublished(offer) => offer.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn halves(&self) -> Halves {
        Halves::new(self.dir.path().join("A"))
    }

    async fn respond(&self, offer_id: &str, subscriber_id: &str, key: &PrivateKey) {
        let responder = Responder {
            subscriber_id: subscriber_id.into(),
            key: PrivateKey::from_bytes(key.to_bytes().as_ref()).unwrap(),
            timekeeper: self.timekeeper.clone(),
        };
        subscriber::respond(&self.writer, self.prefix(), offer_id, &responder)
            .await
            .unwrap();
    }

    /// The events keyed `key` on `topic`, once there are `n` (ticks skipped).
    async fn wait_for(&self, topic: Topic, key: &str, n: usize) -> Vec<Event> {
        let name = topic.full_name(self.prefix());
        for _ in 0..120 {
            let events: Vec<Event> = read_partition_of(&self.config, &name, key)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.key.as_deref() == Some(key))
                .filter_map(|r| r.event.and_then(Result::ok))
                .collect();
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("fewer than {n} events keyed {key} on {name}");
    }
}

fn released(decisions: &[Event], subscriber: &str) -> CredentialReleased {
    decisions
        .iter()
        .find_map(|e| match e {
            Event::CredentialReleased(r) if r.subscriber_id == subscriber => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no release to {subscriber}: {decisions:?}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credential_is_released_cosigned_and_opened_by_its_responder_only() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let kafka = KafkaArgs {
        topic_prefix: format!("it-{}.", uuid::Uuid::new_v4().simple()),
        ..KafkaArgs::new(std::env::var("TESSERA_BROKERS").unwrap_or("127.0.0.1:9092".into()))
    };
    topics::create(&kafka, 3, 1).await.unwrap();
    let config = kafka.client_config().unwrap();
    let timekeeper_key = keys::new_private_key();
    let world = World {
        writer: Writer::new(&config).unwrap(),
        config,
        dir: tempfile::tempdir().unwrap(),
        timekeeper: timekeeper_key.public_key(),
        timekeeper_key: PrivateKey::from_bytes(timekeeper_key.to_bytes().as_ref()).unwrap(),
        kafka,
    };
    keys::publish_timekeeper(&world.writer, world.prefix(), &world.timekeeper)
        .await
        .unwrap();
    let state = world.dir.path().join("state");
    let processors = Processors::start(&world.kafka, &state, timekeeper_key).unwrap();
    let mut config = Config::new(world.config.clone(), "it", state.join("delivery"));
    config.topic_prefix = world.prefix().to_string();
    config.tick_period = Some(Duration::from_millis(200));
    let stop = Arc::new(AtomicBool::new(false));
    let delivery = tokio::spawn(runtime::run(Delivery, config, stop.clone()));

    let b1 = world.register("B1").await;
    let b2 = world.register("B2").await;
    world.publish("cosigned", Custody::CoSign).await;
    world.publish("escrowed", Custody::Escrow).await;
    for offer in ["cosigned", "escrowed"] {
        world.wait_for(REQUESTS, offer, 2).await;
        world.respond(offer, "B1", &b1).await;
    }
    // B2 answers the co-signed offer with B1's key: the proof does not match B2's registration.
    world.respond("cosigned", "B2", &b1).await;

    let cosigned = world.wait_for(DECISIONS, "cosigned", 2).await;
    let escrowed = world.wait_for(DECISIONS, "escrowed", 1).await;
    let forged = cosigned
        .iter()
        .find_map(|e| match e {
            Event::ResponseRejected(r) if r.subscriber_id == "B2" => Some(r.reason),
            _ => None,
        })
        .expect("B2 is rejected");
    assert_eq!(forged, RejectReason::Forged);
    let cosigned = released(&cosigned, "B1");
    let escrowed = released(&escrowed, "B1");
    assert!(cosigned.provider_half.is_none() && escrowed.provider_half.is_some());

    let agent = Agent {
        provider_id: "A".into(),
        halves: world.halves(),
        until_idle: Some(Duration::from_secs(3)),
    };
    let mut acted = Vec::new();
    agent::run(&world.config, world.prefix(), &agent, |a| acted.push(a))
        .await
        .unwrap();
    assert!(
        matches!(acted.as_slice(), [Acted::Cosigned(r, _)] if r.credential_id == cosigned.credential_id),
        "{acted:?}"
    );
    world.wait_for(DELIVERIES, "B1", 2).await;
    for offer in ["cosigned", "escrowed"] {
        let choice = Choice::Offer(offer.into());
        let (_, delivered) = subscriber::delivered(&world.config, world.prefix(), "B1", &choice)
            .await
            .unwrap();
        let opened = subscriber::open(&delivered, &b1).unwrap();
        assert_eq!(opened.as_slice(), DOCUMENT_X, "{offer}");
        assert!(
            subscriber::open(&delivered, &b2).is_err(),
            "{offer}: only B1 opens it"
        );
    }
    processors.stop().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    delivery.await.unwrap().unwrap();
    let (cosigned_offer, escrowed_offer) =
        (world.offer("cosigned").await, world.offer("escrowed").await);

    // Secret hygiene: the target data, each offer's data key and both halves appear nowhere on
    // the log, raw or in hex.
    let mut secrets: Vec<Vec<u8>> =
        vec![DOCUMENT_X.to_vec(), b"Quarterly report X\nRevenue".to_vec()];
    for offer in [&cosigned_offer, &escrowed_offer] {
        let credential = &offer.credential;
        let open = |sealed, half| {
            sealing::open_from_provider(sealed, half, &offer.offer_id, &world.timekeeper_key)
                .unwrap()
        };
        let platform = open(&credential.platform_half, Half::Platform);
        let provider: KeyHalf = match &credential.escrow_half {
            Some(escrow) => open(escrow, Half::Provider),
            None => world.halves().get(&offer.offer_id).unwrap().unwrap(),
        };
        let data_key: Vec<u8> = platform
            .as_bytes()
            .iter()
            .zip(provider.as_bytes())
            .map(|(a, b)| a ^ b)
            .collect();
        for secret in [
            platform.as_bytes().to_vec(),
            provider.as_bytes().to_vec(),
            data_key,
        ] {
            secrets.push(hex(&secret).into_bytes());
            secrets.push(secret);
        }
    }
    let mut scanned = 0;
    for topic in catalogue::ALL {
        for record in read_to_end(&world.config, &topic.full_name(world.prefix()), None)
            .await
            .unwrap()
        {
            let bytes = match record.event {
                Some(Ok(event)) => tessera_schemas::encode(&event).unwrap(),
                _ => continue,
            };
            scanned += 1;
            for secret in &secrets {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                    "a secret is on {} at offset {}",
                    record.topic,
                    record.offset
                );
            }
        }
    }
    assert!(scanned > 10, "only {scanned} records scanned");
}
