//! What the broker tests share: where the broker is, a seeded generator so a failing schedule can
//! be rerun, and waiting for what the processors write. Each test crate uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use rdkafka::ClientConfig;
use tessera_contract::Event;
use tessera_contract::sealing::{PrivateKey, PublicKey};
use tessera_contract::signing::VerifyingKey;
use tessera_contract::topics::Topic;
use tessera_producers::agent::{self, Acted, Agent};
use tessera_producers::client::{Writer, read_partition_of};
use tessera_producers::keys;
use tessera_producers::subscriber::{self, Registration};

/// The broker's address: `TESSERA_BROKERS`, else the local one.
pub(crate) fn brokers() -> String {
    std::env::var("TESSERA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The test broker under a topic prefix of its own, so that tests run in parallel and leave
/// other topics alone; no topic is created yet.
pub(crate) fn isolated() -> tessera::kafka::KafkaArgs {
    tessera::kafka::KafkaArgs {
        topic_prefix: format!("it-{}.", uuid::Uuid::new_v4().simple()),
        ..tessera::kafka::KafkaArgs::new(brokers())
    }
}

/// A fresh installation on the test broker: a topic prefix of its own, every catalogue topic
/// created with `partitions` partitions.
pub(crate) async fn installation(partitions: i32) -> tessera::kafka::KafkaArgs {
    let kafka = isolated();
    tessera::topics::create(&kafka, partitions, 1)
        .await
        .unwrap();
    kafka
}

/// A fresh installation (see [`installation`]) and what a test's parties share on it: a client
/// configuration and a writer, a directory for their key files and the processors' state, and the
/// timekeeper's public key, published on `tessera.keys` as `tessera run timekeeper` publishes it.
pub(crate) struct World {
    pub kafka: tessera::kafka::KafkaArgs,
    pub config: ClientConfig,
    pub writer: Writer,
    pub dir: tempfile::TempDir,
    pub timekeeper: PublicKey,
}

impl World {
    /// A world whose topics have `partitions` partitions, and the timekeeper's private key, for
    /// the processors to run with.
    pub(crate) async fn new(partitions: i32) -> (World, PrivateKey) {
        let kafka = installation(partitions).await;
        let config = kafka.client_config().unwrap();
        let timekeeper_key = keys::new_private_key();
        let world = World {
            writer: Writer::new(&config).unwrap(),
            config,
            dir: tempfile::tempdir().unwrap(),
            timekeeper: timekeeper_key.public_key(),
            kafka,
        };
        let role = keys::Role::Timekeeper;
        keys::publish(&world.writer, world.prefix(), role, &timekeeper_key)
            .await
            .unwrap();
        (world, timekeeper_key)
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.kafka.topic_prefix
    }

    /// Provider A's key halves, where a co-signed offer's half is kept.
    pub(crate) fn halves(&self) -> keys::Halves {
        keys::Halves::new(self.dir.path().join("A"))
    }

    /// What provider A's agent, trusting `timekeeper` as the timekeeper's key, does before it has
    /// been idle for three seconds.
    pub(crate) async fn run_provider_agent(&self, timekeeper: VerifyingKey) -> Vec<Acted> {
        let halves = self.halves();
        let agent = Agent {
            provider_id: "A".into(),
            signer: halves.signer().unwrap().0,
            halves,
            timekeeper,
            anchor: None,
            until_idle: Some(Duration::from_secs(3)),
        };
        let mut acted = Vec::new();
        agent::run(&self.config, self.prefix(), &agent, |a| acted.push(a))
            .await
            .unwrap();
        acted
    }

    /// The events keyed `key` on `topic`, once there are `n` (ticks skipped).
    pub(crate) async fn wait_for(&self, topic: Topic, key: &str, n: usize) -> Vec<Event> {
        wait_for(&self.config, self.prefix(), topic, key, n).await
    }

    /// The credentials delivered to `subscriber`'s inbox, once there are `n`: the notices beside
    /// them do not count.
    #[allow(dead_code)]
    pub(crate) async fn credentials(&self, subscriber: &str, n: usize) -> Vec<Event> {
        let name = tessera_contract::topics::DELIVERIES.full_name(self.prefix());
        for _ in 0..120 {
            let credentials: Vec<Event> = read_partition_of(&self.config, &name, subscriber)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.key.as_deref() == Some(subscriber))
                .filter_map(|r| r.event.and_then(Result::ok))
                .filter(|e| matches!(e, Event::CredentialDelivered(_)))
                .collect();
            if credentials.len() >= n {
                return credentials;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("fewer than {n} credentials delivered to {subscriber} on {name}");
    }
}

/// The wall clock in milliseconds since the epoch, as the broker stamps records.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A tiny deterministic generator.
pub(crate) struct Lcg(pub u64);

impl Lcg {
    /// The next number below `bound`.
    pub(crate) fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// The events keyed `key` on `topic` of the installation whose names start with `prefix`, once
/// there are `n` (ticks skipped); fails after a minute.
pub(crate) async fn wait_for(
    config: &ClientConfig,
    prefix: &str,
    topic: Topic,
    key: &str,
    n: usize,
) -> Vec<Event> {
    let name = topic.full_name(prefix);
    for _ in 0..120 {
        let events: Vec<Event> = read_partition_of(config, &name, key)
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

/// The release to `subscriber` among `decisions`; fails if there is none.
pub(crate) fn released(
    decisions: &[Event],
    subscriber: &str,
) -> tessera_contract::CredentialReleased {
    decisions
        .iter()
        .find_map(|e| match e {
            Event::CredentialReleased(r) if r.subscriber_id == subscriber => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no release to {subscriber}: {decisions:?}"))
}

/// The balance after each credit among `ledger`'s events, in order.
pub(crate) fn balances(ledger: &[Event]) -> Vec<i64> {
    ledger
        .iter()
        .filter_map(|e| match e {
            Event::RewardCredited(credit) => Some(credit.balance),
            _ => None,
        })
        .collect()
}

/// Registers subscriber `id` with a need for document `doc-X`, signed with the key in `key_file`
/// (created if missing, so a second id may name the same holder's file); returns that key.
pub(crate) async fn register(
    writer: &Writer,
    prefix: &str,
    id: &str,
    key_file: &std::path::Path,
) -> PrivateKey {
    let holder = key_file.file_stem().unwrap_or_default().to_string_lossy();
    subscriber::register(
        writer,
        prefix,
        Registration {
            subscriber_id: id.into(),
            contact: format!("{holder}@example.org"),
            interests: vec![tessera_producers::interest::parse("id=doc-X").unwrap()],
            webhook: None,
            key_file: key_file.to_path_buf(),
            endorsement: None,
            platform: None,
        },
    )
    .await
    .unwrap();
    keys::load(key_file).unwrap()
}

/// How an offer of document `doc-X` is sealed: its content, its custody, the timekeeper's key.
pub(crate) struct DocX<'a> {
    pub document: &'a [u8],
    pub custody: tessera_contract::Custody,
    pub timekeeper: &'a tessera_contract::sealing::PublicKey,
    pub reward: Option<tessera_contract::Reward>,
    /// The offer's `decide_within`: how long a recipient has to accept and still earn.
    pub decide_within: Option<i64>,
    /// Whether it invites subscribers that register while it is open, as `tessera provider
    /// publish` does unless `--no-late-invitations` says not to.
    pub invite_late: bool,
}

/// Publishes offer `offer_id` of document `doc-X` by provider A, open for ten minutes, sealed as
/// `doc` says and signed with the key in `halves` (where a co-signed offer's half is kept).
pub(crate) async fn publish_doc_x(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    halves: &keys::Halves,
    doc: DocX<'_>,
) {
    use tessera_producers::provider::{self, OfferRequest, RuleSpec, Sealing};
    let (signer, _) = halves.signer().unwrap();
    let request = OfferRequest {
        offer_id: offer_id.into(),
        provider_id: "A".into(),
        provider_contact: "a@example.org".into(),
        identifier: "doc-X".into(),
        name: "Quarterly report X".into(),
        features: vec![],
        parameters: vec![],
        rule: RuleSpec::Within(600_000),
        zone: tessera_producers::when::Zone::Utc,
        capacity: None,
        reward: doc.reward,
        decide_within: doc.decide_within,
        signing_key: signer.verifying_key(),
        endorsement: None,
    };
    let sealing = Sealing {
        target_data: doc.document,
        custody: doc.custody,
        timekeeper: doc.timekeeper,
    };
    let mut built = provider::build(request, sealing, chrono::Utc::now()).unwrap();
    built.offer.invite_late = doc.invite_late;
    provider::publish(writer, prefix, built, halves, &signer)
        .await
        .unwrap();
}

/// Subscriber `subscriber_id`, holding `key`, answers its invitation to `offer_id`.
pub(crate) async fn respond(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    subscriber_id: &str,
    key: &PrivateKey,
) {
    let key = PrivateKey::from_bytes(key.to_bytes().as_ref()).unwrap();
    let responder = subscriber::Responder::new(subscriber_id, key);
    subscriber::respond(writer, prefix, offer_id, &responder)
        .await
        .unwrap();
}

/// The arguments of `tessera provider publish` as provider A, then `flags`.
pub(crate) fn provider_publish<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    let provider = [
        "provider",
        "publish",
        "--provider",
        "A",
        "--contact",
        "a@example.org",
    ];
    provider.into_iter().chain(flags.iter().copied()).collect()
}

/// The arguments of `tessera provider publish` as provider A offering document X for ten minutes
/// at a reward of 250 EUR, then `flags`.
pub(crate) fn publish_doc_x_args<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    let doc_x = [
        "--identifier",
        "doc-X",
        "--name",
        "Quarterly report X",
        "--within",
        "10m",
        "--reward",
        "250:EUR",
    ];
    provider_publish(&[&doc_x[..], flags].concat())
}
