//! The exactly-once shell around a [`Core`]: Kafka in, Kafka out, RocksDB in between.
//!
//! One thread per processor instance consumes the task partitions the group assigns it, merges
//! each task's inputs in deterministic order, steps the core, and produces outputs, dead letters
//! and changelog records in a Kafka transaction that also carries the consumer offsets
//! (`exactly_once_v2` semantics: transactional id per instance, the group generation fences
//! zombies). RocksDB is written only after the transaction commits, with the offsets it reflects.
//! Every transactional call runs on this dedicated thread, never on an async executor, under a
//! watchdog.

mod rebalance;
mod sweep;
mod task;
mod ticker;
mod topics;
mod watchdog;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::message::{Message, Timestamp, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tessera_contract::signing::{self, SigningKey};
use tessera_contract::topics::DEAD_LETTERS;
use tessera_contract::{DeadLetter, Event, Quote, encode};
use tracing::{info, warn};

use self::rebalance::{Change, Context};
use self::task::{Recovery, Task};
use self::ticker::Ticker;
use self::topics::prepare;
use self::watchdog::Watchdog;
use tessera_cores::Core;
pub use tessera_cores::layout::{Lane, Topics};
use tessera_cores::replay::{self, Produced, is_tick};

/// How long a demanded tick may take to come back before another is asked for.
const TICK_ROUND_TRIP: Duration = Duration::from_secs(1);
/// [`Config::tick_gap`] by default: a verdict waiting on idle partitions within about 10 ms of
/// its response on a loopback broker, at no more than 100 ticks a second on each.
pub const DEFAULT_TICK_GAP: Duration = Duration::from_millis(10);

/// How often what one input record leads to may fail to be written before the record is skipped.
const MAX_ATTEMPTS: u32 = 5;
/// The pause after the first failed attempt; it doubles with each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// An input record by its place: topic, partition, offset.
type InputRecord = (String, i32, i64);

/// The longest a poll waits for records while the loop has other work due soon.
const BUSY_POLL: Duration = Duration::from_millis(20);
/// How long after a broadcast record the loop keeps to [`BUSY_POLL`].
const BROADCAST_LATELY: Duration = Duration::from_secs(1);
/// The longest a poll waits for records when nothing else is due: what an idle processor wakes
/// up for (Kafka Streams' `poll.ms` default).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Records taken from librdkafka per loop before the core runs and a commit is considered.
const MAX_POLL_BATCH: usize = 5000;
/// Decided records of a task the core prepares for at once ([`Core::prepare`]): enough to keep
/// every core busy, few enough that the first of them is not held back long (about 1 ms of
/// signature checks each on two cores).
const PREPARED_AT_ONCE: usize = 64;

/// How a processor instance runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client settings: bootstrap servers and any pass-through librdkafka properties.
    pub client: ClientConfig,
    /// Prefix of every topic name (see `tessera topics --topic-prefix`).
    pub topic_prefix: String,
    /// This instance's id: part of its transactional id, so it must be stable across restarts of
    /// the same instance and unique among live instances.
    pub instance: String,
    /// Where task state stores live.
    pub state_dir: PathBuf,
    /// How often the open transaction is committed.
    pub commit_interval: Duration,
    /// Whether the runtime writes ticks to its input partitions when a decision waits for time
    /// to pass on one that is idle ([`ticker`]). Without them such a decision waits for traffic.
    pub ticks: bool,
    /// The least time between two ticks demanded on one input partition. A waiting decision
    /// waits about a tick's round trip plus half of it, and a partition idle beside busy ones
    /// gets at most one tick per gap: the trade between verdict latency and ticks on the log
    /// (docs/TIME.md).
    pub tick_gap: Duration,
    /// Threads of the processor's work pool, 0 for one per core: one runs the processing loop,
    /// the others help it with what the core works out ahead of a batch ([`Core::prepare`]).
    /// The loop takes part in that work itself, so it never waits for a helper to be scheduled
    /// on a busy machine.
    pub work_threads: usize,
    /// Timeout of each transactional call; the watchdog kills the process at four times it.
    pub transaction_timeout: Duration,
    /// Replicas of each changelog partition when the runtime creates the changelog topic; `None`
    /// takes the broker's `default.replication.factor`. An existing changelog is left as it is.
    pub changelog_replication: Option<i32>,
    /// The processor's signing key: every record it writes to an output or the dead letters
    /// carries its signature ([`tessera_contract::signing`]). `None` writes unsigned records,
    /// for workloads no one verifies (the counter).
    pub signer: Option<Arc<SigningKey>>,
}

