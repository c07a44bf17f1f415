//! One task: a partition number across all of a processor's input topics (and every partition of
//! its broadcast inputs), with its state store, its merge, and the offsets it has folded in.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tessera_task_store::{Checkpoint, TaskStore};
use tracing::info;

use tessera_cores::layout::Lane;
use tessera_cores::merge::Merge;
use tessera_cores::replay::RawRecord;

/// A task's state between transactions.
pub(crate) struct Task {
    pub partition: i32,
    /// The input partitions merged, in rank order: a record's merge position is its lane index.
    pub lanes: Vec<Lane>,
    /// Reads the broadcast lanes. The group's consumer cannot: it holds one position per
    /// partition, and every task needs its own position in every broadcast partition. These
    /// positions are committed only in the task's checkpoint, which the transaction writes to the
    /// changelog, so they are exactly once like the rest.
    pub broadcast: Option<BaseConsumer>,
    pub store: TaskStore,
    pub merge: Merge<RawRecord>,
    /// Records in the merge that are not ticks: while there are any, the task asks for ticks on
    /// the idle inputs that keep it from ordering them.
    pub undecided: usize,
    /// The latest stamp of a record that waited for order since the task opened or rewound: a
    /// tick asked for before the broker's clock passed it cannot order it, and one asked for after
    /// can.
    pub latest_undecided: i64,
    /// The core's earliest timer as last read from the store, and whether the state has moved
    /// since (then it is read again before it is used): an idle task reads nothing.
    pub next_due: Option<i64>,
    pub due_stale: bool,
    /// What RocksDB and the consumer group hold: the last committed transaction.
    pub committed: Checkpoint,
    /// What the open transaction has folded in so far.
    pub progress: Checkpoint,
    /// Whether `progress` has moved since the last commit.
    pub dirty: bool,
}

/// How a task got its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Local state matched the committed offsets.
    Resumed,
    /// Local state was missing or stale and was rebuilt from this many changelog records.
    Restored(u64),
}

impl Task {
    /// Opens the task's store, rebuilding it from the changelog unless its checkpoint equals the
    /// offsets the consumer group committed.
    pub(super) fn open(
        partition: i32,
        dir: PathBuf,
        lanes: Vec<Lane>,
        committed_offsets: &TopicPartitionList,
        changelog: &str,
        client: &ClientConfig,
    ) -> anyhow::Result<(Task, Recovery)> {
        let grouped = |checkpoint: &Checkpoint| -> Vec<((String, i32), i64)> {
            checkpoint
                .next_offsets
                .iter()
                .filter(|((topic, _), _)| !lanes.iter().any(|l| l.broadcast && &l.topic == topic))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        let mut committed = Checkpoint::default();
        for element in committed_offsets.elements() {
            if let Offset::Offset(next) = element.offset() {
                committed
                    .next_offsets
                    .insert((element.topic().to_string(), element.partition()), next);
            }
        }
        std::fs::create_dir_all(&dir)?;
        let mut store = TaskStore::open(&dir)?;
        let local = store.checkpoint()?.unwrap_or_default();
        let recovery = if grouped(&local) == grouped(&committed) {
            Recovery::Resumed
        } else {
            drop(store);
            TaskStore::destroy(&dir)?;
            store = TaskStore::open(&dir)?;
            Recovery::Restored(restore(&mut store, changelog, partition, client)?)
        };
        let checkpoint = store.checkpoint()?.unwrap_or_default();
        if grouped(&checkpoint) != grouped(&committed) {
            anyhow::bail!(
                "task {partition}: the changelog {changelog} reflects offsets {:?} but the group \
                 committed {:?}; was the changelog deleted or written by another processor?",
                grouped(&checkpoint),
                grouped(&committed)
            );
        }
        let broadcast = if lanes.iter().any(|l| l.broadcast) {
            let consumer: BaseConsumer = client
                .clone()
                .set("group.id", format!("{changelog}-broadcast-{partition}"))
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("isolation.level", "read_committed")
                .create()?;
            Some(consumer)
        } else {
            None
        };
        let mut task = Task {
            partition,
            lanes,
            broadcast,
            store,
            merge: Merge::new(0),
            undecided: 0,
            latest_undecided: i64::MIN,
            next_due: None,
            due_stale: true,
            committed: checkpoint.clone(),
            progress: checkpoint,
            dirty: false,
        };
        task.rewind()?;
        Ok((task, recovery))
    }

    /// The lane of a record read from `topic`/`partition`.
    pub(super) fn lane_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.lanes
            .iter()
            .position(|l| l.partition == partition && l.topic == topic)
    }

    /// Forgets everything since the last commit: the transaction was aborted. Puts the broadcast
    /// lanes back at their committed offsets and returns the group-assigned ones to seek the
    /// group's consumer back to.
    pub(super) fn rewind(&mut self) -> anyhow::Result<Vec<(String, i32, Offset)>> {
        self.store.abort();
        self.progress = self.committed.clone();
        self.dirty = false;
        let effective = self
            .lanes
            .iter()
            .map(|l| {
                self.committed
                    .effective_stamp(&l.topic, l.partition)
                    .unwrap_or(i64::MIN)
            })
            .collect();
        self.merge = Merge::resume(effective);
        self.undecided = 0;
        self.latest_undecided = i64::MIN;
        self.due_stale = true;
        let mut grouped = Vec::new();
        let mut broadcast = TopicPartitionList::new();
        for lane in &self.lanes {
            let offset = self
                .committed
                .next_offset(&lane.topic, lane.partition)
                .map_or(Offset::Beginning, Offset::Offset);
            if lane.broadcast {
                broadcast.add_partition_offset(&lane.topic, lane.partition, offset)?;
            } else {
                grouped.push((lane.topic.clone(), lane.partition, offset));
            }
        }
        if let Some(consumer) = &self.broadcast {
            // A fresh assignment rather than seeks: it also discards records fetched for the old
            // positions.
            consumer.assign(&broadcast)?;
        }
        Ok(grouped)
    }
}

/// Reads the task's changelog partition from the start to its end (the last stable offset, as
/// read_committed sees it) into the store. Returns the number of records applied.
fn restore(
    store: &mut TaskStore,
    changelog: &str,
    partition: i32,
    client: &ClientConfig,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", format!("{changelog}-restore"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(changelog, partition, Duration::from_secs(30))?;
    let total = (high - low).max(0) as u64;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(changelog, partition, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let remaining =
        metrics::gauge!("tessera_restore_remaining_records", "partition" => partition.to_string());
    remaining.set(total as f64);
    // A bar for people at a terminal (indicatif draws nothing otherwise); the gauge for the rest.
    let progress = indicatif::ProgressBar::new(total);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {pos}/{len} records {per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    progress.set_message(format!("restoring task {partition}"));
    info!(
        partition,
        records = total,
        "restoring state from {changelog}"
    );
    let mut applied = 0u64;
    let mut batch = Vec::with_capacity(4096);
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                if let Some(key) = message.key() {
                    batch.push((key.to_vec(), message.payload().map(<[u8]>::to_vec)));
                }
                applied += 1;
                if batch.len() >= 4096 {
                    store.restore(&batch)?;
                    batch.clear();
                    remaining.set((high - message.offset() - 1).max(0) as f64);
                    progress.set_position((message.offset() + 1 - low).max(0) as u64);
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            None if total == 0 => break,
            None => {}
        }
    }
    store.restore(&batch)?;
    remaining.set(0.0);
    progress.finish_and_clear();
    info!(
        partition,
        records = applied,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored state from {changelog}"
    );
    Ok(applied)
}
