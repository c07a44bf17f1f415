//! Delivery of one task's input partitions to a core in an interleaving a test chooses, shared by
//! the property tests: the runtime sees fetches complete in any order, so the tests must too.

use tessera_processors::Core;
use tessera_processors::merge::Merge;
use tessera_processors::replay::{self, Produced, RawRecord};
use tessera_state_stores::MemoryState;

/// The partition number every input of the delivered task has.
pub const PARTITION: i32 = 2;

/// Feeds `lanes` (one per input, each record with its stamp step from the previous one, starting
/// at `start`) through the merge into a fresh `core`, pushing records in the order `schedule`
/// picks and draining whenever it says so, then drains the rest. Returns what the core produced
/// and its state.
pub fn deliver<C: Core>(
    mut core: C,
    start: i64,
    lanes: &[Vec<(i64, RawRecord)>],
    schedule: &mut dyn Iterator<Item = usize>,
) -> (Vec<Produced>, MemoryState) {
    let mut state = MemoryState::new();
    let mut merge = Merge::new(lanes.len());
    let mut next = vec![0usize; lanes.len()];
    let mut stamps = vec![start; lanes.len()];
    let mut produced = Vec::new();
    loop {
        let open: Vec<usize> = (0..lanes.len())
            .filter(|&t| next[t] < lanes[t].len())
            .collect();
        if open.is_empty() {
            break;
        }
        let choice = schedule.next().unwrap_or(0);
        if choice % 4 == 3 {
            produced.extend(replay::drain(&mut core, &mut state, &mut merge));
            continue;
        }
        let topic = open[choice % open.len()];
        let (step, record) = &lanes[topic][next[topic]];
        stamps[topic] += step;
        merge
            .push(
                topic,
                PARTITION,
                next[topic] as i64,
                stamps[topic],
                record.clone(),
            )
            .unwrap();
        next[topic] += 1;
        if next[topic] == lanes[topic].len() {
            merge.finish(topic);
        }
    }
    for topic in 0..lanes.len() {
        merge.finish(topic);
    }
    produced.extend(replay::drain(&mut core, &mut state, &mut merge));
    (produced, state)
}
