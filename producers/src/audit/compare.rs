//! Matches what the replay derives with what the output topics hold.
//!
//! A record is known by its identity: its event id, which every core derives from the input that
//! produced it, so the replay names the same ids; a dead letter by the record it quotes (source
//! topic, partition, offset), since the runtime gives the ones it writes random ids; a record that
//! is not a tessera event (the counter's) by its key and bytes. Records of one identity pair up in
//! order. The two sides arrive in any interleaving, each record waiting until its counterpart
//! comes, so the comparison keeps pace with the reading instead of waiting for all the outputs.
//!
//! A derived record that is not on the log is a finding only if the processor consumed its input:
//! the runtime commits a task's consumer offsets in the transaction that writes what the inputs
//! before them produced, and the auditor reads those offsets before the output topics. A task
//! steps its inputs, and commits them, in merge order, so an input counts as consumed when it or
//! a later input of the task sits below the group's offsets; that also covers broadcast inputs
//! (every partition read by every task), which the group does not commit. Records on the log that
//! no input produces are injected, or duplicates when another record with their identity matched.
//! A task writes its records to a partition in the order it derives them, so one that sits before
//! an earlier-derived record of its task is reordered.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use foldhash::HashMapExt;
use tessera_processors::Position;
use tessera_processors::replay::{Produced, RawRecord, is_tick};
use tessera_processors::runtime::Lane;
use tessera_schemas::codec::{fields, peek_event_id};
use tessera_schemas::{Event, decode};

use super::chain::{self, Linked};
use super::replay::Step;
use super::report::{At, Finding, Report, describe};

/// How a record is known across the replay and the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A tessera event, by its event id when it is a UUID, as every tessera writer makes them.
    Uuid(u128),
    /// A tessera event with another event id.
    Event(String),
    /// A dead letter, by the topic, partition and offset of the record it quotes.
    Letter(String, i32, i64),
    /// Anything else, by a hash of its key and value.
    Bytes(u64),
}

fn event_identity(key: Option<&[u8]>, value: Option<&[u8]>) -> Identity {
    match value.map(peek_event_id) {
        Some(Ok(id)) => match uuid::Uuid::try_parse(id) {
            Ok(uuid) => Identity::Uuid(uuid.as_u128()),
            Err(_) => Identity::Event(id.to_string()),
        },
        _ => Identity::Bytes(foldhash::quality::FixedState::default().hash_one((key, value))),
    }
}

/// Tells records' identities, on either side; cheap to clone onto the threads that read.
#[derive(Debug, Clone)]
pub struct Classifier {
    processor: String,
    dead_letters: usize,
}

impl Classifier {
    /// For `processor`, whose dead letters are its output `dead_letters`.
    pub fn new(processor: &str, dead_letters: usize) -> Self {
        Classifier {
            processor: processor.to_string(),
            dead_letters,
        }
    }

