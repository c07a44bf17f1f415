//! Matches what the replay derives with what the output topics hold.
//!
//! A record is known by its identity: its event id, which every core derives from the input that
//! produced it, so the replay names the same ids; a dead letter the runtime writes for a record it
//! cannot decode carries a random id and is known by the record it quotes (source topic, partition,
//! offset) instead; a record that is not a tessera event (the counter's) by its key and bytes.
//!
//! A derived record that is not on the log is a finding only if the processor consumed its input:
//! the runtime commits a task's consumer offsets in the transaction that writes what the inputs
//! before them produced, and the auditor reads those offsets before the output topics. A broadcast
//! input (every partition of it read by every task) has no group offset; it counts as consumed
//! once a later input of the same task (in merge order) is, because a task steps its inputs and
//! commits them in that order. Records on the log that no input produces are injected, or
//! duplicates when another record with their identity matched. A task writes its records to a
//! partition in the order it derives them, so one that sits before an earlier-derived record of
//! its task is reordered.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use tessera_processors::replay::{Produced, RawRecord, is_tick};
use tessera_schemas::codec::{fields, peek_event_id};
use tessera_schemas::{Event, decode};

use super::replay::Step;
use super::report::{At, Finding, Report, describe};

/// How a record is known across the replay and the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Identity {
    /// A tessera event, by its event id.
    Event(String),
    /// A dead letter the runtime wrote, by the record it quotes.
    Letter {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// Anything else, by a hash of its key and value.
    Bytes(u64),
}

fn identity_of(key: Option<&[u8]>, value: Option<&[u8]>) -> Identity {
    match value.map(peek_event_id) {
        Some(Ok(id)) => Identity::Event(id.to_string()),
        _ => {
            let mut hasher = DefaultHasher::new();
            (key, value).hash(&mut hasher);
            Identity::Bytes(hasher.finish())
        }
    }
}

/// A record read from an output topic.
#[derive(Debug)]
struct Published {
    topic: usize,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    identities: Vec<Identity>,
    matched: bool,
}

/// A record the replay derived.
#[derive(Debug)]
struct Expected {
    topic: usize,
    identity: Identity,
    input: At,
    event: String,
    content: Content,
}

#[derive(Debug)]
enum Content {
    /// A record the core produced.
    Output { key: String, value: Vec<u8> },
    /// A dead letter the runtime writes for an input it could not decode.
    Letter {
        record: RawRecord,
        reason: String,
        stamp: i64,
    },
}

#[derive(Debug, Default)]
struct TaskCheck {
    /// Records derived from broadcast inputs and not on the log, until a later input of the task
    /// shows whether the processor consumed theirs.
    uncertain: Vec<Expected>,
    /// Per output topic and partition: the last matched record of the task there.
    last: HashMap<(usize, i32), i64>,
}

/// The comparison of one processor's replay with its output topics.
#[derive(Debug)]
pub struct Comparison {
    processor: String,
    /// Output topics (prefixed), the dead letters among them.
    topics: Vec<String>,
    dead_letters: usize,
    records: Vec<Published>,
    index: HashMap<(usize, Identity), Vec<usize>>,
    /// The processor's committed offsets: input topic -> partition -> next offset.
    committed: HashMap<String, HashMap<i32, i64>>,
    tasks: HashMap<i32, TaskCheck>,
    report: Report,
}

impl Comparison {
    /// A comparison for `processor`, whose outputs are `topics` (`dead_letters` the index of the
    /// dead-letter topic among them), given its group's committed offsets.
    pub fn new(
        processor: &str,
        topics: Vec<String>,
        dead_letters: usize,
        committed: HashMap<String, HashMap<i32, i64>>,
    ) -> Self {
        Comparison {
            processor: processor.to_string(),
            topics,
            dead_letters,
            records: Vec::new(),
            index: HashMap::new(),
            committed,
            tasks: HashMap::new(),
            report: Report {
                processor: processor.to_string(),
                ..Report::default()
            },
        }
    }

