//! The smallest stateful core with a timer: counts records per key and forgets a key that has been
//! idle for a while. The runtime's chaos test and benchmarks run it, because its outputs make any
//! lost, doubled or reordered input visible: every output names the count it reached.

use serde::{Deserialize, Serialize};
use tessera_state_stores::{State, Table};

use crate::core::{Core, Input, Output};

/// Per key: how many records so far, and when the last one came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Count {
    seen: u64,
    last_seen: i64,
}

const COUNTS: Table<Count> = Table::new("count/");
/// Timers: `expiry/<due time, order-preserving hex>/<key>`, so the first entry is the next due.
/// A key has at most one timer, set when it first appears and moved only when it fires early:
/// moving it on every record would leave a RocksDB tombstone per record at the front of the
/// timer range, and finding the next timer would have to step over all of them.
const EXPIRIES: Table<()> = Table::new("expiry/");
/// When the earliest timer is due, under the empty key: one point read per input tells whether any
/// timer is due, where opening a RocksDB iterator to look at the first timer cost more than all
/// the rest of the work on a record.
const NEXT_DUE: Table<i64> = Table::new("next-due/");

fn schedule(state: &mut dyn State, due: i64, key: &str) {
    EXPIRIES.put(state, &timer_key(due, key), &());
    if NEXT_DUE.get(state, "").is_none_or(|next| due < next) {
        NEXT_DUE.put(state, "", &due);
    }
}

fn timer_key(due: i64, key: &str) -> String {
    // Flipping the sign bit makes the unsigned hex order equal the signed order.
    format!("{:016x}/{key}", (due as u64) ^ (1 << 63))
}

/// Counts records per key; a key idle for `idle_ms` of stream time is forgotten with an output
/// saying so.
#[derive(Debug, Clone)]
pub struct Counter {
    name: String,
    inputs: Vec<String>,
    output: String,
    idle_ms: i64,
}

impl Counter {
    /// A counter named `name` reading `inputs` and writing `output`, forgetting keys idle for
    /// `idle_ms` of stream time.
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<String>,
        output: impl Into<String>,
        idle_ms: i64,
    ) -> Self {
        Counter {
            name: name.into(),
            inputs,
            output: output.into(),
            idle_ms,
        }
    }

    fn expire_until(&self, state: &mut dyn State, now: i64, outputs: &mut Vec<Output>) {
        if NEXT_DUE.get(state, "").is_none_or(|next| next >= now) {
            return;
        }
        loop {
            let Some((timer, ())) = EXPIRIES.first(state, "") else {
                NEXT_DUE.delete(state, "");
                break;
            };
            let Some((due, key)) = timer.split_once('/') else {
                EXPIRIES.delete(state, &timer);
                continue;
            };
            let due = (u64::from_str_radix(due, 16).unwrap_or(0) ^ (1 << 63)) as i64;
            if due >= now {
                NEXT_DUE.put(state, "", &due);
                break;
            }
            EXPIRIES.delete(state, &timer);
            let key = key.to_string();
            let Some(count) = COUNTS.get(state, &key) else {
                continue;
            };
            let expires_at = count.last_seen.saturating_add(self.idle_ms);
            if expires_at >= now {
                // Seen again since the timer was set: move it to the real expiry.
                EXPIRIES.put(state, &timer_key(expires_at, &key), &());
                continue;
            }
            COUNTS.delete(state, &key);
            outputs.push(Output {
                topic: 0,
                key: key.clone(),
                value: format!("{key} expired after {}", count.seen).into_bytes(),
            });
        }
    }
}

impl Core for Counter {
    type Record = ();

    fn name(&self) -> &str {
        &self.name
    }

    fn inputs(&self) -> Vec<String> {
        self.inputs.clone()
    }

    fn outputs(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn decode(&self, _: usize, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), String> {
        match (key.map(std::str::from_utf8), value) {
            (Some(Ok(k)), Some(_)) if !k.is_empty() => Ok(()),
            (Some(Ok(_)), Some(_)) => Err("empty key".into()),
            (Some(Err(_)), _) => Err("key is not UTF-8".into()),
            (None, _) => Err("record has no key".into()),
            (_, None) => Err("record has no value".into()),
        }
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<()>) -> Vec<Output> {
        let now = input.at().effective;
        let mut outputs = Vec::new();
        self.expire_until(state, now, &mut outputs);
        if let Input::Record { key: Some(key), .. } = input {
            let mut count = match COUNTS.get(state, &key) {
                Some(count) => count,
                None => {
                    schedule(state, now.saturating_add(self.idle_ms), &key);
                    Count {
                        seen: 0,
                        last_seen: now,
                    }
                }
            };
            count.seen += 1;
            count.last_seen = now;
            COUNTS.put(state, &key, &count);
            outputs.push(Output {
                topic: 0,
                key: key.clone(),
                value: format!("{key}={}", count.seen).into_bytes(),
            });
        }
        outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Position;
    use tessera_state_stores::MemoryState;

    fn at(offset: i64, stamp: i64) -> Position {
        Position {
            topic: 0,
            partition: 0,
            offset,
            stamp,
            effective: stamp,
        }
    }

    fn values(outputs: Vec<Output>) -> Vec<String> {
        outputs
            .into_iter()
            .map(|o| String::from_utf8(o.value).unwrap())
            .collect()
    }

    #[test]
    fn counts_per_key_and_forgets_idle_keys_on_ticks() {
        let mut core = Counter::new("counter", vec!["in".into()], "counts", 100);
        let mut state = MemoryState::new();
        let record = |offset, stamp, key: &str| Input::Record {
            at: at(offset, stamp),
            key: Some(key.to_string()),
            value: (),
        };
        assert_eq!(values(core.apply(&mut state, record(0, 10, "a"))), ["a=1"]);
        assert_eq!(values(core.apply(&mut state, record(1, 20, "b"))), ["b=1"]);
        assert_eq!(values(core.apply(&mut state, record(2, 50, "a"))), ["a=2"]);
        // a expires at 150, b at 120: a tick at 120 is not past b's time yet, one at 121 is.
        assert!(core.apply(&mut state, Input::Tick { at: at(3, 120) }).is_empty());
        assert_eq!(
            values(core.apply(&mut state, Input::Tick { at: at(4, 121) })),
            ["b expired after 1"]
        );
        assert_eq!(
            values(core.apply(&mut state, record(5, 200, "b"))),
            ["a expired after 2", "b=1"]
        );
    }

    #[test]
    fn timer_keys_sort_like_their_times() {
        let mut keys: Vec<_> = [-5i64, 3, -100, 0, i64::MAX, i64::MIN]
            .iter()
            .map(|&t| (timer_key(t, "k"), t))
            .collect();
        keys.sort();
        let times: Vec<_> = keys.into_iter().map(|(_, t)| t).collect();
        assert_eq!(times, [i64::MIN, -100, -5, 0, 3, i64::MAX]);
    }
}