    /// The identity of a record of output `topic`, `None` when it is not the processor's: a tick
    /// (other processors tick the topics they read) or another processor's dead letter.
    pub fn logged(&self, topic: usize, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<Identity> {
        if is_tick(value) {
            return None;
        }
        if topic != self.dead_letters {
            return Some(event_identity(key, value));
        }
        match value.map(decode) {
            Some(Ok(Event::DeadLetter(letter))) if letter.processor == self.processor => Some(
                Identity::Letter(letter.source_topic, letter.source_partition, letter.source_offset),
            ),
            _ => None,
        }
    }

    /// The identity of what the replay produced from an input of `lane`.
    pub fn derived(&self, lane: &Lane, produced: &Produced) -> Identity {
        match produced {
            Produced::Output(output) => self
                .logged(output.topic, Some(output.key.as_bytes()), Some(&output.value))
                .unwrap_or_else(|| event_identity(Some(output.key.as_bytes()), Some(&output.value))),
            Produced::DeadLetter { at, .. } => Identity::Letter(lane.topic.clone(), at.partition, at.offset),
        }
    }

    fn topic_of(&self, produced: &Produced) -> usize {
        match produced {
            Produced::Output(output) => output.topic,
            Produced::DeadLetter { .. } => self.dead_letters,
        }
    }
}

/// Where a key or value lies in a byte buffer; `None` when the record has none.
type Span = Option<(usize, usize)>;

/// Output records read, with their identities, packed for the comparison: the reading thread
/// classifies them, and their bytes travel in one buffer rather than two allocations a record.
#[derive(Debug, Default)]
pub struct Logged {
    bytes: Vec<u8>,
    records: Vec<(Identity, Published)>,
}

impl Logged {
    /// Adds a record read from output `topic`, unless it is not the processor's.
    pub fn push(
        &mut self,
        classifier: &Classifier,
        topic: usize,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        let Some(identity) = classifier.logged(topic, key, value) else {
            return;
        };
        let mut keep = |bytes: Option<&[u8]>| -> Span {
            let bytes = bytes?;
            let start = self.bytes.len();
            self.bytes.extend_from_slice(bytes);
            Some((start, self.bytes.len()))
        };
        let key = keep(key);
        let value = keep(value);
        self.records.push((
            identity,
            Published {
                topic,
                partition,
                offset,
                key,
                value,
                next: None,
                matched: false,
            },
        ));
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// One replayed input with the identities of what it produced, ready for the comparison.
#[derive(Debug)]
pub struct Derivation {
    /// The task.
    pub task: i32,
    /// The lane of the input, among the task's.
    pub lane_index: usize,
    /// Where and when the input sat.
    pub at: Position,
    /// What it produced.
    pub produced: Vec<(Identity, Produced)>,
}

impl Derivation {
    /// The step, classified.
    pub fn of(classifier: &Classifier, step: Step<'_>) -> Self {
        let produced = step
            .produced
            .into_iter()
            .map(|p| (classifier.derived(step.lane, &p), p))
            .collect();
        Derivation {
            task: step.task,
            lane_index: step.lane_index,
            at: step.at,
            produced,
        }
    }
}

/// A record read from an output topic.
#[derive(Debug)]
struct Published {
    topic: usize,
    partition: i32,
    offset: i64,
    key: Span,
    value: Span,
    /// The next record of the topic with the same identity, in read order.
    next: Option<usize>,
    matched: bool,
}

/// The records of a topic with one identity: the first and the last read.
#[derive(Debug, Clone, Copy)]
struct Chain {
    first: usize,
    last: usize,
}

/// A derived record waiting for its counterpart on the log.
#[derive(Debug)]
struct Waiting {
    task: usize,
    /// Where its task derived it: the input's place in merge order, and its own among the
    /// input's outputs.
    seq: (u64, usize),
    input: (usize, i32, i64),
    produced: Produced,
}

/// A derived record found on the log: where its task derived it and where it sits.
#[derive(Debug, Clone, Copy)]
struct Placed {
    seq: (u64, usize),
    topic: usize,
    partition: i32,
    offset: i64,
    input: (usize, i32, i64),
}

#[derive(Debug, Default)]
struct TaskCheck {
    /// Inputs stepped so far: the next input's place in merge order.
    steps: u64,
    /// The place of the last input known consumed.
    consumed_through: Option<u64>,
    /// Per lane, once looked up: the group's committed offset there (`None` for none, and for a
    /// broadcast lane, which the group does not commit).
    committed: Vec<Option<Option<i64>>>,
    placed: Vec<Placed>,
}

/// The comparison of one processor's replay with its output topics.
#[derive(Debug)]
pub struct Comparison {
    classifier: Classifier,
    /// Output topics (prefixed), the dead letters among them.
    topics: Vec<String>,
    /// Input topics (prefixed), by index in the core's inputs.
    inputs: Vec<String>,
    records: Vec<Published>,
    /// The keys and values of `records`, end to end.
    bytes: Vec<u8>,
    /// Per output topic: its records by identity. One lookup per record read and per record
    /// derived, so with foldhash (still seeded per process) rather than SipHash.
    index: Vec<foldhash::HashMap<Identity, Chain>>,
    /// Derived records not found on the log yet, by output topic and identity.
    waiting: foldhash::HashMap<(usize, Identity), VecDeque<Waiting>>,
    /// The processor's committed offsets: input topic -> partition -> next offset.
    committed: HashMap<String, HashMap<i32, i64>>,
    /// By task partition.
    tasks: Vec<TaskCheck>,
    report: Report,
}

impl Comparison {
    /// A comparison for `classifier`'s processor, whose outputs are `topics` and inputs
    /// `inputs`, given its group's committed offsets.
    pub fn new(
        classifier: Classifier,
        topics: Vec<String>,
        inputs: Vec<String>,
        committed: HashMap<String, HashMap<i32, i64>>,
    ) -> Self {
        Comparison {
            report: Report {
                processor: classifier.processor.clone(),
                ..Report::default()
            },
            classifier,
            index: vec![foldhash::HashMap::new(); topics.len()],
            topics,
            inputs,
            records: Vec::new(),
            bytes: Vec::new(),
            waiting: foldhash::HashMap::new(),
            committed,
            tasks: Vec::new(),
        }
    }

    /// Takes in one record read from output `topic`.
    pub fn published(
        &mut self,
        topic: usize,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        let mut logged = Logged::default();
        logged.push(&self.classifier, topic, partition, offset, key, value);
        self.logged(logged);
    }

    /// Takes in records read from the outputs, and pairs each with the derived record waiting
    /// for it, if one is.
    pub fn logged(&mut self, logged: Logged) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&logged.bytes);
        let shift = |span: Span| span.map(|(start, end)| (start + base, end + base));
        for (identity, mut record) in logged.records {
            if record.topic >= self.index.len() {
                continue;
            }
            record.key = shift(record.key);
            record.value = shift(record.value);
            let i = self.records.len();
            let topic = record.topic;
            self.records.push(record);
            self.report.outputs_read += 1;
            match self.index[topic].get_mut(&identity) {
                Some(chain) => {
                    self.records[chain.last].next = Some(i);
                    chain.last = i;
                }
                None => {
                    self.index[topic].insert(identity.clone(), Chain { first: i, last: i });
                }
            }
            let key = (topic, identity);
            if let Some(queue) = self.waiting.get_mut(&key)
                && let Some(waiting) = queue.pop_front()
            {
                if queue.is_empty() {
                    self.waiting.remove(&key);
                }
                self.matched(i, waiting);
            }
        }
    }

