//! Chaos test of the exactly-once runtime on the real broker: three `tessera-bench counter`
//! instances share six partitions while inputs stream in; every few seconds one instance is killed
//! with SIGKILL and restarted (and, in `chaos_full` or when `TESSERA_CHAOS_BROKER_RESTART=1`, the
//! broker restarts once via `compose/kafka restart`, halfway through the input). The committed
//! outputs must be exactly those of a run without failures: every key counted 1, 2, ..., n in
//! order, nothing missing, nothing doubled, and every undecodable input dead-lettered exactly once.
//! No transaction may be left open, and instances restarted without local state must restore the
//! final counts from the changelog.
//!
//! CI runs `chaos_small` (20 000 events). The full run (200 000 events, broker restart) is
//! `cargo test --workspace --test chaos -- --ignored chaos_full`.
//! `chaos_three_brokers` runs on the three-node cluster of `compose/kafka up --nodes 3` (replication
//! factor 3, min ISR 2) and, besides the instance kills, SIGKILLs the broker leading the
//! `__transaction_state` partition that coordinates an instance's transactions and, once that one
//! is back, the broker leading an input partition, each while input streams in:
//! `cargo test --workspace --test chaos -- --ignored chaos_three_brokers`. It starts no broker: it
//! fails, naming the command, if the cluster is not up.
//! `TESSERA_CHAOS_LOG` sets the instances' `RUST_LOG`; `TESSERA_CHAOS_KEEP=1` keeps their logs
//! and state after a passing run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tessera_producers::client::{Reader, assign_all, reader};

mod leader_kills;
mod support;
use leader_kills::{LeaderKills, three_nodes};
use support::{Lcg, brokers};

const PARTITIONS: i32 = 6;
const INSTANCES: usize = 3;
const KEYS: usize = 1000;
/// One input in this many cannot be decoded (no key) and must become a dead letter.
const GARBAGE_EVERY: usize = 997;

fn client(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

/// The brokers a chaos run uses, and what befalls them besides the instance kills.
enum Broker {
    /// The single broker at `TESSERA_BROKERS`, restarted halfway through the input if `restart`.
    Single { restart: bool },
    /// The three-node cluster at `brokers`: topics replicated three times, and the [`LeaderKills`].
    Three { brokers: String },
}

impl Broker {
    fn brokers(&self) -> String {
        match self {
            Broker::Single { .. } => brokers(),
            Broker::Three { brokers } => brokers.clone(),
        }
    }

    fn replication(&self) -> i32 {
        match self {
            Broker::Single { .. } => 1,
            Broker::Three { .. } => 3,
        }
    }

    /// How long the feeder spreads the input over on three nodes, where both broker kills, each
    /// down for a while and then restarted, must fall while input still streams in. `None`: the
    /// usual pace, a 1 ms pause every `events / 20 000` records (some 20 s in all).
    fn feed_span(&self) -> Option<Duration> {
        match self {
            Broker::Single { .. } => None,
            Broker::Three { .. } => Some(Duration::from_secs(150)),
        }
    }
}

struct Cluster {
    brokers: String,
    prefix: String,
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn start_instance(&mut self, i: usize) {
        // Appended to, so a restart keeps what the previous incarnation said before it died.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("instance-{i}.log")))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera-bench"));
        // Extra librdkafka properties for the instances, e.g. `debug=fetch` when diagnosing.
        if let Ok(properties) = std::env::var("TESSERA_CHAOS_X") {
            for property in properties.split_whitespace() {
                command.args(["-X", property]);
            }
        }
        let child = command
            .args([
                "counter",
                "--instance",
                &format!("i{i}"),
                "--state-dir",
                self.dir.path().join(format!("state-{i}")).to_str().unwrap(),
                "--metrics-addr",
                "off",
                "--input",
                "in.a",
                "--input",
                "in.b",
                "--output",
                "counts",
                "--idle",
                "1000000000s",
            ])
            .env("TESSERA_BROKERS", &self.brokers)
            .env("TESSERA_TOPIC_PREFIX", &self.prefix)
            .env(
                "RUST_LOG",
                std::env::var("TESSERA_CHAOS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    /// Restarts instances that exited on their own (a fatal error after a broker restart is a
    /// clean crash, and the restart is what recovers from it).
    fn revive(&mut self) {
        for i in 0..INSTANCES {
            let exited = match &mut self.children[i] {
                Some(child) => child.try_wait().unwrap().is_some(),
                None => true,
            };
            if exited {
                self.start_instance(i);
            }
        }
    }

    fn stop_all(&mut self) {
        for child in self.children.iter_mut().flatten() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
        }
        for child in self.children.iter_mut().flatten() {
            child.wait().unwrap();
        }
    }

    fn logs(&self) -> String {
        (0..INSTANCES)
            .map(|i| {
                let text =
                    std::fs::read_to_string(self.dir.path().join(format!("instance-{i}.log")))
                        .unwrap_or_default();
                let tail: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains("dead letter"))
                    .rev()
                    .take(25)
                    .collect();
                format!(
                    "--- instance {i} ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..INSTANCES {
            self.kill(i);
        }
    }
}

fn create_topics(brokers: &str, prefix: &str, replication: i32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin: AdminClient<DefaultClientContext> = client(brokers).create().unwrap();
    let names = ["in.a", "in.b", "counts", "tessera.dead-letters"];
    let topics: Vec<String> = names.iter().map(|t| format!("{prefix}{t}")).collect();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(replication))
                .set("message.timestamp.type", "LogAppendTime")
        })
        .collect();
    for result in runtime
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .unwrap()
    {
        result.unwrap();
    }
}

/// Everything committed on a topic from its beginning, read as clients read the processors'
/// outputs. The chaos loop stops reading between kills, so it polls: each read waits at most a
/// moment.
struct Verifier {
    runtime: tokio::runtime::Runtime,
    reader: Reader,
}

impl Verifier {
    fn new(brokers: &str, prefix: &str, topic: &str) -> Verifier {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let consumer = {
            // The reader starts a wake-up task of its own on the runtime it is made in.
            let _entered = runtime.enter();
            reader(&client(brokers), false).unwrap()
        };
        assign_all(&consumer, &[&format!("{prefix}{topic}")], true).unwrap();
        Verifier {
            runtime,
            reader: consumer,
        }
    }

    /// The next message, if one comes within `timeout`.
    fn poll(&self, timeout: Duration) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        let next = async { tokio::time::timeout(timeout, self.reader.recv()).await };
        self.runtime.block_on(next).ok()
    }
}

