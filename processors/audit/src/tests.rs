//! The replay and the comparison on a log written in memory: a small core runs "live" over the
//! inputs, its outputs become the log, the test tampers with the log, and the audit must name
//! exactly what was done to it.

use std::collections::HashMap;

use tessera_contract::{DeadLetter, Event, OfferWithdrawn, Quote, decode, encode};
use tessera_cores::core::{Core, Emission, Emitted, Input, derived_id};
use tessera_cores::layout::Topics;
use tessera_cores::replay::{Produced, RawRecord};
use tessera_state::State;

use super::compare::{Classifier, Comparison};
use super::replay::{Replay, Step};
use super::report::{At, Finding, Report};
use tessera_producers::client::partition_for;

const NAME: &str = "relay";

/// A core small enough to reason about: each record of `in` is relayed to `out` as an
/// OfferWithdrawn whose reason is the record's value; each record of the broadcast input `all` is
/// relayed once to every key the task has seen on `in`, as the matcher invites its subscribers.
struct Relay;

fn relayed(event_id: String, key: &str, text: &str) -> Emitted {
    Emitted {
        topic: 0,
        key: key.to_string(),
        value: Emission::Event(Box::new(relay_of(event_id, key, text))),
    }
}

/// The event relaying `text` to `key`.
fn relay_of(event_id: String, key: &str, text: &str) -> Event {
    OfferWithdrawn {
        event_id,
        offer_id: key.to_string(),
        provider_id: NAME.to_string(),
        reason: Some(text.to_string()),
    }
    .into()
}

impl Core for Relay {
    type Record = (String, String);

    fn name(&self) -> &str {
        NAME
    }

    fn inputs(&self) -> Vec<String> {
        vec!["in".into(), "all".into()]
    }

    fn outputs(&self) -> Vec<String> {
        vec!["out".into(), "tessera.dead-letters".into()]
    }

    fn broadcast_inputs(&self) -> Vec<usize> {
        vec![1]
    }

