//! Other languages on the real broker, with nothing of tessera's but the `.avsc` files: a Java
//! consumer (Apache Avro's `BinaryMessageDecoder`, `kafka-clients`) and a Python one (`fastavro`,
//! `confluent-kafka`) read the topics of a `tessera demo` run, plus every event type the demo does
//! not write and records of every earlier schema release, and print one line per record: topic,
//! partition, offset, event type, event id, the id it is about, and the SHA-256 of the record
//! written back with its current schema. Both must print exactly the lines tessera's own decoder
//! gives. A Java subscriber (JDK Ed25519 and X25519) then registers and answers an invitation;
//! the processors, running in-process, must invite it and release the credential to it.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`), Maven and a JDK 17 for
//! `examples/java`, and a Python with `examples/python/requirements.txt` installed at
//! `TESSERA_PYTHON` (default `~/.cache/tessera/python/bin/python`): `compose/setup` makes it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tessera::demo::Processors;
use tessera::kafka::KafkaArgs;
use tessera_contract::sealing::PublicKey;
use tessera_contract::topics::{self, Topic};
use tessera_contract::{Custody, Event, EventKind, codec, evolution, examples, signing};
use tessera_producers::client::Writer;
use tessera_producers::keys::{self, Halves};

mod support;

/// The field that names what an event is about, as the examples print it: the first it has.
const SUBJECTS: [&str; 6] = [
    "offer_id",
    "subscriber_id",
    "provider_id",
    "role",
    "ticker",
    "processor",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn topic_names(prefix: &str) -> Vec<String> {
    topics::ALL.iter().map(|t| t.full_name(prefix)).collect()
}

/// The topic an event of `kind` goes to; ticks go to a topic a decision reads.
fn topic_of(kind: EventKind) -> Topic {
    *topics::ALL
        .iter()
        .find(|t| t.events.contains(&kind))
        .unwrap_or(&topics::OFFERS)
}

/// Runs a program to its end; fails with its output unless it succeeds.
async fn run(program: &str, args: &[&str], what: &str) -> String {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({what}): {e}; compose/setup installs it")
        });
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The class path of the compiled Java examples (Maven fetches their dependencies on first use).
async fn java_classpath() -> String {
    let pom = root().join("examples/java/pom.xml");
    run(
        "mvn",
        &["-q", "-B", "-f", pom.to_str().unwrap(), "compile"],
        "mvn compile of examples/java",
    )
    .await;
    let target = root().join("examples/java/target");
    let dependencies = std::fs::read_to_string(target.join("classpath")).unwrap();
    format!(
        "{}:{}",
        target.join("classes").display(),
        dependencies.trim()
    )
}

/// The Python that has `examples/python/requirements.txt`: `TESSERA_PYTHON`, else the virtual
/// environment `compose/setup` makes.
fn python() -> String {
    let python = std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").expect("HOME is set");
        format!("{home}/.cache/tessera/python/bin/python")
    });
    assert!(
        Path::new(&python).is_file(),
        "no Python at {python} (TESSERA_PYTHON): compose/setup creates that virtual environment \
         with examples/python/requirements.txt installed"
    );
    python
}

/// One line per record of `topics`, as the examples print them, from tessera's own decoder.
fn rust_lines(brokers: &str, topics: &[String]) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "tessera-interop")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        for partition in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut unread = assignment.count();
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while unread > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the topics' ends not reached in 60 s"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => unread -= 1,
            Some(Err(e)) => panic!("consume failed: {e}"),
            Some(Ok(message)) => {
                let place = format!(
                    "{}\t{}\t{}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                lines.push(match message.payload() {
                    None => format!("{place}\ttombstone"),
                    Some(value) => format!("{place}\t{}", described(value)),
                });
            }
        }
    }
    lines.sort();
    lines
}

/// Type, event id, subject and digest of an encoded event, as the examples print them.
fn described(value: &[u8]) -> String {
    let event = codec::decode(value).unwrap_or_else(|e| panic!("tessera cannot decode: {e}"));
    let fields = codec::fields(value).unwrap();
    // `fields` shows a string as Rust's debug form, which for these ids is its JSON form.
    let field = |name: &str| {
        fields
            .iter()
            .find(|(path, _)| path == name)
            .map(|(_, v)| serde_json::from_str::<String>(v).unwrap_or_else(|_| v.clone()))
    };
    let subject = SUBJECTS.iter().find_map(|name| field(name)).unwrap();
    let rewritten = codec::encode(&event).unwrap();
    format!(
        "tessera.{}\t{}\t{subject}\t{}",
        event.kind().name(),
        field("event_id").unwrap(),
        signing::hex(&Sha256::digest(&rewritten))
    )
}