impl Config {
    /// Defaults: commit every 100 ms, ticks on demand at most every 10 ms per partition, 10 s
    /// transaction timeout, changelog replicated as the broker's default says.
    pub fn new(client: ClientConfig, instance: impl Into<String>, state_dir: PathBuf) -> Self {
        Config {
            client,
            topic_prefix: String::new(),
            instance: instance.into(),
            state_dir,
            commit_interval: Duration::from_millis(100),
            ticks: true,
            tick_gap: DEFAULT_TICK_GAP,
            work_threads: 0,
            transaction_timeout: Duration::from_secs(10),
            changelog_replication: None,
            signer: None,
        }
    }
}

/// The signature header of a consumed record, if it has one.
fn signature_of(message: &rdkafka::message::OwnedMessage) -> Option<Vec<u8>> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == signing::HEADER)
        .and_then(|header| header.value.map(<[u8]>::to_vec))
}

/// Runs `core` until `stop` is set (then commits, leaves the group and returns) or a fatal error.
pub async fn run<C: Core + Send + 'static>(
    core: C,
    config: Config,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let topics = Topics::of(&core, &config.topic_prefix);
    let partitions = prepare(&config, &topics).await?;
    let name = core.name().to_string();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.work_threads)
        .thread_name(move |i| format!("tessera-{name}-{i}"))
        .build()
        .context("cannot start the processor's threads")?;
    tokio::task::spawn_blocking(move || {
        pool.install(|| Runtime::start(core, config, topics, partitions, stop)?.run())
    })
    .await
    .context("the processor thread panicked")?
}

struct Runtime<C: Core> {
    core: C,
    config: Config,
    topics: Topics,
    /// Partition count of every input topic.
    partitions: i32,
    consumer: BaseConsumer<Context>,
    producer: Arc<BaseProducer>,
    transaction_open: Arc<AtomicBool>,
    tasks: BTreeMap<i32, Task>,
    ticker: Option<Ticker>,
    /// Lanes (task, lane) a tick was demanded on and has not arrived at yet: since when, and the
    /// broker's clock then as this processor estimates it (a lower bound, so the tick's stamp is
    /// at least that).
    demanded: HashMap<(i32, usize), (Instant, i64)>,
    /// When a tick was last demanded on each lane (task, lane): the next waits
    /// [`Config::tick_gap`].
    last_tick: HashMap<(i32, usize), Instant>,
    /// When a broadcast consumer last returned a record.
    last_broadcast: Instant,
    /// Input records whose outputs failed to be written, and how often.
    attempts: HashMap<InputRecord, u32>,
    /// Input records to skip when they come round again, with the reason for their letter.
    skipped: HashMap<InputRecord, String>,
    /// How far the broker's clock is ahead of this host's, in milliseconds, as the stamps of
    /// records read say ([`Runtime::note_clock`]): it tells when a timer is due by the clock that
    /// stamps the ticks.
    broker_ahead_ms: i64,
    stop: Arc<AtomicBool>,
    watchdog: Watchdog,
    last_commit: Instant,
}

/// How a failed transaction ends.
enum Failure {
    /// Abort, rewind and carry on.
    Abortable(anyhow::Error),
    /// Abort and rewind, because what one input record led to could not be written: after
    /// [`MAX_ATTEMPTS`] such failures, with a growing pause between them, the record is skipped
    /// (dead-lettered with the error) so it cannot hold the processor forever.
    Unwritable {
        source: InputRecord,
        error: anyhow::Error,
    },
    /// Give up: the process must restart (fenced, invalid state, store failure, or a commit
    /// whose outcome is unknown). A restart is always safe: `init_transactions` and the sweep
    /// abort whatever this incarnation left open, and tasks compare their checkpoints with the
    /// group's offsets.
    Fatal(anyhow::Error),
}

