//! `tessera-bench`: measurements on the real broker, each against a baseline run in the same
//! process on the same data, so the reported number is a ratio that does not depend on the
//! machine's speed. Results go to `docs/BENCHMARKS.md` with the command that produced them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tessera_cores::counter::Counter;
use tessera_runtime::{self as runtime, Config};

use tessera::kafka::KafkaArgs;

/// The `tessera` command built beside this one: the benchmarks that run processors as a user
/// does start it.
pub(crate) fn tessera_command() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the tessera-bench executable")?;
    let tessera = exe.with_file_name("tessera");
    anyhow::ensure!(
        tessera.exists(),
        "{} is missing: build both binaries (`cargo build --release`)",
        tessera.display()
    );
    Ok(tessera)
}

mod audit;
mod idle;
mod matcher;
pub(crate) mod packages;
mod releases;
mod timekeeper;

/// What to measure.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum Bench {
    /// Throughput of the exactly-once runtime with a trivial stateful core (the counter) against
    /// a raw transactional passthrough (consume, copy bytes, same transactions and commit
    /// interval) over the same input on the same broker.
    Runtime {
        /// Input records.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Distinct keys among them.
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// Partitions of the input topic.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Transaction commit interval of both.
        #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
        commit_interval: Duration,
    },
    /// Time back to processing after SIGKILL of a `tessera-bench counter` instance holding many
    /// keys: with its local RocksDB state (resume) against without it (full changelog restore).
    /// Also reports the instance's peak RSS while holding the keys.
    Restore {
        /// Distinct keys held in state (each also has a timer entry).
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        /// Partitions of the input topic.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
    },
    /// Verdict latency of the timekeeper on the real broker (response stamp to verdict stamp),
    /// p50, p99 and p99.9 at a sustained response rate, by thirds of the run and whether it held,
    /// beside a raw transactional passthrough's copy latency at the same rate in the same run.
    Timekeeper(timekeeper::LatencyArgs),
    /// Responses the timekeeper's core judges per second with no broker: every one released
    /// (sealing the offer's half to its responder) on one thread and on all of them, against the
    /// same number refused as TooEarly (nothing sealed) on one thread.
    Releases(releases::ReleasesArgs),
    /// What the four platform processors cost with no traffic at all: records written to the
    /// decision inputs (ticks) and each process's CPU over a window, against one plain idle
    /// consumer of the same topics in this process.
    Idle(idle::IdleArgs),
    /// Replay rate of `tessera audit` (input records per second) over a counter run's log,
    /// against a plain read_committed consume of the same topics in the same run.
    Audit(audit::ReplayArgs),
    /// Publish and open rates of a payload in chunks (`tessera provider publish`, then the
    /// reader `tessera subscriber open` uses), each process's peak RSS, against Kafka's own
    /// ProducerPerformance and ConsumerPerformance moving the same bytes on the same broker.
    Packages(packages::PackagesArgs),
    /// Time to match one offer through the matcher's index over many stored interests, against
    /// a linear scan of the same interests in the same RocksDB store; and the interests' size in
    /// state. Then the reverse: time to match one new subscriber against many open offers, which
    /// late invitations need, through the open offers' index and by a linear scan. Needs no
    /// broker.
    Matcher {
        /// Interests held in state (one to four per subscriber).
        #[arg(long, default_value_t = 1_000_000)]
        interests: usize,
        /// Offers timed through the index.
        #[arg(long, default_value_t = 10_000)]
        offers: usize,
        /// Offers among them also timed through the linear scan (each reads every interest), and
        /// registrations among the late ones (each reads every open offer).
        #[arg(long, default_value_t = 5)]
        scans: usize,
        /// Offers open to late invitations, held in state when the registrations are timed.
        #[arg(long, default_value_t = 100_000)]
        open_offers: usize,
        /// New subscribers timed against the open offers.
        #[arg(long, default_value_t = 10_000)]
        registrations: usize,
    },
}

