//! History survives a schema change: a log written with the previous version of an event replays,
//! restores and audits clean after a field was added to it.
//!
//! The event is OfferPublished, whose v4 (the current schema) added `provider_endorsement`
//! (`["null", "bytes"]`, default null) to v3. The log, `fixtures/offer_published_v3.jsonl`, is
//! the timekeeper's three inputs with two offers written with v3, their invitations, two
//! responses to the first (capacity one), a withdrawal of the second, and the ticker's ticks past
//! the deadline. It was written once with `codec::encode_as(.., 3)`, as a provider built against
//! v3 writes an offer, each record signed by its writer as on the broker, and is pinned: the test
//! reads the committed bytes and never regenerates them, so it keeps holding records of v3
//! however the encoder changes. `TESSERA_WRITE_FIXTURES=1` writes it anew (only to repair it;
//! review the diff).
//!
//! What is shown: every record decodes (the offers as v3 records), the timekeeper's core replays
//! the log without a dead letter and releases, rejects and closes as the rules say, a task whose
//! state is restored from its changelog half-way goes on to the same outputs, and the auditor's
//! replay and comparison find the log clean, and the verdicts are byte for byte the ones pinned
//! (by digest) when the step took over encoding the cores' events. What is not: the outputs on the
//! log are the ones the current timekeeper writes (its output events have not changed since v3 of
//! the offer), not ones an older timekeeper wrote.

use std::collections::HashMap;
use std::path::PathBuf;

use hpke::rand_core::UnwrapErr;
use tessera_audit::compare::{Classifier, Comparison};
use tessera_audit::replay::{Replay, Step};
use tessera_contract::rules::request_id;
use tessera_contract::sealing::{PrivateKey, seal_offer};
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{OFFERS, REQUESTS, RESPONSES, Topic};
use tessera_contract::{
    Custody, Deadline, Event, EventKind, InteractionRequested, LogPosition, OfferPublished,
    OfferTerms, OfferWithdrawn, Recommendation, ResponseSubmitted, Tick, TimeRule, codec, decode,
    encode, identity, links,
};
use tessera_cores::Core;
use tessera_cores::core::Output;
use tessera_cores::layout::Topics;
use tessera_cores::merge::{Entry, Merge};
use tessera_cores::replay::{self, Produced, RawRecord};
use tessera_cores::timekeeper::Timekeeper;
use tessera_producers::client::partition_for;
use tessera_state::MemoryState;
use tessera_task_store::{Checkpoint, TaskStore};

/// 2025-11-25T09:00:00.000Z, when the log starts.
const T: i64 = 1_764_061_200_000;
const DEADLINE: i64 = T + 60_000;
const PARTITIONS: i32 = 1;
/// The version of OfferPublished the log was written with.
const V3: u32 = 3;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/offer_published_v3.jsonl")
}

fn timekeeper_key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x70; 32]).unwrap()
}

/// The signing key of the party with seed `seed`: the provider P, the matcher, subscribers.
fn signer(seed: u8) -> SigningKey {
    SigningKey::derive(&PrivateKey::from_bytes(&[seed; 32]).unwrap())
}

const P: u8 = 0x50;
const MATCHER: u8 = 0x4d;
const S1: u8 = 1;
const S2: u8 = 2;

fn timekeeper() -> Timekeeper {
    Timekeeper::new(timekeeper_key(), signer(MATCHER).verifying_key())
}