    /// Takes in one replayed input (tests and single-threaded callers).
    pub fn replayed(&mut self, step: Step<'_>) {
        let lane = step.lane;
        let derivation = Derivation::of(&self.classifier, step);
        self.derived(lane, derivation);
    }

    /// Takes in one replayed input of `lane` and pairs what it produced with the log.
    pub fn derived(&mut self, lane: &Lane, derivation: Derivation) {
        let task = usize::try_from(derivation.task).unwrap_or_default();
        if self.tasks.len() <= task {
            self.tasks.resize_with(task + 1, TaskCheck::default);
        }
        let seq = self.tasks[task].steps;
        self.tasks[task].steps += 1;
        let at = derivation.at;
        if self
            .committed_on(task, lane, derivation.lane_index)
            .is_some_and(|next| at.offset < next)
        {
            self.tasks[task].consumed_through = Some(seq);
        }
        let input = (lane.input, at.partition, at.offset);
        for (n, (identity, produced)) in derivation.produced.into_iter().enumerate() {
            self.report.derived += 1;
            let topic = self.classifier.topic_of(&produced);
            let waiting = Waiting {
                task,
                seq: (seq, n),
                input,
                produced,
            };
            match self.take(topic, &identity) {
                Some(i) => self.matched(i, waiting),
                None => self.waiting.entry((topic, identity)).or_default().push_back(waiting),
            }
        }
    }

    /// The next offset the group committed on `lane`; `None` on a broadcast lane.
    fn committed_on(&mut self, task: usize, lane: &Lane, index: usize) -> Option<i64> {
        let cache = &mut self.tasks[task].committed;
        if cache.len() <= index {
            cache.resize(index + 1, None);
        }
        *cache[index].get_or_insert_with(|| {
            if lane.broadcast {
                return None;
            }
            self.committed
                .get(&lane.topic)
                .and_then(|partitions| partitions.get(&lane.partition))
                .copied()
        })
    }

    /// The first record of `topic` with `identity` that no derived record took.
    fn take(&self, topic: usize, identity: &Identity) -> Option<usize> {
        let mut next = self.index.get(topic)?.get(identity).map(|chain| chain.first);
        while let Some(i) = next {
            if !self.records[i].matched {
                return Some(i);
            }
            next = self.records[i].next;
        }
        None
    }

    fn contents(&self, record: &Published) -> (Option<&[u8]>, Option<&[u8]>) {
        let slice = |span: Span| span.map(|(start, end)| &self.bytes[start..end]);
        (slice(record.key), slice(record.value))
    }

    fn at(&self, record: &Published) -> At {
        At::new(self.topics[record.topic].clone(), record.partition, record.offset)
    }

    fn input_at(&self, (input, partition, offset): (usize, i32, i64)) -> At {
        let topic = self.inputs.get(input).cloned().unwrap_or_default();
        At::new(topic, partition, offset)
    }

    fn event(&self, produced: &Produced, input: (usize, i32, i64)) -> String {
        match produced {
            Produced::Output(output) => describe(Some(output.key.as_bytes()), Some(&output.value)),
            Produced::DeadLetter { .. } => format!("DeadLetter of {}", self.input_at(input)),
        }
    }

    /// Pairs record `i` on the log with the derived record `waiting`.
    fn matched(&mut self, i: usize, waiting: Waiting) {
        self.records[i].matched = true;
        let record = &self.records[i];
        let logged = self.contents(record);
        let differences = match &waiting.produced {
            Produced::Output(output) => output_differences(logged, &output.key, &output.value),
            Produced::DeadLetter { at, record: letter, reason } => {
                letter_differences(logged.1, letter, reason, at.stamp)
            }
        };
        let placed = Placed {
            seq: waiting.seq,
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            input: waiting.input,
        };
        self.tasks[waiting.task].placed.push(placed);
        if differences.is_empty() {
            self.report.matched += 1;
        } else {
            self.report.findings.push(Finding::Altered {
                record: self.at(&self.records[i]),
                event: self.event(&waiting.produced, waiting.input),
                input: self.input_at(waiting.input),
                differences,
            });
        }
    }