/// Runs a benchmark and prints its result.
pub(crate) async fn run(kafka: &KafkaArgs, bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Timekeeper(args) => timekeeper::verdict_latency(kafka, args).await,
        Bench::Releases(args) => {
            tokio::task::spawn_blocking(move || releases::release_rate(args)).await?
        }
        Bench::Audit(args) => audit::replay_rate(kafka, args).await,
        Bench::Packages(args) => packages::publish_and_open(kafka, args).await,
        Bench::Idle(args) => idle::idle_cost(kafka, args).await,
        Bench::Runtime {
            events,
            keys,
            partitions,
            commit_interval,
        } => runtime_throughput(kafka, events, keys, partitions, commit_interval).await,
        Bench::Restore { keys, partitions } => restore_time(kafka, keys, partitions).await,
        Bench::Matcher {
            interests,
            offers,
            scans,
            open_offers,
            registrations,
        } => {
            let sizes = matcher::Sizes {
                interests,
                offers,
                scans,
                open_offers,
                registrations,
            };
            tokio::task::spawn_blocking(move || matcher::run(sizes)).await?
        }
    }
}

/// A benchmark's own topics under a fresh prefix: `{prefix}in` (broker-stamped) and `outputs`,
/// `partitions` each. Returns the client settings and the prefix.
async fn fresh_topics(
    kafka: &KafkaArgs,
    outputs: &[&str],
    partitions: i32,
) -> anyhow::Result<(ClientConfig, String)> {
    let client = kafka.client_config()?;
    let prefix = format!(
        "{}bench-{}.",
        kafka.topic_prefix,
        uuid::Uuid::new_v4().simple()
    );
    create_topics(&client, &prefix, outputs, partitions).await?;
    Ok((client, prefix))
}

/// `command`, a `tessera` or `tessera-bench` process, pointed at the cluster `kafka` reaches and
/// at the installation `prefix` names, with the same client properties as this process.
fn on_cluster<'a>(command: &'a mut Command, kafka: &KafkaArgs, prefix: &str) -> &'a mut Command {
    command
        .arg("--brokers")
        .arg(&kafka.brokers)
        .arg("--topic-prefix")
        .arg(prefix);
    if let Some(file) = &kafka.kafka_config {
        command.arg("--kafka-config").arg(file);
    }
    for (key, value) in &kafka.property {
        command.arg("-X").arg(format!("{key}={value}"));
    }
    command
}

/// A fresh installation of every catalogue topic, `partitions` each, for bench `name`: its
/// topics' prefix.
async fn installation(kafka: &KafkaArgs, name: &str, partitions: i32) -> anyhow::Result<String> {
    let prefix = format!(
        "{}bench-{name}-{}.",
        kafka.topic_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let scoped = KafkaArgs {
        topic_prefix: prefix.clone(),
        ..kafka.clone()
    };
    tessera::topics::create(&scoped, partitions, 1).await?;
    Ok(prefix)
}

/// Creates `{prefix}in` (broker-stamped) and the given outputs, `partitions` each.
async fn create_topics(
    client: &ClientConfig,
    prefix: &str,
    outputs: &[&str],
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let input = format!("{prefix}in");
    let outputs: Vec<String> = outputs.iter().map(|t| format!("{prefix}{t}")).collect();
    let mut topics = vec![
        NewTopic::new(&input, partitions, TopicReplication::Fixed(1))
            .set("message.timestamp.type", "LogAppendTime"),
    ];
    topics.extend(
        outputs
            .iter()
            .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1))),
    );
    for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
        result.map_err(|(name, code)| anyhow::anyhow!("cannot create {name}: {code}"))?;
    }
    Ok(())
}

fn bar(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:28} {wide_bar} {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template"),
    );
    bar.set_message(message.to_string());
    bar
}

