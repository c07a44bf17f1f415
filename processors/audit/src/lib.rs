//! The auditor (DESIGN.md: "auditors replay the log"): re-derives everything a processor must have
//! written from the records it read, and compares it with what its output topics hold.
//!
//! Every core is a pure function of its input partitions, and the runtime and this auditor drive
//! it with the same merge and the same [`tessera_cores::replay::step`], so replaying the same
//! partitions yields the same records byte for byte, event ids included ([`replay`]). The audit
//! takes, in this order: the processor's committed consumer offsets; the ends of its output
//! partitions, which bound what it reads of them; then its inputs, each up to its end when the
//! reading reaches it. Offsets first: every transaction they reflect had written its outputs by
//! then, so a derived record missing from the outputs is a finding only if its input is below the
//! offsets. Output ends before inputs: every output below those ends came from inputs already on
//! the log, which the reading of the inputs sees, so an output nothing derives was not written by
//! the processor ([`compare`]). Both are then read at once, and records are paired as they come.
//! Nothing is produced and no offset is committed: auditing a live installation changes nothing
//! in it.
//!
//! The audit starts at the beginning of the log: a task's state at an offset in the middle is the
//! fold of everything before it. Retention that deleted the start of an input, or compaction of a
//! table topic (`tessera.subscribers`), removes history the processor saw; the report notes the
//! first, and a replay without the removed records can disagree with the log.
//!
//! The auditor lives with the other clients: it needs nothing from the processors but what any
//! party has, the public cores and the runtime's lane layout ([`Topics::lanes`]), and reads the
//! log as any consumer does.

pub mod chain;
pub mod compare;
pub mod log;
pub mod replay;
pub mod report;

use std::sync::mpsc;

use indicatif::ProgressBar;
use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use tessera_cores::Core;
use tessera_cores::layout::{Lane, Topics};
use tessera_cores::merge::MergeError;
use tessera_cores::replay::RawRecord;