    fn decode(&self, raw: tessera_cores::Raw<'_>) -> Result<Self::Record, String> {
        let text = |bytes: Option<&[u8]>| {
            bytes
                .and_then(|b| std::str::from_utf8(b).ok())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok((
            text(raw.key).ok_or("the record has no key")?,
            text(raw.value).ok_or("the record has no value")?,
        ))
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<Self::Record>) -> Vec<Emitted> {
        let Input::Record {
            at,
            value: (key, text),
            ..
        } = input
        else {
            return Vec::new();
        };
        if at.topic == 0 {
            state.put(format!("seen/{key}").as_bytes(), b"");
            return vec![relayed(derived_id(NAME, &at, 0), &key, &text)];
        }
        state
            .scan(b"seen/")
            .into_iter()
            .map(|(seen, _)| {
                let seen = String::from_utf8_lossy(&seen["seen/".len()..]).into_owned();
                relayed(derived_id(&format!("{NAME}/{seen}"), &at, 0), &seen, &text)
            })
            .collect()
    }
}

const PARTITIONS: i32 = 2;
const OUT: &str = "p.out";
const LETTERS: &str = "p.tessera.dead-letters";

/// An input record: topic, partition, offset, stamp, key, value.
type Read = (
    &'static str,
    i32,
    i64,
    i64,
    Option<&'static str>,
    &'static str,
);

/// Task 0 merges in/0 with all/0 and all/1; task 1 merges in/1 with the same. The last record of
/// each broadcast partition stays undecided in both tasks: their own partitions end earlier.
const INPUTS: [Read; 11] = [
    ("p.in", 0, 0, 10, Some("k1"), "a"),
    ("p.in", 0, 1, 30, Some("k2"), "b"),
    ("p.in", 0, 2, 50, None, "no key"),
    ("p.in", 0, 3, 70, Some("k1"), "c"),
    ("p.in", 1, 0, 20, Some("m1"), "d"),
    ("p.in", 1, 1, 40, Some("m1"), "e"),
    ("p.in", 1, 2, 60, Some("m2"), "f"),
    ("p.all", 0, 0, 15, Some("x"), "offer one"),
    ("p.all", 0, 1, 100, Some("x"), "late"),
    ("p.all", 1, 0, 35, Some("y"), "offer two"),
    ("p.all", 1, 1, 110, Some("y"), "late"),
];

/// A record on an output topic.
#[derive(Debug, Clone)]
struct Logged {
    topic: usize,
    partition: i32,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

fn replay(on_step: &mut dyn FnMut(Step<'_>)) -> Replay<Relay> {
    let topics = Topics::of(&Relay, "p.");
    let mut replay = Replay::new(Relay, &topics, PARTITIONS);
    for (topic, partition, offset, stamp, key, value) in INPUTS {
        let record = RawRecord {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            signature: None,
            refused: None,
        };
        let input = topics.inputs.iter().position(|t| t == topic).unwrap();
        replay
            .push(input, partition, offset, stamp, record, on_step)
            .unwrap();
    }
    replay
}

/// What the live processor wrote: each output to the partition its key hashes to, as the
/// runtime's partitioner puts it, the runtime's dead letters (with random ids) to the dead
/// letters.
fn live() -> Vec<Logged> {
    written(|key, _| partition_for(key, PARTITIONS))
}

/// What a processor wrote that put each output on the partition `place(key, task)`.
fn written(place: impl Fn(&str, i32) -> i32) -> Vec<Logged> {
    let mut log = Vec::new();
    replay(&mut |step: Step<'_>| {
        for produced in step.produced {
            log.push(match produced {
                Produced::Output(output) => Logged {
                    topic: output.topic,
                    partition: place(&output.key, step.task),
                    key: Some(output.key.into_bytes()),
                    value: output.value,
                },
                Produced::DeadLetter { at, record, reason } => Logged {
                    topic: 1,
                    partition: 0,
                    key: Some(step.lane.topic.clone().into_bytes()),
                    value: letter(
                        &step.lane.topic,
                        at.partition,
                        at.offset,
                        at.stamp,
                        record,
                        reason,
                    ),
                },
            });
        }
    });
    log
}

fn letter(
    topic: &str,
    partition: i32,
    offset: i64,
    stamp: i64,
    record: RawRecord,
    reason: String,
) -> Vec<u8> {
    let quote = Quote::of(record.key.as_deref(), record.value.as_deref());
    encode(
        &DeadLetter {
            event_id: uuid::Uuid::new_v4().to_string(),
            processor: NAME.into(),
            source_topic: topic.into(),
            source_partition: partition,
            source_offset: offset,
            source_timestamp: Some(stamp),
            key: quote.key,
            value: quote.value,
            reason,
            record_digest: quote.record_digest,
            truncated: quote.truncated,
            task: Some(partition),
        }
        .into(),
    )
    .unwrap()
}

/// Audits `log` with the group's next offsets on `in` per partition, the log read first.
fn audit(log: &[Logged], committed: [i64; 2]) -> Report {
    audit_in_order(log, committed, false)
}

/// Audits `log`, the log read first or, with `replay_first`, after the replay: the comparison
/// pairs records whichever side comes first.
fn audit_in_order(log: &[Logged], committed: [i64; 2], replay_first: bool) -> Report {
    let committed = HashMap::from([(
        "p.in".to_string(),
        HashMap::from([(0, committed[0]), (1, committed[1])]),
    )]);
    let mut comparison = Comparison::new(
        Classifier::new(NAME, 1),
        vec![OUT.into(), LETTERS.into()],
        vec![PARTITIONS, 1],
        vec!["p.in".into(), "p.all".into()],
        committed,
    );
    let publish = |comparison: &mut Comparison| {
        let mut offsets: HashMap<(usize, i32), i64> = HashMap::new();
        for record in log {
            let offset = offsets.entry((record.topic, record.partition)).or_default();
            comparison.published(
                record.topic,
                record.partition,
                *offset,
                record.key.as_deref(),
                Some(&record.value),
            );
            *offset += 1;
        }
    };
    if !replay_first {
        publish(&mut comparison);
    }
    let replayed = replay(&mut |step| comparison.replayed(step));
    if replay_first {
        publish(&mut comparison);
    }
    let mut report = comparison.finish();
    report.undecided = replayed.undecided();
    report
}

const ALL_CONSUMED: [i64; 2] = [4, 3];

/// Appends to `log` a relay record that another producer wrote: an id no input derives.
fn forge(log: &mut Vec<Logged>) {
    let forged = relay_of(uuid::Uuid::new_v4().to_string(), "k1", "forged");
    log.push(Logged {
        topic: 0,
        partition: 0,
        key: Some(b"k1".to_vec()),
        value: encode(&forged).unwrap(),
    });
}

/// The position of the output relaying `text` to `key`, and the output.
fn find(log: &[Logged], key: &str, text: &str) -> (usize, Logged) {
    log.iter()
        .enumerate()
        .find(|(_, r)| {
            r.key.as_deref() == Some(key.as_bytes())
                && matches!(decode(&r.value), Ok(Event::OfferWithdrawn(w)) if w.reason.as_deref() == Some(text))
        })
        .map(|(i, r)| (i, r.clone()))
        .unwrap_or_else(|| panic!("no output relays {text:?} to {key}"))
}

/// Where `log[i]` sits: its offset counts the records before it in its partition.
fn at(log: &[Logged], i: usize) -> At {
    let record = &log[i];
    let offset = log[..i]
        .iter()
        .filter(|r| (r.topic, r.partition) == (record.topic, record.partition))
        .count();
    let topic = if record.topic == 0 { OUT } else { LETTERS };
    At::new(topic, record.partition, offset as i64)
}

#[test]
fn an_untouched_log_matches_and_undecided_tails_wait() {
    let log = live();
    let report = audit(&log, ALL_CONSUMED);
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.derived, log.len() as u64);
    assert_eq!(report.matched, log.len() as u64);
    assert_eq!(report.pending, 0);
    // all/0@1 and all/1@1 in each task: their own partition of `in` ends before them.
    assert_eq!(report.undecided, 4);
    let letters: Vec<&Logged> = log.iter().filter(|r| r.topic == 1).collect();
    assert_eq!(letters.len(), 1, "the keyless record is dead-lettered once");
}

/// `log` is found clean whichever side the comparison gets first, and with a record left out
/// and one forged, the same two findings either way.
fn assert_pairs_either_way(mut log: Vec<Logged>) {
    for replay_first in [false, true] {
        let clean = audit_in_order(&log, ALL_CONSUMED, replay_first);
        assert_eq!(clean.findings, vec![]);
        assert_eq!(clean.matched, log.len() as u64);
    }

    let (i, _) = find(&log, "m1", "e");
    log.remove(i);
    forge(&mut log);
    let report = audit_in_order(&log, ALL_CONSUMED, true);
    let kinds: Vec<&str> = report.findings.iter().map(Finding::kind).collect();
    assert_eq!(kinds, ["missing", "injected"], "{:#?}", report.findings);
    assert_eq!(
        report,
        audit(&log, ALL_CONSUMED),
        "the same findings either way"
    );
}

#[test]
fn records_pair_up_whichever_side_comes_first() {
    assert_pairs_either_way(live());
}

#[test]
fn records_on_other_partitions_than_their_keys_say_still_pair() {
    let log = written(|_, task| task);
    assert!(
        log.iter().any(|r| r.topic == 0
            && r.key.as_deref().is_some_and(|k| {
                partition_for(&String::from_utf8_lossy(k), PARTITIONS) != r.partition
            })),
        "some output sits elsewhere than its key says"
    );
    assert_pairs_either_way(log);
}

#[test]
fn a_record_left_out_is_missing_once_its_input_was_consumed() {
    let mut log = live();
    let (i, _) = find(&log, "m1", "e");
    log.remove(i);
    let report = audit(&log, ALL_CONSUMED);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert!(
        matches!(&report.findings[0], Finding::Missing { topic, input, .. }
            if topic == OUT && *input == At::new("p.in", 1, 1)),
        "{:?}",
        report.findings[0]
    );

    let behind = audit(&log, [4, 1]);
    assert_eq!(behind.findings, vec![], "in/1@1 was not consumed yet");
    assert_eq!(behind.pending, 1);
}

#[test]
fn a_broadcast_output_is_missing_only_when_a_later_input_of_its_task_was_consumed() {
    let mut log = live();
    let (i, _) = find(&log, "k1", "offer one");
    log.remove(i);
    let report = audit(&log, ALL_CONSUMED);
    assert!(
        matches!(&report.findings[..], [Finding::Missing { input, .. }] if *input == At::new("p.all", 0, 0)),
        "{:#?}",
        report.findings
    );
    // Task 0 consumed only in/0@0, stepped before all/0@0: whether all/0@0 was consumed is
    // unknown, so its output may still come.
    let behind = audit(&log, [1, 3]);
    assert_eq!(behind.findings, vec![]);
    assert!(behind.pending >= 1);
}

#[test]
fn a_record_from_another_producer_is_injected() {
    let mut log = live();
    forge(&mut log);
    let report = audit(&log, ALL_CONSUMED);
    let expected = at(&log, log.len() - 1);
    assert!(
        matches!(&report.findings[..], [Finding::Injected { record, event }]
            if *record == expected && event.starts_with("OfferWithdrawn")),
        "{:#?}",
        report.findings
    );
}

#[test]
fn an_altered_field_is_named() {
    let mut log = live();
    let (i, record) = find(&log, "k2", "b");
    let Ok(Event::OfferWithdrawn(mut event)) = decode(&record.value) else {
        unreachable!()
    };
    event.reason = Some("changed".into());
    log[i].value = encode(&event.into()).unwrap();
    let report = audit(&log, ALL_CONSUMED);
    assert!(
        matches!(&report.findings[..], [Finding::Altered { record, input, differences, .. }]
            if *record == at(&log, i)
                && *input == At::new("p.in", 0, 1)
                && differences == &["reason: \"changed\" ≠ \"b\"".to_string()]),
        "{:#?}",
        report.findings
    );
}

#[test]
fn two_records_of_a_task_swapped_are_reordered() {
    let mut log = live();
    let (first, _) = find(&log, "m1", "d");
    let (second, _) = find(&log, "m1", "offer two");
    assert_eq!(
        at(&log, second).offset,
        at(&log, first).offset + 1,
        "adjacent on the log"
    );
    log.swap(first, second);
    let report = audit(&log, ALL_CONSUMED);
    // "offer two" was derived after "d" but now sits before it.
    assert!(
        matches!(&report.findings[..], [Finding::Reordered { record, after, input, .. }]
            if *record == at(&log, first)
                && *after == at(&log, second)
                && *input == At::new("p.all", 1, 0)),
        "{:#?}",
        report.findings
    );
}

#[test]
fn a_record_written_twice_is_a_duplicate() {
    let mut log = live();
    let (i, copy) = find(&log, "k1", "c");
    log.push(copy);
    let report = audit(&log, ALL_CONSUMED);
    assert!(
        matches!(&report.findings[..], [Finding::Duplicate { record, first, .. }]
            if *record == at(&log, log.len() - 1) && *first == at(&log, i)),
        "{:#?}",
        report.findings
    );
}

#[test]
fn runtime_dead_letters_match_by_the_record_they_quote() {
    let mut log = live();
    let i = log.iter().position(|r| r.topic == 1).unwrap();
    let Ok(Event::DeadLetter(mut letter)) = decode(&log[i].value) else {
        unreachable!()
    };
    letter.reason = "something else".into();
    log[i].value = encode(&letter.into()).unwrap();
    let report = audit(&log, ALL_CONSUMED);
    assert!(
        matches!(&report.findings[..], [Finding::Altered { input, differences, .. }]
            if *input == At::new("p.in", 0, 2) && differences[0].starts_with("reason:")),
        "{:#?}",
        report.findings
    );

    log.remove(i);
    let report = audit(&log, ALL_CONSUMED);
    assert!(
        matches!(&report.findings[..], [Finding::Missing { topic, input, .. }]
            if topic == LETTERS && *input == At::new("p.in", 0, 2)),
        "{:#?}",
        report.findings
    );
}