    /// Takes in a record read from output `topic`. Ticks (other processors tick the topics they
    /// read) and dead letters of other processors are not this processor's outputs.
    pub fn published(
        &mut self,
        topic: usize,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        if is_tick(value) {
            return;
        }
        let identities = if topic == self.dead_letters {
            match value.map(decode) {
                Some(Ok(Event::DeadLetter(letter))) if letter.processor == self.processor => vec![
                    Identity::Event(letter.event_id),
                    Identity::Letter {
                        topic: letter.source_topic,
                        partition: letter.source_partition,
                        offset: letter.source_offset,
                    },
                ],
                _ => return,
            }
        } else {
            vec![identity_of(key, value)]
        };
        let i = self.records.len();
        for identity in &identities {
            self.index.entry((topic, identity.clone())).or_default().push(i);
        }
        self.records.push(Published {
            topic,
            partition,
            offset,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            identities,
            matched: false,
        });
        self.report.outputs_read += 1;
    }

    /// Takes in one replayed input and checks what it produced against the log.
    pub fn step(&mut self, step: Step<'_>) {
        let input = At::new(step.lane.topic.clone(), step.at.partition, step.at.offset);
        let consumed = !step.lane.broadcast
            && self
                .committed
                .get(&step.lane.topic)
                .and_then(|partitions| partitions.get(&step.at.partition))
                .is_some_and(|&next| step.at.offset < next);
        let mut task = self.tasks.remove(&step.task).unwrap_or_default();
        if consumed {
            for expected in std::mem::take(&mut task.uncertain) {
                self.missing(expected);
            }
        }
        for produced in step.produced {
            self.report.derived += 1;
            let expected = self.expect(produced, &input, &step.lane.topic);
            match self.take(&expected) {
                Some(i) => self.check(i, expected, &mut task),
                None if consumed => self.missing(expected),
                None if step.lane.broadcast => task.uncertain.push(expected),
                None => self.report.pending += 1,
            }
        }
        self.tasks.insert(step.task, task);
    }

    fn expect(&self, produced: Produced, input: &At, source: &str) -> Expected {
        match produced {
            Produced::Output(output) => Expected {
                topic: output.topic,
                identity: identity_of(Some(output.key.as_bytes()), Some(&output.value)),
                input: input.clone(),
                event: describe(Some(output.key.as_bytes()), Some(&output.value)),
                content: Content::Output {
                    key: output.key,
                    value: output.value,
                },
            },
            Produced::DeadLetter { at, record, reason } => Expected {
                topic: self.dead_letters,
                identity: Identity::Letter {
                    topic: source.to_string(),
                    partition: at.partition,
                    offset: at.offset,
                },
                input: input.clone(),
                event: format!("DeadLetter of {input}"),
                content: Content::Letter {
                    record,
                    reason,
                    stamp: at.stamp,
                },
            },
        }
    }

    /// The first record on the log with the expected identity that no other derived record took.
    fn take(&self, expected: &Expected) -> Option<usize> {
        self.index
            .get(&(expected.topic, expected.identity.clone()))?
            .iter()
            .copied()
            .find(|&i| !self.records[i].matched)
    }

    fn at(&self, record: &Published) -> At {
        At::new(self.topics[record.topic].clone(), record.partition, record.offset)
    }

    fn check(&mut self, i: usize, expected: Expected, task: &mut TaskCheck) {
        self.records[i].matched = true;
        let record = &self.records[i];
        let at = self.at(record);
        let differences = match &expected.content {
            Content::Output { key, value } => output_differences(record, key, value),
            Content::Letter {
                record: letter,
                reason,
                stamp,
            } => letter_differences(record, letter, reason, *stamp),
        };
        let place = (record.topic, record.partition);
        let mut clean = differences.is_empty();
        if !clean {
            self.report.findings.push(Finding::Altered {
                record: at.clone(),
                event: expected.event.clone(),
                input: expected.input.clone(),
                differences,
            });
        }
        match task.last.get(&place) {
            Some(&last) if last > record.offset => {
                clean = false;
                self.report.findings.push(Finding::Reordered {
                    record: at,
                    event: expected.event,
                    after: At::new(self.topics[place.0].clone(), place.1, last),
                    input: expected.input,
                });
            }
            _ => {
                task.last.insert(place, record.offset);
            }
        }
        if clean {
            self.report.matched += 1;
        }
    }

