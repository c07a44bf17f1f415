//! The runtime's merge and a stateful core together are a pure function of the input partitions:
//! however the partitions' records arrive (fetches complete in any order, pops happen whenever),
//! the outputs, dead letters and final state are identical, byte for byte.

mod support;

use proptest::prelude::*;
use tessera_contract::{Event, Tick, encode};
use tessera_cores::counter::Counter;
use tessera_cores::replay::{Produced, RawRecord};
use tessera_state::MemoryState;

/// What a generated input record is.
#[derive(Debug, Clone)]
enum Kind {
    Counted(u8),
    Tick,
    Garbage,
}

fn record(kind: &Kind) -> RawRecord {
    match kind {
        Kind::Counted(k) => RawRecord {
            key: Some(format!("key-{k}").into_bytes()),
            value: Some(b"x".to_vec()),
            signature: None,
            refused: None,
        },
        Kind::Tick => RawRecord {
            key: Some(b"tick".to_vec()),
            value: Some(
                encode(&Event::Tick(Tick {
                    event_id: "00000000-0000-4000-8000-000000000000".into(),
                    ticker: "t".into(),
                    seq: 0,
                }))
                .unwrap(),
            ),
            signature: None,
            refused: None,
        },
        Kind::Garbage => RawRecord {
            key: None,
            value: Some(vec![0xde, 0xad]),
            signature: None,
            refused: None,
        },
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => (0u8..8).prop_map(Kind::Counted),
        2 => Just(Kind::Tick),
        1 => Just(Kind::Garbage),
    ]
}

/// Three input partitions of one task: per record, (stamp step which may be negative, kind).
fn task() -> impl Strategy<Value = Vec<Vec<(i64, Kind)>>> {
    proptest::collection::vec(proptest::collection::vec((-5i64..40, kind()), 0..40), 3)
}

fn run(
    lanes: &[Vec<(i64, Kind)>],
    schedule: &mut dyn Iterator<Item = usize>,
) -> (Vec<Produced>, MemoryState) {
    let core = Counter::new(
        "counter",
        vec!["a".into(), "b".into(), "c".into()],
        "counts",
        60,
    );
    let lanes: Vec<Vec<(i64, RawRecord)>> = lanes
        .iter()
        .map(|lane| {
            lane.iter()
                .map(|(step, kind)| (*step, record(kind)))
                .collect()
        })
        .collect();
    support::deliver(core, 1_000, &lanes, schedule)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn outputs_do_not_depend_on_delivery_order(
        lanes in task(),
        schedules in proptest::collection::vec(proptest::collection::vec(0usize..64, 0..300), 8),
    ) {
        // Delivery in partition order, one partition after the other, is the reference.
        let (expected, expected_state) = run(&lanes, &mut std::iter::empty());
        let records: usize = lanes.iter().map(Vec::len).sum();
        let counted = expected.iter().filter(|p| matches!(p, Produced::Output(o) if o.value.contains(&b'='))).count();
        let counted_inputs = lanes.iter().flatten().filter(|(_, k)| matches!(k, Kind::Counted(_))).count();
        prop_assert_eq!(counted, counted_inputs, "every counted record gives one count ({} records)", records);
        for schedule in schedules {
            let (produced, state) = run(&lanes, &mut schedule.into_iter());
            prop_assert_eq!(&produced, &expected);
            prop_assert_eq!(&state, &expected_state);
        }
    }
}
