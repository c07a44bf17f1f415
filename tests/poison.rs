//! Records of any size cannot stop a processor, on the real broker: garbage of 1 byte, 900 KiB and
//! just under the broker's record limit lands on every input of every decision processor while
//! they run. Each gets one dead letter per processor that reads it (not one per task), quoting at
//! most a bounded prefix and naming the whole record by its digest, so the letter always fits;
//! the processors stay up, and an offer published after the garbage still gets its verdicts. A
//! record a client stamped (its topic switched to CreateTime for a moment, the stamp an hour
//! ahead so it would close every open offer) is dead-lettered with a named reason and moves no
//! time. The audit of that log, run ten times, finds the same thing each time: the garbage
//! written onto the processors' own outputs, as injected, and nothing else.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Timestamp;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera::audit::{AuditArgs, Audited, audit};
use tessera::demo::Processors;
use tessera_audit::Finding;
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{self as catalogue, DEAD_LETTERS, DECISIONS, OFFERS, REQUESTS};
use tessera_contract::{Custody, Event, QUOTED_KEY, QUOTED_VALUE, links};
use tessera_cores::replay::CLIENT_STAMPED;
use tessera_producers::client::{Writer, read_to_end};
use tessera_producers::keys::{self, Halves, Role};
use tessera_producers::subscriber::{self, Responder};

mod support;

