//! The input offsets a store's state reflects.
//!
//! Written in the same RocksDB batch as the state, so after any crash the store knows exactly which
//! inputs it has folded in. On restart the runtime compares it with the consumer group's committed
//! offsets: equal means the local state is exactly the committed state and processing resumes at
//! once; anything else means the state is rebuilt from the changelog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Next offset to read, and the effective stamp reached, per input topic partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `(topic, partition) -> next offset`, for every input partition the task has read.
    pub next_offsets: BTreeMap<(String, i32), i64>,
    /// `(topic, partition) -> largest receipt stamp so far`: the merge resumes from it, so a
    /// restart orders records exactly as an uninterrupted run would.
    pub effective_stamps: BTreeMap<(String, i32), i64>,
}

impl Checkpoint {
    /// Records that everything before `next_offset` on `topic`/`partition` is reflected, and the
    /// effective stamp reached there.
    pub fn advance(&mut self, topic: &str, partition: i32, next_offset: i64, effective: i64) {
        let key = (topic.to_string(), partition);
        self.next_offsets.insert(key.clone(), next_offset);
        self.effective_stamps.insert(key, effective);
    }

    /// The effective stamp reached on `topic`/`partition`, if any input was folded in.
    pub fn effective_stamp(&self, topic: &str, partition: i32) -> Option<i64> {
        self.effective_stamps
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// The next offset to read on `topic`/`partition`, if any input was folded in.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next_offsets
            .get(&(topic.to_string(), partition))
            .copied()
    }
}
