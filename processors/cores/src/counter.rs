//! The smallest stateful core with a timer: counts records per key and forgets a key that has been
//! idle for a while. The runtime's chaos test and benchmarks run it, because its outputs make any
//! lost, doubled or reordered input visible: every output names the count it reached.

use serde::{Deserialize, Serialize};
use tessera_state::{State, Table};

use crate::core::{Core, Emission, Emitted, Input, Raw};
use crate::timers::Timers;

/// Per key: how many records so far, and when the last one came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Count {
    seen: u64,
    last_seen: i64,
}

const COUNTS: Table<Count> = Table::new("count/");
/// Idle timers: a key has at most one, set when it first appears.
const EXPIRIES: Timers = Timers::new("expiry/", "next-due/");

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

    fn expire_until(&self, state: &mut dyn State, now: i64, outputs: &mut Vec<Emitted>) {
        while let Some((_, key)) = EXPIRIES.pop_due(state, now) {
            let Some(count) = COUNTS.get(state, &key) else {
                continue;
            };
            let expires_at = count.last_seen.saturating_add(self.idle_ms);
            if expires_at >= now {
                // Seen again since the timer was set: move it to the real expiry.
                EXPIRIES.schedule(state, expires_at, &key);
                continue;
            }
            COUNTS.delete(state, &key);
            outputs.push(Emitted {
                topic: 0,
                key: key.clone(),
                value: Emission::Bytes(format!("{key} expired after {}", count.seen).into_bytes()),
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

    fn decode(&self, raw: Raw<'_>) -> Result<(), String> {
        raw.key()?;
        raw.value.ok_or("the record has no value")?;
        Ok(())
    }

    fn next_due(&self, state: &dyn State) -> Option<i64> {
        EXPIRIES.next_due(state)
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<()>) -> Vec<Emitted> {
        let now = input.at().effective;
        let mut outputs = Vec::new();
        self.expire_until(state, now, &mut outputs);
        if let Input::Record { key: Some(key), .. } = input {
            let mut count = match COUNTS.get(state, &key) {
                Some(count) => count,
                None => {
                    EXPIRIES.schedule(state, now.saturating_add(self.idle_ms), &key);
                    Count {
                        seen: 0,
                        last_seen: now,
                    }
                }
            };
            count.seen += 1;
            count.last_seen = now;
            COUNTS.put(state, &key, &count);
            outputs.push(Emitted {
                topic: 0,
                key: key.clone(),
                value: Emission::Bytes(format!("{key}={}", count.seen).into_bytes()),
            });
        }
        outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Position;
    use tessera_state::MemoryState;

    fn at(offset: i64, stamp: i64) -> Position {
        Position {
            topic: 0,
            partition: 0,
            task: 0,
            offset,
            stamp,
            effective: stamp,
        }
    }

    fn values(outputs: Vec<Emitted>) -> Vec<String> {
        outputs
            .into_iter()
            .map(|o| match o.value {
                Emission::Bytes(text) => String::from_utf8(text).unwrap(),
                Emission::Event(event) => panic!("the counter writes text, not {event:?}"),
            })
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
            signed: tessera_contract::signing::Signed::of(Some(key.as_bytes()), None, None),
        };
        assert_eq!(values(core.apply(&mut state, record(0, 10, "a"))), ["a=1"]);
        assert_eq!(values(core.apply(&mut state, record(1, 20, "b"))), ["b=1"]);
        assert_eq!(values(core.apply(&mut state, record(2, 50, "a"))), ["a=2"]);
        // a expires at 150, b at 120: a tick at 120 is not past b's time yet, one at 121 is.
        assert!(
            core.apply(&mut state, Input::Tick { at: at(3, 120) })
                .is_empty()
        );
        assert_eq!(
            values(core.apply(&mut state, Input::Tick { at: at(4, 121) })),
            ["b expired after 1"]
        );
        assert_eq!(
            values(core.apply(&mut state, record(5, 200, "b"))),
            ["a expired after 2", "b=1"]
        );
    }
}