/// Runs a transactional call, retrying it while librdkafka says the same call may be retried
/// (a timeout, a coordinator moving). Aborting instead would be wrong for a commit: a commit that
/// timed out may have succeeded, and rewinding after it would produce its outputs twice.
fn retrying(
    watchdog: &Watchdog,
    what: &str,
    mut call: impl FnMut() -> rdkafka::error::KafkaResult<()>,
) -> Result<(), Failure> {
    let mut attempts = 0;
    loop {
        match watchdog.guard(&mut call) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < 10 => {
                attempts += 1;
                warn!("{what} failed, retrying: {e}");
                std::thread::sleep(Duration::from_millis(200 * attempts));
            }
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                return Err(Failure::Abortable(anyhow::anyhow!("{what}: {e}")));
            }
            Err(e) => return Err(Failure::Fatal(anyhow::anyhow!("{what}: {e}"))),
        }
    }
}

/// Whether a task holding `record` asks for ticks to order it: every record but a tick does
/// (ticks waiting for each other would keep asking for more).
fn waits_for_order(record: &replay::RawRecord) -> bool {
    record.refused.is_some() || !is_tick(record.value.as_deref())
}

/// This host's clock in milliseconds since the epoch, as receipt stamps count.
fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Serves delivery reports until no record is in flight; false if `deadline` came first.
///
/// rdkafka's own `flush` (which its `commit_transaction` calls first) serves them with
/// `poll(100 ms)`, and that poll returns only when the 100 ms are over: every commit with a
/// record still in flight (always, at `linger.ms` 5) took 100 ms whatever its size. 1 ms slices
/// leave that flush nothing to wait for.
fn deliver_all(producer: &BaseProducer, deadline: Instant) -> bool {
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        producer.poll(Duration::from_millis(1));
    }
    true
}

/// Commits the open transaction once every record queued in it is delivered.
pub fn commit_transaction(producer: &BaseProducer, timeout: Duration) -> KafkaResult<()> {
    let deadline = Instant::now() + timeout;
    if !deliver_all(producer, deadline) {
        return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
    }
    producer.commit_transaction(deadline.saturating_duration_since(Instant::now()))
}

/// Aborts the open transaction. The records it queued are purged first and their delivery
/// reports served: librdkafka's abort waits for them, and nobody else polls a `BaseProducer`
/// while this thread is here (inside a rebalance callback, at that), so the abort would time out
/// with the records still queued and leave the producer in a state only a restart clears.
pub(crate) fn abort(producer: &BaseProducer, timeout: Duration) -> rdkafka::error::KafkaResult<()> {
    producer.purge(PurgeConfig::default().queue().inflight());
    deliver_all(producer, Instant::now() + Duration::from_millis(500));
    let mut attempts = 0;
    loop {
        match producer.abort_transaction(timeout) {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < 3 => {
                attempts += 1;
                warn!("aborting the transaction failed, retrying: {e}");
                deliver_all(producer, Instant::now() + Duration::from_millis(500));
            }
            result => return result,
        }
    }
}

