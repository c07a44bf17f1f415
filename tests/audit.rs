//! Auditing on the real broker: the five cores run on the runtime over a few hundred random
//! offers, responses and outcomes; `tessera audit` then replays the log and must find it clean.
//! Then the log is tampered with, each time on a copy of the decisions or on the decisions
//! themselves, and `tessera audit` must exit non-zero and name the record: a verdict left out, a
//! verdict altered, and a CredentialReleased forged by another producer. `tessera receipt` must
//! show a verdict with its checks holding, and fail a forged one on the timekeeper's signature.
//! Each audit of the timekeeper runs with its key and, as any party can, without it.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera::audit::{AuditArgs, Audited, audit};
use tessera::demo::Processors;
use tessera::kafka::KafkaArgs;
use tessera::topics;
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::{self as catalogue, Topic};
use tessera_contract::*;
use tessera_producers::client::{Record, Writer, partition_for, read_to_end};
use tessera_producers::keys;
use tessera_producers::provider::{self, Sealing};
use tessera_producers::subscriber::{self, Responder};

mod support;
use support::{Lcg, brokers, now_ms};

const PARTITIONS: i32 = 3;
const SUBSCRIBERS: usize = 40;
const OFFERS: usize = 100;
const RESPONSES: usize = 300;
const IDENTIFIERS: u64 = 8;

/// The installation under test and the parties' keys.
struct Installation {
    kafka: KafkaArgs,
    writer: Writer,
    key_file: PathBuf,
    timekeeper: sealing::PublicKey,
    responders: HashMap<String, Responder>,
}

/// The matcher's verifying key of the running processors: the timekeeper's audit needs it.
static MATCHER: OnceLock<VerifyingKey> = OnceLock::new();
/// The ledger's verifying key of the running processors: the ledger's audit needs it.
static LEDGER: OnceLock<VerifyingKey> = OnceLock::new();
/// The delivery's verifying key of the running processors: its audit takes the notices it signed.
static DELIVERY: OnceLock<VerifyingKey> = OnceLock::new();

fn matcher_key() -> VerifyingKey {
    *MATCHER.get().expect("the processors started")
}

/// Provider `id`'s signing key.
fn provider_key(id: &str) -> SigningKey {
    SigningKey::derive(&sealing::PrivateKey::from_bytes(format!("{id:<32}").as_bytes()).unwrap())
}

impl Installation {
    async fn send(&self, signer: &SigningKey, topic: Topic, key: &str, event: Event) {
        let prefix = &self.kafka.topic_prefix;
        self.writer
            .write_as(signer, prefix, topic, key, &event)
            .await
            .unwrap();
    }

    /// Subscribers with two or three interests among the identifiers, so an offer invites some.
    async fn register(&mut self, rng: &mut Lcg) {
        for i in 0..SUBSCRIBERS {
            let id = format!("S{i}");
            let responder = Responder::new(id.clone(), keys::new_private_key());
            let interests = (0..2 + rng.next(2))
                .map(|_| Interest {
                    identifier: Some(format!("doc-{}", rng.next(IDENTIFIERS))),
                    terms: vec![],
                    features: BTreeMap::new(),
                    ranges: vec![],
                })
                .collect();
            let event = SubscriberRegistered {
                event_id: uuid::Uuid::new_v4().to_string(),
                subscriber_id: id.clone(),
                contact: format!("{id}@example.org"),
                public_key: responder.key.public_key().to_bytes(),
                signing_key: responder.signer.verifying_key().to_bytes(),
                interests,
                webhook: None,
                endorsement: None,
                sealed_contact: None,
            };
            self.send(&responder.signer, catalogue::SUBSCRIBERS, &id, event.into())
                .await;
            self.responders.insert(id.clone(), responder);
        }
    }

