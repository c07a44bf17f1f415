//! Reading what the audit compares: a consumer group's committed offsets, and topics from the
//! beginning up to their end as it is when read, as read_committed consumers (the processors)
//! see them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::AuditError;
use super::report::At;
use tessera_producers::client::{Quiet, reconnects};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long committed offsets may stay unstable (a transaction still completing) before the
/// audit gives up: the runtime waits as long.
const STABLE_WITHIN: Duration = Duration::from_secs(60);
/// Records taken from one topic's consumer before the next topic's gets its turn.
const BATCH: usize = 2000;

fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> AuditError {
    let context = context.into();
    move |source| AuditError::Kafka { context, source }
}

/// A consumer that reads committed records only and commits nothing.
fn reader(client: &ClientConfig) -> Result<BaseConsumer<Quiet>, AuditError> {
    client
        .clone()
        .set(
            "group.id",
            format!("tessera-audit-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // A fetch at a partition's end answers after this long: the audit waits for that answer
        // to know it reached the end, while a fetch with records answers at once anyway.
        .set("fetch.wait.max.ms", "20")
        // librdkafka stops fetching a partition at this many queued records (100 000 by
        // default), which made a reader of small records wait on round trips; the byte bound
        // (queued.max.messages.kbytes) still caps the memory.
        .set("queued.min.messages", "1000000")
        .create_with_context(Quiet)
        .map_err(kafka("cannot create a Kafka consumer"))
}

/// A processor's consumer group as the audit sees it: the topics' partition counts and the
/// group's committed offsets, through one client (each new client costs a connection).
pub struct Group {
    consumer: BaseConsumer<Quiet>,
    name: String,
}

impl Group {
    /// The group `name`; nothing joins it.
    pub fn new(client: &ClientConfig, name: &str) -> Result<Group, AuditError> {
        let consumer = client
            .clone()
            .set("group.id", name)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create_with_context(Quiet)
            .map_err(kafka("cannot create a Kafka consumer"))?;
        Ok(Group {
            consumer,
            name: name.to_string(),
        })
    }

    /// The partition count of each of `topics`.
    pub fn partition_counts(&self, topics: &[String]) -> Result<Vec<i32>, AuditError> {
        topics
            .iter()
            .map(|name| {
                // One topic at a time: a shared cluster's full metadata can be large.
                let metadata = self
                    .consumer
                    .fetch_metadata(Some(name), TIMEOUT)
                    .map_err(kafka(format!("cannot read the metadata of {name}")))?;
                metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
                    .map(|t| t.partitions().len() as i32)
                    .ok_or_else(|| AuditError::MissingTopic(name.clone()))
            })
            .collect()
    }

    /// The next offset the group committed on each of `partitions` (absent where it committed
    /// none), read until stable: offsets a transaction is still committing are not.
    pub fn committed(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<HashMap<String, HashMap<i32, i64>>, AuditError> {
        let mut wanted = TopicPartitionList::new();
        for (topic, partition) in partitions {
            wanted.add_partition(topic, *partition);
        }
        let deadline = Instant::now() + STABLE_WITHIN;
        loop {
            let read = self.consumer.committed_offsets(wanted.clone(), TIMEOUT);
            if let Ok(list) = &read
                && list.elements().iter().all(|e| e.error().is_ok())
            {
                let mut committed: HashMap<String, HashMap<i32, i64>> = HashMap::new();
                for element in list.elements() {
                    if let Offset::Offset(next) = element.offset() {
                        committed
                            .entry(element.topic().to_string())
                            .or_default()
                            .insert(element.partition(), next);
                    }
                }
                return Ok(committed);
            }
            if Instant::now() >= deadline {
                let group = self.name.clone();
                return match read {
                    Err(source) => Err(kafka(format!("cannot read the offsets of group {group}"))(
                        source,
                    )),
                    Ok(_) => Err(AuditError::Unstable(group)),
                };
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One topic being read: per partition not done yet, the offset it is read up to (exclusive),
/// or `None` to read up to its end as it is when reached.
struct Topic {
    consumer: BaseConsumer<Quiet>,
    name: String,
    open: HashMap<i32, Option<i64>>,
}

/// How far a reading goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Each partition's end as it is when the reading reaches it.
    End,
    /// Each partition's end as it was when the reading started: records written later are left
    /// out even when the reading sees them.
    Start,
}

/// What reading found besides the records.
#[derive(Debug, Default)]
pub struct Read {
    /// Records taken.
    pub records: u64,
    /// Partitions whose log starts after offset 0: retention deleted what came before.
    pub truncated: Vec<At>,
}

/// A reading of some partitions from their beginning, started: librdkafka fetches ahead from
/// the moment it starts, so a reading started early costs no waiting when its turn comes.
pub struct Reading {
    topics: Vec<Topic>,
    total: u64,
    truncated: Vec<At>,
}

impl Reading {
    /// Starts reading every record of `partitions` from the beginning up to `until`.
    pub fn start(
        client: &ClientConfig,
        partitions: &[(String, i32)],
        until: Until,
    ) -> Result<Reading, AuditError> {
        let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in partitions {
            match by_topic.iter_mut().find(|(name, _)| name == topic) {
                Some((_, numbers)) => numbers.push(*partition),
                None => by_topic.push((topic, vec![*partition])),
            }
        }
        // One consumer per topic: librdkafka reports a partition's end by partition number alone.
        let mut reading = Reading {
            topics: Vec::new(),
            total: 0,
            truncated: Vec::new(),
        };
        for (name, numbers) in by_topic {
            let consumer = reader(client)?;
            let mut assignment = TopicPartitionList::new();
            let mut open = HashMap::new();
            for &partition in &numbers {
                let (low, high) = consumer
                    .fetch_watermarks(name, partition, TIMEOUT)
                    .map_err(kafka(format!(
                        "cannot read the offsets of {name}/{partition}"
                    )))?;
                reading.total += (high - low).max(0) as u64;
                if low > 0 {
                    reading.truncated.push(At::new(name, partition, low));
                }
                let bound = match until {
                    Until::End => None,
                    Until::Start => Some(high),
                };
                if bound.is_some_and(|high| high <= low) {
                    continue;
                }
                open.insert(partition, bound);
                assignment
                    .add_partition_offset(name, partition, Offset::Beginning)
                    .map_err(kafka(format!("cannot assign {name}/{partition}")))?;
            }
            consumer
                .assign(&assignment)
                .map_err(kafka(format!("cannot assign {name}")))?;
            reading.topics.push(Topic {
                consumer,
                name: name.to_string(),
                open,
            });
        }
        Ok(reading)
    }

    /// The records the partitions held when the reading started (aborted ones and transaction
    /// markers included): what a progress bar counts to.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Hands every record to `take` with its topic's name (which librdkafka would otherwise
    /// convert for every record), in offset order per partition, advancing `progress`.
    pub fn take_all(
        mut self,
        progress: &ProgressBar,
        take: &mut dyn FnMut(&str, &BorrowedMessage<'_>) -> Result<(), AuditError>,
    ) -> Result<Read, AuditError> {
        let mut records = 0;
        // Since when the broker has been unreachable with nothing read.
        let mut down_since: Option<Instant> = None;
        while self.topics.iter().any(|t| !t.open.is_empty()) {
            let mut taken = 0;
            for topic in self.topics.iter_mut().filter(|t| !t.open.is_empty()) {
                for _ in 0..BATCH {
                    let (partition, last) = match topic.consumer.poll(Duration::ZERO) {
                        None => break,
                        Some(Ok(message)) => {
                            let partition = message.partition();
                            let Some(&bound) = topic.open.get(&partition) else {
                                continue;
                            };
                            if bound.is_some_and(|end| message.offset() >= end) {
                                (partition, true)
                            } else {
                                take(&topic.name, &message)?;
                                taken += 1;
                                (
                                    partition,
                                    bound.is_some_and(|end| message.offset() + 1 >= end),
                                )
                            }
                        }
                        Some(Err(KafkaError::PartitionEOF(partition))) => (partition, true),
                        // librdkafka reconnects by itself: a dropped connection is a pause,
                        // unless it lasts.
                        Some(Err(e)) if reconnects(&e) => {
                            let since = *down_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > TIMEOUT {
                                return Err(kafka(format!("cannot read {}", topic.name))(e));
                            }
                            break;
                        }
                        Some(Err(e)) => {
                            return Err(kafka(format!("cannot read {}", topic.name))(e));
                        }
                    };
                    if last {
                        topic.open.remove(&partition);
                        let mut done = TopicPartitionList::new();
                        done.add_partition(&topic.name, partition);
                        // Stop fetching what was written after the end.
                        let _ = topic.consumer.pause(&done);
                    }
                }
            }
            records += taken;
            progress.inc(taken);
            if taken > 0 {
                down_since = None;
            }
            if taken == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(Read {
            records,
            truncated: self.truncated,
        })
    }
}

/// Reads every record of `partitions` from the beginning up to the end as each partition is
/// when reached, handing each to `take` in offset order per partition: a plain read_committed
/// consume.
pub fn read(
    client: &ClientConfig,
    partitions: &[(String, i32)],
    progress: &ProgressBar,
    take: &mut dyn FnMut(&str, &BorrowedMessage<'_>) -> Result<(), AuditError>,
) -> Result<Read, AuditError> {
    let reading = Reading::start(client, partitions, Until::End)?;
    progress.set_length(reading.total());
    progress.set_position(0);
    reading.take_all(progress, take)
}