async fn runtime_throughput(
    kafka: &KafkaArgs,
    events: usize,
    keys: usize,
    partitions: i32,
    commit_interval: Duration,
) -> anyhow::Result<()> {
    if events == 0 || keys == 0 || partitions < 1 {
        bail!("--events, --keys and --partitions must be positive");
    }
    let outputs = ["out.raw", "out.counter", "tessera.dead-letters"];
    let (client, prefix) = fresh_topics(kafka, &outputs, partitions).await?;
    let input = format!("{prefix}in");
    let outputs = [format!("{prefix}out.raw")];

    let ends = produce(&client, &input, events, keys)?;

    let (raw, raw_commits) = {
        let (client, input, output, ends) = (
            client.clone(),
            input.clone(),
            outputs[0].clone(),
            ends.clone(),
        );
        let group = format!("{prefix}raw");
        let observed = committed(&client, &group, &input, &ends, &ProgressBar::hidden());
        let copied = tokio::task::spawn_blocking(move || {
            passthrough(&client, &input, &output, &group, &ends, commit_interval)
        })
        .await??;
        (copied, observed.await??)
    };

    let state = tempfile::tempdir()?;
    let mut config = Config::new(client.clone(), "bench", PathBuf::from(state.path()));
    config.topic_prefix = prefix.clone();
    config.commit_interval = commit_interval;
    let stop = Arc::new(AtomicBool::new(false));
    let core = Counter::new("counter", vec!["in".into()], "out.counter", i64::MAX / 4);
    let started = Instant::now();
    let handle = tokio::spawn(runtime::run(core, config, stop.clone()));
    let progress = bar(events as u64, "tessera runtime (counter)");
    let group = format!("{prefix}tessera.counter");
    let runtime_commits = committed(&client, &group, &input, &ends, &progress).await??;
    let processed = started.elapsed();
    progress.finish();
    stop.store(true, Ordering::Relaxed);
    handle.await??;

    let raw_rate = events as f64 / raw.as_secs_f64();
    let runtime_rate = events as f64 / processed.as_secs_f64();
    println!("events             {events} ({keys} keys, {partitions} partitions)");
    println!(
        "raw passthrough    {:>10.0} events/s ({:.2?})",
        raw_rate, raw
    );
    println!(
        "tessera runtime    {:>10.0} events/s ({:.2?})",
        runtime_rate, processed
    );
    println!("ratio              {:>10.2}", runtime_rate / raw_rate);
    let (raw_steady, runtime_steady) = (
        raw_commits.steady_rate(events as i64),
        runtime_commits.steady_rate(events as i64),
    );
    println!("steady, from each side's first commit (start-up excluded):");
    println!("raw passthrough    {raw_steady:>10.0} events/s");
    println!("tessera runtime    {runtime_steady:>10.0} events/s");
    println!("ratio              {:>10.2}", runtime_steady / raw_steady);
    Ok(())
}

/// Writes `events` records with keys `k0..k{keys}` (from `first_key` on); returns the end offset
/// of every partition.
fn produce(
    client: &ClientConfig,
    topic: &str,
    events: usize,
    keys: usize,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    produce_from(client, topic, 0, events, keys)
}

fn produce_from(
    client: &ClientConfig,
    topic: &str,
    first_key: usize,
    events: usize,
    keys: usize,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let producer: BaseProducer = client
        .clone()
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()?;
    let progress = bar(events as u64, "writing input");
    let payload = [b'x'; 16];
    for i in 0..events {
        let key = format!("k{}", first_key + i % keys);
        send_waiting(
            &producer,
            BaseRecord::to(topic).key(&key).payload(&payload[..]),
        )?;
        if i % 1000 == 0 {
            progress.set_position(i as u64);
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    progress.finish();
    let consumer: BaseConsumer = client.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut ends = BTreeMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (_, high) =
            consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
        ends.insert(partition.id(), high);
    }
    Ok(ends)
}

/// Queues a record, waiting while librdkafka's queue is full; any other error is returned.
fn send_waiting<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, P>,
) -> anyhow::Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// When a consumer group's commits were first seen and when they reached the end.
struct Commits {
    /// The first observation of a commit: when, and how many records it covered.
    first: Option<(Instant, i64)>,
    /// When every partition's end was committed.
    done: Instant,
}