use self::compare::{Classifier, Comparison, Derived, Logged, Span, keep, slice};
use self::replay::Replay;
pub use self::report::{At, Finding, Report, describe};
use tessera_producers::client::signature_of;

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
    /// One of the audit's threads panicked.
    #[error("an audit thread panicked")]
    Panicked,
    /// The comparison or the replay stopped (another error says why), so the thread feeding it
    /// gave up.
    #[error("the audit stopped before its inputs were all read")]
    Abandoned,
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
        if name == tessera_contract::topics::DEAD_LETTERS.name {
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
    ///
    /// Four threads share the work: one reads the outputs, one reads the inputs, one replays
    /// them, and this one pairs what the replay derives with the outputs as both come in.
    pub fn run(self, client: &ClientConfig, progress: &ProgressBar) -> Result<Report, AuditError>
    where
        C: Send,
    {
        self.run_prepared(client, progress, |_, _| Ok(Vec::new()))
    }

    /// Reads the log and compares, as [`Audit::run`] does, after `prepare` has read what the core
    /// needs from the outputs: for a core that takes from the log what it cannot derive (the
    /// timekeeper replayed without its key). `prepare` runs once the ends of the outputs the
    /// comparison reads are fixed, so it sees every output record the comparison will; what it
    /// returns are notes for the report.
    pub fn run_prepared(
        self,
        client: &ClientConfig,
        progress: &ProgressBar,
        prepare: impl FnOnce(&mut C, &Outputs<'_>) -> Result<Vec<String>, AuditError>,
    ) -> Result<Report, AuditError>
    where
        C: Send,
    {
        let Audit {
            mut core,
            topics,
            group,
        } = self;
        let name = core.name().to_string();
        let view = log::Group::new(client, &group)?;
        let counts = view.partition_counts(&topics.inputs)?;
        let partitions = counts.first().copied().unwrap_or(0);
        if let Some((topic, count)) = topics
            .inputs
            .iter()
            .zip(&counts)
            .find(|(_, c)| **c != partitions)
        {
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
        let committed = view.committed(&grouped)?;
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
        let output_counts = view.partition_counts(&outputs)?;
        let output_partitions: Vec<(String, i32)> = outputs
            .iter()
            .zip(output_counts.iter().copied())
            .flat_map(|(topic, count)| (0..count).map(move |p| (topic.clone(), p)))
            .collect();
        let input_partitions: Vec<(String, i32)> = topics
            .inputs
            .iter()
            .flat_map(|topic| (0..partitions).map(move |p| (topic.clone(), p)))
            .collect();
        // Outputs up to their ends now, inputs up to their ends when reached later: every output
        // read came from inputs the reading of the inputs sees.
        let outputs_reading = log::Reading::start(client, &output_partitions, log::Until::Start)?;
        let inputs_reading = log::Reading::start(client, &input_partitions, log::Until::End)?;
        let names = core.outputs();
        let prepared = Outputs {
            client,
            progress,
            names: &names,
            topics: &outputs,
            partitions: &output_partitions,
        };
        notes.extend(prepare(&mut core, &prepared)?);
        progress.set_length(outputs_reading.total() + inputs_reading.total());
        progress.set_position(0);
        progress.set_message(format!("auditing the {name}"));

        let classifier = Classifier::new(&name, dead_letters);
        let mut comparison = Comparison::new(
            classifier.clone(),
            outputs.clone(),
            output_counts,
            topics.inputs.clone(),
            committed,
        );
        // The partitions' records, markers included: a bound that spares growing by copying.
        comparison.reserve(usize::try_from(outputs_reading.total()).unwrap_or_default());
        let replay = Replay::new(core, &topics, partitions);
        let lanes: Vec<Vec<Lane>> = (0..partitions)
            .map(|p| topics.lanes(p, partitions))
            .collect();
        let inputs = &topics.inputs;
        let (read_outputs, read_inputs, replayed) = std::thread::scope(|scope| {
            let (sender, arrivals) = mpsc::sync_channel(BATCHES_AHEAD);
            let to_compare = sender.clone();
            let classifier_ = classifier.clone();
            let taking_outputs = scope.spawn(move || {
                take_outputs(
                    outputs_reading,
                    &outputs,
                    &classifier_,
                    progress,
                    &to_compare,
                )
            });
            let (input_sender, input_batches) = mpsc::sync_channel(BATCHES_AHEAD);
            let reading_inputs =
                scope.spawn(move || read_inputs(inputs_reading, inputs, progress, &input_sender));
            let replaying = scope
                .spawn(move || replay_inputs(replay, &classifier, inputs, input_batches, &sender));
            for arrival in &arrivals {
                match arrival {
                    Arrival::Logged(logged) => comparison.logged(logged),
                    Arrival::Derived(derived) => comparison.derived(&lanes, derived),
                }
            }
            let read_outputs = taking_outputs.join().unwrap_or(Err(AuditError::Panicked));
            let replayed = replaying.join().unwrap_or(Err(AuditError::Panicked));
            let read_inputs = reading_inputs.join().unwrap_or(Err(AuditError::Panicked));
            match (read_outputs, read_inputs, replayed) {
                (Ok(outputs), Ok(inputs), Ok(replayed)) => Ok((outputs, inputs, replayed)),
                (outputs, inputs, replayed) => {
                    // A thread that failed stops the one feeding it, which then reports
                    // Abandoned: the other error is the cause.
                    let errors = [outputs.err(), replayed.err(), inputs.err()];
                    Err(errors
                        .into_iter()
                        .flatten()
                        .find(|e| !matches!(e, AuditError::Abandoned))
                        .unwrap_or(AuditError::Abandoned))
                }
            }
        })?;

        for at in read_outputs.truncated.iter().chain(&read_inputs.truncated) {
            notes.push(format!(
                "{at}: the log starts here, retention deleted what came before; records \
                 derived from it cannot be checked"
            ));
        }
        let mut report = comparison.finish();
        report.inputs_read = read_inputs.records;
        report.inputs_replayed = replayed.stepped;
        report.undecided = replayed.undecided;
        report.notes = notes;
        Ok(report)
    }
}

/// A core's output topics, for [`Audit::run_prepared`] to read.
pub struct Outputs<'a> {
    client: &'a ClientConfig,
    progress: &'a ProgressBar,
    /// The outputs as the core calls them.
    names: &'a [String],
    /// Their topics on the installation, in the same order.
    topics: &'a [String],
    partitions: &'a [(String, i32)],
}

impl Outputs<'_> {
    /// Hands every record of the output the core calls `name` to `take`, in offset order per
    /// partition, up to each partition's end as it is when reached; returns how many were read.
    pub fn read(
        &self,
        name: &str,
        take: &mut dyn FnMut(&BorrowedMessage<'_>),
    ) -> Result<u64, AuditError> {
        let Some(topic) = self
            .names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.topics[i])
        else {
            return Ok(0);
        };
        let partitions: Vec<(String, i32)> = self
            .partitions
            .iter()
            .filter(|(t, _)| t == topic)
            .cloned()
            .collect();
        self.progress.set_message(format!("reading {topic}"));
        let read = log::read(
            self.client,
            &partitions,
            self.progress,
            &mut |_, message| {
                take(message);
                Ok(())
            },
        )?;
        Ok(read.records)
    }
}

/// Input batches the reader of the inputs may be ahead of the replay (librdkafka holds more).
const BATCHES_AHEAD: usize = 16;
/// Input records per batch.
const BATCH: usize = 4096;

