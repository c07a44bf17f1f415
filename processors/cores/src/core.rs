//! The contract between a processor's decision logic and everything else.
//!
//! A core sees its inputs one at a time, in the deterministic order [`crate::merge`] gives, each
//! with the broker's receipt stamp; it reads and writes only its task's [`State`]; it returns the
//! records to produce. Because that is all it can do, the runtime can put it inside Kafka
//! transactions, an auditor can replay it, and a property test can run it a million times.

use tessera_contract::Event;
use tessera_contract::signing::Signed;
use tessera_state::State;

use crate::merge::Entry;
use crate::registry::Inputs;
use crate::replay::RawRecord;

/// Where an input record sat and when the broker received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Index of the record's topic in [`Core::inputs`]: its rank in the merge order.
    pub topic: usize,
    /// Partition of the record (a task reads one partition number of every input topic, and
    /// every partition of a broadcast one).
    pub partition: i32,
    /// The partition number of the task applying it: the one partition it reads of each input
    /// that is not broadcast. A core whose broadcast input could make every task write the same
    /// record writes it only from the task of the record's own partition number.
    pub task: i32,
    /// Offset of the record.
    pub offset: i64,
    /// The broker's receipt stamp (LogAppendTime) as read.
    pub stamp: i64,
    /// The largest stamp so far on this partition, this record's included: what the merge orders
    /// by and what time rules judge, so a broker clock that steps back cannot reorder history.
    pub effective: i64,
}

impl Position {
    /// Whether the record sits on the task's own partition number: always, but for a record of
    /// a broadcast input read by another task, which must not write what the record's own task
    /// writes for it.
    pub fn on_own_partition(&self) -> bool {
        self.task == self.partition
    }
}

/// One input, in merge order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<R> {
    /// A record the core decoded.
    Record {
        /// Where and when.
        at: Position,
        /// The record key as UTF-8, if it had one.
        key: Option<String>,
        /// The decoded value.
        value: R,
        /// What the core needs to check who signed the record.
        signed: Signed,
    },
    /// A record that only moves time on: a tick from the ticker, or a record that went to the
    /// dead letters. Cores fire their timers on it.
    Tick {
        /// Where and when.
        at: Position,
    },
}

impl<R> Input<R> {
    /// Where and when, whatever the input is.
    pub fn at(&self) -> Position {
        match self {
            Input::Record { at, .. } | Input::Tick { at } => *at,
        }
    }
}

/// An input record as read, before its core decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a> {
    /// Index of the record's topic in [`Core::inputs`].
    pub topic: usize,
    /// The record key.
    pub key: Option<&'a [u8]>,
    /// The record value; none for a tombstone.
    pub value: Option<&'a [u8]>,
}

impl<'a> Raw<'a> {
    /// The record's input, and its event for the core to match against what belongs there (see
    /// [`misplaced`]).
    pub(crate) fn event<I: Inputs>(&self) -> Result<(I, Event), String> {
        let input = I::of(self.topic).ok_or_else(|| format!("there is no input {}", self.topic))?;
        let value = self.value.ok_or("the record has no value")?;
        let event = tessera_contract::decode(value).map_err(|e| e.to_string())?;
        Ok((input, event))
    }

    /// The record key: present, UTF-8 and not empty, as the producers' contract says.
    pub(crate) fn key(&self) -> Result<&'a str, String> {
        let key = self.key.ok_or("the record has no key")?;
        let key = std::str::from_utf8(key).map_err(|_| "the record key is not UTF-8")?;
        if key.is_empty() {
            return Err("the record key is empty".into());
        }
        Ok(key)
    }

    /// Checks that the record key is `id`, the event's `what` it is keyed by: a record under
    /// another key sits on another partition than its task's state.
    pub(crate) fn keyed_by(&self, id: &str, what: &str) -> Result<(), String> {
        let key = self
            .key
            .ok_or_else(|| format!("the record has no key; expected {id:?}"))?;
        let key = std::str::from_utf8(key).map_err(|_| "the record key is not UTF-8")?;
        if key != id {
            return Err(format!(
                "the record key {key:?} is not the event's {what} {id:?}"
            ));
        }
        if id.is_empty() {
            return Err(format!("the {what} is empty"));
        }
        Ok(())
    }
}

