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
use tessera_contract::codec::{self, fields, peek_event_id};
use tessera_contract::{Event, Quote, decode, links};
use tessera_cores::Position;
use tessera_cores::core::Output;
use tessera_cores::layout::Lane;
use tessera_cores::replay::{Produced, RawRecord, is_tick};

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
    pub fn logged(
        &self,
        topic: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Option<Identity> {
        if is_tick(value) {
            return None;
        }
        if topic != self.dead_letters {
            return Some(event_identity(key, value));
        }
        match value.map(decode) {
            Some(Ok(Event::DeadLetter(letter))) if letter.processor == self.processor => {
                Some(Identity::Letter(
                    letter.source_topic,
                    letter.source_partition,
                    letter.source_offset,
                ))
            }
            _ => None,
        }
    }

    /// The identity of what the replay produced from an input of `lane`.
    pub fn derived(&self, lane: &Lane, produced: &Produced) -> Identity {
        match produced {
            Produced::Output(output) => {
                self.logged(
                    output.topic,
                    Some(output.key.as_bytes()),
                    Some(&output.value),
                )
                .unwrap_or_else(|| event_identity(Some(output.key.as_bytes()), Some(&output.value)))
            }
            Produced::DeadLetter { at, .. } => {
                Identity::Letter(lane.topic.clone(), at.partition, at.offset)
            }
        }
    }
}

/// Where a key or value lies in a byte buffer; `None` when the record has none.
pub(super) type Span = Option<(usize, usize)>;

/// Copies `bytes` to the end of `buffer` and says where they lie.
pub(super) fn keep(buffer: &mut Vec<u8>, bytes: Option<&[u8]>) -> Span {
    let bytes = bytes?;
    let start = buffer.len();
    buffer.extend_from_slice(bytes);
    Some((start, buffer.len()))
}

/// The bytes at `span` of `buffer`.
pub(super) fn slice(buffer: &[u8], span: Span) -> Option<&[u8]> {
    span.map(|(start, end)| &buffer[start..end])
}

/// Output records read, with their identities, packed for the comparison: the reading thread
/// classifies them, and their bytes travel in one buffer rather than two allocations a record.
#[derive(Debug, Default)]
pub struct Logged {
    bytes: Vec<u8>,
    records: Vec<Published>,
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
        let key = keep(&mut self.bytes, key);
        let value = keep(&mut self.bytes, value);
        self.records.push(Published {
            topic,
            partition,
            offset,
            batch: 0,
            key,
            value,
            identity,
            next: None,
            indexed: false,
            matched: false,
        });
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

/// What one derived record is, packed: an output's bytes lie in the batch's buffer.
#[derive(Debug)]
enum Packed {
    Output {
        topic: usize,
        key: Span,
        value: Span,
    },
    Letter(Produced),
}

/// One replayed input, packed: its outputs are the next `outputs` records of the batch.
#[derive(Debug)]
struct Stepped {
    task: i32,
    lane_index: usize,
    at: Position,
    outputs: usize,
}

/// Replayed inputs with the identities of what they produced, packed for the comparison: the
/// replay thread classifies the records and copies their bytes into one buffer, so the records'
/// own allocations are freed by the thread that made them, and the comparison gets one buffer a
/// batch rather than two allocations a record.
#[derive(Debug, Default)]
pub struct Derived {
    bytes: Vec<u8>,
    steps: Vec<Stepped>,
    records: Vec<(Identity, Packed)>,
}

impl Derived {
    /// Adds one replayed input and what it produced.
    pub fn push(&mut self, classifier: &Classifier, step: Step<'_>) {
        let outputs = step.produced.len();
        for produced in step.produced {
            let identity = classifier.derived(step.lane, &produced);
            let packed = match produced {
                Produced::Output(output) => Packed::Output {
                    topic: output.topic,
                    key: keep(&mut self.bytes, Some(output.key.as_bytes())),
                    value: keep(&mut self.bytes, Some(&output.value)),
                },
                letter @ Produced::DeadLetter { .. } => Packed::Letter(letter),
            };
            self.records.push((identity, packed));
        }
        self.steps.push(Stepped {
            task: step.task,
            lane_index: step.lane_index,
            at: step.at,
            outputs,
        });
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A derived record as the comparison reads it, wherever its bytes are kept.
#[derive(Debug, Clone, Copy)]
enum Made<'a> {
    Output {
        topic: usize,
        key: &'a [u8],
        value: &'a [u8],
    },
    Letter {
        at: Position,
        record: &'a RawRecord,
        reason: &'a str,
    },
}

impl<'a> Made<'a> {
    fn of(produced: &'a Produced) -> Self {
        match produced {
            Produced::Output(output) => Made::Output {
                topic: output.topic,
                key: output.key.as_bytes(),
                value: &output.value,
            },
            Produced::DeadLetter { at, record, reason } => Made::Letter {
                at: *at,
                record,
                reason,
            },
        }
    }