    /// A record with `i`'s identity that matched: then `i` is a copy of it.
    fn matched_like(&self, i: usize, identity: &Identity) -> Option<usize> {
        let record = &self.records[i];
        let first = self.index[record.topic].get(identity)?.first;
        std::iter::successors(Some(first), |&j| self.records[j].next)
            .find(|&j| self.records[j].matched)
    }

    /// Where the chains of links on each output topic break.
    fn chain_breaks(&self) -> Vec<Finding> {
        let mut by_topic: Vec<Vec<Linked>> = vec![Vec::new(); self.topics.len()];
        for record in &self.records {
            let (_, value) = self.contents(record);
            if let Some(linked) = Linked::read(self.at(record), record.matched, value) {
                by_topic[record.topic].push(linked);
            }
        }
        by_topic.iter().flat_map(|records| chain::breaks(records)).collect()
    }

    /// Decides what is left on either side, checks each task's order, and reports.
    pub fn finish(mut self) -> Report {
        let mut findings = Vec::new();
        for ((_, _), queue) in std::mem::take(&mut self.waiting) {
            for waiting in queue {
                let consumed = self.tasks[waiting.task]
                    .consumed_through
                    .is_some_and(|through| waiting.seq.0 <= through);
                if consumed {
                    findings.push(Finding::Missing {
                        topic: self.topics[self.classifier.topic_of(&waiting.produced)].clone(),
                        event: self.event(&waiting.produced, waiting.input),
                        input: self.input_at(waiting.input),
                    });
                } else {
                    self.report.pending += 1;
                }
            }
        }
        for index in &self.index {
            for (identity, chain) in index {
                let mut next = Some(chain.first);
                while let Some(i) = next {
                    let record = &self.records[i];
                    next = record.next;
                    if record.matched {
                        continue;
                    }
                    let (key, value) = self.contents(record);
                    let at = self.at(record);
                    let event = describe(key, value);
                    findings.push(match self.matched_like(i, identity) {
                        Some(first) => Finding::Duplicate {
                            record: at,
                            event,
                            first: self.at(&self.records[first]),
                        },
                        None => Finding::Injected { record: at, event },
                    });
                }
            }
        }
        for task in &mut self.tasks {
            task.placed.sort_unstable_by_key(|p| (p.topic, p.partition, p.seq));
        }
        for task in &self.tasks {
            for run in task.placed.chunk_by(|a, b| (a.topic, a.partition) == (b.topic, b.partition)) {
                let mut furthest: Option<i64> = None;
                for placed in run {
                    match furthest {
                        Some(after) if after > placed.offset => findings.push(Finding::Reordered {
                            record: At::new(self.topics[placed.topic].clone(), placed.partition, placed.offset),
                            after: At::new(self.topics[placed.topic].clone(), placed.partition, after),
                            input: self.input_at(placed.input),
                        }),
                        _ => furthest = Some(placed.offset),
                    }
                }
            }
        }
        findings.extend(self.chain_breaks());
        self.report.findings.append(&mut findings);
        self.report.findings.sort_by(|a, b| a.place().cmp(b.place()).then(a.kind().cmp(b.kind())));
        self.report
    }
}

/// How a record on the log differs from the derived one, field by field.
fn output_differences(
    (logged_key, logged_value): (Option<&[u8]>, Option<&[u8]>),
    key: &str,
    value: &[u8],
) -> Vec<String> {
    let mut differences = Vec::new();
    if logged_key != Some(key.as_bytes()) {
        let logged = logged_key
            .map_or_else(|| "none".to_string(), |k| format!("{:?}", String::from_utf8_lossy(k)));
        differences.push(format!("key: {logged} ≠ {key:?}"));
    }
    if logged_value != Some(value) {
        let logged = logged_value.map(fields);
        match (logged, fields(value)) {
            (Some(Ok(logged)), Ok(derived)) => {
                differences.extend(field_differences(&logged, &derived));
            }
            _ => differences.push(format!(
                "value: {} bytes on the log ≠ {} bytes derived",
                logged_value.map_or(0, <[u8]>::len),
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
fn letter_differences(
    logged: Option<&[u8]>,
    letter: &RawRecord,
    reason: &str,
    stamp: i64,
) -> Vec<String> {
    let Some(Ok(Event::DeadLetter(logged))) = logged.map(decode) else {
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