impl<C: Core> Runtime<C> {
    fn start(
        core: C,
        config: Config,
        topics: Topics,
        partitions: i32,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let group = Topics::group(&core, &config.topic_prefix);
        let producer: BaseProducer = config
            .client
            .clone()
            .set("transactional.id", format!("{group}.{}", config.instance))
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set(
                "transaction.timeout.ms",
                config.transaction_timeout.as_millis().to_string(),
            )
            .create()
            .context("cannot create the transactional producer")?;
        let producer = Arc::new(producer);
        let watchdog = Watchdog::spawn(config.transaction_timeout * 4, stop.clone());
        watchdog
            .guard(|| producer.init_transactions(config.transaction_timeout))
            .context("cannot initialise transactions (is another instance using the same id?)")?;
        let transaction_open = Arc::new(AtomicBool::new(false));
        let context = Context {
            producer: producer.clone(),
            transaction_open: transaction_open.clone(),
            changes: Mutex::new(Vec::new()),
            timeout: config.transaction_timeout,
        };
        let consumer: BaseConsumer<Context> = config
            .client
            .clone()
            .set("group.id", &group)
            .set("group.instance.id", format!("{group}.{}", config.instance))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            // Range assignment gives one consumer the same partition number of every input
            // topic: the co-partitioned inputs of a task stay together.
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "10000")
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)
            .context("cannot create the consumer")?;
        consumer.subscribe(&topics.partitioned())?;
        // The group join goes on in librdkafka's background meanwhile; the assignment, and with
        // it the first read of the group's offsets, waits for the next poll, after the sweep.
        watchdog
            .guard(|| {
                sweep::sweep(
                    &producer,
                    &config.client,
                    &group,
                    &topics,
                    config.transaction_timeout,
                )
            })
            .context("cannot end the transactions an earlier incarnation left open")?;
        let ticker = config
            .ticks
            .then(|| {
                Ticker::spawn(
                    &config.client,
                    format!("{group}.{}", config.instance),
                    stop.clone(),
                )
            })
            .transpose()?;
        info!(group, instance = %config.instance, inputs = ?topics.inputs, "processor started");
        Ok(Runtime {
            core,
            config,
            topics,
            partitions,
            consumer,
            producer,
            transaction_open,
            tasks: BTreeMap::new(),
            ticker,
            demanded: HashMap::new(),
            last_tick: HashMap::new(),
            broker_ahead_ms: 0,
            last_broadcast: Instant::now(),
            attempts: HashMap::new(),
            skipped: HashMap::new(),
            stop,
            watchdog,
            last_commit: Instant::now(),
        })
    }

    fn run(mut self) -> anyhow::Result<()> {
        let mut last_report = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            self.apply_rebalances()?;
            self.poll_batch()?;
            // Ticks asked for now are on their way while the batch is stepped.
            self.demand_ticks();
            if last_report.elapsed() >= Duration::from_secs(10) {
                self.report_waiting();
                last_report = Instant::now();
            }
            if let Err(failure) = self.process() {
                self.fail(failure)?;
            }
            self.demand_ticks();
            if self.last_commit.elapsed() >= self.config.commit_interval
                && let Err(failure) = self.commit()
            {
                self.fail(failure)?;
            }
            self.producer.poll(Duration::ZERO);
        }
        if let Err(failure) = self.commit() {
            self.fail(failure)?;
        }
        info!("processor stopped; leaving the group");
        Ok(())
    }

    /// Takes every record librdkafka has ready (up to a bound, so commits stay on schedule),
    /// waiting briefly only when none is: [`BUSY_POLL`] while a transaction waits for its commit
    /// or a broadcast consumer (which this poll does not wake for) had records lately, else
    /// [`IDLE_POLL`], as a record wakes the poll at once. So a broadcast record that ends an
    /// idle stretch waits up to [`IDLE_POLL`], and those after it no more than [`BUSY_POLL`].
    fn poll_batch(&mut self) -> anyhow::Result<()> {
        let busy = self.transaction_open.load(Ordering::Relaxed)
            || self.last_broadcast.elapsed() < BROADCAST_LATELY;
        let mut timeout = if busy { BUSY_POLL } else { IDLE_POLL };
        for _ in 0..MAX_POLL_BATCH {
            let polled = self.consumer.poll(timeout).map(|m| m.map(|m| m.detach()));
            // The poll may have assigned partitions and returned one of their records already:
            // open their tasks before accepting it.
            self.apply_rebalances()?;
            match polled {
                Some(Ok(message)) => self.accept(message.partition(), &message)?,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => warn!("consumer: {e}"),
                None => break,
            }
            timeout = Duration::ZERO;
        }
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for partition in partitions {
            for _ in 0..MAX_POLL_BATCH {
                let Some(consumer) = self
                    .tasks
                    .get(&partition)
                    .and_then(|t| t.broadcast.as_ref())
                else {
                    break;
                };
                match consumer.poll(Duration::ZERO).map(|m| m.map(|m| m.detach())) {
                    Some(Ok(message)) => {
                        self.last_broadcast = Instant::now();
                        self.accept(partition, &message)?
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(e)) => warn!("broadcast consumer of task {partition}: {e}"),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Asks the ticker for a tick on every idle input partition that keeps a task from deciding:
    /// one that holds a record it cannot order yet (a record, not a tick), or one whose earliest
    /// timer the broker's clock has passed. Nothing else asks, so an idle installation writes no
    /// ticks. A partition gets no tick within [`Config::tick_gap`] of its last, which bounds the
    /// ticks on each waiting partition, and no second tick while one is on its way that was
    /// asked for after the broker's clock passed every record waiting: that one will order them.
    /// One asked for before a record came cannot, so under steady traffic ticks follow each other
    /// a gap apart, not a round trip apart.
    fn demand_ticks(&mut self) {
        let Some(ticker) = &self.ticker else { return };
        let now = Instant::now();
        let broker_now = unix_millis() + self.broker_ahead_ms;
        let mut waiting = Vec::new();
        for task in self.tasks.values_mut() {
            let latest = task.latest_undecided;
            if task.due_stale {
                task.next_due = self.core.next_due(&task.store);
                task.due_stale = false;
            }
            let waits = task.undecided > 0 || task.next_due.is_some_and(|due| broker_now > due);
            if !waits {
                continue;
            }
            for lane in task.merge.waiting_on() {
                let key = (task.partition, lane);
                let on_its_way = self.demanded.get(&key).is_some_and(|(since, broker)| {
                    now.duration_since(*since) < TICK_ROUND_TRIP && *broker > latest
                });
                let too_soon = self
                    .last_tick
                    .get(&key)
                    .is_some_and(|last| now.duration_since(*last) < self.config.tick_gap);
                if !on_its_way && !too_soon {
                    self.demanded.insert(key, (now, broker_now));
                    self.last_tick.insert(key, now);
                    waiting.push((task.lanes[lane].topic.clone(), task.lanes[lane].partition));
                }
            }
        }
        if !waiting.is_empty() {
            metrics::counter!("tessera_ticks_demanded_total").increment(waiting.len() as u64);
            ticker.demand(waiting);
        }
    }

    /// Learns the broker's clock from a record's receipt stamp. A stamp is at most the broker's
    /// clock when the record arrives here, so each one bounds the clock's lead from below; the
    /// stamp of a tick asked for less than a round trip ago is also close to it, and resets the
    /// estimate, so a broker clock that falls behind is followed too.
    fn note_clock(&mut self, stamp: i64, fresh: bool) {
        let lead = stamp - unix_millis();
        self.broker_ahead_ms = if fresh {
            lead
        } else {
            self.broker_ahead_ms.max(lead)
        };
    }

    /// Says which tasks hold records they cannot order yet, and which input they wait for: the
    /// first thing to look at when a processor seems stuck.
    fn report_waiting(&self) {
        for task in self.tasks.values() {
            let buffered = task.merge.buffered();
            metrics::gauge!("tessera_merge_buffered_records", "partition" => task.partition.to_string())
                .set(buffered as f64);
            let waiting: Vec<(&str, i32)> = task
                .merge
                .waiting_on()
                .into_iter()
                .map(|i| (task.lanes[i].topic.as_str(), task.lanes[i].partition))
                .collect();
            if buffered > 0 && !waiting.is_empty() {
                let positions: Vec<String> = self
                    .consumer
                    .position()
                    .map(|tpl| {
                        tpl.elements()
                            .iter()
                            .filter(|e| waiting.contains(&(e.topic(), e.partition())))
                            .map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset()))
                            .collect()
                    })
                    .unwrap_or_default();
                info!(
                    partition = task.partition,
                    buffered,
                    ?waiting,
                    ?positions,
                    "task waits for input"
                );
            }
        }
    }

    /// Turns assignment changes heard during `poll` into tasks.
    fn apply_rebalances(&mut self) -> anyhow::Result<()> {
        let changes = std::mem::take(&mut *self.consumer.context().changes.lock().expect("lock"));
        for change in changes {
            match change {
                Change::Failed(reason) => {
                    bail!("cannot take up the assigned partitions: {reason}")
                }
                Change::Revoked {
                    partitions,
                    aborted,
                } => {
                    // Drop the revoked tasks first: they are no longer assigned, so they can
                    // neither be rewound nor seeked. The aborted transaction also covered the
                    // tasks that stay, which go back to their last commit.
                    for partition in partitions {
                        if let Some(mut task) = self.tasks.remove(&partition) {
                            task.store.abort();
                        }
                    }
                    if aborted {
                        self.rewind_all()?;
                    }
                }
                Change::Assigned {
                    partitions,
                    committed,
                } => {
                    for partition in partitions {
                        self.open_task(partition, &committed)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn open_task(&mut self, partition: i32, assigned: &TopicPartitionList) -> anyhow::Result<()> {
        let mut committed = TopicPartitionList::new();
        for element in assigned.elements() {
            if element.partition() == partition
                && let Offset::Offset(next) = element.offset()
            {
                committed.add_partition_offset(element.topic(), partition, Offset::Offset(next))?;
            }
        }
        let dir = self
            .config
            .state_dir
            .join(self.core.name())
            .join(partition.to_string());
        let started = Instant::now();
        let (task, recovery) = Task::open(
            partition,
            dir,
            self.topics.lanes(partition, self.partitions),
            &committed,
            &self.topics.changelog,
            &self.config.client,
        )?;
        match recovery {
            Recovery::Resumed => info!(partition, "resumed local state"),
            Recovery::Restored(records) => {
                info!(partition, records, "restored state from the changelog")
            }
        }
        metrics::histogram!("tessera_task_open_seconds").record(started.elapsed().as_secs_f64());
        self.tasks.insert(partition, task);
        Ok(())
    }

    /// Puts a consumed record into the merge of task `partition`.
    fn accept(
        &mut self,
        partition: i32,
        message: &rdkafka::message::OwnedMessage,
    ) -> anyhow::Result<()> {
        let Some(lane) = self
            .tasks
            .get(&partition)
            .and_then(|task| task.lane_of(message.topic(), message.partition()))
        else {
            return Ok(());
        };
        let fresh = !self.demanded.is_empty() && self.demanded.remove(&(partition, lane)).is_some();
        // The topics were LogAppendTime at start, but a topic altered meanwhile (or created by
        // hand) may hold a record a client stamped: it becomes a dead letter, and the
        // processor goes on.
        let (stamp, client_stamped) = match message.timestamp() {
            Timestamp::LogAppendTime(stamp) => (stamp, false),
            _ => (replay::NO_STAMP, true),
        };
        metrics::counter!("tessera_records_in_total", "topic" => message.topic().to_string())
            .increment(1);
        let record = replay::RawRecord {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            signature: signature_of(message),
            refused: client_stamped.then(|| replay::CLIENT_STAMPED.to_string()),
        };
        let waits = waits_for_order(&record);
        if !client_stamped {
            self.note_clock(stamp, fresh && !waits);
        }
        let task = self.tasks.get_mut(&partition).expect("task exists");
        match task
            .merge
            .push(lane, message.partition(), message.offset(), stamp, record)
        {
            Ok(()) if waits => {
                task.undecided += 1;
                task.latest_undecided = task.latest_undecided.max(stamp);
            }
            Ok(()) => {}
            // A redelivery after a seek: the merge already has it.
            Err(e) => tracing::debug!("skipping record: {e}"),
        }
        Ok(())
    }

    /// Steps the core over every decided record of every task: a task's decided records are
    /// taken from its merge [`PREPARED_AT_ONCE`] at a time, so the core can work out ahead, in
    /// parallel, what their steps will ask for ([`Core::prepare`]), then stepped one after
    /// another.
    fn process(&mut self) -> Result<(), Failure> {
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for partition in partitions {
            while self.process_some(partition)? {}
        }
        Ok(())
    }

    /// Steps the core over up to [`PREPARED_AT_ONCE`] decided records of task `partition`;
    /// whether there were any.
    fn process_some(&mut self, partition: i32) -> Result<bool, Failure> {
        let task = self.tasks.get_mut(&partition).expect("task exists");
        let mut topics = Vec::new();
        let mut entries = Vec::new();
        while entries.len() < PREPARED_AT_ONCE
            && let Some(mut entry) = task.merge.pop()
        {
            if waits_for_order(&entry.item) {
                task.undecided -= 1;
            }
            // The merge ranks lanes; the core knows its inputs.
            let lane = &task.lanes[entry.at.topic];
            let topic = lane.topic.clone();
            entry.at.topic = lane.input;
            entry.at.task = partition;
            if !self.skipped.is_empty()
                && let Some(reason) =
                    self.skipped
                        .get(&(topic.clone(), entry.at.partition, entry.at.offset))
            {
                entry.item.refused = Some(reason.clone());
            }
            topics.push(topic);
            entries.push(entry);
        }
        if entries.is_empty() {
            return Ok(false);
        }
        if !self.transaction_open.load(Ordering::SeqCst) {
            self.producer
                .begin_transaction()
                .map_err(|e| Failure::Fatal(e.into()))?;
            self.transaction_open.store(true, Ordering::SeqCst);
        }
        self.core.prepare(&task.store, &entries);
        for (topic, entry) in topics.into_iter().zip(entries) {
            let task = self.tasks.get_mut(&partition).expect("task exists");
            let at = entry.at;
            let source = (topic.clone(), at.partition, at.offset);
            let produced = replay::step(&mut self.core, &mut task.store, entry);
            if let Some(error) = task.store.take_failure() {
                return Err(Failure::Fatal(error.into()));
            }
            task.progress
                .advance(&topic, at.partition, at.offset + 1, at.effective);
            task.dirty = true;
            task.due_stale = true;
            for item in produced {
                if let Err(error) = self.send(item, &topic) {
                    return Err(Failure::Unwritable { source, error });
                }
            }
            // Until its step is written the skip stands: a failure later in the batch rewinds
            // to before it.
            if !self.skipped.is_empty() {
                self.skipped.remove(&source);
            }
            if !self.attempts.is_empty() {
                self.attempts.remove(&source);
            }
        }
        Ok(true)
    }

    fn send(&self, produced: Produced, source: &str) -> anyhow::Result<()> {
        match produced {
            Produced::Output(output) => {
                let topic = &self.topics.outputs[output.topic];
                metrics::counter!("tessera_records_out_total", "topic" => topic.clone())
                    .increment(1);
                let record = BaseRecord::to(topic)
                    .key(output.key.as_str())
                    .payload(output.value.as_slice());
                let name = &self.topics.output_names[output.topic];
                self.produce(self.signed(record, name, output.key.as_bytes(), &output.value))
            }
            Produced::DeadLetter { at, record, reason } => {
                metrics::counter!("tessera_dead_letters_total", "topic" => source.to_string())
                    .increment(1);
                warn!(topic = source, partition = at.partition, offset = at.offset, %reason, "dead letter");
                let quote = Quote::of(record.key.as_deref(), record.value.as_deref());
                let letter = Event::DeadLetter(DeadLetter {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    processor: self.core.name().to_string(),
                    source_topic: source.to_string(),
                    source_partition: at.partition,
                    source_offset: at.offset,
                    source_timestamp: replay::broker_stamp(at.stamp),
                    key: quote.key,
                    value: quote.value,
                    reason,
                    record_digest: quote.record_digest,
                    truncated: quote.truncated,
                    task: Some(at.task),
                });
                let bytes = encode(&letter)?;
                let record = BaseRecord::to(&self.topics.dead_letters)
                    .key(source)
                    .payload(bytes.as_slice());
                self.produce(self.signed(record, DEAD_LETTERS.name, source.as_bytes(), &bytes))
            }
        }
    }

    /// `record` with the processor's signature over its key and value on the topic `name`
    /// (unprefixed), if the processor has a signing key.
    fn signed<'a>(
        &self,
        record: BaseRecord<'a, str, [u8]>,
        name: &str,
        key: &[u8],
        value: &[u8],
    ) -> BaseRecord<'a, str, [u8]> {
        match &self.config.signer {
            Some(signer) => {
                let signature = signer.sign_record(name, Some(key), Some(value));
                record.headers(OwnedHeaders::new().insert(Header {
                    key: signing::HEADER,
                    value: Some(&signature[..]),
                }))
            }
            None => record,
        }
    }

    /// Queues a record in the open transaction, waiting while librdkafka's queue is full.
    fn produce<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
        &self,
        mut record: BaseRecord<'_, K, P>,
    ) -> anyhow::Result<()> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Commits the open transaction: changelog records and checkpoints of every task that moved,
    /// the consumer offsets, then RocksDB.
    fn commit(&mut self) -> Result<(), Failure> {
        if !self.transaction_open.load(Ordering::SeqCst) {
            self.last_commit = Instant::now();
            return Ok(());
        }
        let started = Instant::now();
        let mut offsets = TopicPartitionList::new();
        let mut changelog_records = 0usize;
        for task in self.tasks.values().filter(|t| t.dirty) {
            for (key, value) in task.store.changelog(&task.progress) {
                changelog_records += 1;
                let mut record = BaseRecord::<[u8], [u8]>::to(&self.topics.changelog)
                    .partition(task.partition)
                    .key(&key);
                if let Some(value) = &value {
                    record = record.payload(value);
                }
                self.produce(record).map_err(Failure::Abortable)?;
            }
            for ((topic, partition), next) in &task.progress.next_offsets {
                if self.topics.is_broadcast(topic) {
                    continue;
                }
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(*next))
                    .map_err(|e| Failure::Fatal(e.into()))?;
            }
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| Failure::Fatal(anyhow::anyhow!("no consumer group metadata")))?;
        let timeout = self.config.transaction_timeout;
        let produced = started.elapsed();
        retrying(&self.watchdog, "sending offsets", || {
            self.producer
                .send_offsets_to_transaction(&offsets, &metadata, timeout)
        })?;
        let offsets_sent = started.elapsed();
        retrying(&self.watchdog, "committing", || {
            commit_transaction(&self.producer, timeout)
        })?;
        self.transaction_open.store(false, Ordering::SeqCst);
        for task in self.tasks.values_mut().filter(|t| t.dirty) {
            task.store
                .commit(&task.progress)
                .map_err(|e| Failure::Fatal(e.into()))?;
            task.committed = task.progress.clone();
            task.dirty = false;
        }
        metrics::histogram!("tessera_commit_seconds").record(started.elapsed().as_secs_f64());
        // The interval runs from the end of a commit, as Kafka Streams' commit.interval.ms does:
        // a commit slower than the interval must not leave every batch a commit of its own.
        self.last_commit = Instant::now();
        tracing::debug!(
            produced_us = produced.as_micros() as u64,
            offsets_us = (offsets_sent - produced).as_micros() as u64,
            elapsed_us = started.elapsed().as_micros() as u64,
            changelog_records = changelog_records,
            "committed"
        );
        Ok(())
    }

    /// Handles a failed transaction: abort and rewind, or give up.
    fn fail(&mut self, failure: Failure) -> anyhow::Result<()> {
        match failure {
            Failure::Fatal(error) => {
                Err(error.context("fatal processor error; restart the process"))
            }
            Failure::Unwritable { source, error } => {
                let attempts = self.attempts.entry(source.clone()).or_default();
                *attempts += 1;
                let attempts = *attempts;
                let (topic, partition, offset) = &source;
                let mut pause = None;
                if attempts >= MAX_ATTEMPTS {
                    warn!(
                        topic,
                        partition, offset, attempts, "skipping the record: {error:#}"
                    );
                    let reason = format!(
                        "what the record led to could not be written in {attempts} attempts, so \
                         it was skipped: {error:#}"
                    );
                    self.attempts.remove(&source);
                    self.skipped.insert(source, reason);
                } else {
                    pause = Some(FIRST_BACKOFF * 2u32.pow(attempts - 1));
                    warn!(
                        topic,
                        partition,
                        offset,
                        attempts,
                        ?pause,
                        "retrying the record: {error:#}"
                    );
                }
                self.fail(Failure::Abortable(error))?;
                if let Some(pause) = pause {
                    std::thread::sleep(pause);
                }
                Ok(())
            }
            Failure::Abortable(error) => {
                warn!("aborting transaction: {error:#}");
                metrics::counter!("tessera_transactions_aborted_total", "reason" => "error")
                    .increment(1);
                if self.transaction_open.swap(false, Ordering::SeqCst) {
                    let timeout = self.config.transaction_timeout;
                    self.watchdog
                        .guard(|| abort(&self.producer, timeout))
                        .context("cannot abort the transaction")?;
                    // A transaction that failed may have written where the coordinator lost
                    // track of it (a broker restarting): end that before the next commit does.
                    let group = Topics::group(&self.core, &self.config.topic_prefix);
                    self.watchdog
                        .guard(|| {
                            sweep::sweep(
                                &self.producer,
                                &self.config.client,
                                &group,
                                &self.topics,
                                timeout,
                            )
                        })
                        .context("cannot end what the failed transaction left open")?;
                }
                self.rewind_all()
            }
        }
    }

    /// Puts every task back at its last commit and the consumer at the matching offsets.
    fn rewind_all(&mut self) -> anyhow::Result<()> {
        for task in self.tasks.values_mut() {
            for (topic, partition, offset) in task.rewind()? {
                self.consumer
                    .seek(&topic, partition, offset, Duration::from_secs(10))
                    .with_context(|| {
                        format!("cannot seek {topic}/{partition} back to {offset:?}")
                    })?;
            }
        }
        Ok(())
    }
}