    fn packed(bytes: &'a [u8], packed: &'a Packed) -> Self {
        match packed {
            Packed::Output { topic, key, value } => Made::Output {
                topic: *topic,
                key: slice(bytes, *key).unwrap_or_default(),
                value: slice(bytes, *value).unwrap_or_default(),
            },
            Packed::Letter(produced) => Made::of(produced),
        }
    }

    /// An owned copy, for a record that waits for its counterpart.
    fn to_produced(self) -> Produced {
        match self {
            Made::Output { topic, key, value } => Produced::Output(Output {
                topic,
                key: String::from_utf8_lossy(key).into_owned(),
                value: value.to_vec(),
            }),
            Made::Letter { at, record, reason } => Produced::DeadLetter {
                at,
                record: record.clone(),
                reason: reason.to_string(),
            },
        }
    }
}

/// A record read from an output topic.
#[derive(Debug)]
struct Published {
    topic: usize,
    partition: i32,
    offset: i64,
    /// The batch whose buffer holds its key and value.
    batch: usize,
    key: Span,
    value: Span,
    identity: Identity,
    /// The next record of the topic with the same identity in the index, in read order.
    next: Option<usize>,
    /// Whether it was moved from its partition's queue to the index.
    indexed: bool,
    matched: bool,
}

/// The unpaired records of a topic in the index with one identity: the first and the last read.
#[derive(Debug, Clone, Copy)]
struct Chain {
    first: usize,
    last: usize,
}

/// A derived record waiting for its counterpart on the log.
#[derive(Debug)]
struct Waiting {
    identity: Identity,
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
///
/// A record read that no derived record waits for joins the queue of its partition. The runtime
/// puts a record on the partition its key hashes to (murmur2, as Java clients do), and a task
/// writes a partition in the order it derives, so a derived record's counterpart is nearly always
/// at the head of that partition's queue, and pairing costs no lookup. When it is not (records
/// written by several tasks interleave, or a record is out of place), the partition's queue moves
/// to an index by identity, where every record left unpaired is then looked up first: it was read
/// before anything still queued. A derived record read before its counterpart waits the same way,
/// in the queue of the partition its key says, and moves to an index by identity when a record
/// read there is not at the head. A derived record whose counterpart sits on another partition
/// than its key says pairs at the end with whatever is left on the log.
#[derive(Debug)]
pub struct Comparison {
    classifier: Classifier,
    /// Output topics (prefixed), the dead letters among them.
    topics: Vec<String>,
    /// Input topics (prefixed), by index in the core's inputs.
    inputs: Vec<String>,
    records: Vec<Published>,
    /// The keys and values of `records`: the buffers of the batches they came in, kept as they
    /// came rather than copied into one.
    batches: Vec<Vec<u8>>,
    /// Per output topic: its partition count, to tell where the runtime put a derived record.
    partitions: Vec<i32>,
    /// Per output topic, per partition: records not paired yet and not in the index, in order.
    queues: Vec<Vec<VecDeque<usize>>>,
    /// Per output topic: records moved from the queues, not paired yet, by identity. With
    /// foldhash (still seeded per process) rather than SipHash: one lookup per record derived
    /// while it holds any.
    index: Vec<foldhash::HashMap<Identity, Chain>>,
    /// Per output topic, per partition its key says: derived records not found on the log yet
    /// and not moved to `waiting`, in order.
    waiting_queues: Vec<Vec<VecDeque<Waiting>>>,
    /// Per output topic: derived records not found on the log yet, moved from the queues or of
    /// no telling partition, by identity.
    waiting: Vec<foldhash::HashMap<Identity, VecDeque<Waiting>>>,
    /// The processor's committed offsets: input topic -> partition -> next offset.
    committed: HashMap<String, HashMap<i32, i64>>,
    /// By task partition.
    tasks: Vec<TaskCheck>,
    report: Report,
}

impl Comparison {
    /// A comparison for `classifier`'s processor, whose outputs are `topics` of `partitions`
    /// partitions each and inputs `inputs`, given its group's committed offsets.
    pub fn new(
        classifier: Classifier,
        topics: Vec<String>,
        partitions: Vec<i32>,
        inputs: Vec<String>,
        committed: HashMap<String, HashMap<i32, i64>>,
    ) -> Self {
        Comparison {
            report: Report {
                processor: classifier.processor.clone(),
                ..Report::default()
            },
            classifier,
            queues: vec![Vec::new(); topics.len()],
            partitions,
            index: vec![foldhash::HashMap::new(); topics.len()],
            waiting_queues: (0..topics.len()).map(|_| Vec::new()).collect(),
            waiting: (0..topics.len())
                .map(|_| foldhash::HashMap::new())
                .collect(),
            topics,
            inputs,
            records: Vec::new(),
            batches: Vec::new(),
            committed,
            tasks: Vec::new(),
        }
    }