/// An input record read, for the replay; its key and value lie in its batch's buffer.
struct Input {
    /// Index of its topic among the processor's inputs.
    topic: usize,
    partition: i32,
    offset: i64,
    stamp: i64,
    /// Stamped by a client, not the broker: the processor dead-lettered it, and so does the
    /// replay.
    client_stamped: bool,
    key: Span,
    value: Span,
    /// Its signature header: cores check who wrote each input, so the replay must too.
    signature: Span,
}

/// Input records read, packed in one buffer: the replay makes each record's own copies, which it
/// also frees, and glibc's allocator serves a thread that frees what it allocated from its
/// cache, where a thread freeing what another allocated takes the arena's lock.
#[derive(Default)]
struct Inputs {
    bytes: Vec<u8>,
    records: Vec<Input>,
}

/// Reads the inputs into batches for the replay; stops when the replay stops listening.
fn read_inputs(
    reading: log::Reading,
    inputs: &[String],
    progress: &ProgressBar,
    sender: &mpsc::SyncSender<Inputs>,
) -> Result<log::Read, AuditError> {
    let mut batch = Inputs::default();
    let read = reading.take_all(progress, &mut |name, message| {
        let Some(topic) = inputs.iter().position(|t| t == name) else {
            return Ok(());
        };
        let (stamp, client_stamped) = match message.timestamp() {
            Timestamp::LogAppendTime(stamp) => (stamp, false),
            _ => (tessera_cores::replay::NO_STAMP, true),
        };
        let key = keep(&mut batch.bytes, message.key());
        let value = keep(&mut batch.bytes, message.payload());
        let signature = keep(&mut batch.bytes, signature_of(message));
        batch.records.push(Input {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            stamp,
            client_stamped,
            key,
            value,
            signature,
        });
        if batch.records.len() >= BATCH {
            sender
                .send(std::mem::take(&mut batch))
                .map_err(|_| AuditError::Abandoned)?;
        }
        Ok(())
    })?;
    if !batch.records.is_empty() {
        sender.send(batch).map_err(|_| AuditError::Abandoned)?;
    }
    Ok(read)
}

/// What the comparison takes in, from the thread reading the outputs and from the replay.
enum Arrival {
    Logged(Logged),
    Derived(Derived),
}

/// How far the replay got.
struct Replayed {
    stepped: u64,
    undecided: u64,
}

/// Reads the outputs into batches for the comparison; stops when the comparison stops.
fn take_outputs(
    reading: log::Reading,
    outputs: &[String],
    classifier: &Classifier,
    progress: &ProgressBar,
    arrivals: &mpsc::SyncSender<Arrival>,
) -> Result<log::Read, AuditError> {
    let mut batch = Logged::default();
    let read = reading.take_all(progress, &mut |name, message| {
        if let Some(topic) = outputs.iter().position(|t| t == name) {
            let (partition, offset) = (message.partition(), message.offset());
            batch.push(
                classifier,
                topic,
                partition,
                offset,
                message.key(),
                message.payload(),
            );
        }
        if batch.len() >= BATCH {
            let full = Arrival::Logged(std::mem::take(&mut batch));
            arrivals.send(full).map_err(|_| AuditError::Abandoned)?;
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        arrivals
            .send(Arrival::Logged(batch))
            .map_err(|_| AuditError::Abandoned)?;
    }
    Ok(read)
}

/// Replays the input batches and hands what each step produced to the comparison, in batches;
/// stops when the comparison stops.
fn replay_inputs<C: Core>(
    mut replay: Replay<C>,
    classifier: &Classifier,
    inputs: &[String],
    batches: mpsc::Receiver<Inputs>,
    arrivals: &mpsc::SyncSender<Arrival>,
) -> Result<Replayed, AuditError> {
    for batch in batches {
        let mut derived = Derived::default();
        for input in batch.records {
            let record = RawRecord {
                key: slice(&batch.bytes, input.key).map(<[u8]>::to_vec),
                value: slice(&batch.bytes, input.value).map(<[u8]>::to_vec),
                signature: slice(&batch.bytes, input.signature).map(<[u8]>::to_vec),
                refused: input
                    .client_stamped
                    .then(|| tessera_cores::replay::CLIENT_STAMPED.to_string()),
            };
            replay
                .push(
                    input.topic,
                    input.partition,
                    input.offset,
                    input.stamp,
                    record,
                    &mut |step| derived.push(classifier, step),
                )
                .map_err(|source| AuditError::Merge {
                    at: At::new(inputs[input.topic].clone(), input.partition, input.offset),
                    source,
                })?;
        }
        if !derived.is_empty() {
            arrivals
                .send(Arrival::Derived(derived))
                .map_err(|_| AuditError::Abandoned)?;
        }
    }
    Ok(Replayed {
        stepped: replay.stepped(),
        undecided: replay.undecided(),
    })
}

#[cfg(test)]
mod tests;