impl Commits {
    /// Records per second from the first commit seen to the last: the steady rate, without the
    /// start-up (joining a group, opening stores) that a short run would otherwise be dominated
    /// by.
    fn steady_rate(&self, total: i64) -> f64 {
        match self.first {
            Some((at, covered)) if self.done > at && covered < total => {
                (total - covered) as f64 / (self.done - at).as_secs_f64()
            }
            _ => f64::NAN,
        }
    }
}

/// [`wait_committed`] on a blocking thread, so the runtime under test keeps the async workers.
fn committed(
    client: &ClientConfig,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    progress: &ProgressBar,
) -> tokio::task::JoinHandle<anyhow::Result<Commits>> {
    let (client, group, topic) = (client.clone(), group.to_string(), topic.to_string());
    let (ends, progress) = (ends.clone(), progress.clone());
    tokio::task::spawn_blocking(move || wait_committed(&client, &group, &topic, &ends, &progress))
}

/// Waits until `group` has committed at least `ends` on every partition of `topic`, watching its
/// commits every 20 ms.
fn wait_committed(
    client: &ClientConfig,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    progress: &ProgressBar,
) -> anyhow::Result<Commits> {
    let consumer: BaseConsumer = client.clone().set("group.id", group).create()?;
    let mut wanted = TopicPartitionList::new();
    for partition in ends.keys() {
        wanted.add_partition(topic, *partition);
    }
    let mut first = None;
    loop {
        let committed = consumer.committed_offsets(wanted.clone(), Duration::from_secs(10))?;
        let mut done = 0;
        let mut all = true;
        for element in committed.elements() {
            let end = ends[&element.partition()];
            let at = match element.offset() {
                Offset::Offset(n) => n.min(end),
                _ => 0,
            };
            done += at;
            all &= at >= end;
        }
        progress.set_position(done as u64);
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        if all {
            return Ok(Commits {
                first,
                done: Instant::now(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The baseline: consume, copy each record's bytes to `output`, and commit in transactions with
/// the consumer offsets every `commit_interval`, as the runtime does, until `ends` are committed. Returns
/// the time from start to the last commit.
fn passthrough(
    client: &ClientConfig,
    input: &str,
    output: &str,
    group: &str,
    ends: &BTreeMap<i32, i64>,
    commit_interval: Duration,
) -> anyhow::Result<Duration> {
    let timeout = Duration::from_secs(10);
    let producer: BaseProducer = client
        .clone()
        .set("transactional.id", group)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    producer.init_transactions(timeout)?;
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment.add_partition_offset(input, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let progress = bar(ends.values().sum::<i64>() as u64, "raw passthrough");
    let started = Instant::now();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut open = false;
    let mut last_commit = Instant::now();
    let mut copied = 0u64;
    loop {
        let mut timeout_poll = Duration::from_millis(20);
        for _ in 0..5000 {
            let Some(message) = consumer.poll(timeout_poll) else {
                break;
            };
            let message = message.context("consuming the benchmark input")?;
            if !open {
                producer.begin_transaction()?;
                open = true;
            }
            let mut record = BaseRecord::to(output).payload(message.payload().unwrap_or_default());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            send_waiting(&producer, record)?;
            next.insert(message.partition(), message.offset() + 1);
            copied += 1;
            timeout_poll = Duration::ZERO;
        }
        let finished = ends
            .iter()
            .all(|(p, end)| next.get(p).is_some_and(|n| n >= end));
        if open && (finished || last_commit.elapsed() >= commit_interval) {
            let mut offsets = TopicPartitionList::new();
            for (partition, offset) in &next {
                offsets.add_partition_offset(input, *partition, Offset::Offset(*offset))?;
            }
            let metadata = consumer.group_metadata().context("no group metadata")?;
            producer.send_offsets_to_transaction(&offsets, &metadata, timeout)?;
            runtime::commit_transaction(&producer, timeout)?;
            open = false;
            last_commit = Instant::now();
            progress.set_position(copied);
        }
        producer.poll(Duration::ZERO);
        if finished && !open {
            progress.finish();
            return Ok(started.elapsed());
        }
    }
}

/// Starts `tessera-bench counter` on `{prefix}in` as a child process, logging to `log`.
fn spawn_counter(
    kafka: &KafkaArgs,
    prefix: &str,
    state: &std::path::Path,
    log: &std::path::Path,
) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find the tessera-bench executable")?;
    let log = std::fs::File::create(log)?;
    Ok(on_cluster(&mut Command::new(exe), kafka, prefix)
        .args([
            "counter",
            "--instance",
            "bench",
            "--metrics-addr",
            "off",
            "--state-dir",
        ])
        .arg(state)
        .args(["--input", "in", "--output", "out", "--idle", "1000000000s"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?)
}

/// Peak and current resident set size of a process, in MiB, from `/proc`.
fn rss_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    Ok((field("VmHWM:"), field("VmRSS:")))
}

async fn restore_time(kafka: &KafkaArgs, keys: usize, partitions: i32) -> anyhow::Result<()> {
    if keys == 0 || partitions < 1 {
        bail!("--keys and --partitions must be positive");
    }
    let (client, prefix) =
        fresh_topics(kafka, &["out", "tessera.dead-letters"], partitions).await?;
    let input = format!("{prefix}in");
    let group = format!("{prefix}tessera.counter");
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");

    let ends = produce(&client, &input, keys, keys)?;
    let mut child = spawn_counter(kafka, &prefix, &state, &dir.path().join("load.log"))?;
    let progress = bar(keys as u64, "loading keys into state");
    let loading = Instant::now();
    committed(&client, &group, &input, &ends, &progress).await??;
    progress.finish();
    let loaded = loading.elapsed();
    // Let the last RocksDB commit land, so the kill below finds local state current.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (peak, current) = rss_mib(child.id())?;
    child.kill()?;
    child.wait()?;

    let mut timings = Vec::new();
    for (name, wipe) in [("local resume", false), ("changelog restore", true)] {
        if wipe {
            std::fs::remove_dir_all(&state)?;
        }
        let extra = (partitions as usize) * 20;
        let ends = produce_from(&client, &input, keys, extra, extra)?;
        let total: i64 = ends.values().sum();
        let started = Instant::now();
        let log = dir.path().join(format!("{}.log", name.replace(' ', "-")));
        let mut child = spawn_counter(kafka, &prefix, &state, &log)?;
        let progress = bar(total as u64, name);
        committed(&client, &group, &input, &ends, &progress).await??;
        progress.finish();
        let elapsed = started.elapsed();
        child.kill()?;
        child.wait()?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let resumed = text.matches("resumed local state").count();
        let restored = text.matches("restored state from the changelog").count();
        timings.push((name, elapsed, resumed, restored));
    }

    println!("keys               {keys} ({partitions} partitions), loaded in {loaded:.2?}");
    println!("peak RSS           {peak:.0} MiB (current {current:.0} MiB) holding the keys");
    for (name, elapsed, resumed, restored) in &timings {
        println!(
            "{name:18} {elapsed:>10.2?} back to processing (tasks resumed {resumed}, restored {restored})"
        );
    }
    let ratio = timings[1].1.as_secs_f64() / timings[0].1.as_secs_f64();
    println!("restore / resume   {ratio:>10.1}x");
    Ok(())
}