    /// Makes room for `records` records read, to grow no more while reading them.
    pub fn reserve(&mut self, records: usize) {
        self.records.reserve(records);
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
        let batch = self.batches.len();
        self.batches.push(logged.bytes);
        for mut record in logged.records {
            let topic = record.topic;
            if topic >= self.queues.len() {
                continue;
            }
            record.batch = batch;
            let i = self.records.len();
            let partition = usize::try_from(record.partition).ok();
            let paired = self.take_waiting(topic, &record.identity, partition);
            self.records.push(record);
            self.report.outputs_read += 1;
            match (paired, partition) {
                (Some(waiting), _) => self.matched(
                    i,
                    waiting.task,
                    waiting.seq,
                    waiting.input,
                    Made::of(&waiting.produced),
                ),
                (None, Some(partition)) => {
                    let queues = &mut self.queues[topic];
                    if queues.len() <= partition {
                        queues.resize_with(partition + 1, VecDeque::new);
                    }
                    queues[partition].push_back(i);
                }
                (None, None) => self.index_record(i),
            }
        }
    }

    /// Takes in one replayed input (tests and single-threaded callers).
    pub fn replayed(&mut self, step: Step<'_>) {
        let lane = step.lane;
        let mut derived = Derived::default();
        derived.push(&self.classifier, step);
        self.take_derived(derived, |_| Some(lane));
    }

    /// Takes in replayed inputs, the lanes of each task given by `lanes` (by task, by lane
    /// index), and pairs what they produced with the log.
    pub fn derived(&mut self, lanes: &[Vec<Lane>], derived: Derived) {
        self.take_derived(derived, |step| {
            lanes
                .get(usize::try_from(step.task).ok()?)?
                .get(step.lane_index)
        });
    }

    /// Takes in replayed inputs, each read from the lane `lane_of` says.
    fn take_derived<'l>(
        &mut self,
        derived: Derived,
        lane_of: impl Fn(&Stepped) -> Option<&'l Lane>,
    ) {
        let Derived {
            bytes,
            steps,
            records,
        } = derived;
        let mut records = records.into_iter();
        for step in steps {
            let outputs = records.by_ref().take(step.outputs);
            match lane_of(&step) {
                Some(lane) => self.stepped(lane, &step, outputs, &bytes),
                None => outputs.for_each(drop),
            }
        }
    }

