//! The links on the log, checked from the log alone ([`tessera_contract::links`]): where a chain
//! of verdicts or ledger entries breaks, and how.
//!
//! The replay already derives every link; this check says what became of the chain on the log,
//! in the chain's own terms: a record whose digest no longer matches its content was altered; a
//! record that follows a digest no record carries lost its predecessor (left out, or altered with
//! its digest rewritten); a second record following the same one is an intruder (injected, or
//! written again); a record that sits before the one it follows was reordered. Each finding names
//! the record where the chain breaks. A forged record that starts a chain of its own breaks
//! nothing here; the replay finds it injected.

use std::collections::HashMap;

use tessera_contract::{Link, codec, decode, links};

use super::report::{At, Finding};

/// A linked record read from an output topic.
#[derive(Debug, Clone)]
pub struct Linked {
    /// Where it sits.
    pub at: At,
    /// Whether the replay derived it: of two records following the same one, the derived one
    /// is the genuine one.
    pub derived: bool,
    /// Its link.
    pub link: Link,
    /// Whether its digest matches its content.
    pub intact: bool,
}

impl Linked {
    /// The record's link, if it is a linked event.
    pub fn read(at: At, derived: bool, value: Option<&[u8]>) -> Option<Linked> {
        let value = value?;
        if !codec::peek_kind(value).is_ok_and(links::is_linked) {
            return None;
        }
        let event = decode(value).ok()?;
        let link = links::link_of(&event)?.clone();
        let intact = links::verify(&event, None).is_ok();
        Some(Linked {
            at,
            derived,
            link,
            intact,
        })
    }
}

fn short(digest: &[u8]) -> String {
    digest
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

/// Where the chains formed by `records` (all of one topic) break.
pub fn breaks(records: &[Linked]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut by_digest: HashMap<&[u8], usize> = HashMap::new();
    let mut followers: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        by_digest.entry(record.link.digest.as_slice()).or_insert(i);
        if !record.link.previous.is_empty() {
            followers
                .entry(record.link.previous.as_slice())
                .or_default()
                .push(i);
        }
    }
    let broken = |record: &Linked, reason: String| Finding::BrokenLink {
        record: record.at.clone(),
        reason,
    };
    for record in records {
        if !record.intact {
            findings.push(broken(
                record,
                "its digest does not match its content: it was changed after it was linked".into(),
            ));
        }
        let previous = record.link.previous.as_slice();
        if previous.is_empty() {
            continue;
        }
        match by_digest.get(previous).map(|&j| &records[j]) {
            None => findings.push(broken(
                record,
                format!(
                    "it follows digest {}, which no record on the log carries: the record \
                     before it was left out, or altered with its digest",
                    short(previous)
                ),
            )),
            Some(before)
                if before.at.partition == record.at.partition
                    && before.at.offset > record.at.offset =>
            {
                findings.push(broken(
                    record,
                    format!(
                        "it follows the record at {}, which sits after it: reordered",
                        before.at
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    for (previous, following) in followers {
        if following.len() < 2 {
            continue;
        }
        // The derived follower is genuine; failing that, the first on the log.
        let genuine = following
            .iter()
            .copied()
            .find(|&i| records[i].derived)
            .unwrap_or(following[0]);
        let before = by_digest.get(previous).map_or_else(
            || format!("digest {}", short(previous)),
            |&j| records[j].at.to_string(),
        );
        for &i in following.iter().filter(|&&i| i != genuine) {
            findings.push(broken(
                &records[i],
                format!(
                    "the record at {} already follows {before}: this one was injected or written \
                     again",
                    records[genuine].at
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use tessera_contract::{Event, LogPosition, examples, links};

    use super::*;

    /// A chain of `n` linked records on partition 0 at offsets 0.., as the runtime writes them.
    fn chain(n: usize) -> Vec<(Event, Linked)> {
        let template = examples::all()
            .into_iter()
            .find(|e| links::is_linked(e.kind()))
            .unwrap();
        let mut previous = Vec::new();
        (0..n)
            .map(|i| {
                let mut event = template.clone();
                let source = LogPosition {
                    topic: "tessera.responses".into(),
                    partition: 0,
                    offset: i as i64,
                    stamp: 1_000,
                };
                let input = links::record_digest(None, Some(&[i as u8]));
                previous = links::chain(&mut event, &previous, source, input)
                    .unwrap()
                    .unwrap()
                    .to_vec();
                let linked = Linked::read(
                    At::new("p.tessera.decisions", 0, i as i64),
                    true,
                    Some(&tessera_contract::encode(&event).unwrap()),
                )
                .unwrap();
                (event, linked)
            })
            .collect()
    }

    fn linked(records: Vec<(Event, Linked)>) -> Vec<Linked> {
        records.into_iter().map(|(_, l)| l).collect()
    }

    /// Re-places the records at offsets 0.. in their order.
    fn renumber(mut records: Vec<Linked>) -> Vec<Linked> {
        for (offset, record) in records.iter_mut().enumerate() {
            record.at.offset = offset as i64;
        }
        records
    }

    fn reasons(findings: &[Finding]) -> Vec<(i64, String)> {
        findings
            .iter()
            .map(|f| match f {
                Finding::BrokenLink { record, reason } => (record.offset, reason.clone()),
                other => panic!("not a broken link: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_has_no_break() {
        assert_eq!(breaks(&linked(chain(4))), vec![]);
    }

    #[test]
    fn a_record_left_out_breaks_the_chain_at_its_successor() {
        let mut records = linked(chain(4));
        records.remove(1);
        let found = reasons(&breaks(&renumber(records)));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 1, "the old third record, now at offset 1");
        assert!(found[0].1.contains("left out"), "{found:?}");
    }

    #[test]
    fn an_altered_record_breaks_at_itself() {
        let mut records = chain(3);
        let (event, _) = &mut records[1];
        let Event::CredentialReleased(release) = event else {
            panic!("the template is a release");
        };
        release.subscriber_id = "someone else".into();
        let bytes = tessera_contract::encode(event).unwrap();
        records[1].1 =
            Linked::read(At::new("p.tessera.decisions", 0, 1), false, Some(&bytes)).unwrap();
        let found = reasons(&breaks(&linked(records)));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 1);
        assert!(
            found[0].1.contains("changed after it was linked"),
            "{found:?}"
        );
    }

    #[test]
    fn a_second_follower_is_the_intruder_and_a_swap_is_reordered() {
        let mut records = linked(chain(3));
        let mut copy = records[1].clone();
        copy.derived = false;
        copy.at.offset = 3;
        records.push(copy);
        let found = reasons(&breaks(&records));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].0, 3,
            "the copy, not the derived record, is the intruder"
        );
        assert!(
            found[0].1.contains("injected or written again"),
            "{found:?}"
        );

        let mut records = linked(chain(3));
        records.swap(1, 2);
        let found = reasons(&breaks(&renumber(records)));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 1, "the third record now sits before the second");
        assert!(found[0].1.contains("reordered"), "{found:?}");
    }
}