/// One record of the log.
#[derive(Debug, Clone)]
struct Logged {
    topic: String,
    partition: i32,
    offset: i64,
    stamp: i64,
    record: RawRecord,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn recommendation() -> Recommendation {
    Recommendation {
        identifier: "doc-X".into(),
        name: "Quarterly report X".into(),
        features: [("format".to_string(), "pdf".to_string())].into(),
        parameters: [("pages".to_string(), 42)].into(),
    }
}

/// Writes the log: what a v3 provider, the matcher, two subscribers and the ticker wrote.
fn write_fixture() {
    let rule = TimeRule::Deadline(Deadline { at: DEADLINE });
    let offer = |n: u8| {
        let offer_id = format!("o{n}");
        let sealed = seal_offer(
            &offer_id,
            b"the quarterly report",
            Custody::CoSign,
            &timekeeper_key().public_key(),
            &mut UnwrapErr(getrandom::SysRng),
        )
        .unwrap();
        let offer = identity::with_package_signed(
            OfferPublished {
                event_id: format!("00000000-0000-4000-8000-0000000000{n:02x}"),
                offer_id,
                provider_id: "P".into(),
                signing_key: signer(P).verifying_key().to_bytes(),
                package_signature: Vec::new(),
                // v3 has no endorsement: the field v4 added.
                provider_endorsement: None,
                provider_contact: "p@example.org".into(),
                recommendation: recommendation(),
                time_rule: rule,
                capacity: Some(1),
                reward: None,
                decide_within: None,
                credential: sealed.credential,
                // v3 has no invite_late either: the field v5 added.
                invite_late: false,
            },
            &signer(P),
        );
        codec::encode_as(&offer.into(), V3).unwrap()
    };
    let invitation = |subscriber: u8| {
        let subscriber_id = format!("s{subscriber}");
        encode(
            &InteractionRequested {
                event_id: format!("00000000-0000-4000-8000-0000000001{subscriber:02x}"),
                request_id: request_id("o1", &subscriber_id),
                offer_id: "o1".into(),
                subscriber_id,
                subscriber_key: PrivateKey::from_bytes(&[subscriber; 32])
                    .unwrap()
                    .public_key()
                    .to_bytes(),
                subscriber_signing_key: signer(subscriber).verifying_key().to_bytes(),
                recommendation: recommendation(),
                offer: OfferTerms {
                    position: LogPosition {
                        topic: OFFERS.name.into(),
                        partition: 0,
                        offset: 0,
                        stamp: T,
                    },
                    time_rule: rule,
                },
                provider_contact: "p@example.org".into(),
                decide_within: None,
            }
            .into(),
        )
        .unwrap()
    };
    let response = |subscriber: u8| {
        let subscriber_id = format!("s{subscriber}");
        encode(
            &ResponseSubmitted {
                event_id: format!("00000000-0000-4000-8000-0000000002{subscriber:02x}"),
                offer_id: "o1".into(),
                request_id: request_id("o1", &subscriber_id),
                subscriber_id,
            }
            .into(),
        )
        .unwrap()
    };
    let withdrawal = encode(
        &OfferWithdrawn {
            event_id: "00000000-0000-4000-8000-000000000301".into(),
            offer_id: "o2".into(),
            provider_id: "P".into(),
            reason: Some("sold elsewhere".into()),
        }
        .into(),
    )
    .unwrap();
    let tick = |seq: i64| {
        encode(
            &Tick {
                event_id: format!("00000000-0000-4000-8000-0000000004{seq:02x}"),
                ticker: "ticker".into(),
                seq,
            }
            .into(),
        )
        .unwrap()
    };
    // (topic, stamp, key, value, signer)
    type Logged<'a> = (Topic, i64, &'a str, Vec<u8>, Option<u8>);
    let records: Vec<Logged> = vec![
        (OFFERS, T, "o1", offer(1), Some(P)),
        (OFFERS, T + 1, "o2", offer(2), Some(P)),
        (OFFERS, T + 30, "o2", withdrawal, Some(P)),
        (OFFERS, DEADLINE + 1_000, "tick", tick(1), None),
        (REQUESTS, T + 10, "o1", invitation(S1), Some(MATCHER)),
        (REQUESTS, T + 11, "o1", invitation(S2), Some(MATCHER)),
        (REQUESTS, DEADLINE + 1_000, "tick", tick(2), None),
        (RESPONSES, T + 20, "o1", response(S1), Some(S1)),
        (RESPONSES, T + 21, "o1", response(S2), Some(S2)),
        (RESPONSES, DEADLINE + 1_000, "tick", tick(3), None),
    ];
    let mut offsets: HashMap<&str, i64> = HashMap::new();
    let mut lines = String::new();
    for (topic, stamp, key, value, by) in records {
        let offset = offsets.entry(topic.name).or_default();
        let signature =
            by.map(|by| signer(by).sign_record(topic.name, Some(key.as_bytes()), Some(&value)));
        let line = serde_json::json!({
            "topic": topic.name,
            "partition": 0,
            "offset": *offset,
            "stamp": stamp,
            "key": key,
            "value": hex(&value),
            "signature": signature.map(|s| hex(&s)),
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
        *offset += 1;
    }
    std::fs::create_dir_all(fixture_path().parent().unwrap()).unwrap();
    std::fs::write(fixture_path(), lines).unwrap();
}

/// The pinned log, in the order it was written (each partition in offset order).
fn log() -> Vec<Logged> {
    if std::env::var_os("TESSERA_WRITE_FIXTURES").is_some() {
        write_fixture();
    }
    let text = std::fs::read_to_string(fixture_path()).unwrap();
    text.lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            Logged {
                topic: json["topic"].as_str().unwrap().into(),
                partition: json["partition"].as_i64().unwrap() as i32,
                offset: json["offset"].as_i64().unwrap(),
                stamp: json["stamp"].as_i64().unwrap(),
                record: RawRecord {
                    key: json["key"].as_str().map(|k| k.as_bytes().to_vec()),
                    value: json["value"].as_str().map(unhex),
                    signature: json["signature"].as_str().map(unhex),
                    refused: None,
                },
            }
        })
        .collect()
}