fn kinds_in(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l.split('\t').nth(3))
        .filter(|kind| *kind != "tombstone")
        .map(str::to_string)
        .collect()
}

/// Fails naming the lines `theirs` lacks and those it has in excess of `ours`.
fn same_lines(consumer: &str, theirs: &str, ours: &[String]) {
    let mut theirs: Vec<String> = theirs.lines().map(str::to_string).collect();
    theirs.sort();
    if theirs == ours {
        return;
    }
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (theirs.iter().collect(), ours.iter().collect());
    let missing: Vec<_> = b.difference(&a).take(10).collect();
    let extra: Vec<_> = a.difference(&b).take(10).collect();
    panic!(
        "the {consumer} consumer printed {} lines, tessera's decoder {}; \
         missing: {missing:#?}; differing or extra: {extra:#?}",
        theirs.len(),
        ours.len()
    );
}

/// Writes the examples of each event kind missing from `lines`, and for each earlier release of
/// each event's schema an example written with it, to the installation `prefix`; returns how many
/// of the latter.
async fn write_the_rest(config: &ClientConfig, prefix: &str, lines: &[String]) -> usize {
    let producer: FutureProducer = config
        .clone()
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let present = kinds_in(lines);
    let examples = examples::all();
    let key = |bytes: &[u8]| described(bytes).split('\t').nth(2).unwrap().to_string();
    for event in &examples {
        let kind = event.kind();
        if !present.contains(&format!("tessera.{}", kind.name())) {
            let bytes = codec::encode(event).unwrap();
            let topic = topic_of(kind).full_name(prefix);
            write(&producer, &topic, &key(&bytes), &bytes).await;
        }
    }
    let mut earlier = 0;
    for &kind in EventKind::ALL {
        let topic = topic_of(kind).full_name(prefix);
        for release in evolution::releases(kind) {
            let bytes = examples
                .iter()
                .filter(|e| e.kind() == kind)
                .find_map(|e| codec::encode_as(e, release.version).ok())
                .unwrap_or_else(|| panic!("no example of {kind:?} fits v{}", release.version));
            // A release that differs from the current one only in docs is the current one.
            if codec::peek_version(&bytes).unwrap() == Some(release.version) {
                write(&producer, &topic, &key(&bytes), &bytes).await;
                earlier += 1;
            }
        }
    }
    earlier
}

async fn write(producer: &FutureProducer, topic: &str, key: &str, bytes: &[u8]) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(bytes),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// The Java subscriber's run: what it printed and what tessera's processors made of it.
struct JavaSubscriber {
    registered: String,
    responded: String,
}

