//! The input offsets a store's state reflects.
//!
//! Written in the same RocksDB batch as the state, so after any crash the store knows exactly which
//! inputs it has folded in. On restart the runtime compares it with the consumer group's committed
//! offsets: equal means the local state is exactly the committed state and processing resumes at
//! once; anything else means the state is rebuilt from the changelog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Next offset to read, per input topic partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `(topic, partition) -> next offset`, for every input partition of the task.
    pub next_offsets: BTreeMap<(String, i32), i64>,
}

impl Checkpoint {
    /// Records that everything before `next_offset` on `topic`/`partition` is reflected.
    pub fn advance(&mut self, topic: &str, partition: i32, next_offset: i64) {
        self.next_offsets
            .insert((topic.to_string(), partition), next_offset);
    }

    /// The next offset to read on `topic`/`partition`, if any input was folded in.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next_offsets
            .get(&(topic.to_string(), partition))
            .copied()
    }
}