const PARTITIONS: i32 = 3;
/// The inputs of the decision processors (the matcher, timekeeper, delivery worker and ledger).
const INPUTS: [catalogue::Topic; 6] = [
    catalogue::SUBSCRIBERS,
    catalogue::OFFERS,
    catalogue::REQUESTS,
    catalogue::RESPONSES,
    catalogue::DECISIONS,
    catalogue::COSIGNS,
];
/// The broker's default record limit is 1 048 588 bytes: this leaves room for the batch headers.
const JUST_UNDER_THE_LIMIT: usize = 1_048_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_of_any_size_gets_one_bounded_letter_and_stops_no_processor() {
    let kafka = support::installation(PARTITIONS).await;
    let prefix = kafka.topic_prefix.clone();
    let config = kafka.client_config().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let timekeeper_key = keys::new_private_key();
    let timekeeper = timekeeper_key.public_key();
    let writer = Writer::new(&config).unwrap();
    keys::publish(&writer, &prefix, Role::Timekeeper, &timekeeper_key)
        .await
        .unwrap();
    let timekeeper_signing = SigningKey::derive(&timekeeper_key).verifying_key();
    let processors = Processors::start(&kafka, &dir.path().join("state"), timekeeper_key).unwrap();
    let (matcher, delivery) = (processors.matcher, processors.delivery);
    let b1 = support::register(&writer, &prefix, "B1", &dir.path().join("B1.key")).await;

    // Garbage of three sizes on every input, keyed so each lands on one partition.
    let producer: FutureProducer = config
        .clone()
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    let mut garbage = BTreeMap::new();
    for topic in INPUTS {
        for (n, size) in [1, 900 * 1024, JUST_UNDER_THE_LIMIT]
            .into_iter()
            .enumerate()
        {
            let value: Vec<u8> = (0..size).map(|i| (i * 7 + n) as u8 | 0x80).collect();
            let key = format!("garbage-{n}");
            let delivered = producer
                .send(
                    FutureRecord::to(&topic.full_name(&prefix))
                        .key(&key)
                        .payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("{size} bytes on {}: {e}", topic.name));
            let (partition, offset) = (delivered.partition, delivered.offset);
            let digest = links::record_digest(Some(key.as_bytes()), Some(&value));
            garbage.insert(
                (topic.full_name(&prefix), partition, offset),
                (size, digest),
            );
        }
    }

    // A record stamped by a client, an hour ahead: the broker takes it while the topic is
    // CreateTime. The offers' configuration is set whole (the legacy AlterConfigs replaces it)
    // and put back as the catalogue has it.
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let offers = OFFERS.full_name(&prefix);
    let set_offers = |timestamps: &'static str| {
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&offers));
        for (key, value) in OFFERS.configs() {
            alter = alter.set(key, value);
        }
        alter.set(catalogue::TIMESTAMP_TYPE, timestamps)
    };
    let alter = |timestamps: &'static str| {
        let admin = &admin;
        let change = set_offers(timestamps);
        async move {
            for result in admin
                .alter_configs([&change], &AdminOptions::new())
                .await
                .unwrap()
            {
                result.unwrap();
            }
        }
    };
    alter("CreateTime").await;
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_000_000;
    let mut client_stamped = BTreeSet::new();
    for attempt in 0..20 {
        let key = format!("client-stamped-{attempt}");
        let value = b"\x80 a client's stamp decides nothing".to_vec();
        let delivered = producer
            .send(
                FutureRecord::to(&offers)
                    .key(&key)
                    .payload(&value)
                    .timestamp(ahead),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("client-stamped record: {e}"));
        let source = (offers.clone(), delivered.partition, delivered.offset);
        let digest = links::record_digest(Some(key.as_bytes()), Some(&value));
        garbage.insert(source.clone(), (value.len(), digest));
        if matches!(delivered.timestamp, Timestamp::CreateTime(_)) {
            client_stamped.insert(source);
            break;
        }
        // The broker applies a configuration change shortly after it answers.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alter(catalogue::LOG_APPEND_TIME).await;
    assert_eq!(
        client_stamped.len(),
        1,
        "the broker never took a client's stamp"
    );

    // An offer published after the garbage is still judged.
    let halves = Halves::new(dir.path().join("A"));
    let doc = support::DocX {
        document: b"X",
        custody: Custody::Escrow,
        timekeeper: &timekeeper,
        reward: None,
        decide_within: None,
        invite_late: true,
    };
    support::publish_doc_x(&writer, &prefix, "offer-1", &halves, doc).await;
    support::wait_for(&config, &prefix, REQUESTS, "offer-1", 1).await;
    subscriber::respond(&writer, &prefix, "offer-1", &Responder::new("B1", b1))
        .await
        .unwrap();
    let verdicts = support::wait_for(&config, &prefix, DECISIONS, "offer-1", 1).await;
    assert!(
        matches!(&verdicts[..], [Event::CredentialReleased(r)] if r.subscriber_id == "B1"),
        "{verdicts:?}"
    );

    // One letter per bad record per processor that reads it, bounded, naming the record.
    let readers: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("tessera.subscribers", vec!["matcher"]),
        (
            "tessera.offers",
            vec!["delivery", "ledger-rewards", "matcher", "timekeeper"],
        ),
        ("tessera.requests", vec!["delivery", "timekeeper"]),
        ("tessera.responses", vec!["timekeeper"]),
        ("tessera.decisions", vec!["delivery", "ledger-rewards"]),
        ("tessera.cosigns", vec!["delivery"]),
    ]);
    let readers_of =
        |topic: &str| readers[topic.strip_prefix(prefix.as_str()).unwrap_or(topic)].len();
    let expected: usize = garbage.keys().map(|(topic, _, _)| readers_of(topic)).sum();
    let mut letters = BTreeMap::<(String, String, i32, i64), usize>::new();
    for _ in 0..120 {
        letters.clear();
        for record in read_to_end(&config, &DEAD_LETTERS.full_name(&prefix), None)
            .await
            .unwrap()
        {
            let Some(Ok(Event::DeadLetter(letter))) = record.event else {
                continue;
            };
            let source = (
                letter.source_topic.clone(),
                letter.source_partition,
                letter.source_offset,
            );
            let Some((size, digest)) = garbage.get(&source) else {
                continue;
            };
            if client_stamped.contains(&source) {
                assert_eq!(letter.reason, CLIENT_STAMPED, "{source:?}");
                assert_eq!(letter.source_timestamp, None, "{source:?}");
            } else {
                assert_ne!(letter.reason, CLIENT_STAMPED, "{source:?}");
            }
            assert_eq!(letter.record_digest, digest.to_vec(), "{source:?}");
            assert_eq!(
                letter.task,
                Some(source.1),
                "written by the record's own task"
            );
            assert_eq!(letter.truncated, *size > QUOTED_VALUE, "{source:?}");
            assert!(
                letter
                    .value
                    .as_ref()
                    .is_some_and(|v| v.len() == (*size).min(QUOTED_VALUE))
            );
            assert!(letter.key.as_ref().is_some_and(|k| k.len() <= QUOTED_KEY));
            *letters
                .entry((letter.processor, source.0, source.1, source.2))
                .or_default() += 1;
        }
        if letters.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        letters.len(),
        expected,
        "a letter per bad record and processor: {letters:?}"
    );
    assert!(
        letters.values().all(|&n| n == 1),
        "one, not one per task: {letters:?}"
    );
    processors.stop().await.unwrap();

    // The audit of this log names exactly the garbage written onto the processors' own outputs
    // (the matcher's requests, the timekeeper's decisions) as injected, and the same every time.
    let on_outputs: std::collections::BTreeSet<(String, i32, i64)> = garbage
        .keys()
        .filter(|(topic, _, _)| {
            *topic == REQUESTS.full_name(&prefix) || *topic == DECISIONS.full_name(&prefix)
        })
        .cloned()
        .collect();
    let args = AuditArgs {
        matcher_key: Some(matcher),
        timekeeper_verifying_key: Some(timekeeper_signing),
        delivery_verifying_key: Some(delivery),
        ..AuditArgs::of(
            ["matcher", "timekeeper", "delivery"]
                .into_iter()
                .filter_map(Audited::named)
                .collect(),
        )
    };
    let mut runs = Vec::new();
    for _ in 0..10 {
        let (kafka, args) = (kafka.clone(), args.clone());
        let reports = tokio::task::spawn_blocking(move || audit(&kafka, &args))
            .await
            .unwrap()
            .unwrap();
        let mut injected = std::collections::BTreeSet::new();
        for finding in reports.iter().flat_map(|r| &r.findings) {
            let Finding::Injected { record, .. } = finding else {
                panic!("only the garbage on the outputs is a finding: {finding}");
            };
            injected.insert((record.topic.clone(), record.partition, record.offset));
        }
        assert_eq!(injected, on_outputs);
        runs.push(format!("{reports:?}"));
    }
    assert!(
        runs.windows(2).all(|w| w[0] == w[1]),
        "the same findings every time"
    );
}
