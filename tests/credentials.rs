//! Credentials end to end on the real broker: the processors (the delivery worker among them)
//! run on the runtime, a provider publishes document X in co-sign and in escrow custody, B1
//! answers both, signed with its key, B2 answers signed with someone else's key, the
//! provider's agent co-signs, and B1 (not B2) opens what is delivered to its inbox. Afterwards no
//! record on any topic of the installation (changelogs and dead letters included), and no log
//! line the processors and clients wrote at debug level, holds the target data, the data key or a
//! half: raw, in hex or in base64.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use tessera::demo::Processors;
use tessera_contract::sealing::{self, Half, KeyHalf, PrivateKey};
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{self as catalogue, DECISIONS, REQUESTS};
use tessera_contract::{Custody, Event, RejectReason};
use tessera_producers::agent::Acted;
use tessera_producers::subscriber::{self, Choice};

mod support;
use support::World;

const DOCUMENT_X: &[u8] = b"Quarterly report X\nRevenue rose in every region; costs fell.\n";

impl World {
    async fn register(&self, id: &str) -> PrivateKey {
        let key_file = self.dir.path().join(format!("{id}.key"));
        support::register(&self.writer, self.prefix(), id, &key_file).await
    }

    async fn publish(&self, offer_id: &str, custody: Custody) {
        let doc = support::DocX {
            document: DOCUMENT_X,
            custody,
            timekeeper: &self.timekeeper,
            reward: None,
            decide_within: None,
            invite_late: true,
        };
        support::publish_doc_x(&self.writer, self.prefix(), offer_id, &self.halves(), doc).await;
    }

    async fn offer(&self, offer_id: &str) -> tessera_contract::OfferPublished {
        match &self.wait_for(catalogue::OFFERS, offer_id, 1).await[0] {
            Event::OfferPublished(offer) => offer.clone(),
            other => panic!("{other:?}"),
        }
    }

    async fn respond(&self, offer_id: &str, subscriber_id: &str, key: &PrivateKey) {
        support::respond(&self.writer, self.prefix(), offer_id, subscriber_id, key).await;
    }
}

/// Every way a secret could be written out: raw, hex in either case, and base64 (standard and
/// URL-safe) at each of the three alignments it can have inside a longer base64 text (the
/// characters that depend only on the secret).
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut all = vec![
        secret.to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3usize {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(secret);
            let text = engine.encode(&shifted);
            // Skip the characters the leading filler touches and the last group, which depends
            // on what follows the secret.
            let start = (shift * 4).div_ceil(3);
            let end = text.len().saturating_sub(4);
            if end > start + 8 {
                all.push(text.as_bytes()[start..end].to_vec());
            }
        }
    }
    all
}

/// Log output of this test process (the processors run in it), kept for the hygiene scan.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The key and value of every record on every topic whose name starts with `prefix`.
fn raw_records(config: &ClientConfig, prefix: &str) -> Vec<(String, i64, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", format!("{prefix}hygiene"))
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with(prefix))
    {
        for partition in topic.partitions() {
            assignment
                .add_partition_offset(topic.name(), partition.id(), Offset::Beginning)
                .unwrap();
        }
    }
    let mut open = assignment.count();
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    while open > 0 {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(message)) => {
                let mut bytes = message.key().unwrap_or_default().to_vec();
                bytes.extend_from_slice(message.payload().unwrap_or_default());
                records.push((message.topic().to_string(), message.offset(), bytes));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => panic!("reading for the hygiene scan: {e}"),
            None => panic!("no end of partition within 10 s in the hygiene scan"),
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credential_is_released_cosigned_and_opened_by_its_responder_only() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let (world, timekeeper_key) = World::new(3).await;
    let state = world.dir.path().join("state");
    // The processors take the timekeeper's key; the test keeps a copy to open what is sealed to it.
    let theirs = PrivateKey::from_bytes(timekeeper_key.to_bytes().as_ref()).unwrap();
    let processors = Processors::start(&world.kafka, &state, theirs).unwrap();

    let b1 = world.register("B1").await;
    let b2 = world.register("B2").await;
    world.publish("cosigned", Custody::CoSign).await;
    world.publish("escrowed", Custody::Escrow).await;
    for offer in ["cosigned", "escrowed"] {
        world.wait_for(REQUESTS, offer, 2).await;
        world.respond(offer, "B1", &b1).await;
    }
    // B2 answers the co-signed offer with B1's key: the signature is not B2's pinned key's.
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
    let cosigned = support::released(&cosigned, "B1");
    let escrowed = support::released(&escrowed, "B1");
    assert!(cosigned.provider_half.is_none() && escrowed.provider_half.is_some());

    let timekeeper = SigningKey::derive(&timekeeper_key).verifying_key();
    let acted = world.run_provider_agent(timekeeper).await;
    assert!(
        matches!(acted.as_slice(), [Acted::Cosigned(r, _)] if r.credential_id == cosigned.credential_id),
        "{acted:?}"
    );
    world.credentials("B1", 2).await;
    for offer in ["cosigned", "escrowed"] {
        let choice = Choice::Offer(offer.into());
        let (_, delivered) = subscriber::delivered(
            &world.config,
            world.prefix(),
            &processors.delivery,
            "B1",
            &choice,
        )
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
    let (cosigned_offer, escrowed_offer) =
        (world.offer("cosigned").await, world.offer("escrowed").await);

    // Secret hygiene: the target data, each offer's data key and both halves appear nowhere on
    // the log or in the logs, in any encoding.
    let mut secrets: Vec<Vec<u8>> =
        vec![DOCUMENT_X.to_vec(), b"Quarterly report X\nRevenue".to_vec()];
    for offer in [&cosigned_offer, &escrowed_offer] {
        let credential = &offer.credential;
        let open = |sealed, half| {
            sealing::open_from_provider(sealed, half, &offer.offer_id, &timekeeper_key).unwrap()
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
            secrets.push(secret);
        }
    }
    let secrets: Vec<Vec<u8>> = secrets.iter().flat_map(|s| encodings(s)).collect();
    let found = |bytes: &[u8]| {
        secrets
            .iter()
            .any(|secret| bytes.windows(secret.len()).any(|w| w == secret.as_slice()))
    };
    // The scan can fail: a secret embedded in base64 or hex text at any alignment is found.
    {
        use base64::Engine;
        for lead in ["", "a", "ab"] {
            let mut text = lead.as_bytes().to_vec();
            text.extend_from_slice(DOCUMENT_X);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&text);
            assert!(
                found(format!("log: {encoded} end").as_bytes()),
                "base64 after {lead:?}"
            );
        }
        let hex: String = DOCUMENT_X.iter().map(|b| format!("{b:02X}")).collect();
        assert!(found(hex.as_bytes()));
    }
    let records = raw_records(&world.config, world.prefix());
    for (topic, offset, bytes) in &records {
        assert!(!found(bytes), "a secret is on {topic} at offset {offset}");
    }
    let topics: std::collections::BTreeSet<&str> = records.iter().map(|r| r.0.as_str()).collect();
    assert!(
        records.len() > 50 && topics.iter().any(|t| t.ends_with(".changelog")),
        "only {} records on {topics:?} scanned",
        records.len()
    );
    let logs = logs.0.lock().unwrap().clone();
    assert!(
        logs.len() > 10_000,
        "only {} bytes of logs captured",
        logs.len()
    );
    assert!(!found(&logs), "a secret is in the logs");
}
