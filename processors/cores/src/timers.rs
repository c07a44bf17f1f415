//! Timers kept in a core's state, so they survive restarts and fire at the same stream times in a
//! replay: the counter forgets idle keys with them and the timekeeper closes offers.
//!
//! The hot path is an input that fires no timer, so the earliest due time is kept under a key of
//! its own: one point read per input says whether anything is due, where opening a RocksDB
//! iterator to look at the first timer cost more than all the rest of the work on a record.

use tessera_state::{State, Table};

/// A set of timers in two tables: one entry per timer, `<due time, order-preserving hex>/<key>`
/// so the first entry is the next due, and the earliest due time under the empty key.
///
/// Set a key's timer once and move it only when it fires early: moving it on every record would
/// leave a RocksDB tombstone per record at the front of the timer range, and finding the next
/// timer would have to step over all of them.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    due: Table<()>,
    next_due: Table<i64>,
}

impl Timers {
    /// Timers whose entries live under `due_prefix` and whose earliest due time lives under
    /// `next_due_prefix` (prefixes as for [`Table::new`]).
    pub const fn new(due_prefix: &'static str, next_due_prefix: &'static str) -> Self {
        Timers {
            due: Table::new(due_prefix),
            next_due: Table::new(next_due_prefix),
        }
    }

    /// Sets a timer for `key` due at `due`: it fires on the first input whose stream time is past
    /// `due` (strictly, so a bound at `due` is still inclusive).
    pub fn schedule(&self, state: &mut dyn State, due: i64, key: &str) {
        self.due.put(state, &timer_key(due, key), &());
        if self.next_due.get(state, "").is_none_or(|next| due < next) {
            self.next_due.put(state, "", &due);
        }
    }

    /// The earliest due time, or `None` when no timer is set. It may be earlier than the first
    /// timer left (a lower bound until the next [`Timers::pop_due`] looks), never later.
    pub fn next_due(&self, state: &dyn State) -> Option<i64> {
        self.next_due.get(state, "")
    }

    /// Removes and returns the earliest timer due before `now` as `(due, key)`, or `None` when no
    /// timer is due. Call it until it returns `None`; a timer set meanwhile is seen in due order.
    pub fn pop_due(&self, state: &mut dyn State, now: i64) -> Option<(i64, String)> {
        if self.next_due.get(state, "").is_none_or(|next| next >= now) {
            return None;
        }
        loop {
            let Some((timer, ())) = self.due.first(state, "") else {
                self.next_due.delete(state, "");
                return None;
            };
            let Some((due, key)) = parse_timer_key(&timer) else {
                self.due.delete(state, &timer);
                continue;
            };
            if due >= now {
                self.next_due.put(state, "", &due);
                return None;
            }
            self.due.delete(state, &timer);
            return Some((due, key.to_string()));
        }
    }
}

fn timer_key(due: i64, key: &str) -> String {
    // Flipping the sign bit makes the unsigned hex order equal the signed order.
    format!("{:016x}/{key}", (due as u64) ^ (1 << 63))
}

fn parse_timer_key(timer: &str) -> Option<(i64, &str)> {
    let (due, key) = timer.split_once('/')?;
    let due = u64::from_str_radix(due, 16).ok()? ^ (1 << 63);
    Some((due as i64, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_state::MemoryState;

    const TIMERS: Timers = Timers::new("t/", "n/");

    fn fired(state: &mut MemoryState, now: i64) -> Vec<(i64, String)> {
        std::iter::from_fn(|| TIMERS.pop_due(state, now)).collect()
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
        assert_eq!(parse_timer_key(&timer_key(-7, "a/b")), Some((-7, "a/b")));
    }

    #[test]
    fn timers_fire_strictly_after_their_time_in_due_order() {
        let mut state = MemoryState::new();
        TIMERS.schedule(&mut state, 20, "late");
        TIMERS.schedule(&mut state, 10, "early");
        TIMERS.schedule(&mut state, 10, "also-early");
        assert_eq!(fired(&mut state, 10), vec![]);
        assert_eq!(
            fired(&mut state, 11),
            vec![(10, "also-early".to_string()), (10, "early".to_string())]
        );
        TIMERS.schedule(&mut state, 15, "moved");
        assert_eq!(
            fired(&mut state, 30),
            vec![(15, "moved".to_string()), (20, "late".to_string())]
        );
        assert!(state.is_empty(), "nothing is left once every timer fired");
    }

    #[test]
    fn a_timer_set_while_firing_waits_for_its_own_time() {
        let mut state = MemoryState::new();
        TIMERS.schedule(&mut state, 10, "k");
        assert_eq!(TIMERS.pop_due(&mut state, 11), Some((10, "k".to_string())));
        TIMERS.schedule(&mut state, 50, "k");
        assert_eq!(TIMERS.pop_due(&mut state, 11), None);
        assert_eq!(fired(&mut state, 50), vec![]);
        assert_eq!(fired(&mut state, 51), vec![(50, "k".to_string())]);
    }
}