/// A counter output's key and the count it names (`key=n`).
fn count_of(message: &impl Message) -> (String, u64) {
    let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
    let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
    let (_, n) = value.split_once('=').expect("a count output");
    (key, n.parse().unwrap())
}

/// The partitions of `topic` whose last stable offset (a `read_committed` consumer's watermark)
/// falls short of their end: an open transaction holds them back.
fn held_back(brokers: &str, prefix: &str, topic: &str) -> Vec<i32> {
    let watermarks = |isolation: &str| -> BaseConsumer {
        client(brokers)
            .set("isolation.level", isolation)
            .create()
            .unwrap()
    };
    let (committed, uncommitted) = (watermarks("read_committed"), watermarks("read_uncommitted"));
    let topic = format!("{prefix}{topic}");
    let timeout = Duration::from_secs(10);
    (0..PARTITIONS)
        .filter(|&partition| {
            let (_, stable) = committed
                .fetch_watermarks(&topic, partition, timeout)
                .unwrap();
            let (_, end) = uncommitted
                .fetch_watermarks(&topic, partition, timeout)
                .unwrap();
            stable < end
        })
        .collect()
}

fn restart_broker() {
    let status = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/kafka"))
        .arg("restart")
        .status()
        .unwrap();
    assert!(status.success(), "compose/kafka restart failed");
}