    /// Takes in one replayed input of `lane` and pairs what it produced with the log.
    fn stepped(
        &mut self,
        lane: &Lane,
        step: &Stepped,
        outputs: impl Iterator<Item = (Identity, Packed)>,
        bytes: &[u8],
    ) {
        let task = usize::try_from(step.task).unwrap_or_default();
        if self.tasks.len() <= task {
            self.tasks.resize_with(task + 1, TaskCheck::default);
        }
        let seq = self.tasks[task].steps;
        self.tasks[task].steps += 1;
        let at = step.at;
        if self
            .committed_on(task, lane, step.lane_index)
            .is_some_and(|next| at.offset < next)
        {
            self.tasks[task].consumed_through = Some(seq);
        }
        let input = (lane.input, at.partition, at.offset);
        for (n, (identity, packed)) in outputs.enumerate() {
            self.report.derived += 1;
            let made = Made::packed(bytes, &packed);
            let topic = self.topic_of(made);
            match self.take(topic, &identity, self.partition_of(made)) {
                Some(i) => self.matched(i, task, (seq, n), input, made),
                None => {
                    let partition = self.partition_of(made);
                    let waiting = Waiting {
                        identity,
                        task,
                        seq: (seq, n),
                        input,
                        produced: match packed {
                            Packed::Letter(produced) => produced,
                            Packed::Output { .. } => made.to_produced(),
                        },
                    };
                    self.wait(topic, partition, waiting);
                }
            }
        }
    }

    /// Keeps `waiting`, a derived record of `topic` not on the log yet, in the queue of the
    /// partition its key says, or by identity when that cannot be told.
    fn wait(&mut self, topic: usize, partition: Option<usize>, waiting: Waiting) {
        let (Some(queues), Some(by_identity)) = (
            self.waiting_queues.get_mut(topic),
            self.waiting.get_mut(topic),
        ) else {
            self.report.pending += 1;
            return;
        };
        match partition {
            Some(partition) => {
                if queues.len() <= partition {
                    queues.resize_with(partition + 1, VecDeque::new);
                }
                queues[partition].push_back(waiting);
            }
            None => by_identity
                .entry(waiting.identity.clone())
                .or_default()
                .push_back(waiting),
        }
    }

