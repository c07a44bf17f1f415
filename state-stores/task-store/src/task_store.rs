//! One task's state in RocksDB, with uncommitted writes held in memory until the Kafka
//! transaction that carries them commits.
//!
//! The order matters for exactly-once: the runtime applies records (writes land in the overlay),
//! produces outputs and changelog records, commits the Kafka transaction, and only then calls
//! [`TaskStore::commit`], which writes the overlay and the [`Checkpoint`] in one atomic batch. A
//! crash before the Kafka commit leaves RocksDB at the previous checkpoint, matching the offsets
//! Kafka still has; a crash between the two leaves RocksDB behind Kafka, which the checkpoint
//! reveals, and the store is rebuilt from the changelog.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocksdb::{BlockBasedOptions, DB, DBCompressionType, Options, ReadOptions, WriteBatch};

use tessera_state::State;

use crate::Checkpoint;

/// Data keys start with this byte, metadata keys with [`META`]: one keyspace, two namespaces.
const DATA: u8 = b'd';
const META: u8 = b'm';
const CHECKPOINT_KEY: &[u8] = b"m/checkpoint";

/// Why a store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("state store {path}: {source}")]
    Rocks {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    /// The stored checkpoint does not decode: the store was written by something else.
    #[error("state store {path}: unreadable checkpoint: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: postcard::Error,
    },
}

/// RocksDB-backed [`State`] of one task.
pub struct TaskStore {
    path: PathBuf,
    db: DB,
    /// Writes since the last commit: `None` is a delete.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The first RocksDB error met by a `State` method, which cannot return it.
    failure: RefCell<Option<StoreError>>,
}

fn options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_compression_type(DBCompressionType::Lz4);
    // Small memtables: a task's working set is small and many tasks share a process, so the
    // memory budget (< 256 MiB with a million keys, docs/BENCHMARKS.md) matters more than write
    // throughput. At 16 MiB the peak was 228-265 MiB, at 8 MiB 190-219 MiB; the Bloom filters
    // below keep the extra files that smaller memtables flush from slowing lookups down.
    options.set_write_buffer_size(8 * 1024 * 1024);
    options.set_max_write_buffer_number(2);
    // Most lookups of a busy processor are for keys that do not exist yet (a response not judged
    // before, an interest not stored): Bloom filters answer those without searching the
    // memtables and every file, which otherwise costs more as the store grows. Ten bits a key
    // in files (1 % false positives, 1.2 MiB per million keys), a whole-key filter of 2 % of
    // each memtable (160 KiB).
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    options.set_block_based_table_factory(&table);
    options.set_memtable_prefix_bloom_ratio(0.02);
    options.set_memtable_whole_key_filtering(true);
    options
}

fn data_key(key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(key.len() + 1);
    bytes.push(DATA);
    bytes.extend_from_slice(key);
    bytes
}

impl TaskStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = DB::open(&options(), &path).map_err(|source| StoreError::Rocks {
            path: path.clone(),
            source,
        })?;
        Ok(TaskStore {
            path,
            db,
            overlay: BTreeMap::new(),
            failure: RefCell::new(None),
        })
    }

    /// Deletes the store in `path` and everything in it, so it can be rebuilt.
    pub fn destroy(path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        DB::destroy(&options(), path).map_err(|source| StoreError::Rocks {
            path: path.to_path_buf(),
            source,
        })
    }

    fn rocks(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Rocks {
            path: self.path.clone(),
            source,
        }
    }

    fn remember(&self, error: StoreError) {
        self.failure.borrow_mut().get_or_insert(error);
    }

    /// The first error a [`State`] method met since the last call, if any. The runtime checks it
    /// after each apply and aborts the transaction when it is set.
    pub fn take_failure(&self) -> Option<StoreError> {
        self.failure.borrow_mut().take()
    }

    /// The input offsets the committed state reflects; `None` for a new store.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let Some(bytes) = self.db.get(CHECKPOINT_KEY).map_err(|e| self.rocks(e))? else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Checkpoint {
                path: self.path.clone(),
                source,
            })
    }

    /// Makes the pending writes durable together with `checkpoint`, atomically.
    pub fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (key, value) in &self.overlay {
            match value {
                Some(value) => batch.put(data_key(key), value),
                None => batch.delete(data_key(key)),
            }
        }
        let encoded = postcard::to_allocvec(checkpoint).expect("checkpoints encode");
        batch.put(CHECKPOINT_KEY, encoded);
        self.db.write(batch).map_err(|e| self.rocks(e))?;
        self.overlay.clear();
        Ok(())
    }

    /// The changelog records for the pending writes plus `checkpoint`, as raw store keys and
    /// values (`None` is a tombstone). Replaying a changelog's records through
    /// [`TaskStore::restore`] rebuilds the store exactly, checkpoint included.
    pub fn changelog(&self, checkpoint: &Checkpoint) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut records: Vec<_> = self
            .overlay
            .iter()
            .map(|(k, v)| (data_key(k), v.clone()))
            .collect();
        let encoded = postcard::to_allocvec(checkpoint).expect("checkpoints encode");
        records.push((CHECKPOINT_KEY.to_vec(), Some(encoded)));
        records
    }

    /// Writes changelog records (from [`TaskStore::changelog`]) straight to RocksDB. Records
    /// with keys outside the store's namespaces are ignored.
    pub fn restore(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (key, value) in records {
            if !matches!(key.first(), Some(&DATA) | Some(&META)) {
                continue;
            }
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        self.db.write(batch).map_err(|e| self.rocks(e))
    }

    /// Forgets the pending writes: the transaction that carried them was aborted.
    pub fn abort(&mut self) {
        self.overlay.clear();
    }
}

