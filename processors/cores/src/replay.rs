//! Drives a core over merged records: decode, route ticks and undecodable records, apply.
//!
//! The Kafka runtime and auditors both call [`step`], so live processing and a replay of the log
//! cannot disagree about what a record means.

use tessera_contract::signing::Signed;
use tessera_contract::{Event, EventKind, LogPosition, codec, links};
use tessera_state::State;

use crate::core::{Core, Emission, Emitted, Input, Output, Position, Raw};
use crate::merge::{Entry, Merge};

/// A record as read from Kafka, before the core decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Key bytes, if any.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The record's signature header ([`tessera_contract::signing::HEADER`]), if it has one.
    pub signature: Option<Vec<u8>>,
    /// Why no core may read the record, decided before its step: a client stamped it
    /// ([`CLIENT_STAMPED`]: its stamp is a claim anyone could make), or the runtime could not
    /// write what it led to after several attempts. The record goes to the dead letters with
    /// this reason, and the core sees only the time it moves.
    pub refused: Option<String>,
}

/// The stamp a client-stamped record takes in the merge: the lowest, so its effective stamp is
/// whatever its partition had already shown.
pub const NO_STAMP: i64 = i64::MIN;

/// The broker's stamp of a record at `stamp` in the merge, as its dead letter quotes it: none for
/// a client-stamped record.
pub fn broker_stamp(stamp: i64) -> Option<i64> {
    (stamp != NO_STAMP).then_some(stamp)
}

/// The dead-letter reason of a client-stamped record.
pub const CLIENT_STAMPED: &str = "stamped by a client (CreateTime), not by the broker: a decision \
    input counts only the broker's receipt stamp (LogAppendTime), so the record is not read";

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

/// The state key of a task's chain head: the digest of the last linked output the task produced
/// (see [`tessera_contract::links`]). No core's table uses the `link/` prefix.
pub const CHAIN_HEAD: &[u8] = b"link/head";

/// Hands one merged record to the core, chains the verdicts and ledger entries it emits, and
/// encodes what it emits.
///
/// The chain lives here rather than in the cores because it covers the input record's bytes,
/// which only the step sees, and because the runtime and auditors must chain exactly alike. Its
/// head is kept in the task's state, so it is restored, and committed, with everything else.
/// Cores emit their events unencoded ([`Emission::Event`]) so that a linked one is filled in
/// place and encoded once, here.
pub fn step<C: Core>(
    core: &mut C,
    state: &mut dyn State,
    entry: Entry<RawRecord>,
) -> Vec<Produced> {
    let Entry { at, item: record } = entry;
    if let Some(reason) = record.refused.clone() {
        return refused(core, state, at, record, reason);
    }
    if is_tick(record.value.as_deref()) {
        let emitted = core.apply(state, Input::Tick { at });
        return chained(core, state, at, &record, emitted);
    }
    let raw = Raw {
        topic: at.topic,
        key: record.key.as_deref(),
        value: record.value.as_deref(),
    };
    match core.decode(raw) {
        Ok(value) => {
            let key = record
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            let signed = Signed::of(
                record.key.as_deref(),
                record.value.as_deref(),
                record.signature.as_deref(),
            );
            let emitted = core.apply(
                state,
                Input::Record {
                    at,
                    key,
                    value,
                    signed,
                },
            );
            chained(core, state, at, &record, emitted)
        }
        Err(reason) => refused(core, state, at, record, reason),
    }
}

/// A record no core reads: the core sees only the time it moves, and the record goes to the
/// dead letters with `reason`.
fn refused<C: Core>(
    core: &mut C,
    state: &mut dyn State,
    at: Position,
    record: RawRecord,
    reason: String,
) -> Vec<Produced> {
    let emitted = core.apply(state, Input::Tick { at });
    let mut produced = chained(core, state, at, &record, emitted);
    // Every task reads every partition of a broadcast input: only the task of the record's own
    // partition number writes its letter, so a bad record gets one.
    if at.on_own_partition() {
        produced.insert(0, Produced::DeadLetter { at, record, reason });
    }
    produced
}

/// The records the core emitted for the input `record` at `at`, encoded, each linked event
/// chained after the task's previous one.
fn chained<C: Core>(
    core: &C,
    state: &mut dyn State,
    at: Position,
    record: &RawRecord,
    emitted: Vec<Emitted>,
) -> Vec<Produced> {
    let mut input = None;
    emitted
        .into_iter()
        .map(|Emitted { topic, key, value }| {
            let value = match value {
                Emission::Event(mut event) => {
                    if links::is_linked(event.kind()) {
                        let input = *input.get_or_insert_with(|| {
                            links::record_digest(record.key.as_deref(), record.value.as_deref())
                        });
                        link(core, state, at, input, &mut event);
                    }
                    // A core's events encode with the schemas they were built from; the contract
                    // tests compare every event type with its schema file, so no input can make
                    // this fail.
                    codec::encode(&event).expect("a core's own event encodes")
                }
                Emission::Bytes(bytes) => {
                    debug_assert!(
                        !codec::peek_kind(&bytes).is_ok_and(links::is_linked),
                        "a linked event is emitted as an event, for the step to link"
                    );
                    bytes
                }
            };
            Produced::Output(Output { topic, key, value })
        })
        .collect()
}