    /// Offers with deadlines, windows and durations ending within seconds, some with a capacity
    /// or a reward, some invalid; returns when the last rule ends.
    async fn publish(&self, rng: &mut Lcg) -> (Vec<String>, i64) {
        let mut offers = Vec::new();
        let mut last_end = 0;
        for i in 0..OFFERS {
            let offer_id = format!("offer-{i}-{}", uuid::Uuid::new_v4().simple());
            let now = now_ms();
            let time_rule = match rng.next(4) {
                0 => TimeRule::Deadline(Deadline {
                    at: now + 3_000 + rng.next(4_000) as i64,
                }),
                1 => TimeRule::Within(Within {
                    duration_ms: 2_000 + rng.next(4_000) as i64,
                }),
                2 => {
                    let from = now + rng.next(2_000) as i64;
                    TimeRule::Window(Window {
                        from,
                        to: from + 3_000,
                    })
                }
                // A window that ends before it starts: the timekeeper rejects the offer.
                _ => TimeRule::Window(Window {
                    from: now + 5_000,
                    to: now + 1_000,
                }),
            };
            last_end = last_end.max(time_rule.ends_at(now + 1_000));
            let provider_id = format!("P{}", rng.next(5));
            let provider = provider_key(&provider_id);
            let event = tessera_contract::identity::with_package_signed(
                OfferPublished {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    offer_id: offer_id.clone(),
                    provider_id,
                    signing_key: provider.verifying_key().to_bytes(),
                    package_signature: Vec::new(),
                    provider_endorsement: None,
                    provider_contact: "p@example.org".into(),
                    recommendation: Recommendation {
                        identifier: format!("doc-{}", rng.next(IDENTIFIERS)),
                        name: "a document".into(),
                        features: BTreeMap::new(),
                        parameters: BTreeMap::new(),
                    },
                    time_rule,
                    capacity: (rng.next(3) == 0).then(|| 1 + rng.next(2) as i32),
                    reward: (rng.next(2) == 0).then(|| Reward {
                        amount: 100,
                        currency: "EUR".into(),
                    }),
                    decide_within: None,
                    credential: provider::seal(
                        &offer_id,
                        Sealing {
                            target_data: b"the target data",
                            custody: Custody::Escrow,
                            timekeeper: &self.timekeeper,
                        },
                    )
                    .unwrap()
                    .credential,
                    invite_late: false,
                },
                &provider,
            );
            self.send(&provider, catalogue::OFFERS, &offer_id, event.into())
                .await;
            offers.push(offer_id);
        }
        (offers, last_end)
    }

    /// Responses by random subscribers to random offers, a few of them forged (proven with
    /// another key) and a few sent twice.
    async fn respond(&self, rng: &mut Lcg, offers: &[String]) {
        for _ in 0..RESPONSES {
            let offer_id = &offers[rng.next(offers.len() as u64) as usize];
            let subscriber = format!("S{}", rng.next(SUBSCRIBERS as u64));
            let responder = &self.responders[&subscriber];
            let forger;
            let proving = if rng.next(20) == 0 {
                // Signed with another key than the one the subscriber registered.
                forger = Responder::new(responder.subscriber_id.clone(), keys::new_private_key());
                &forger
            } else {
                responder
            };
            let event: Event = subscriber::response(offer_id, proving).into();
            self.send(
                &proving.signer,
                catalogue::RESPONSES,
                offer_id,
                event.clone(),
            )
            .await;
            if rng.next(25) == 0 {
                self.send(&proving.signer, catalogue::RESPONSES, offer_id, event)
                    .await;
            }
        }
    }

    /// An outcome for each release (most accepted), and one for a credential never released.
    async fn settle(&self, rng: &mut Lcg) -> usize {
        let releases: Vec<CredentialReleased> = decided(&self.kafka, |event| match event {
            Event::CredentialReleased(release) => Some(release),
            _ => None,
        })
        .await;
        for release in &releases {
            let event: Event = if rng.next(4) == 0 {
                CredentialDeclined {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    offer_id: release.offer_id.clone(),
                    credential_id: release.credential_id.clone(),
                    subscriber_id: release.subscriber_id.clone(),
                    reason: None,
                }
                .into()
            } else {
                CredentialAccepted {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    offer_id: release.offer_id.clone(),
                    credential_id: release.credential_id.clone(),
                    subscriber_id: release.subscriber_id.clone(),
                }
                .into()
            };
            let signer = &self.responders[&release.subscriber_id].signer;
            self.send(signer, catalogue::OUTCOMES, &release.offer_id, event)
                .await;
        }
        let stranger = CredentialAccepted {
            event_id: uuid::Uuid::new_v4().to_string(),
            offer_id: releases[0].offer_id.clone(),
            credential_id: "never-released".into(),
            subscriber_id: "S0".into(),
        };
        let signer = &self.responders["S0"].signer;
        self.send(
            signer,
            catalogue::OUTCOMES,
            &releases[0].offer_id,
            stranger.into(),
        )
        .await;
        releases.len()
    }
}