fn chaos(events: usize, broker: Broker) {
    let brokers = broker.brokers();
    let broker_restart = matches!(broker, Broker::Single { restart: true });
    let prefix = format!("chaos-{}.", uuid::Uuid::new_v4().simple());
    create_topics(&brokers, &prefix, broker.replication());
    let mut leader_kills = match &broker {
        Broker::Three { brokers } => Some(LeaderKills::new(brokers, &prefix)),
        Broker::Single { .. } => None,
    };
    let mut cluster = Cluster {
        brokers: brokers.clone(),
        prefix: prefix.clone(),
        dir: tempfile::tempdir().unwrap(),
        children: (0..INSTANCES).map(|_| None).collect(),
    };
    for i in 0..INSTANCES {
        cluster.start_instance(i);
    }

    // Inputs stream in from a thread, spread over time so kills land mid-processing. With a
    // broker restart the feeder stops halfway until the broker is back, so the processors meet
    // the restart with input behind them and ahead of them. It restarts only once the first half
    // is durably written: an idempotent producer may lose its producer id to a restart and could
    // not tell then which of its records were written, while the processors must recover from it.
    let (halfway, at_halfway) = std::sync::mpsc::channel::<()>();
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    let pause_at = if broker_restart { events / 2 } else { events };
    let producer_prefix = prefix.clone();
    let producer_brokers = brokers.clone();
    let feed_span = broker.feed_span();
    let feeder = std::thread::spawn(move || {
        let connect = || -> BaseProducer {
            client(&producer_brokers)
                .set("partitioner", "murmur2_random")
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", "300000")
                .create()
                .unwrap()
        };
        let mut producer = connect();
        let a = format!("{producer_prefix}in.a");
        let b = format!("{producer_prefix}in.b");
        let per_ms = (events / 20_000).max(1);
        let feed_start = Instant::now();
        for i in 0..events {
            if i == pause_at {
                producer.flush(Duration::from_secs(300)).unwrap();
                halfway.send(()).unwrap();
                resumed.recv().unwrap();
                producer = connect();
            }
            let topic = if i % 2 == 0 { &a } else { &b };
            let key = format!("k{}", i % KEYS);
            let mut record = BaseRecord::to(topic).payload("x");
            if i % GARBAGE_EVERY != 0 {
                record = record.key(&key);
            }
            let mut record = record;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => panic!("the feeder cannot send: {e}"),
                }
            }
            match feed_span {
                // Record i is due i/events of the way through the span.
                Some(span) if i % 100 == 0 => {
                    let due = feed_start + span.mul_f64(i as f64 / events as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                Some(_) => {}
                None if i % per_ms == 0 => std::thread::sleep(Duration::from_millis(1)),
                None => {}
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(300)).unwrap();
    });

    let garbage = (0..events).filter(|i| i % GARBAGE_EVERY == 0).count();
    let counted = events - garbage;
    let outputs_reader = Verifier::new(&brokers, &prefix, "counts");
    let mut outputs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = 0usize;
    let mut rng = Lcg(0x7e55e7a);
    let started = Instant::now();
    let mut next_kill = Instant::now() + Duration::from_secs(3);
    let mut kills = 0;
    let mut restarted_broker = !broker_restart;
    let mut restart_seen = 0;
    let limit = Duration::from_secs(240 + (events / 1000) as u64 * 3);
    while seen < counted {
        assert!(
            started.elapsed() < limit,
            "only {seen} of {counted} outputs after {:?}\n{}",
            started.elapsed(),
            cluster.logs()
        );
        // Broker restarts surface as transient consumer errors; the consumer recovers by itself.
        if let Some(Ok(message)) = outputs_reader.poll(Duration::from_millis(50)) {
            let (key, n) = count_of(&message);
            outputs.entry(key).or_default().push(n);
            seen += 1;
        }
        if Instant::now() >= next_kill && !feeder.is_finished() {
            let victim = rng.next(INSTANCES as u64) as usize;
            cluster.kill(victim);
            kills += 1;
            std::thread::sleep(Duration::from_millis(300));
            cluster.start_instance(victim);
            next_kill = Instant::now() + Duration::from_millis(2000 + rng.next(2000));
        }
        if !restarted_broker && at_halfway.try_recv().is_ok() {
            restart_broker();
            restarted_broker = true;
            restart_seen = seen;
            resume.send(()).unwrap();
        }
        if let Some(leader_kills) = &mut leader_kills {
            leader_kills.step(seen, counted);
        }
        cluster.revive();
    }
    feeder.join().unwrap();
    // Both nodes must have died while outputs were still due, and both be back before the checks.
    if let Some(leader_kills) = &mut leader_kills {
        leader_kills.finish(seen);
    }
    // Anything more would be a duplicate: give it time to show.
    let quiet = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet {
        if let Some(Ok(message)) = outputs_reader.poll(Duration::from_millis(100)) {
            panic!(
                "duplicate output {:?} for {:?}\n{}",
                String::from_utf8_lossy(message.payload().unwrap()),
                String::from_utf8_lossy(message.key().unwrap()),
                cluster.logs()
            );
        }
    }
    cluster.stop_all();
    // No transaction is left open where the instances wrote: a leftover there would hold readers
    // back, or be committed by a later commit.
    for topic in [
        "counts",
        "tessera.dead-letters",
        "tessera.counter.changelog",
    ] {
        assert_eq!(
            held_back(&brokers, &prefix, topic),
            Vec::<i32>::new(),
            "{topic} partitions held back by an open transaction"
        );
    }

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in (0..events).filter(|i| i % GARBAGE_EVERY != 0) {
        *expected.entry(format!("k{}", i % KEYS)).or_default() += 1;
    }
    for (key, n) in &expected {
        let want: Vec<u64> = (1..=*n).collect();
        assert_eq!(
            outputs.get(key),
            Some(&want),
            "counts of {key} after {kills} kills"
        );
    }
    assert_eq!(outputs.len(), expected.len());

    let letters_reader = Verifier::new(&brokers, &prefix, "tessera.dead-letters");
    let mut letters = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Some(Ok(_)) = letters_reader.poll(Duration::from_millis(100)) {
            letters += 1;
        }
    }
    assert_eq!(
        letters, garbage,
        "every undecodable input dead-lettered exactly once"
    );

    // An auditor replaying the inputs must derive exactly what the killed and restarted
    // instances committed.
    let audit = tessera::audit::AuditArgs {
        counter: Some(tessera::run::CounterArgs {
            inputs: vec!["in.a".into(), "in.b".into()],
            output: "counts".into(),
            idle: std::time::Duration::from_secs(1_000_000_000),
        }),
        ..tessera::audit::AuditArgs::of(vec![tessera::audit::Audited::Counter])
    };
    let kafka = tessera::kafka::KafkaArgs {
        topic_prefix: prefix.clone(),
        ..tessera::kafka::KafkaArgs::new(brokers.clone())
    };
    let reports = tessera::audit::audit(&kafka, &audit).unwrap();
    assert!(
        reports[0].clean(),
        "the audit disagrees with the run: {:#?}",
        reports[0]
    );
    assert_eq!(
        reports[0].matched,
        (counted + garbage) as u64,
        "{:#?}",
        reports[0]
    );
    let elapsed = started.elapsed();

    // The final state, as instances without local state restore it from the changelog, is the
    // counts: one more input per key comes out as that key's next count.
    for i in 0..INSTANCES {
        let _ = std::fs::remove_dir_all(cluster.dir.path().join(format!("state-{i}")));
        cluster.start_instance(i);
    }
    let producer: BaseProducer = client(&brokers)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for key in expected.keys() {
        producer
            .send(
                BaseRecord::to(&format!("{prefix}in.a"))
                    .key(key)
                    .payload("x"),
            )
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while next.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} counts after the restore\n{}",
            next.len(),
            expected.len(),
            cluster.logs()
        );
        if let Some(Ok(message)) = outputs_reader.poll(Duration::from_millis(100)) {
            let (key, n) = count_of(&message);
            assert!(
                next.insert(key.clone(), n).is_none(),
                "{key} counted twice after the restore"
            );
        }
        cluster.revive();
    }
    cluster.stop_all();
    for (key, n) in &expected {
        assert_eq!(
            next[key],
            n + 1,
            "restored count of {key}\n{}",
            cluster.logs()
        );
    }
    if std::env::var_os("TESSERA_CHAOS_KEEP").is_some() {
        let kept = std::mem::replace(&mut cluster.dir, tempfile::tempdir().unwrap()).keep();
        eprintln!("chaos: instance logs and state kept in {}", kept.display());
    }
    eprintln!(
        "chaos: {events} events, {kills} kills, broker restart: {broker_restart} (at {restart_seen} \
         of {counted} outputs), {elapsed:?}; final state restored from the changelog",
    );
    if let Some(leader_kills) = &leader_kills {
        for line in &leader_kills.report {
            eprintln!("chaos: {line}");
        }
    }
}

#[test]
fn chaos_small() {
    let restart = std::env::var("TESSERA_CHAOS_BROKER_RESTART").is_ok_and(|v| v == "1");
    chaos(20_000, Broker::Single { restart });
}

#[test]
#[ignore = "the full chaos run takes minutes; run it with -- --ignored"]
fn chaos_full() {
    chaos(200_000, Broker::Single { restart: true });
}

#[test]
#[ignore = "needs the three-node cluster (compose/kafka up --nodes 3); run it with -- --ignored"]
fn chaos_three_brokers() {
    chaos(
        40_000,
        Broker::Three {
            brokers: three_nodes(),
        },
    );
}
