//! The auditor (DESIGN.md: "auditors replay the log"): re-derives everything a processor must have
//! written from the records it read, and compares it with what its output topics hold.
//!
//! Every core is a pure function of its input partitions, and the runtime and this auditor drive
//! it with the same merge and the same [`tessera_processors::replay::step`], so replaying the same
//! partitions yields the same records byte for byte, event ids included ([`replay`]). The audit
//! reads, in this order: the processor's committed consumer offsets, its output topics, then its
//! inputs. Offsets first: every transaction they reflect had written its outputs by then, so a
//! derived record missing from the outputs read next is a finding only if its input is below the
//! offsets. Outputs before inputs: every output read came from inputs already on the log, which
//! the audit then reads too, so an output nothing derives was not written by the processor
//! ([`compare`]). Nothing is produced and no offset is committed: auditing a live installation
//! changes nothing in it.
//!
//! The audit starts at the beginning of the log: a task's state at an offset in the middle is the
//! fold of everything before it. Retention that deleted the start of an input, or compaction of a
//! table topic (`tessera.subscribers`), removes history the processor saw; the report notes the
//! first, and a replay without the removed records can disagree with the log.
//!
//! The auditor lives with the other clients: it needs nothing from the processors but what any
//! party has, the public cores and the runtime's lane layout ([`Topics::lanes`]), and reads the
//! log as any consumer does.

pub mod compare;
mod log;
pub mod replay;
pub mod report;

use indicatif::ProgressBar;
use rdkafka::ClientConfig;
use rdkafka::message::{Message, Timestamp};
use tessera_processors::Core;
use tessera_processors::merge::MergeError;
use tessera_processors::replay::RawRecord;
use tessera_processors::runtime::Topics;

pub use self::report::{At, Finding, Report, describe};
use self::compare::Comparison;
use self::replay::Replay;

/// Why an audit could not be carried out (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Kafka refused or failed a request.
    #[error("{context}: {source}")]
    Kafka {
        /// What the audit was doing.
        context: String,
        /// What Kafka said.
        source: rdkafka::error::KafkaError,
    },
    /// A topic the processor reads or writes does not exist.
    #[error("topic {0} does not exist")]
    MissingTopic(String),
    /// The inputs differ in partition count, so no processor could have run on them.
    #[error("the inputs are not co-partitioned: {0}")]
    NotCoPartitioned(String),
    /// An input record is not stamped by the broker; processors refuse such topics.
    #[error("{0} does not carry a broker receipt stamp (LogAppendTime); no processor reads it")]
    NotBrokerStamped(At),
    /// A partition's records came out of offset order.
    #[error("{at}: {source}")]
    Merge {
        /// The record.
        at: At,
        /// What the merge said.
        source: MergeError,
    },
    /// The group's committed offsets stayed unstable (a transaction completing) for a minute.
    #[error("the committed offsets of group {0} stayed unstable for a minute")]
    Unstable(String),
}

/// The audit of one processor: its core, its topics on an installation, its consumer group.
pub struct Audit<C: Core> {
    core: C,
    topics: Topics,
    group: String,
}

impl<C: Core> Audit<C> {
    /// Audits `core` on the installation whose topic names start with `prefix`.
    pub fn new(core: C, prefix: &str) -> Self {
        Audit {
            topics: Topics::of(&core, prefix),
            group: Topics::group(&core, prefix),
            core,
        }
    }

    /// Reads the output the core calls `name` (e.g. `tessera.decisions`) from `topic` instead:
    /// to audit a copy of an output topic. Returns whether the core has such an output.
    pub fn read_output_from(&mut self, name: &str, topic: &str) -> bool {
        let mut found = false;
        for (output, full) in self.core.outputs().iter().zip(&mut self.topics.outputs) {
            if output == name {
                *full = topic.to_string();
                found = true;
            }
        }
        if name == tessera_schemas::topics::DEAD_LETTERS.name {
            self.topics.dead_letters = topic.to_string();
            found = true;
        }
        found
    }

    /// The processor's name.
    pub fn processor(&self) -> &str {
        self.core.name()
    }

    /// Reads the log and compares; `progress` shows the records read.
    pub fn run(self, client: &ClientConfig, progress: &ProgressBar) -> Result<Report, AuditError> {
        let Audit {
            core,
            topics,
            group,
        } = self;
        let name = core.name().to_string();
        let counts = log::partition_counts(client, &topics.inputs)?;
        let partitions = counts.first().copied().unwrap_or(0);
        if let Some((topic, count)) = topics.inputs.iter().zip(&counts).find(|(_, c)| **c != partitions) {
            return Err(AuditError::NotCoPartitioned(format!(
                "{topic} has {count} partitions, {} has {partitions}",
                topics.inputs[0]
            )));
        }
        let grouped: Vec<(String, i32)> = topics
            .partitioned()
            .into_iter()
            .flat_map(|topic| (0..partitions).map(move |p| (topic.to_string(), p)))
            .collect();
        let committed = log::committed(client, &group, &grouped)?;
        let mut notes = Vec::new();
        if committed.is_empty() {
            notes.push(format!(
                "group {group} has committed no offsets: the processor consumed nothing yet"
            ));
        }

        let mut outputs = topics.outputs.clone();
        let dead_letters = match outputs.iter().position(|t| *t == topics.dead_letters) {
            Some(i) => i,
            None => {
                outputs.push(topics.dead_letters.clone());
                outputs.len() - 1
            }
        };
        let output_counts = log::partition_counts(client, &outputs)?;
        let mut comparison = Comparison::new(&name, outputs.clone(), dead_letters, committed);
        let output_partitions: Vec<(String, i32)> = outputs
            .iter()
            .zip(output_counts)
            .flat_map(|(topic, count)| (0..count).map(move |p| (topic.clone(), p)))
            .collect();
        progress.set_message(format!("{name}: reading outputs"));
        let read_outputs = log::read(client, &output_partitions, progress, &mut |message| {
            let Some(topic) = outputs.iter().position(|t| t == message.topic()) else {
                return Ok(());
            };
            comparison.published(
                topic,
                message.partition(),
                message.offset(),
                message.key(),
                message.payload(),
            );
            Ok(())
        })?;

        let mut replay = Replay::new(core, &topics, partitions);
        let input_partitions: Vec<(String, i32)> = topics
            .inputs
            .iter()
            .flat_map(|topic| (0..partitions).map(move |p| (topic.clone(), p)))
            .collect();
        progress.set_message(format!("{name}: replaying inputs"));
        let read_inputs = log::read(client, &input_partitions, progress, &mut |message| {
            let at = || At::new(message.topic(), message.partition(), message.offset());
            let Timestamp::LogAppendTime(stamp) = message.timestamp() else {
                return Err(AuditError::NotBrokerStamped(at()));
            };
            let record = RawRecord {
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
            };
            replay
                .push(
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    stamp,
                    record,
                    &mut |step| comparison.step(step),
                )
                .map_err(|source| AuditError::Merge { at: at(), source })
        })?;

        for at in read_outputs.truncated.iter().chain(&read_inputs.truncated) {
            notes.push(format!(
                "{at}: the log starts here, retention deleted what came before; records \
                 derived from it cannot be checked"
            ));
        }
        let mut report = comparison.finish();
        report.inputs_read = read_inputs.records;
        report.inputs_replayed = replay.stepped();
        report.undecided = replay.undecided();
        report.notes = notes;
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