/// What the processors committed to the decisions (ticks left out), in partition then offset
/// order.
async fn decisions(kafka: &KafkaArgs) -> Vec<Record> {
    let name = catalogue::DECISIONS.full_name(&kafka.topic_prefix);
    read_to_end(&kafka.client_config().unwrap(), &name, None)
        .await
        .unwrap()
}

/// The decisions that `pick` keeps, in partition then offset order.
async fn decided<T>(kafka: &KafkaArgs, pick: impl Fn(Event) -> Option<T>) -> Vec<T> {
    decisions(kafka)
        .await
        .into_iter()
        .filter_map(|record| pick(record.event?.ok()?))
        .collect()
}

/// The first decision that `pick` keeps; fails if there is none.
async fn first_decided<T>(kafka: &KafkaArgs, pick: impl Fn(Event) -> Option<T>) -> T {
    let mut decided = decided(kafka, pick).await.into_iter();
    decided.next().expect("a decision of the kind picked")
}

/// Copies the decisions (ticks left out) to `copy`, partition by partition, through `change`,
/// which may drop or rewrite a record.
async fn copy_decisions(
    kafka: &KafkaArgs,
    copy: &str,
    mut change: impl FnMut(usize, Event) -> Option<Event>,
) {
    let config = kafka.client_config().unwrap();
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let topic = NewTopic::new(copy, PARTITIONS, TopicReplication::Fixed(1));
    for result in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    let producer: FutureProducer = config
        .clone()
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut verdicts = 0;
    for record in decisions(kafka).await {
        let Some(Ok(event)) = record.event else {
            continue;
        };
        let Some(event) = change(verdicts, event) else {
            verdicts += 1;
            continue;
        };
        verdicts += 1;
        let bytes = encode(&event).unwrap();
        let key = record.key.unwrap_or_default();
        producer
            .send(
                FutureRecord::to(copy)
                    .partition(record.partition)
                    .key(&key)
                    .payload(&bytes),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

/// Audits the timekeeper with a copy of the decisions, `name` in the installation, made through
/// `change` (see [`copy_decisions`]) in their place; fails if the audit finds it clean. Returns the
/// copy's full name and the audit's stdout.
async fn audit_tampered_copy(
    kafka: &KafkaArgs,
    key_file: &Path,
    name: &str,
    change: impl FnMut(usize, Event) -> Option<Event>,
) -> (String, String) {
    let copy = format!("{}{name}", kafka.topic_prefix);
    copy_decisions(kafka, &copy, change).await;
    let replaced = format!("tessera.decisions={copy}");
    let (clean, stdout) = audit_timekeeper(kafka, key_file, &["--output-topic", &replaced]);
    assert!(!clean, "{stdout}");
    (copy, stdout)
}

/// `tessera` on the installation `kafka`.
fn tessera(kafka: &KafkaArgs) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    let installation = [
        "--brokers",
        &brokers(),
        "--topic-prefix",
        &kafka.topic_prefix,
    ];
    command.args(installation);
    command
}

/// `tessera audit timekeeper` on the installation `kafka` with the matcher's key; the caller
/// gives the timekeeper's.
fn audit_command(kafka: &KafkaArgs) -> Command {
    let mut command = tessera(kafka);
    command
        .args(["audit", "timekeeper"])
        .env("TESSERA_MATCHER_KEY", matcher_key().to_string())
        .env("RUST_LOG", "warn");
    command
}

/// Runs `command`; its exit success and stdout.
fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Runs `tessera audit timekeeper` (with `extra` arguments); its exit success and stdout.
fn audit_timekeeper(kafka: &KafkaArgs, key_file: &Path, extra: &[&str]) -> (bool, String) {
    run(audit_command(kafka)
        .arg("--timekeeper-key")
        .arg(key_file)
        .args(extra))
}

/// Runs `tessera audit timekeeper` without the timekeeper's private key, given only its
/// verifying key; its exit success and stdout.
fn audit_timekeeper_without_key(kafka: &KafkaArgs, key_file: &Path) -> (bool, String) {
    let verifying_key = timekeeper_signer(key_file).verifying_key().to_string();
    run(audit_command(kafka).env("TESSERA_TIMEKEEPER_VERIFYING_KEY", verifying_key))
}

fn timekeeper_signer(key_file: &Path) -> SigningKey {
    SigningKey::derive(&keys::load(key_file).unwrap())
}

/// Runs `tessera receipt OFFER SUBSCRIBER` with the timekeeper pinned; its exit success and
/// stdout.
fn receipt(
    kafka: &KafkaArgs,
    key_file: &Path,
    offer_id: &str,
    subscriber_id: &str,
) -> (bool, String) {
    let output = tessera(kafka)
        .args(["receipt", offer_id, subscriber_id])
        .env(
            "TESSERA_TIMEKEEPER_FINGERPRINT",
            timekeeper_signer(key_file).verifying_key().fingerprint(),
        )
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn all_processors(key_file: &Path) -> AuditArgs {
    AuditArgs {
        timekeeper_key: Some(key_file.to_path_buf()),
        matcher_key: Some(matcher_key()),
        ledger_key: LEDGER.get().copied(),
        delivery_verifying_key: DELIVERY.get().copied(),
        ..AuditArgs::of(Audited::all())
    }
}

/// Waits until every processor consumed every input it can decide (nothing pending).
async fn settled(kafka: &KafkaArgs, key_file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (kafka_, args) = (kafka.clone(), all_processors(key_file));
        let reports = tokio::task::spawn_blocking(move || audit(&kafka_, &args))
            .await
            .unwrap()
            .unwrap();
        if reports.iter().all(|r| r.pending == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the processors did not catch up: {reports:#?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audits_find_the_log_clean_and_name_each_tampered_record() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let kafka = KafkaArgs {
        topic_prefix: format!("audit-{}.", uuid::Uuid::new_v4().simple()),
        ..KafkaArgs::new(brokers())
    };
    topics::create(&kafka, PARTITIONS, 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("timekeeper.key");
    let timekeeper = keys::generate(&key_file).unwrap().public_key();
    let processors = Processors::start(
        &kafka,
        &dir.path().join("state"),
        keys::load(&key_file).unwrap(),
    )
    .unwrap();
    MATCHER.set(processors.matcher).unwrap();
    LEDGER.set(processors.ledger).unwrap();
    DELIVERY.set(processors.delivery).unwrap();
    let mut installation = Installation {
        writer: Writer::new(&kafka.client_config().unwrap()).unwrap(),
        kafka: kafka.clone(),
        key_file: key_file.clone(),
        timekeeper,
        responders: HashMap::new(),
    };
    // As `tessera run timekeeper` does: receipts check verdicts against it.
    keys::publish(
        &installation.writer,
        &kafka.topic_prefix,
        keys::Role::Timekeeper,
        &keys::load(&key_file).unwrap(),
    )
    .await
    .unwrap();
    let mut rng = Lcg(0xa0d17);
    installation.register(&mut rng).await;
    // Let the matcher take the registrations in before the offers come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (offers, last_end) = installation.publish(&mut rng).await;
    installation.respond(&mut rng, &offers).await;
    let wait = last_end + 2_000 - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    settled(&kafka, &installation.key_file).await;
    let releases = installation.settle(&mut rng).await;
    assert!(releases > 0, "the workload released nothing");
    settled(&kafka, &installation.key_file).await;
    processors.stop().await.unwrap();

    // The untouched log: every processor's outputs are exactly what the replay derives.
    let args = all_processors(&key_file);
    let reports = {
        let kafka = kafka.clone();
        tokio::task::spawn_blocking(move || audit(&kafka, &args))
            .await
            .unwrap()
            .unwrap()
    };
    for report in &reports {
        assert!(report.clean(), "{report:#?}");
    }
    let timekeeper_report = reports
        .iter()
        .find(|r| r.processor == "timekeeper")
        .unwrap();
    assert!(
        timekeeper_report.matched as usize >= RESPONSES,
        "every response has a verdict: {timekeeper_report:#?}"
    );
    let ledger = reports.iter().find(|r| r.processor == "ledger").unwrap();
    assert!(ledger.matched > 0, "some reward was credited: {ledger:#?}");
    let (clean, stdout) = audit_timekeeper(&kafka, &key_file, &[]);
    assert!(clean, "tessera audit on the untouched log: {stdout}");
    // Anyone re-derives every verdict without the timekeeper's key.
    let (clean, stdout) = audit_timekeeper_without_key(&kafka, &key_file);
    assert!(
        clean,
        "tessera audit without the key on the untouched log: {stdout}"
    );
    assert!(
        stdout.contains("audited without the timekeeper's key"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("timekeeper:") && !l.contains(" 0 matched")),
        "{stdout}"
    );

    // A receipt for a refused responder holds up.
    let rejection = first_decided(&kafka, |event| match event {
        Event::ResponseRejected(r) => Some(r),
        _ => None,
    })
    .await;
    let (held, shown) = receipt(
        &kafka,
        &key_file,
        &rejection.offer_id,
        &rejection.subscriber_id,
    );
    assert!(held, "{shown}");
    assert!(
        shown.contains(&format!("{:?}", rejection.reason)),
        "{shown}"
    );
    assert!(
        shown.contains("holds: it is signed by the timekeeper"),
        "{shown}"
    );
    assert!(!shown.contains("FAILS"), "{shown}");

    // A copy of the decisions with one verdict left out: missing, and the chain breaks after it.
    let mut dropped = None;
    let (_, stdout) =
        audit_tampered_copy(&kafka, &key_file, "copy-left-out", |n, event| match event {
            Event::CredentialReleased(release) if n > 10 && dropped.is_none() => {
                dropped = Some(release.response.clone());
                None
            }
            other => Some(other),
        })
        .await;
    let dropped = dropped.expect("a release to leave out");
    let input = format!(
        "{}tessera.responses/{}@{}",
        kafka.topic_prefix, dropped.partition, dropped.offset
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("missing: CredentialReleased") && l.contains(&input)),
        "the left-out release, derived from {input}, is named: {stdout}"
    );
    assert!(stdout.contains("broken link"), "{stdout}");

    // A copy with one verdict altered: the record is named with the field that changed.
    let mut changed = None;
    let (altered, stdout) =
        audit_tampered_copy(&kafka, &key_file, "copy-altered", |n, event| match event {
            Event::ResponseRejected(mut rejection) if n > 10 && changed.is_none() => {
                changed = Some(rejection.event_id.clone());
                rejection.detail = "it was on time, really".into();
                Some(rejection.into())
            }
            other => Some(other),
        })
        .await;
    let changed = changed.expect("a rejection to alter");
    assert!(
        stdout.lines().any(|l| l.contains("altered:")
            && l.contains(&altered)
            && l.contains(&changed)
            && l.contains("detail:")),
        "the altered rejection {changed} is named: {stdout}"
    );

    // A CredentialReleased forged by another producer on the decisions themselves.
    let genuine = first_decided(&kafka, |event| match event {
        Event::CredentialReleased(r) => Some(r),
        _ => None,
    })
    .await;
    // Self-consistent: its link's digest is recomputed over its content, as anyone can.
    let link = genuine.link.clone();
    let forged = CredentialReleased {
        event_id: uuid::Uuid::new_v4().to_string(),
        subscriber_id: "a stranger".into(),
        subscriber_signing_key: Vec::new(),
        ..genuine
    };
    let mut event: Event = forged.clone().into();
    links::chain(
        &mut event,
        &link.previous,
        link.source,
        link.input.try_into().unwrap(),
    )
    .unwrap();
    let decisions = catalogue::DECISIONS.full_name(&kafka.topic_prefix);
    let written = installation
        .writer
        .write(&decisions, &forged.offer_id, &event)
        .await
        .unwrap();
    assert_eq!(
        written.partition,
        partition_for(&forged.offer_id, PARTITIONS)
    );
    let (clean, stdout) = audit_timekeeper(&kafka, &key_file, &[]);
    assert!(!clean, "{stdout}");
    let place = format!("{decisions}/{}@{}", written.partition, written.offset);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("injected:") && l.contains(&place) && l.contains(&forged.event_id)),
        "the forged release at {place} is named: {stdout}"
    );
    let (clean, stdout) = audit_timekeeper_without_key(&kafka, &key_file);
    assert!(!clean, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("injected:") && l.contains(&place) && l.contains(&forged.event_id)),
        "without the key too, the forged release at {place} is named: {stdout}"
    );
    // Its receipt: the link is consistent, the signature is what gives it away.
    let (held, shown) = receipt(&kafka, &key_file, &forged.offer_id, "a stranger");
    assert!(!held, "{shown}");
    assert!(
        shown.contains("holds: its digest matches its content"),
        "{shown}"
    );
    assert!(
        shown.contains("FAILS: it is signed by the timekeeper: the record is not signed"),
        "{shown}"
    );
}