    fn missing(&mut self, expected: Expected) {
        self.report.findings.push(Finding::Missing {
            topic: self.topics[expected.topic].clone(),
            event: expected.event,
            input: expected.input,
        });
    }

    /// Records on the log that nothing derived, and the report.
    pub fn finish(mut self) -> Report {
        for task in self.tasks.values() {
            self.report.pending += task.uncertain.len() as u64;
        }
        let leftovers: Vec<Finding> = self
            .records
            .iter()
            .filter(|r| !r.matched)
            .map(|record| {
                let at = self.at(record);
                let event = describe(record.key.as_deref(), record.value.as_deref());
                let first = record.identities.iter().find_map(|identity| {
                    self.index[&(record.topic, identity.clone())]
                        .iter()
                        .map(|&i| &self.records[i])
                        .find(|other| other.matched)
                });
                match first {
                    Some(first) => Finding::Duplicate {
                        record: at,
                        event,
                        first: self.at(first),
                    },
                    None => Finding::Injected { record: at, event },
                }
            })
            .collect();
        self.report.findings.extend(leftovers);
        self.report
    }
}

/// How a record on the log differs from the derived one, field by field.
fn output_differences(record: &Published, key: &str, value: &[u8]) -> Vec<String> {
    let mut differences = Vec::new();
    if record.key.as_deref() != Some(key.as_bytes()) {
        let logged = record
            .key
            .as_deref()
            .map_or_else(|| "none".to_string(), |k| format!("{:?}", String::from_utf8_lossy(k)));
        differences.push(format!("key: {logged} ≠ {key:?}"));
    }
    if record.value.as_deref() != Some(value) {
        let logged = record.value.as_deref().map(fields);
        match (logged, fields(value)) {
            (Some(Ok(logged)), Ok(derived)) => {
                differences.extend(field_differences(&logged, &derived));
            }
            _ => differences.push(format!(
                "value: {} bytes on the log ≠ {} bytes derived",
                record.value.as_ref().map_or(0, Vec::len),
                value.len()
            )),
        }
    }
    differences
}

/// `path: on the log ≠ derived` for every field whose values differ.
fn field_differences(logged: &[(String, String)], derived: &[(String, String)]) -> Vec<String> {
    let on_log: HashMap<&str, &str> = logged
        .iter()
        .map(|(path, value)| (path.as_str(), value.as_str()))
        .collect();
    let in_replay: HashMap<&str, &str> = derived
        .iter()
        .map(|(path, value)| (path.as_str(), value.as_str()))
        .collect();
    let mut differences: Vec<String> = derived
        .iter()
        .filter(|(path, value)| on_log.get(path.as_str()) != Some(&value.as_str()))
        .map(|(path, value)| {
            let logged = on_log.get(path.as_str()).copied().unwrap_or("absent");
            format!("{path}: {logged} ≠ {value}")
        })
        .collect();
    differences.extend(
        logged
            .iter()
            .filter(|(path, _)| !in_replay.contains_key(path.as_str()))
            .map(|(path, value)| format!("{path}: {value} ≠ absent")),
    );
    if differences.is_empty() {
        // Same fields, other bytes: an encoding no tessera writer produces.
        differences.push("the bytes differ though every field is equal".to_string());
    }
    differences
}

/// How a dead letter on the log differs from the one the runtime writes for `letter`.
fn letter_differences(record: &Published, letter: &RawRecord, reason: &str, stamp: i64) -> Vec<String> {
    let Some(Ok(Event::DeadLetter(logged))) = record.value.as_deref().map(decode) else {
        return vec!["the record is no longer a dead letter".to_string()];
    };
    let mut differences = Vec::new();
    if logged.reason != reason {
        differences.push(format!("reason: {:?} ≠ {reason:?}", logged.reason));
    }
    if logged.source_timestamp != Some(stamp) {
        differences.push(format!(
            "source_timestamp: {:?} ≠ {stamp}",
            logged.source_timestamp
        ));
    }
    if logged.key != letter.key {
        differences.push("key: the quoted key differs from the input's".to_string());
    }
    if logged.value != letter.value {
        differences.push("value: the quoted value differs from the input's".to_string());
    }
    differences
}
