//! Drives a core over merged records: decode, route ticks and undecodable records, apply.
//!
//! The Kafka runtime and auditors both call [`step`], so live processing and a replay of the log
//! cannot disagree about what a record means.

use tessera_schemas::EventKind;
use tessera_schemas::codec;
use tessera_state_stores::State;

use crate::core::{Core, Input, Output, Position};
use crate::merge::{Entry, Merge};

/// A record as read from Kafka, before the core decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Key bytes, if any.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// What one merged record made the processor produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Produced {
    /// A record the core asked for.
    Output(Output),
    /// The record could not be decoded; it goes to the dead letters with this reason.
    DeadLetter {
        /// Where the record sat.
        at: Position,
        /// The record, byte for byte.
        record: RawRecord,
        /// The decoder's reason.
        reason: String,
    },
}

/// Whether a record is a tick from the ticker (an Avro `Tick` event), which every input topic of a
/// decision carries and no core decodes.
pub fn is_tick(value: Option<&[u8]>) -> bool {
    value.is_some_and(|v| codec::peek_kind(v).ok() == Some(EventKind::Tick))
}

/// Hands one merged record to the core.
pub fn step<C: Core>(core: &mut C, state: &mut dyn State, entry: Entry<RawRecord>) -> Vec<Produced> {
    let Entry { at, item: record } = entry;
    if is_tick(record.value.as_deref()) {
        return wrap(core.apply(state, Input::Tick { at }));
    }
    match core.decode(at.topic, record.key.as_deref(), record.value.as_deref()) {
        Ok(value) => {
            let key = record
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            wrap(core.apply(state, Input::Record { at, key, value }))
        }
        Err(reason) => {
            let mut produced = wrap(core.apply(state, Input::Tick { at }));
            produced.insert(0, Produced::DeadLetter { at, record, reason });
            produced
        }
    }
}

fn wrap(outputs: Vec<Output>) -> Vec<Produced> {
    outputs.into_iter().map(Produced::Output).collect()
}

/// Pops every decided record from the merge and steps the core over it.
pub fn drain<C: Core>(
    core: &mut C,
    state: &mut dyn State,
    merge: &mut Merge<RawRecord>,
) -> Vec<Produced> {
    let mut produced = Vec::new();
    while let Some(entry) = merge.pop() {
        produced.extend(step(core, state, entry));
    }
    produced
}