impl TaskStore {
    /// Committed entries under `prefix` in key order (data-namespace byte stripped). Stops at a
    /// RocksDB error, which it remembers for [`TaskStore::take_failure`].
    ///
    /// The iterator is bounded above by the first key past the prefix, so RocksDB stops at the
    /// prefix's end without loading the data block that holds the next key, and it hands out
    /// borrowed slices, so each entry is copied once.
    fn committed<'a>(&'a self, prefix: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a {
        let start = data_key(prefix);
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(prefix_end(&start));
        let mut iterator = self.db.raw_iterator_opt(options);
        iterator.seek(&start);
        std::iter::from_fn(move || {
            if let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
                let entry = (key[1..].to_vec(), value.to_vec());
                iterator.next();
                return Some(entry);
            }
            if let Err(e) = iterator.status() {
                self.remember(self.rocks(e));
            }
            None
        })
    }
}

/// The smallest key greater than every key that starts with `prefix`, which starts with the
/// data-namespace byte, so one always exists.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while end.last() == Some(&u8::MAX) {
        end.pop();
    }
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

impl State for TaskStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(value) = self.overlay.get(key) {
            return value.clone();
        }
        match self.db.get(data_key(key)) {
            Ok(value) => value,
            Err(e) => {
                self.remember(self.rocks(e));
                None
            }
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.overlay.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, key: &[u8]) {
        self.overlay.insert(key.to_vec(), None);
    }

    fn scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut pending = self
            .overlay
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .peekable();
        if pending.peek().is_none() {
            return self.committed(prefix).collect();
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self.committed(prefix).collect();
        for (key, value) in pending {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        merged.into_iter().collect()
    }

    fn first(&self, prefix: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        // The first committed key that the overlay has not deleted, against the first key the
        // overlay has written: the smaller one wins, the overlay on a tie.
        let committed = self
            .committed(prefix)
            .find(|(key, _)| !matches!(self.overlay.get(key), Some(None)));
        let written = self
            .overlay
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .find_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())));
        match (committed, written) {
            (Some(c), Some(w)) => Some(if w.0 <= c.0 { w } else { c }),
            (c, w) => w.or(c),
        }
    }
}

