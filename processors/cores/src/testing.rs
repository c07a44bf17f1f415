//! Fixtures the cores' unit tests share: sealed boxes that show where they came from, offer
//! terms, and a feeder that hands a core its inputs by hand, each with the next offset of its
//! topic and the next stamp.

use tessera_contract::signing::Signed;
use tessera_contract::{Deadline, LogPosition, OfferTerms, SealedBox, TimeRule};
use tessera_state::MemoryState;

use crate::core::{Core, Emitted, Input, Position};

/// 2025-11-25T09:00:00.000Z: a stamp that reads well in details.
pub(crate) const T: i64 = 1_764_061_200_000;

/// A sealed box filled with `tag`, so a test can tell which one a party got.
pub(crate) fn sealed(tag: u8) -> SealedBox {
    SealedBox {
        enc: vec![tag; 32],
        ciphertext: vec![tag; 48],
    }
}

/// The terms of an offer at offset 0 of `partition`, stamped [`T`], with a deadline a second
/// later.
pub(crate) fn terms(partition: i32) -> OfferTerms {
    OfferTerms {
        position: LogPosition {
            topic: "tessera.offers".into(),
            partition,
            offset: 0,
            stamp: T,
        },
        time_rule: TimeRule::Deadline(Deadline { at: T + 1000 }),
    }
}

/// A core with its state, fed by hand: each input gets the next offset of its topic and a stamp
/// one millisecond after the previous input's, from [`T`].
pub(crate) struct Feeder<C: Core> {
    pub core: C,
    pub state: MemoryState,
    partition: i32,
    offsets: Vec<i64>,
    stamp: i64,
}

impl<C: Core> Feeder<C> {
    pub(crate) fn new(core: C, partition: i32) -> Self {
        let inputs = core.inputs().len();
        Feeder {
            core,
            state: MemoryState::new(),
            partition,
            offsets: vec![0; inputs],
            stamp: T,
        }
    }

    /// Lets `ms` milliseconds pass: the next input is stamped that much later than it would be.
    pub(crate) fn pass(&mut self, ms: i64) {
        self.stamp += ms;
    }

    /// Applies `value` as the next record of input `topic`, under `key`, with the signature
    /// `signed` says it had.
    pub(crate) fn feed_signed(
        &mut self,
        topic: usize,
        key: &str,
        value: C::Record,
        signed: Signed,
    ) -> Vec<Emitted> {
        let offset = self.offsets[topic];
        self.offsets[topic] += 1;
        self.stamp += 1;
        let at = Position {
            topic,
            partition: self.partition,
            task: self.partition,
            offset,
            stamp: self.stamp,
            effective: self.stamp,
        };
        let key = Some(key.to_string());
        let input = Input::Record {
            at,
            key,
            value,
            signed,
        };
        self.core.apply(&mut self.state, input)
    }
}