fn input_of(core: &impl Core, topic: &str) -> usize {
    core.inputs().iter().position(|t| t == topic).unwrap()
}

/// The log as the one task's merge orders it, every lane finished.
fn merged(log: &[Logged]) -> Vec<Entry<RawRecord>> {
    let core = timekeeper();
    let mut merge = Merge::new(core.inputs().len());
    for logged in log {
        let input = input_of(&core, &logged.topic);
        merge
            .push(
                input,
                logged.partition,
                logged.offset,
                logged.stamp,
                logged.record.clone(),
            )
            .unwrap();
    }
    for input in 0..core.inputs().len() {
        merge.finish(input);
    }
    std::iter::from_fn(|| merge.pop()).collect()
}

fn outputs(produced: &[Produced]) -> Vec<Output> {
    produced
        .iter()
        .map(|p| match p {
            Produced::Output(output) => output.clone(),
            Produced::DeadLetter { at, reason, .. } => {
                panic!("a dead letter for the record at {at:?}: {reason}")
            }
        })
        .collect()
}

#[test]
fn the_log_is_of_the_previous_version_and_decodes() {
    let log = log();
    let offers: Vec<&Logged> = log
        .iter()
        .filter(|l| {
            codec::peek_kind(l.record.value.as_deref().unwrap()).unwrap()
                == EventKind::OfferPublished
        })
        .collect();
    assert_eq!(offers.len(), 2);
    for logged in offers {
        let value = logged.record.value.as_deref().unwrap();
        assert_eq!(
            codec::peek_version(value).unwrap(),
            Some(V3),
            "written with v3"
        );
        let Event::OfferPublished(offer) = decode(value).unwrap() else {
            unreachable!()
        };
        assert_eq!(
            offer.provider_endorsement, None,
            "the field v4 added, at its default"
        );
        assert!(!offer.signing_key.is_empty() && !offer.package_signature.is_empty());
    }
    for logged in &log {
        decode(logged.record.value.as_deref().unwrap()).unwrap();
    }
}

/// Every output of an uninterrupted replay, and their events.
fn replayed(log: &[Logged]) -> Vec<Output> {
    let mut core = timekeeper();
    let mut state = MemoryState::new();
    let produced: Vec<Produced> = merged(log)
        .into_iter()
        .flat_map(|entry| replay::step(&mut core, &mut state, entry))
        .collect();
    outputs(&produced)
}

