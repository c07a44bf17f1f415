//! What a processor core may do with its state: get, put, delete, and scan by prefix. Nothing
//! else, so a core cannot reach I/O, a clock or another task's data through its state.

use std::collections::{BTreeMap, BTreeSet};

/// Byte-keyed state of one task. Keys sort bytewise; scans return entries in key order.
///
/// The methods are infallible on purpose: a core's logic has no sensible answer to a disk error.
/// A store that fails remembers the failure and the runtime, which owns the transaction, aborts it
/// (see [`crate::TaskStore::take_failure`]).
pub trait State {
    /// The value stored under `key`.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key`, replacing any value.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]);
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// The entry with the smallest key that starts with `prefix`: how timers find the next one
    /// due without scanning them all.
    fn first(&self, prefix: &[u8]) -> Option<(Vec<u8>, Vec<u8>)>;
}

/// State in memory: for tests, property tests and auditors replaying a core.
///
/// Values sit in a hash map and the keys, once more, in an ordered set: a replay reads and
/// rewrites the same keys far more often than it creates or scans them, and an ordered map alone
/// pays a comparison of the keys' shared prefixes at every level for each of those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryState {
    values: foldhash::HashMap<Vec<u8>, Vec<u8>>,
    order: BTreeSet<Vec<u8>>,
}

impl MemoryState {
    /// Empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All entries in key order, to compare two states.
    pub fn entries(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn entry(&self, key: &Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        (
            key.clone(),
            self.values.get(key).cloned().unwrap_or_default(),
        )
    }
}

impl State for MemoryState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.values.get(key).cloned()
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        match self.values.get_mut(key) {
            Some(held) => {
                held.clear();
                held.extend_from_slice(value);
            }
            None => {
                self.values.insert(key.to_vec(), value.to_vec());
                self.order.insert(key.to_vec());
            }
        }
    }

    fn delete(&mut self, key: &[u8]) {
        if self.values.remove(key).is_some() {
            self.order.remove(key);
        }
    }

    fn scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.order
            .range(prefix.to_vec()..)
            .take_while(|k| k.starts_with(prefix))
            .map(|k| self.entry(k))
            .collect()
    }

    fn first(&self, prefix: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        self.order
            .range(prefix.to_vec()..)
            .next()
            .filter(|k| k.starts_with(prefix))
            .map(|k| self.entry(k))
    }
}
