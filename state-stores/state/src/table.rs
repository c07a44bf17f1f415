//! A typed, named view over [`State`]: string keys (as tessera's record keys are) and serde
//! values, so a core says `offers.get(state, offer_id)` instead of juggling bytes.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::State;

/// Keys and values up to this many bytes are built on the stack.
const SHORT: usize = 128;

/// Values of type `V` under string keys, in their own key space named by a prefix.
///
/// Values are encoded with postcard: compact (state size is memory and restore time) and
/// stable across releases of the crate. Postcard is not self-describing, so changing a value type
/// needs a new prefix (and a migration); bytes that do not decode read as absent from `get` and
/// as an error from `get_checked`.
#[derive(Debug)]
pub struct Table<V> {
    prefix: &'static str,
    _value: PhantomData<fn() -> V>,
}

impl<V> Clone for Table<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Table<V> {}

impl<V: Serialize + DeserializeOwned> Table<V> {
    /// A table whose keys live under `prefix`. Prefixes of different tables in one store must
    /// not be prefixes of each other; end them with a separator such as `/`.
    pub const fn new(prefix: &'static str) -> Self {
        Table {
            prefix,
            _value: PhantomData,
        }
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.prefix.len() + key.len());
        bytes.extend_from_slice(self.prefix.as_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes
    }

    /// Hands the state key of `key` to `f`, built on the stack when it is short, as record keys
    /// are: a core reads and writes a few keys per input, and an allocation for each was a good
    /// part of a replay's work.
    fn with_key<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> R {
        let prefix = self.prefix.as_bytes();
        let mut buffer = [0u8; SHORT];
        match buffer.get_mut(..prefix.len() + key.len()) {
            Some(bytes) => {
                let (head, tail) = bytes.split_at_mut(prefix.len());
                head.copy_from_slice(prefix);
                tail.copy_from_slice(key.as_bytes());
                f(bytes)
            }
            None => f(&self.key(key)),
        }
    }

    /// The value under `key`, or `None`.
    pub fn get(&self, state: &dyn State, key: &str) -> Option<V> {
        self.get_checked(state, key).ok().flatten()
    }

    /// The value under `key`, or the reason stored bytes do not decode.
    pub fn get_checked(&self, state: &dyn State, key: &str) -> Result<Option<V>, postcard::Error> {
        self.with_key(key, |key| state.get(key))
            .map(|bytes| postcard::from_bytes(&bytes))
            .transpose()
    }

    /// Stores `value` under `key`.
    pub fn put(&self, state: &mut dyn State, key: &str, value: &V) {
        let mut buffer = [0u8; SHORT];
        match postcard::to_slice(value, &mut buffer) {
            Ok(bytes) => self.with_key(key, |key| state.put(key, bytes)),
            Err(_) => {
                let bytes =
                    postcard::to_allocvec(value).expect("serde values of state tables encode");
                self.with_key(key, |key| state.put(key, &bytes));
            }
        }
    }

    /// Removes `key`.
    pub fn delete(&self, state: &mut dyn State, key: &str) {
        self.with_key(key, |key| state.delete(key));
    }

    /// The `(key, value)` with the smallest key that starts with `key_prefix`, if it decodes.
    pub fn first(&self, state: &dyn State, key_prefix: &str) -> Option<(String, V)> {
        let (k, v) = state.first(&self.key(key_prefix))?;
        let key = String::from_utf8(k[self.prefix.len()..].to_vec()).ok()?;
        Some((key, postcard::from_bytes(&v).ok()?))
    }

    /// Every `(key, value)` whose key starts with `key_prefix`, in key order. Entries that do not
    /// decode are skipped.
    pub fn range(&self, state: &dyn State, key_prefix: &str) -> Vec<(String, V)> {
        state
            .scan(&self.key(key_prefix))
            .into_iter()
            .filter_map(|(k, v)| {
                let key = String::from_utf8(k[self.prefix.len()..].to_vec()).ok()?;
                let value = postcard::from_bytes(&v).ok()?;
                Some((key, value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryState;

    #[test]
    fn tables_do_not_see_each_other() {
        let offers: Table<u32> = Table::new("offer/");
        let closes: Table<String> = Table::new("close/");
        let mut state = MemoryState::new();
        offers.put(&mut state, "o1", &1);
        offers.put(&mut state, "o2", &2);
        closes.put(&mut state, "o1", &"x".to_string());
        assert_eq!(offers.get(&state, "o1"), Some(1));
        assert_eq!(
            offers.range(&state, ""),
            vec![("o1".to_string(), 1), ("o2".to_string(), 2)]
        );
        assert_eq!(
            closes.range(&state, "o"),
            vec![("o1".to_string(), "x".to_string())]
        );
        offers.delete(&mut state, "o1");
        assert_eq!(offers.get(&state, "o1"), None);
        assert_eq!(closes.get(&state, "o1").as_deref(), Some("x"));
    }

    #[test]
    fn keys_and_values_longer_than_the_stack_buffer_round_trip() {
        let table: Table<String> = Table::new("t/");
        let mut state = MemoryState::new();
        let (long_key, long_value) = ("k".repeat(2 * SHORT), "v".repeat(2 * SHORT));
        table.put(&mut state, &long_key, &long_value);
        table.put(&mut state, "short", &"s".to_string());
        assert_eq!(table.get(&state, &long_key), Some(long_value));
        assert_eq!(table.range(&state, "").len(), 2);
        table.delete(&mut state, &long_key);
        assert_eq!(table.get(&state, &long_key), None);
        assert_eq!(table.get(&state, "short").as_deref(), Some("s"));
    }

    #[test]
    fn bytes_that_do_not_decode_are_reported() {
        let wide: Table<String> = Table::new("t/");
        let narrow: Table<(u64, u64, u64, u64)> = Table::new("t/");
        let mut state = MemoryState::new();
        wide.put(&mut state, "k", &"ab".to_string());
        assert!(narrow.get_checked(&state, "k").is_err());
        assert_eq!(narrow.get(&state, "k"), None);
    }
}
