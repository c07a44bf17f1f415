//! Reading what the audit compares: a consumer group's committed offsets, and topics from the
//! beginning up to their end as it is when read, as read_committed consumers (the processors)
//! see them.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::AuditError;
use crate::client::Quiet;
use super::report::At;

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
        .set("group.id", format!("tessera-audit-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // A fetch at a partition's end answers after this long: the audit waits for that answer
        // to know it reached the end, while a fetch with records answers at once anyway.
        .set("fetch.wait.max.ms", "20")
        .create_with_context(Quiet)
        .map_err(kafka("cannot create a Kafka consumer"))
}

/// The partition count of each of `topics`.
pub fn partition_counts(client: &ClientConfig, topics: &[String]) -> Result<Vec<i32>, AuditError> {
    let consumer = reader(client)?;
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(kafka("cannot read the cluster metadata"))?;
    topics
        .iter()
        .map(|name| {
            metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len() as i32)
                .ok_or_else(|| AuditError::MissingTopic(name.clone()))
        })
        .collect()
}

/// The next offset `group` committed on each of `partitions` (absent where it committed none),
/// read until stable: offsets a transaction is still committing are not.
pub fn committed(
    client: &ClientConfig,
    group: &str,
    partitions: &[(String, i32)],
) -> Result<HashMap<String, HashMap<i32, i64>>, AuditError> {
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(kafka("cannot create a Kafka consumer"))?;
    let mut wanted = TopicPartitionList::new();
    for (topic, partition) in partitions {
        wanted.add_partition(topic, *partition);
    }
    let deadline = Instant::now() + STABLE_WITHIN;
    loop {
        let read = consumer.committed_offsets(wanted.clone(), TIMEOUT);
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
            return match read {
                Err(source) => Err(kafka(format!("cannot read the offsets of group {group}"))(source)),
                Ok(_) => Err(AuditError::Unstable(group.to_string())),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One topic being read, with the partitions not at their end yet.
struct Topic {
    consumer: BaseConsumer<Quiet>,
    name: String,
    open: BTreeSet<i32>,
}

/// What reading found besides the records.
#[derive(Debug, Default)]
pub struct Read {
    /// Records taken.
    pub records: u64,
    /// Partitions whose log starts after offset 0: retention deleted what came before.
    pub truncated: Vec<At>,
}

/// Reads every record of `partitions` from the beginning up to the end as each partition is
/// when reached, handing each to `take` in offset order per partition. The progress bar's length
/// is set to the records the partitions hold.
pub fn read(
    client: &ClientConfig,
    partitions: &[(String, i32)],
    progress: &ProgressBar,
    take: &mut dyn FnMut(&BorrowedMessage<'_>) -> Result<(), AuditError>,
) -> Result<Read, AuditError> {
    let mut result = Read::default();
    let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    // One consumer per topic: librdkafka reports a partition's end by partition number alone.
    let mut topics = Vec::new();
    let mut total = 0;
    for (name, numbers) in by_topic {
        let consumer = reader(client)?;
        let mut assignment = TopicPartitionList::new();
        for &partition in &numbers {
            let (low, high) = consumer
                .fetch_watermarks(name, partition, TIMEOUT)
                .map_err(kafka(format!("cannot read the offsets of {name}/{partition}")))?;
            total += (high - low).max(0) as u64;
            if low > 0 {
                result.truncated.push(At::new(name, partition, low));
            }
            assignment
                .add_partition_offset(name, partition, Offset::Beginning)
                .map_err(kafka(format!("cannot assign {name}/{partition}")))?;
        }
        consumer
            .assign(&assignment)
            .map_err(kafka(format!("cannot assign {name}")))?;
        topics.push(Topic {
            consumer,
            name: name.to_string(),
            open: numbers.into_iter().collect(),
        });
    }
    progress.set_length(total);
    progress.set_position(0);
    while topics.iter().any(|t| !t.open.is_empty()) {
        let mut taken = 0;
        for topic in topics.iter_mut().filter(|t| !t.open.is_empty()) {
            for _ in 0..BATCH {
                match topic.consumer.poll(Duration::ZERO) {
                    None => break,
                    Some(Ok(message)) => {
                        if topic.open.contains(&message.partition()) {
                            take(&message)?;
                            taken += 1;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(partition))) => {
                        topic.open.remove(&partition);
                        let mut done = TopicPartitionList::new();
                        done.add_partition(&topic.name, partition);
                        // Stop fetching what was written after the audit reached the end.
                        let _ = topic.consumer.pause(&done);
                    }
                    Some(Err(e)) => {
                        return Err(kafka(format!("cannot read {}", topic.name))(e));
                    }
                }
            }
        }
        result.records += taken;
        progress.inc(taken);
        if taken == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(result)
}