/// Why `event` cannot be a record of `input`.
pub(crate) fn misplaced(event: &Event, input: impl Inputs) -> String {
    format!(
        "{} does not belong on {}",
        event.kind().name(),
        input.topic().name
    )
}

/// A record to produce, as written: what [`crate::replay::step`] makes of an [`Emitted`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Output {
    /// Index of the topic in [`Core::outputs`].
    pub topic: usize,
    /// The record key.
    pub key: String,
    /// The encoded value.
    pub value: Vec<u8>,
}

/// A record a core decided to produce, before the step links and encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// Index of the topic in [`Core::outputs`].
    pub topic: usize,
    /// The record key.
    pub key: String,
    /// What the record holds.
    pub value: Emission,
}

/// The value of an [`Emitted`] record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emission {
    /// A tessera event: the step fills its link if its kind carries one
    /// ([`tessera_contract::links::is_linked`]), and encodes it once.
    Event(Box<Event>),
    /// Bytes written as they are: a value that is no tessera event (the counter's text), or an
    /// event the core chose to encode itself (the matcher's requests, one value readdressed to
    /// each subscriber). The step links nothing in them, so a linked event never comes as bytes.
    Bytes(Vec<u8>),
}

impl Emitted {
    /// The event the record holds, if it holds one unencoded.
    pub fn event(&self) -> Option<&Event> {
        match &self.value {
            Emission::Event(event) => Some(event),
            Emission::Bytes(_) => None,
        }
    }
}

/// An event id derived from where the input sat and the output's place among its outputs, so a
/// replay or a rerun after a crash writes the same ids and consumers can deduplicate by them.
pub fn derived_id(processor: &str, at: &Position, n: usize) -> String {
    let name = format!(
        "{processor}/{}/{}/{}/{n}",
        at.topic, at.partition, at.offset
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// A processor's decision logic. Implementations must be deterministic: the same state and input
/// give the same outputs and the same state changes, on any machine, at any time.
pub trait Core {
    /// What the core's decoder makes of an input record.
    type Record;

    /// The processor's name: its consumer group, transactional ids, state directory and
    /// changelog topic derive from it.
    fn name(&self) -> &str;

    /// Input topic names (without the installation's prefix), in rank order: on equal effective
    /// stamps, a record of an earlier topic comes first.
    fn inputs(&self) -> Vec<String>;

    /// Output topic names (without the installation's prefix).
    fn outputs(&self) -> Vec<String>;

    /// Indices into [`Core::inputs`] of the inputs that every task reads in full, all
    /// partitions, merged with its own partition of the other inputs: the matcher's offers, which
    /// every partition of the subscribers must see. Empty by default: a task reads one partition
    /// number of every input.
    fn broadcast_inputs(&self) -> Vec<usize> {
        Vec::new()
    }

    /// Decodes one input record. An error sends the record to the dead letters with the message
    /// as the reason; the core then sees it as a [`Input::Tick`].
    fn decode(&self, raw: Raw<'_>) -> Result<Self::Record, String>;

    /// The earliest stream time after which a timer of the core fires, if it has one. The runtime
    /// asks for ticks on the task's idle inputs once the broker's clock passes it, and only then:
    /// a core that waits for time to pass says so here, or it waits for traffic.
    fn next_due(&self, _state: &dyn State) -> Option<i64> {
        None
    }

    /// Works out ahead what the steps of `batch`, the records about to be stepped in this order
    /// over `state`, will ask for and can be done in parallel: signature checks, seals
    /// ([`crate::ahead`]). It may only fill memos of pure functions, so the steps' outputs are the
    /// same whether it ran or not. Nothing by default.
    fn prepare(&mut self, _state: &dyn State, _batch: &[Entry<RawRecord>]) {}

    /// Folds one input into the state and says what to produce, in order: the step chains the
    /// linked events in that order.
    fn apply(&mut self, state: &mut dyn State, input: Input<Self::Record>) -> Vec<Emitted>;
}
