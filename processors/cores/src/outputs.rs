//! What a core's [`crate::Core::apply`] returns, built up as it decides: events numbered in order
//! for their derived ids, and dead letters for input that cannot take effect. The events stay
//! unencoded, for the step to link and encode once. Shared by the cores
//! so that every processor numbers its events and writes its dead letters the same way, and a
//! dead letter always carries where the record sat and the record itself.

use tessera_contract::signing::{Signed, VerifyingKey};
use tessera_contract::topics::Topic;
use tessera_contract::{DeadLetter, Event, LogPosition, Quote, encode};

use crate::core::{Emission, Emitted, Position, derived_id};
use crate::registry::{DEAD_LETTERS, OUTPUT};

/// The outputs of one input.
pub(crate) struct Outputs {
    processor: &'static str,
    at: Position,
    list: Vec<Emitted>,
}

impl Outputs {
    /// No outputs yet for the input at `at` of `processor`.
    pub(crate) fn new(processor: &'static str, at: Position) -> Self {
        Outputs {
            processor,
            at,
            list: Vec::new(),
        }
    }

    /// Where and when the input sat.
    pub(crate) fn at(&self) -> Position {
        self.at
    }

    /// The records to produce.
    pub(crate) fn into_list(self) -> Vec<Emitted> {
        self.list
    }

    /// Adds the event `build` makes from the next event id, to the core's output.
    pub(crate) fn emit(&mut self, key: &str, build: impl FnOnce(String) -> Event) {
        self.emit_to(OUTPUT, key, build);
    }

    /// The event id the next event emitted gets: what a sealed box in it is bound to.
    pub(crate) fn next_event_id(&self) -> String {
        derived_id(self.processor, &self.at, self.list.len())
    }

    fn emit_to(&mut self, topic: usize, key: &str, build: impl FnOnce(String) -> Event) {
        let event = build(self.next_event_id());
        self.list.push(Emitted {
            topic,
            key: key.to_string(),
            value: Emission::Event(Box::new(event)),
        });
    }

    /// Where the input sat, as evidence: its stamp is the effective one that was judged.
    pub(crate) fn position(&self, topic: Topic) -> LogPosition {
        LogPosition {
            stamp: self.at.effective,
            ..self.source(topic)
        }
    }

    /// Where the input sat, with the stamp the broker gave it: a dead letter's provenance.
    pub(crate) fn source(&self, topic: Topic) -> LogPosition {
        LogPosition {
            topic: topic.name.to_string(),
            partition: self.at.partition,
            offset: self.at.offset,
            stamp: self.at.stamp,
        }
    }

    /// Whether the input, from `topic` under record key `key`, is signed with `signer`'s key
    /// (`who` names it in the reason). If not, `event` goes to the dead letters as
    /// `Unauthenticated`, and nothing else may come of the input.
    pub(crate) fn signed_by(
        &mut self,
        signer: &VerifyingKey,
        who: &str,
        (topic, key, signed): (Topic, &str, &Signed),
        event: impl FnOnce() -> Event,
    ) -> bool {
        match signer.verify_record(topic.name, signed, who) {
            Ok(()) => true,
            Err(e) => {
                self.dead_letter(topic, key, event(), format!("Unauthenticated: {e}"));
                false
            }
        }
    }

    /// Sends the input, which cannot take effect, to the dead letters; `key` is its record key.
    pub(crate) fn dead_letter(&mut self, topic: Topic, key: &str, event: Event, reason: String) {
        let source = self.source(topic);
        self.dead_letter_from(&source, key, event, reason);
    }

    /// Sends an earlier input that sat at `source` (see [`Outputs::source`]) to the dead letters,
    /// once the present input shows it can never take effect.
    pub(crate) fn dead_letter_from(
        &mut self,
        source: &LogPosition,
        key: &str,
        event: Event,
        reason: String,
    ) {
        let value = encoded(&event);
        let quote = Quote::of(Some(key.as_bytes()), Some(&value));
        let (processor, task) = (self.processor, self.at.task);
        self.emit_to(DEAD_LETTERS, &source.topic, |event_id| {
            DeadLetter {
                event_id,
                processor: processor.to_string(),
                source_topic: source.topic.clone(),
                source_partition: source.partition,
                source_offset: source.offset,
                source_timestamp: Some(source.stamp),
                key: quote.key,
                value: quote.value,
                reason,
                record_digest: quote.record_digest,
                truncated: quote.truncated,
                task: Some(task),
            }
            .into()
        });
    }
}

fn encoded(event: &Event) -> Vec<u8> {
    // Only an event type that drifted from its schema fails to encode, and the contract tests
    // compare every type with its .avsc file; no input can cause it.
    encode(event).expect("tessera events encode with their own schemas")
}

/// A state key for an id and something of it, length-prefixed so that ("a/b", "c") and
/// ("a", "b/c") are different keys, and all keys of one id share the prefix `pair(id, "")`.
pub(crate) fn pair(id: &str, other: &str) -> String {
    format!("{}/{id}/{other}", id.len())
}
