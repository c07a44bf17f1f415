//! Delivery of one task's input partitions to a core in an interleaving a test chooses, shared by
//! the property tests: the runtime sees fetches complete in any order, so the tests must too.

pub(crate) mod fixtures;

use proptest::prelude::*;
use tessera_contract::{Tick, encode};
use tessera_cores::Core;
use tessera_cores::merge::Merge;
use tessera_cores::replay::{self, Produced, RawRecord};
use tessera_state::MemoryState;

/// The partition number every input of the delivered task has.
pub(crate) const PARTITION: i32 = 2;

/// Feeds `lanes` (one per input, each record with its stamp step from the previous one, starting
/// at `start`) through the merge into a fresh `core`, pushing records in the order `schedule`
/// picks and draining whenever it says so, then drains the rest. Returns what the core produced
/// and its state.
pub(crate) fn deliver<C: Core>(
    core: C,
    start: i64,
    lanes: &[Vec<(i64, RawRecord)>],
    schedule: &mut dyn Iterator<Item = usize>,
) -> (Vec<Produced>, MemoryState) {
    deliver_with(core, start, lanes, schedule, |core, state, merge| {
        replay::drain(core, state, merge)
    })
}

/// [`deliver`], stepping the core over each record alone and never letting it prepare
/// ([`Core::prepare`]): what a core's outputs must be whatever it works out ahead.
#[allow(dead_code)]
pub(crate) fn deliver_unprepared<C: Core>(
    core: C,
    start: i64,
    lanes: &[Vec<(i64, RawRecord)>],
    schedule: &mut dyn Iterator<Item = usize>,
) -> (Vec<Produced>, MemoryState) {
    let drain = |core: &mut C, state: &mut MemoryState, merge: &mut Merge<RawRecord>| {
        std::iter::from_fn(|| merge.pop())
            .flat_map(|entry| replay::step(core, state, entry))
            .collect::<Vec<_>>()
    };
    deliver_with(core, start, lanes, schedule, drain)
}

fn deliver_with<C: Core>(
    mut core: C,
    start: i64,
    lanes: &[Vec<(i64, RawRecord)>],
    schedule: &mut dyn Iterator<Item = usize>,
    drain: impl Fn(&mut C, &mut MemoryState, &mut Merge<RawRecord>) -> Vec<Produced>,
) -> (Vec<Produced>, MemoryState) {
    let mut state = MemoryState::new();
    let mut merge = Merge::new(lanes.len());
    let mut next = vec![0usize; lanes.len()];
    let mut stamps = vec![start; lanes.len()];
    let mut produced = Vec::new();
    // An input with nothing to read holds nothing back.
    for topic in (0..lanes.len()).filter(|&t| lanes[t].is_empty()) {
        merge.finish(topic);
    }
    loop {
        let open: Vec<usize> = (0..lanes.len())
            .filter(|&t| next[t] < lanes[t].len())
            .collect();
        if open.is_empty() {
            break;
        }
        let choice = schedule.next().unwrap_or(0);
        if choice % 4 == 3 {
            produced.extend(drain(&mut core, &mut state, &mut merge));
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
    produced.extend(drain(&mut core, &mut state, &mut merge));
    (produced, state)
}

// Not every test crate that includes this module uses every helper below.

/// A tick as the ticker writes it: cores see it as time passing.
#[allow(dead_code)]
pub(crate) fn tick() -> RawRecord {
    let tick = Tick {
        event_id: "00000000-0000-4000-8000-000000000004".into(),
        ticker: "t".into(),
        seq: 0,
    };
    RawRecord {
        key: Some(b"tick".to_vec()),
        value: Some(encode(&tick.into()).unwrap()),
        signature: None,
        refused: None,
    }
}

/// Bytes no decoder takes, without a key: a dead letter.
#[allow(dead_code)]
pub(crate) fn garbage() -> RawRecord {
    RawRecord {
        key: None,
        value: Some(vec![0xde, 0xad]),
        signature: None,
        refused: None,
    }
}

/// The three input partitions of one task, at most `most` records each: per record a stamp step
/// (which may be negative, as a broker clock may step back) and an item of its lane. With
/// `ordered`, the first two lanes are all stamped at the start and the third after it, so every
/// record of the first two is applied before any of the third.
#[allow(dead_code)]
pub(crate) fn three_lanes<I, A, B, C>(
    (first, second, third): (A, B, C),
    most: [usize; 3],
    ordered: bool,
) -> impl Strategy<Value = [Vec<(i64, I)>; 3]>
where
    I: std::fmt::Debug + Clone + 'static,
    A: Strategy<Value = I> + 'static,
    B: Strategy<Value = I> + 'static,
    C: Strategy<Value = I> + 'static,
{
    let lane = move |items: BoxedStrategy<I>, most: usize, late: bool| {
        let step = match (ordered, late) {
            (false, _) => (-5i64..40).boxed(),
            (true, false) => Just(0i64).boxed(),
            (true, true) => (1i64..40).boxed(),
        };
        proptest::collection::vec((step, items), 0..most)
    };
    (
        lane(first.boxed(), most[0], false),
        lane(second.boxed(), most[1], false),
        lane(third.boxed(), most[2], true),
    )
        .prop_map(|(first, second, third)| [first, second, third])
}

/// The records of generated lanes, as [`deliver`] takes them.
#[allow(dead_code)]
pub(crate) fn records<I>(
    items: &[Vec<(i64, I)>],
    record: impl Fn(&I) -> RawRecord,
) -> Vec<Vec<(i64, RawRecord)>> {
    items
        .iter()
        .map(|lane| {
            lane.iter()
                .map(|(step, item)| (*step, record(item)))
                .collect()
        })
        .collect()
}

/// The events a core asked to produce, decoded, with their record keys; dead letters left out.
#[allow(dead_code)]
pub(crate) fn events(produced: &[Produced]) -> Vec<(String, tessera_contract::Event)> {
    produced
        .iter()
        .filter_map(|p| match p {
            Produced::Output(output) => Some((
                output.key.clone(),
                tessera_contract::decode(&output.value).unwrap(),
            )),
            Produced::DeadLetter { .. } => None,
        })
        .collect()
}

/// The events of one kind a core asked to produce (those `pick` takes), each asserted to sit
/// under the record key `key_of` names: the partitioning its consumers rely on.
#[allow(dead_code)]
pub(crate) fn keyed<T>(
    produced: &[Produced],
    pick: impl Fn(tessera_contract::Event) -> Option<T>,
    key_of: impl Fn(&T) -> &str,
) -> Vec<T> {
    events(produced)
        .into_iter()
        .filter_map(|(key, event)| {
            let picked = pick(event)?;
            assert_eq!(key, key_of(&picked), "keyed by the event's own id");
            Some(picked)
        })
        .collect()
}