#[test]
fn the_log_replays_without_a_dead_letter() {
    let outputs = replayed(&log());
    let events: Vec<Event> = outputs.iter().map(|o| decode(&o.value).unwrap()).collect();
    let released: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::CredentialReleased(r) => Some(r.subscriber_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(released, ["s1"], "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ResponseRejected(r) if r.subscriber_id == "s2")),
        "s2 answered after the capacity was taken: {events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::OfferClosed(c) if c.offer_id == "o1")),
        "{events:#?}"
    );
}

/// The [`links::record_digest`] of each output of [`replayed`], as the timekeeper wrote them while
/// its core still encoded its verdicts and the step decoded, linked and encoded them again: how
/// the step comes to the bytes may change, the bytes (event ids, links, digests) may not. A log written anew needs them pinned anew.
const PINNED_OUTPUTS: [&str; 4] = [
    "2c3ac1e449195e3b79c80ecbded251586b775ebe661d36e696cc6f152d8bfc64",
    "c151560b297766a0cbc362f503509cff348cf448bf999f524f52a8f1a436690f",
    "850a979acefbf1e4213f3ff8624ac4c5a2a1699dbedeacbb018c4ee2c5501da9",
    "f10c87febf619b7e1a3c5bc7a6b73ca2f3d7d79bcd6471a5971572aa07e07bb2",
];

#[test]
fn the_verdicts_are_the_bytes_pinned() {
    let digests: Vec<String> = replayed(&log())
        .iter()
        .map(|o| {
            hex(&links::record_digest(
                Some(o.key.as_bytes()),
                Some(&o.value),
            ))
        })
        .collect();
    assert_eq!(digests, PINNED_OUTPUTS);
}

#[test]
fn a_task_restored_from_its_changelog_half_way_goes_on_alike() {
    let log = log();
    let entries = merged(&log);
    // Split after s1's response: s2's rejection needs the restored state to know the capacity
    // is taken.
    let split = entries
        .iter()
        .position(|e| e.item.value == log[7].record.value)
        .unwrap()
        + 1;
    let dir = tempfile::tempdir().unwrap();
    let mut first = TaskStore::open(dir.path().join("first")).unwrap();
    let mut core = timekeeper();
    let mut produced = Vec::new();
    for entry in entries[..split].iter().cloned() {
        produced.extend(replay::step(&mut core, &mut first, entry));
    }
    assert!(first.take_failure().is_none());
    let changelog = first.changelog(&Checkpoint::default());
    drop(first);
    let mut restored = TaskStore::open(dir.path().join("restored")).unwrap();
    restored.restore(&changelog).unwrap();
    let mut core = timekeeper();
    for entry in entries[split..].iter().cloned() {
        produced.extend(replay::step(&mut core, &mut restored, entry));
    }
    assert!(restored.take_failure().is_none());
    assert_eq!(outputs(&produced), replayed(&log));
}

/// Replays `log` as the auditor does, reading each input partition in order, handing each step
/// to `on_step`.
fn audit_replay(log: &[Logged], on_step: &mut dyn FnMut(Step<'_>)) {
    let core = timekeeper();
    let topics = Topics::of(&core, "");
    let mut replay = Replay::new(core, &topics, PARTITIONS);
    for logged in log {
        let input = topics
            .inputs
            .iter()
            .position(|t| t == &logged.topic)
            .unwrap();
        replay
            .push(
                input,
                logged.partition,
                logged.offset,
                logged.stamp,
                logged.record.clone(),
                on_step,
            )
            .unwrap();
    }
}

#[test]
fn the_log_audits_clean() {
    let log = log();
    // What the processor wrote, as the runtime does: its merge waits, as the auditor's does, for
    // a record it cannot order yet; each output on the partition its key hashes to.
    let mut written = Vec::new();
    audit_replay(&log, &mut |step| written.extend(outputs(&step.produced)));
    let core = timekeeper();
    let topics = Topics::of(&core, "");
    let committed: HashMap<String, HashMap<i32, i64>> = topics
        .inputs
        .iter()
        .map(|topic| {
            let next = log.iter().filter(|l| &l.topic == topic).count() as i64;
            (topic.clone(), HashMap::from([(0, next)]))
        })
        .collect();
    let mut comparison = Comparison::new(
        Classifier::new(core.name(), 1),
        core.outputs(),
        vec![PARTITIONS; core.outputs().len()],
        topics.inputs.clone(),
        committed,
    );
    let mut offsets: HashMap<(usize, i32), i64> = HashMap::new();
    for output in &written {
        let partition = partition_for(&output.key, PARTITIONS);
        let offset = offsets.entry((output.topic, partition)).or_default();
        comparison.published(
            output.topic,
            partition,
            *offset,
            Some(output.key.as_bytes()),
            Some(&output.value),
        );
        *offset += 1;
    }
    let mut dead_letters = 0;
    audit_replay(&log, &mut |step| {
        dead_letters += step
            .produced
            .iter()
            .filter(|p| matches!(p, Produced::DeadLetter { .. }))
            .count();
        comparison.replayed(step)
    });
    let report = comparison.finish();
    assert_eq!(dead_letters, 0);
    assert!(report.clean(), "{:#?}", report.findings);
    assert!(report.derived > 0);
    assert_eq!(report.matched, report.derived, "{report:#?}");
}