/// Runs the Java subscriber against the processors, on the topics of `kafka`: it registers,
/// provider A offers document X, it answers the invitation, and the timekeeper must release the
/// credential to it.
async fn java_subscriber(kafka: KafkaArgs, classpath: String, schemas: String) -> JavaSubscriber {
    let state = tempfile::tempdir().unwrap();
    let timekeeper_key = keys::new_private_key();
    let timekeeper = timekeeper_key.public_key();
    let processors = Processors::start(&kafka, state.path(), timekeeper_key).unwrap();
    // A failed check stops the processors before it fails the test: left running, they would
    // keep the test's runtime from ever shutting down.
    let outcome =
        tokio::spawn(async move { java_scenario(&kafka, &classpath, &schemas, &timekeeper).await })
            .await;
    processors.stop().await.unwrap();
    outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

async fn java_scenario(
    kafka: &KafkaArgs,
    classpath: &str,
    schemas: &str,
    timekeeper: &PublicKey,
) -> JavaSubscriber {
    let prefix = kafka.topic_prefix.clone();
    let config = kafka.client_config().unwrap();
    let key_dir = tempfile::tempdir().unwrap();
    let id = format!("J-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let java = |command: &'static str| {
        let mut args = vec![
            "-cp".to_string(),
            classpath.to_string(),
            "tessera.examples.Subscriber".into(),
            command.into(),
            kafka.brokers.clone(),
            prefix.clone(),
            schemas.to_string(),
            key_dir.path().display().to_string(),
            id.clone(),
        ];
        if command == "register" {
            args.push("doc-X".into());
        }
        args
    };
    let args = java("register");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let registered = run("java", &args, "the Java subscriber's register").await;

    let writer = Writer::new(&config).unwrap();
    let offer_id = format!(
        "offer-java-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let provider = tempfile::tempdir().unwrap();
    let doc = support::DocX {
        document: b"Quarterly report X",
        custody: Custody::Escrow,
        timekeeper,
        reward: None,
        decide_within: None,
        invite_late: true,
    };
    support::publish_doc_x(
        &writer,
        &prefix,
        &offer_id,
        &Halves::new(provider.path()),
        doc,
    )
    .await;

    let args = java("respond");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let responded = run("java", &args, "the Java subscriber's respond").await;

    let registration = support::wait_for(&config, &prefix, topics::SUBSCRIBERS, &id, 1).await;
    let Event::SubscriberRegistered(registration) = &registration[0] else {
        panic!("not a registration: {registration:?}");
    };
    let requests = support::wait_for(&config, &prefix, topics::REQUESTS, &offer_id, 1).await;
    assert!(
        requests
            .iter()
            .any(|e| matches!(e, Event::InteractionRequested(r)
            if r.subscriber_id == id && r.subscriber_signing_key == registration.signing_key)),
        "the matcher did not invite {id} with the key it registered: {requests:#?}"
    );
    let decisions = support::wait_for(&config, &prefix, topics::DECISIONS, &offer_id, 1).await;
    let released = decisions
        .iter()
        .find_map(|e| match e {
            Event::CredentialReleased(r) if r.subscriber_id == id => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no CredentialReleased names {id}: {decisions:#?}"));
    assert_eq!(released.subscriber_signing_key, registration.signing_key);
    let expected = format!(
        "responded at partition {} offset {}",
        released.response.partition, released.response.offset
    );
    assert!(
        responded.contains(&expected),
        "the release cites another response than the Java subscriber's ({expected}): {responded}"
    );
    assert!(
        responded.contains(&format!("released credential {}", released.credential_id)),
        "the Java subscriber did not read its release: {responded}"
    );
    JavaSubscriber {
        registered,
        responded,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn java_and_python_read_every_event_and_a_java_subscriber_is_released() {
    let classpath = java_classpath().await;
    let python = python();
    let brokers = support::brokers();
    let schemas = root().join("schemas/avro").display().to_string();
    let demo_prefix = format!("interop-{}.", uuid::Uuid::new_v4().simple());
    let demo = env!("CARGO_BIN_EXE_tessera");
    let demo_run = tokio::process::Command::new(demo)
        .arg("demo")
        .env("TESSERA_BROKERS", &brokers)
        .env("TESSERA_TOPIC_PREFIX", &demo_prefix)
        .output()
        .await
        .unwrap();
    assert!(demo_run.status.success(), "tessera demo: {demo_run:?}");

    let kafka = KafkaArgs {
        topic_prefix: demo_prefix.clone(),
        ..KafkaArgs::new(brokers.clone())
    };
    let demo_lines = rust_lines(&brokers, &topic_names(&demo_prefix));
    let earlier = write_the_rest(&kafka.client_config().unwrap(), &demo_prefix, &demo_lines).await;
    assert!(earlier > 0, "no schema has an earlier release on the wire");

    let java_prefix = format!("interop-{}.", uuid::Uuid::new_v4().simple());
    let java_kafka = KafkaArgs {
        topic_prefix: java_prefix.clone(),
        ..KafkaArgs::new(brokers.clone())
    };
    tessera::topics::create(&java_kafka, 3, 1).await.unwrap();
    let subscriber = java_subscriber(java_kafka, classpath.clone(), schemas.clone()).await;

    let mut topics = topic_names(&demo_prefix);
    topics.extend(topic_names(&java_prefix));
    let ours = rust_lines(&brokers, &topics);
    let every: BTreeSet<String> = EventKind::ALL
        .iter()
        .map(|k| format!("tessera.{}", k.name()))
        .collect();
    assert_eq!(
        kinds_in(&ours),
        every,
        "not every event type is on the topics"
    );

    let mut consumer = vec![
        "-cp".to_string(),
        classpath.clone(),
        "tessera.examples.Consume".into(),
        brokers.clone(),
        schemas.clone(),
    ];
    consumer.extend(topics.iter().cloned());
    let args: Vec<&str> = consumer.iter().map(String::as_str).collect();
    let java = run("java", &args, "the Java consumer").await;
    same_lines("Java", &java, &ours);

    let script = root().join("examples/python/consume.py");
    let mut consumer = vec![
        "-B".to_string(),
        script.display().to_string(),
        brokers.clone(),
        schemas.clone(),
    ];
    consumer.extend(topics.iter().cloned());
    let args: Vec<&str> = consumer.iter().map(String::as_str).collect();
    let python = run(&python, &args, "the Python consumer").await;
    same_lines("Python", &python, &ours);

    println!(
        "{} records, {} of them of earlier releases, read alike by Java, Python and tessera; \
         the Java subscriber:\n{}{}",
        ours.len(),
        earlier,
        subscriber.registered,
        subscriber.responded
    );
}