// The metadata namespace must stay disjoint from data keys.
const _: () = assert!(META != DATA && CHECKPOINT_KEY[0] == META);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tessera_state::MemoryState;

    #[test]
    fn uncommitted_writes_are_visible_but_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TaskStore::open(dir.path()).unwrap();
        store.put(b"a", b"1");
        assert_eq!(store.get(b"a").as_deref(), Some(&b"1"[..]));
        drop(store);
        let store = TaskStore::open(dir.path()).unwrap();
        assert_eq!(store.get(b"a"), None);
        assert_eq!(store.checkpoint().unwrap(), None);
    }

    #[test]
    fn commit_makes_state_and_checkpoint_durable_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TaskStore::open(dir.path()).unwrap();
        store.put(b"a", b"1");
        store.put(b"b", b"2");
        let mut checkpoint = Checkpoint::default();
        checkpoint.advance("tessera.offers", 3, 42, 1_000);
        store.commit(&checkpoint).unwrap();
        store.delete(b"a");
        store.abort();
        drop(store);
        let store = TaskStore::open(dir.path()).unwrap();
        assert_eq!(store.get(b"a").as_deref(), Some(&b"1"[..]));
        assert_eq!(
            store.changelog(&checkpoint).len(),
            1,
            "only the checkpoint is pending"
        );
        assert_eq!(store.checkpoint().unwrap(), Some(checkpoint));
    }

    #[test]
    fn a_changelog_rebuilds_the_store_exactly() {
        let source_dir = tempfile::tempdir().unwrap();
        let mut source = TaskStore::open(source_dir.path()).unwrap();
        let mut changelog = Vec::new();
        let mut checkpoint = Checkpoint::default();
        for (round, ops) in [
            [("a", Some("1")), ("b", Some("2"))],
            [("a", None), ("c", Some("3"))],
        ]
        .iter()
        .enumerate()
        {
            for (key, value) in ops {
                match value {
                    Some(v) => source.put(key.as_bytes(), v.as_bytes()),
                    None => source.delete(key.as_bytes()),
                }
            }
            checkpoint.advance("in", 0, round as i64 + 1, 10);
            changelog.extend(source.changelog(&checkpoint));
            source.commit(&checkpoint).unwrap();
        }
        let copy_dir = tempfile::tempdir().unwrap();
        let mut copy = TaskStore::open(copy_dir.path()).unwrap();
        copy.restore(&changelog).unwrap();
        assert_eq!(copy.scan(b""), source.scan(b""));
        assert_eq!(copy.checkpoint().unwrap(), Some(checkpoint));
    }

    #[test]
    fn the_changelog_carries_the_last_write_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TaskStore::open(dir.path()).unwrap();
        store.put(b"b", b"1");
        store.put(b"a", b"1");
        store.put(b"b", b"2");
        store.delete(b"a");
        let records = store.changelog(&Checkpoint::default());
        assert_eq!(
            records[..2],
            [
                (b"da".to_vec(), None),
                (b"db".to_vec(), Some(b"2".to_vec()))
            ]
        );
        assert_eq!(records[2].0, CHECKPOINT_KEY);
    }

    #[test]
    fn scans_stop_at_the_end_of_their_prefix_whatever_its_last_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TaskStore::open(dir.path()).unwrap();
        let keys: [&[u8]; 7] = [
            &[1],
            &[1, 0xff],
            &[1, 0xff, 0],
            &[1, 0xff, 0xff],
            &[2],
            &[0xff],
            &[0xff, 0xff],
        ];
        for key in keys {
            store.put(key, b"v");
        }
        store.commit(&Checkpoint::default()).unwrap();
        let found = |prefix: &[u8]| -> Vec<Vec<u8>> {
            store.scan(prefix).into_iter().map(|(key, _)| key).collect()
        };
        assert_eq!(
            found(&[1, 0xff]),
            [vec![1, 0xff], vec![1, 0xff, 0], vec![1, 0xff, 0xff]]
        );
        assert_eq!(found(&[0xff]), [vec![0xff], vec![0xff, 0xff]]);
        assert_eq!(found(&[1]).len(), 4);
        assert_eq!(found(&[3]), Vec::<Vec<u8>>::new());
        assert_eq!(
            store.first(&[1, 0xff, 0xff]),
            Some((vec![1, 0xff, 0xff], b"v".to_vec()))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Delete(u8),
        Commit,
        Abort,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..16, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            (0u8..16).prop_map(Op::Delete),
            Just(Op::Commit),
            Just(Op::Abort),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The store behaves like a map whose uncommitted writes vanish on abort and on reopen,
        /// and whose scans see committed and pending writes merged.
        #[test]
        fn behaves_like_a_transactional_map(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = TaskStore::open(dir.path()).unwrap();
            let mut committed = MemoryState::new();
            let mut current = MemoryState::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        let key = [b'k', k];
                        store.put(&key, &[v]);
                        current.put(&key, &[v]);
                    }
                    Op::Delete(k) => {
                        let key = [b'k', k];
                        store.delete(&key);
                        current.delete(&key);
                    }
                    Op::Commit => {
                        store.commit(&Checkpoint::default()).unwrap();
                        committed = current.clone();
                    }
                    Op::Abort => {
                        store.abort();
                        current = committed.clone();
                    }
                }
                prop_assert_eq!(store.scan(b"k"), current.scan(b"k"));
                prop_assert_eq!(store.first(b"k"), current.first(b"k"));
            }
            drop(store);
            let store = TaskStore::open(dir.path()).unwrap();
            prop_assert_eq!(store.scan(b""), committed.scan(b""));
            prop_assert!(store.take_failure().is_none());
        }
    }
}