    /// Takes the first derived record of `topic` with `identity` waiting for its counterpart,
    /// which was read from `partition`: as [`Comparison::take`] does on the other side.
    fn take_waiting(
        &mut self,
        topic: usize,
        identity: &Identity,
        partition: Option<usize>,
    ) -> Option<Waiting> {
        let by_identity = &mut self.waiting[topic];
        if !by_identity.is_empty()
            && let Some(waiting) = pop_waiting(by_identity, identity)
        {
            return Some(waiting);
        }
        let queue = partition.and_then(|p| self.waiting_queues[topic].get_mut(p))?;
        if queue.front().is_some_and(|w| w.identity == *identity) {
            return queue.pop_front();
        }
        if queue.is_empty() {
            return None;
        }
        for waiting in std::mem::take(queue) {
            by_identity
                .entry(waiting.identity.clone())
                .or_default()
                .push_back(waiting);
        }
        pop_waiting(by_identity, identity)
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

    fn topic_of(&self, made: Made<'_>) -> usize {
        match made {
            Made::Output { topic, .. } => topic,
            Made::Letter { .. } => self.classifier.dead_letters,
        }
    }

    /// The partition the runtime put `made` on, when it can be told: its key's.
    fn partition_of(&self, made: Made<'_>) -> Option<usize> {
        let Made::Output { topic, key, .. } = made else {
            return None;
        };
        let count = *self.partitions.get(topic).filter(|&&count| count > 0)?;
        let hash = tessera_producers::client::murmur2(key) & 0x7fff_ffff;
        usize::try_from(hash % count).ok()
    }

    /// Takes the first record of `topic` with `identity` that is not paired yet, in read order
    /// within its partition: from the index, which holds records read before any still queued;
    /// else from the head of the queue of `partition` (of every partition when it is `None`);
    /// else from the index after that queue moved there.
    fn take(
        &mut self,
        topic: usize,
        identity: &Identity,
        partition: Option<usize>,
    ) -> Option<usize> {
        let index = self.index.get(topic)?;
        if !index.is_empty() && index.contains_key(identity) {
            return self.take_indexed(topic, identity);
        }
        let queues = &mut self.queues[topic];
        let range = match partition {
            Some(partition) => partition..(partition + 1).min(queues.len()),
            None => 0..queues.len(),
        };
        for queue in queues.get_mut(range.clone()).unwrap_or_default() {
            if queue
                .front()
                .is_some_and(|&i| self.records[i].identity == *identity)
            {
                return queue.pop_front();
            }
        }
        let moved: Vec<VecDeque<usize>> = queues
            .get_mut(range)
            .unwrap_or_default()
            .iter_mut()
            .map(std::mem::take)
            .collect();
        if moved.iter().all(VecDeque::is_empty) {
            return None;
        }
        moved
            .into_iter()
            .flatten()
            .for_each(|i| self.index_record(i));
        self.take_indexed(topic, identity)
    }

    /// Takes the first indexed record of `topic` with `identity`.
    fn take_indexed(&mut self, topic: usize, identity: &Identity) -> Option<usize> {
        let chain = self.index[topic].get_mut(identity)?;
        let i = chain.first;
        match self.records[i].next {
            Some(next) => chain.first = next,
            None => {
                self.index[topic].remove(identity);
            }
        }
        Some(i)
    }

    /// Moves record `i` to the index of its topic.
    fn index_record(&mut self, i: usize) {
        let record = &mut self.records[i];
        record.indexed = true;
        record.next = None;
        let Some(index) = self.index.get_mut(record.topic) else {
            return;
        };
        match index.get_mut(&record.identity) {
            Some(chain) => {
                let last = std::mem::replace(&mut chain.last, i);
                self.records[last].next = Some(i);
            }
            None => {
                index.insert(record.identity.clone(), Chain { first: i, last: i });
            }
        }
    }

    fn contents(&self, record: &Published) -> (Option<&[u8]>, Option<&[u8]>) {
        let bytes = &self.batches[record.batch];
        (slice(bytes, record.key), slice(bytes, record.value))
    }

    fn at(&self, record: &Published) -> At {
        At::new(
            self.topics[record.topic].clone(),
            record.partition,
            record.offset,
        )
    }

    fn input_at(&self, (input, partition, offset): (usize, i32, i64)) -> At {
        let topic = self.inputs.get(input).cloned().unwrap_or_default();
        At::new(topic, partition, offset)
    }

    fn event(&self, made: Made<'_>, input: (usize, i32, i64)) -> String {
        match made {
            Made::Output { key, value, .. } => describe(Some(key), Some(value)),
            Made::Letter { .. } => format!("DeadLetter of {}", self.input_at(input)),
        }
    }

    /// Pairs record `i` on the log with a record `task` derived as its `seq` from `input`.
    fn matched(
        &mut self,
        i: usize,
        task: usize,
        seq: (u64, usize),
        input: (usize, i32, i64),
        made: Made<'_>,
    ) {
        self.records[i].matched = true;
        let record = &self.records[i];
        let logged = self.contents(record);
        let differences = match made {
            Made::Output { key, value, .. } => output_differences(logged, key, value),
            Made::Letter {
                at,
                record: letter,
                reason,
            } => letter_differences(logged.1, letter, reason, at.stamp),
        };
        let placed = Placed {
            seq,
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            input,
        };
        self.tasks[task].placed.push(placed);
        if differences.is_empty() {
            self.report.matched += 1;
        } else {
            self.report.findings.push(Finding::Altered {
                record: self.at(&self.records[i]),
                event: self.event(made, input),
                input: self.input_at(input),
                differences,
            });
        }
    }

    /// Where the chains of links on each output topic break.
    fn chain_breaks(&self) -> Vec<Finding> {
        let mut by_topic: Vec<Vec<Linked>> = vec![Vec::new(); self.topics.len()];
        for record in &self.records {
            let (_, value) = self.contents(record);
            if !value.is_some_and(|value| codec::peek_kind(value).is_ok_and(links::is_linked)) {
                continue;
            }
            if let Some(linked) = Linked::read(self.at(record), record.matched, value) {
                by_topic[record.topic].push(linked);
            }
        }
        by_topic
            .iter()
            .flat_map(|records| chain::breaks(records))
            .collect()
    }

    /// Records on the log nothing derived: duplicates of a record that paired, else injected.
    fn unpaired(&self) -> Vec<Finding> {
        let mut unpaired = self.records.iter().filter(|r| !r.matched).peekable();
        if unpaired.peek().is_none() {
            return Vec::new();
        }
        let mut first_paired: HashMap<(usize, &Identity), usize> = HashMap::new();
        for (i, record) in self.records.iter().enumerate().filter(|(_, r)| r.matched) {
            first_paired
                .entry((record.topic, &record.identity))
                .or_insert(i);
        }
        unpaired
            .map(|record| {
                let (key, value) = self.contents(record);
                let at = self.at(record);
                let event = describe(key, value);
                match first_paired.get(&(record.topic, &record.identity)) {
                    Some(&first) => Finding::Duplicate {
                        record: at,
                        event,
                        first: self.at(&self.records[first]),
                    },
                    None => Finding::Injected { record: at, event },
                }
            })
            .collect()
    }

    /// Decides what is left on either side, checks each task's order, and reports.
    pub fn finish(mut self) -> Report {
        let mut findings = Vec::new();
        let mut waiting = std::mem::take(&mut self.waiting);
        for (by_identity, queues) in waiting
            .iter_mut()
            .zip(std::mem::take(&mut self.waiting_queues))
        {
            for queued in queues.into_iter().flatten() {
                by_identity
                    .entry(queued.identity.clone())
                    .or_default()
                    .push_back(queued);
            }
        }
        if waiting.iter().any(|by_identity| !by_identity.is_empty()) {
            let queued: Vec<usize> = self
                .queues
                .iter_mut()
                .flatten()
                .flat_map(std::mem::take)
                .collect();
            queued.into_iter().for_each(|i| self.index_record(i));
        }
        for (topic, by_identity) in waiting.into_iter().enumerate() {
            for (identity, queue) in by_identity {
                for waiting in queue {
                    if let Some(i) = self.take_indexed(topic, &identity) {
                        let made = Made::of(&waiting.produced);
                        self.matched(i, waiting.task, waiting.seq, waiting.input, made);
                        continue;
                    }
                    let consumed = self.tasks[waiting.task]
                        .consumed_through
                        .is_some_and(|through| waiting.seq.0 <= through);
                    if consumed {
                        let made = Made::of(&waiting.produced);
                        findings.push(Finding::Missing {
                            topic: self.topics[topic].clone(),
                            event: self.event(made, waiting.input),
                            input: self.input_at(waiting.input),
                        });
                    } else {
                        self.report.pending += 1;
                    }
                }
            }
        }
        findings.extend(self.unpaired());
        for task in &mut self.tasks {
            task.placed
                .sort_unstable_by_key(|p| (p.topic, p.partition, p.seq));
        }
        for task in &self.tasks {
            for run in task
                .placed
                .chunk_by(|a, b| (a.topic, a.partition) == (b.topic, b.partition))
            {
                let mut furthest: Option<i64> = None;
                for placed in run {
                    match furthest {
                        Some(after) if after > placed.offset => findings.push(Finding::Reordered {
                            record: At::new(
                                self.topics[placed.topic].clone(),
                                placed.partition,
                                placed.offset,
                            ),
                            after: At::new(
                                self.topics[placed.topic].clone(),
                                placed.partition,
                                after,
                            ),
                            input: self.input_at(placed.input),
                        }),
                        _ => furthest = Some(placed.offset),
                    }
                }
            }
        }
        findings.extend(self.chain_breaks());
        self.report.findings.append(&mut findings);
        self.report
            .findings
            .sort_by(|a, b| a.place().cmp(b.place()).then(a.kind().cmp(b.kind())));
        self.report
    }
}

/// Pops the first record with `identity` from `by_identity`.
fn pop_waiting(
    by_identity: &mut foldhash::HashMap<Identity, VecDeque<Waiting>>,
    identity: &Identity,
) -> Option<Waiting> {
    let queue = by_identity.get_mut(identity)?;
    let waiting = queue.pop_front();
    if queue.is_empty() {
        by_identity.remove(identity);
    }
    waiting
}

/// How a record on the log differs from the derived one, field by field.
fn output_differences(
    (logged_key, logged_value): (Option<&[u8]>, Option<&[u8]>),
    key: &[u8],
    value: &[u8],
) -> Vec<String> {
    let mut differences = Vec::new();
    if logged_key != Some(key) {
        let logged = logged_key.map_or_else(
            || "none".to_string(),
            |k| format!("{:?}", String::from_utf8_lossy(k)),
        );
        differences.push(format!(
            "key: {logged} ≠ {:?}",
            String::from_utf8_lossy(key)
        ));
    }
    // A processor that ran before the event's schema changed wrote it with the version of then:
    // the same record, if the derived one written as that version is the same bytes.
    let as_written = logged_value.and_then(|logged| codec::encode_like(value, logged));
    if logged_value != Some(value) && as_written.as_deref() != logged_value {
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
    if logged.source_timestamp != tessera_cores::replay::broker_stamp(stamp) {
        differences.push(format!(
            "source_timestamp: {:?} ≠ {stamp}",
            logged.source_timestamp
        ));
    }
    let quote = Quote::of(letter.key.as_deref(), letter.value.as_deref());
    if logged.key != quote.key {
        differences.push("key: the quoted key differs from the input's".to_string());
    }
    if logged.value != quote.value {
        differences.push("value: the quoted value differs from the input's".to_string());
    }
    // One letter per record, from the task of the record's own partition number; a letter of a
    // release that named no task says nothing here.
    if let Some(task) = logged.task
        && task != logged.source_partition
    {
        differences.push(format!("task: {task} ≠ {}", logged.source_partition));
    }
    if logged.record_digest != quote.record_digest || logged.truncated != quote.truncated {
        differences
            .push("record_digest: the letter names another record than the input".to_string());
    }
    differences
}

#[cfg(test)]
mod tests {
    use tessera_contract::{Custody, OfferPublished, encode, examples};

    use super::*;

    fn offer() -> OfferPublished {
        let mut offer = examples::offer("o1", "A", Custody::CoSign);
        offer.signing_key = vec![7; 32];
        offer.package_signature = vec![8; 64];
        offer
    }

    #[test]
    fn a_record_written_with_an_earlier_schema_version_matches_what_it_carries() {
        // OfferPublished v3 is v4 without provider_endorsement.
        let derived = encode(&offer().into()).unwrap();
        let logged = codec::encode_as(&offer().into(), 3).unwrap();
        assert_ne!(logged, derived);
        let differences = |logged: &[u8], derived: &[u8]| {
            output_differences((Some(b"o1"), Some(logged)), b"o1", derived)
        };
        assert_eq!(differences(&logged, &derived), Vec::<String>::new());

        // What the earlier version could not carry is a difference: the log lacks it.
        let mut endorsed = offer();
        endorsed.provider_endorsement = Some(vec![9; 64]);
        let found = differences(&logged, &encode(&endorsed.into()).unwrap());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("provider_endorsement:"), "{found:?}");

        // And so is any field that differs.
        let mut other = offer();
        other.provider_contact = "someone@else".into();
        let found = differences(&logged, &encode(&other.into()).unwrap());
        assert!(found[0].starts_with("provider_contact:"), "{found:?}");
    }
}