/// Fills the link of `event`, a linked event the core just emitted, and moves the chain head.
fn link<C: Core>(
    core: &C,
    state: &mut dyn State,
    at: Position,
    input: [u8; 32],
    event: &mut Event,
) {
    let previous = state.get(CHAIN_HEAD).unwrap_or_default();
    let source = LogPosition {
        topic: core.inputs().get(at.topic).cloned().unwrap_or_default(),
        partition: at.partition,
        offset: at.offset,
        stamp: at.stamp,
    };
    if let Some(digest) =
        links::chain(event, &previous, source, input).expect("a core's own event encodes")
    {
        state.put(CHAIN_HEAD, &digest);
    }
}

/// Pops every decided record from the merge, lets the core prepare for them, and steps it over
/// each in turn.
pub fn drain<C: Core>(
    core: &mut C,
    state: &mut dyn State,
    merge: &mut Merge<RawRecord>,
) -> Vec<Produced> {
    let batch: Vec<_> = std::iter::from_fn(|| merge.pop()).collect();
    core.prepare(state, &batch);
    batch
        .into_iter()
        .flat_map(|entry| step(core, state, entry))
        .collect()
}

#[cfg(test)]
mod tests {
    use tessera_contract::{Event, RewardDue, decode, encode};
    use tessera_state::MemoryState;

    use tessera_contract::sealing::PrivateKey;
    use tessera_contract::signing::SigningKey;

    use super::*;
    use crate::ledger::Ledger;

    /// The rewards core's key, which the ledger believes RewardDue records signed with.
    fn rewards_key() -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[9; 32]).unwrap())
    }

    fn due(credential: &str) -> RawRecord {
        let due = RewardDue {
            event_id: uuid::Uuid::new_v4().to_string(),
            provider_id: "A".into(),
            offer_id: "offer-1".into(),
            credential_id: credential.into(),
            subscriber_id: "B1".into(),
            amount: 100,
            currency: "EUR".into(),
            accepted: LogPosition::default(),
        };
        let value = encode(&due.into()).unwrap();
        let signature =
            rewards_key().sign_record("tessera.ledger-credits", Some(b"A"), Some(&value));
        RawRecord {
            key: Some(b"A".to_vec()),
            value: Some(value),
            signature: Some(signature.to_vec()),
            refused: None,
        }
    }

    fn at(offset: i64) -> Position {
        Position {
            topic: 0,
            partition: 2,
            task: 2,
            offset,
            stamp: 1_000 + offset,
            effective: 1_000 + offset,
        }
    }

    /// The credit produced by stepping `record` at `offset`, and its link.
    fn credit(state: &mut MemoryState, offset: i64, record: RawRecord) -> tessera_contract::Link {
        let mut ledger = Ledger::new(rewards_key().verifying_key());
        let produced = step(
            &mut ledger,
            state,
            Entry {
                at: at(offset),
                item: record.clone(),
            },
        );
        let [Produced::Output(output)] = &produced[..] else {
            panic!("one credit expected: {produced:?}");
        };
        let event = decode(&output.value).unwrap();
        assert!(matches!(event, Event::RewardCredited(_)));
        links::verify(
            &event,
            Some((record.key.as_deref(), record.value.as_deref())),
        )
        .unwrap();
        links::link_of(&event).unwrap().clone()
    }

    #[test]
    fn each_ledger_entry_is_chained_after_the_tasks_previous_one() {
        let mut state = MemoryState::new();
        let first = credit(&mut state, 5, due("cred-1"));
        assert!(
            first.previous.is_empty(),
            "a task's first link starts the chain"
        );
        assert_eq!(
            first.source,
            LogPosition {
                topic: "tessera.ledger-credits".into(),
                partition: 2,
                offset: 5,
                stamp: 1_005,
            }
        );
        // The chain head is state: a task restored from its changelog goes on from it.
        let mut restored = state.clone();
        let second = credit(&mut restored, 9, due("cred-2"));
        assert_eq!(second.previous, first.digest);
        assert_eq!(restored.get(CHAIN_HEAD), Some(second.digest.clone()));
        // Another input in the same place gives another chain from there on.
        let other = credit(&mut state, 9, due("cred-3"));
        assert_eq!(other.previous, first.digest);
        assert_ne!(other.digest, second.digest);
    }
}
