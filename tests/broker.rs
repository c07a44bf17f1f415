//! The foundation on a real broker: topics are created as the catalogue says, every event type
//! travels through the codec and Kafka intact, the broker (not the producer) stamps records, and
//! `tessera topics check` names a topic whose timestamp type is wrong.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.
//! Each test uses its own topic prefix, so tests run in parallel and leave other topics alone.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera::topics::{self, Created};
use tessera_contract::topics::{self as catalogue, DEFAULT_PARTITIONS};
use tessera_contract::{Event, EventKind, decode, encode, examples};
use tessera_producers::client::{assign_all, reader};

fn home_of(kind: EventKind) -> &'static catalogue::Topic {
    catalogue::ALL
        .iter()
        .find(|t| t.events.contains(&kind))
        .unwrap_or(&catalogue::OFFERS)
}

#[tokio::test]
async fn create_is_idempotent_and_check_passes() {
    let kafka = support::isolated();
    let first = topics::create(&kafka, DEFAULT_PARTITIONS, 1).await.unwrap();
    assert_eq!(first.len(), catalogue::ALL.len());
    assert!(
        first.iter().all(|c| matches!(c, Created::New(_))),
        "{first:?}"
    );
    let second = topics::create(&kafka, DEFAULT_PARTITIONS, 1).await.unwrap();
    assert!(
        second.iter().all(|c| matches!(c, Created::Existing(_))),
        "{second:?}"
    );
    assert_eq!(
        topics::check(&kafka, DEFAULT_PARTITIONS).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn every_event_travels_through_kafka_and_the_broker_stamps_it() {
    let kafka = support::isolated();
    topics::create(&kafka, DEFAULT_PARTITIONS, 1).await.unwrap();

    let producer: FutureProducer = kafka
        .client_config()
        .unwrap()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    // A producer clock far in the past: if the broker kept it, the assertion below would see it.
    const CLIENT_TIME: i64 = 1_000_000_000_000;
    let events = examples::all();
    let mut sent: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for event in &events {
        let topic = home_of(event.kind()).full_name(&kafka.topic_prefix);
        let bytes = encode(event).unwrap();
        producer
            .send(
                FutureRecord::to(&topic)
                    .key("key")
                    .payload(&bytes)
                    .timestamp(CLIENT_TIME),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        sent.entry(topic).or_default().push(event.clone());
    }
    let before = chrono::Utc::now().timestamp_millis() - 60_000;

    // Raw messages, not client records: those leave out the ticks, which must travel too.
    let consumer = reader(&kafka.client_config().unwrap(), false).unwrap();
    let topics: Vec<&str> = sent.keys().map(String::as_str).collect();
    assign_all(&consumer, &topics, true).unwrap();

    let mut received: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.values().map(Vec::len).sum::<usize>() < events.len() {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {received:?}"))
            .unwrap();
        match message.timestamp() {
            Timestamp::LogAppendTime(stamp) => {
                assert_ne!(stamp, CLIENT_TIME);
                assert!(stamp >= before, "stamp {stamp} is not the broker's clock");
            }
            other => panic!("{} carries {other:?}, not LogAppendTime", message.topic()),
        }
        let event = decode(message.payload().unwrap()).unwrap();
        received
            .entry(message.topic().to_string())
            .or_default()
            .push(event);
    }
    // Every record used the same key, so each topic's records share a partition and keep order.
    assert_eq!(received, sent);
    let kinds: std::collections::BTreeSet<_> =
        received.values().flatten().map(Event::kind).collect();
    assert_eq!(kinds.len(), EventKind::ALL.len());
}

#[tokio::test]
async fn check_names_a_topic_with_the_wrong_timestamp_type() {
    let kafka = support::isolated();
    let wrong = catalogue::RESPONSES.full_name(&kafka.topic_prefix);
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().unwrap().create().unwrap();
    // Right in every way but the timestamp type.
    let configs = catalogue::RESPONSES.configs();
    let topic = configs
        .iter()
        .filter(|(key, _)| **key != catalogue::TIMESTAMP_TYPE)
        .fold(
            NewTopic::new(&wrong, DEFAULT_PARTITIONS, TopicReplication::Fixed(1))
                .set(catalogue::TIMESTAMP_TYPE, "CreateTime"),
            |topic, (key, value)| topic.set(key, value),
        );
    let results = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");

    let tessera = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .env("TESSERA_BROKERS", support::brokers())
            .env("TESSERA_TOPIC_PREFIX", &kafka.topic_prefix)
            .output()
            .unwrap()
    };
    let create = tessera(&["topics", "create"]);
    assert!(create.status.success(), "{create:?}");
    let stdout = String::from_utf8_lossy(&create.stdout);
    assert!(stdout.contains(&format!("exists   {wrong}")), "{stdout}");

    let check = tessera(&["topics", "check"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(
        stdout.trim(),
        format!(
            "{wrong}: message.timestamp.type=CreateTime, expected message.timestamp.type=LogAppendTime"
        ),
        "check must name exactly the one wrong topic"
    );
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("error: 1 difference(s)"), "{stderr}");
}

#[test]
fn bad_command_line_input_is_one_clear_line_and_a_failure() {
    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["topics", "create", "--partitions", "0"])
        .env("TESSERA_BROKERS", support::brokers())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "error: --partitions must be at least 1, got 0"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["-X", "no-equals-sign", "topics", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected KEY=VALUE"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changelog_replication_the_cluster_cannot_hold_is_one_clear_line_and_a_failure() {
    let kafka = support::isolated();
    topics::create(&kafka, DEFAULT_PARTITIONS, 1).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    // The counter stands for any processor: the flag is the runtime's, shared by all.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .args([
            "counter",
            "--metrics-addr",
            "off",
            "--changelog-replication-factor",
            "3",
        ])
        .args(["--state-dir", state.path().to_str().unwrap()])
        .args(["--input", "tessera.offers", "--output", "tessera.outcomes"])
        .env("TESSERA_BROKERS", support::brokers())
        .env("TESSERA_TOPIC_PREFIX", &kafka.topic_prefix)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A processor that started anyway would run until stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the processor started with a replication factor the cluster cannot hold");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("the cluster has fewer brokers than the replication factor asked"),
        "{stderr}"
    );
}
