//! Tamper evidence: every verdict (CredentialReleased, ResponseRejected, OfferRejected,
//! OfferClosed) and every ledger entry (RewardCredited) carries a [`Link`] that chains it to the
//! previous one its processor task wrote and to the input record that produced it.
//!
//! A link's digest is SHA-256 over the tag `tessera/v1 link` and the event's own encoding with
//! the digest left empty. That encoding holds the previous digest, the input's position and the
//! digest of the input record ([`record_digest`]), so the digest covers the whole history of the
//! task's chain and the record that caused each step. A record altered on the log no longer
//! matches its digest; one left out leaves its successor pointing at a digest nobody has; one
//! injected or replayed makes two records follow the same one; one moved sits before the record
//! it follows. The digests use no key, so anyone can check a link, and anyone could also write a
//! new chain: the chain's head lives in the task's state and in the parties' receipts, and an
//! auditor replaying the inputs derives every digest itself.
//!
//! The runtime's step (`tessera_cores::replay::step`) fills the links: a core emits these events
//! unencoded with [`Link::default`], and the step chains them in the order it produces them, then
//! encodes each once.

use sha2::{Digest, Sha256};

use crate::codec::{EncodeError, encode};
use crate::events::{Event, EventKind, Link, LogPosition};

/// Bytes of every digest.
pub const DIGEST_LEN: usize = 32;

const TAG: &[u8] = b"tessera/v1 link";

/// Whether events of `kind` carry a link.
pub fn is_linked(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::CredentialReleased
            | EventKind::ResponseRejected
            | EventKind::OfferRejected
            | EventKind::OfferClosed
            | EventKind::RewardCredited
    )
}

/// SHA-256 of a record's key and value, each written as absent (`0`) or present (`1`) followed
/// by its length (8 bytes, big-endian) and its bytes.
pub fn record_digest(key: Option<&[u8]>, value: Option<&[u8]>) -> [u8; DIGEST_LEN] {
    let mut hash = Sha256::new();
    for part in [key, value] {
        match part {
            None => hash.update([0]),
            Some(bytes) => {
                hash.update([1]);
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            }
        }
    }
    hash.finalize().into()
}

/// The link an event carries, if its kind has one.
pub fn link_of(event: &Event) -> Option<&Link> {
    match event {
        Event::CredentialReleased(e) => Some(&e.link),
        Event::ResponseRejected(e) => Some(&e.link),
        Event::OfferRejected(e) => Some(&e.link),
        Event::OfferClosed(e) => Some(&e.link),
        Event::RewardCredited(e) => Some(&e.link),
        _ => None,
    }
}

fn link_mut(event: &mut Event) -> Option<&mut Link> {
    match event {
        Event::CredentialReleased(e) => Some(&mut e.link),
        Event::ResponseRejected(e) => Some(&mut e.link),
        Event::OfferRejected(e) => Some(&mut e.link),
        Event::OfferClosed(e) => Some(&mut e.link),
        Event::RewardCredited(e) => Some(&mut e.link),
        _ => None,
    }
}

/// The digest `event`'s link must carry, from everything else in it; `None` for an event without
/// a link.
pub fn digest(event: &Event) -> Result<Option<[u8; DIGEST_LEN]>, EncodeError> {
    let mut unsigned = event.clone();
    let Some(link) = link_mut(&mut unsigned) else {
        return Ok(None);
    };
    link.digest.clear();
    Ok(Some(hashed(&encode(&unsigned)?)))
}

/// The digest of an encoded linked event. It hashes the record in the form tessera first wrote
/// ([`crate::codec::digest_form`]), whichever fingerprint its header carries, so a chain's digests
/// do not depend on the header: logs written before tessera took the specification's fingerprint
/// keep verifying, and replays of them derive the same links.
fn hashed(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    let mut hash = Sha256::new();
    hash.update(TAG);
    for part in crate::codec::digest_form(bytes) {
        hash.update(part);
    }
    hash.finalize().into()
}

/// The digests `event` had if it was written with an earlier released version of its schema
/// ([`crate::evolution`]): its writer hashed that version's encoding. Only versions that carry
/// all of the event count (whatever a version lacks must be at its default in the event), so a
/// digest found here still covers every field of the event.
fn earlier_digests(event: &Event) -> Vec<[u8; DIGEST_LEN]> {
    let mut unsigned = event.clone();
    let Some(link) = link_mut(&mut unsigned) else {
        return Vec::new();
    };
    link.digest.clear();
    let Ok(current) = encode(&unsigned) else {
        return Vec::new();
    };
    crate::evolution::releases(event.kind())
        .into_iter()
        .filter_map(|release| crate::codec::encode_as(&unsigned, release.version).ok())
        .filter(|bytes| {
            *bytes != current && crate::codec::decode(bytes).ok().as_ref() == Some(&unsigned)
        })
        .map(|bytes| hashed(&bytes))
        .collect()
}

/// Chains `event` after the digest `previous` (empty for a task's first link), as produced by the
/// input record at `source` whose [`record_digest`] is `input`. Returns the event's digest, the
/// next link's `previous`; `None`, and the event unchanged, for an event without a link.
pub fn chain(
    event: &mut Event,
    previous: &[u8],
    source: LogPosition,
    input: [u8; DIGEST_LEN],
) -> Result<Option<[u8; DIGEST_LEN]>, EncodeError> {
    let Some(link) = link_mut(event) else {
        return Ok(None);
    };
    *link = Link {
        previous: previous.to_vec(),
        source,
        input: input.to_vec(),
        digest: Vec::new(),
    };
    let Some(own) = digest(event)? else {
        return Ok(None);
    };
    if let Some(link) = link_mut(event) {
        link.digest = own.to_vec();
    }
    Ok(Some(own))
}

/// Why a link does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The event's kind carries no link.
    #[error("a {0} carries no link")]
    Unlinked(&'static str),
    /// The digest is not the one the event's content gives: the event was changed after it was
    /// linked.
    #[error("its digest does not match its content")]
    Digest,
    /// The record the link names as its input is not the one read there.
    #[error("its input digest does not match the record at its source")]
    Input,
    /// The event could not be encoded to compute its digest.
    #[error("{0}")]
    Encode(String),
}

impl From<EncodeError> for LinkError {
    fn from(error: EncodeError) -> Self {
        LinkError::Encode(error.to_string())
    }
}

/// The key and value of the record a link names, as read from the log.
pub type SourceRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Checks that `event`'s digest is the one its content gives and, given the key and value of the
/// record at its link's source, that the link names that record. The content's encoding is the
/// current schema's or, for an event decoded from a record of an earlier released version, that
/// version's.
pub fn verify(event: &Event, input: Option<SourceRecord<'_>>) -> Result<(), LinkError> {
    let unlinked = LinkError::Unlinked(event.kind().name());
    let link = link_of(event).ok_or(unlinked.clone())?;
    let own = digest(event)?.ok_or(unlinked)?;
    // A record written before its schema changed was hashed in the version it was written with.
    if own.as_slice() != link.digest.as_slice()
        && !earlier_digests(event)
            .iter()
            .any(|d| d.as_slice() == link.digest.as_slice())
    {
        return Err(LinkError::Digest);
    }
    if let Some((key, value)) = input
        && record_digest(key, value).as_slice() != link.input.as_slice()
    {
        return Err(LinkError::Input);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples;

    fn linked() -> Vec<Event> {
        examples::all()
            .into_iter()
            .filter(|e| is_linked(e.kind()))
            .collect()
    }

    fn source(offset: i64) -> LogPosition {
        LogPosition {
            topic: "tessera.responses".into(),
            partition: 1,
            offset,
            stamp: 1_764_061_200_000,
        }
    }

    #[test]
    fn every_linked_kind_has_an_example_and_a_link() {
        let kinds: Vec<EventKind> = linked().iter().map(Event::kind).collect();
        for kind in EventKind::ALL.iter().filter(|k| is_linked(**k)) {
            assert!(kinds.contains(kind), "{kind:?}");
        }
        for event in examples::all() {
            assert_eq!(
                link_of(&event).is_some(),
                is_linked(event.kind()),
                "{:?}",
                event.kind()
            );
        }
    }

    #[test]
    fn a_chained_event_verifies_and_any_change_breaks_it() {
        let input = record_digest(Some(b"offer-1"), Some(b"response"));
        let mut previous = Vec::new();
        for mut event in linked() {
            let own = chain(&mut event, &previous, source(7), input)
                .unwrap()
                .unwrap();
            assert_eq!(
                verify(&event, Some((Some(b"offer-1"), Some(b"response")))),
                Ok(())
            );
            assert_eq!(
                verify(&event, Some((Some(b"offer-1"), Some(b"another")))),
                Err(LinkError::Input)
            );
            let mut moved = event.clone();
            if let Some(link) = link_mut(&mut moved) {
                link.source.offset = 8;
            }
            assert_eq!(verify(&moved, None), Err(LinkError::Digest));
            let mut detached = event.clone();
            if let Some(link) = link_mut(&mut detached) {
                link.previous = vec![9; DIGEST_LEN];
            }
            assert_eq!(verify(&detached, None), Err(LinkError::Digest));
            previous = own.to_vec();
        }
    }

    #[test]
    fn the_digest_covers_the_whole_event() {
        let input = record_digest(None, Some(b"x"));
        let mut event = linked().remove(0);
        chain(&mut event, &[], source(1), input).unwrap();
        let Event::CredentialReleased(mut changed) = event.clone() else {
            panic!("the first linked example is a release");
        };
        changed.subscriber_id.push('!');
        assert_eq!(
            verify(&Event::CredentialReleased(changed), None),
            Err(LinkError::Digest)
        );
        assert_eq!(verify(&event, None), Ok(()));
    }

    #[test]
    fn a_record_written_with_an_earlier_version_verifies_in_it() {
        // CredentialReleased v1 had no subscriber_signing_key (v2 added it, default empty).
        let mut event = linked().remove(0);
        let Event::CredentialReleased(release) = &mut event else {
            panic!("the first linked example is a release");
        };
        release.subscriber_signing_key.clear();
        let mut cleared = event.clone();
        link_mut(&mut cleared).unwrap().digest.clear();
        // As a v1 writer linked and wrote it: its digest over the v1 encoding.
        let v1_digest = hashed(&crate::codec::encode_as(&cleared, 1).unwrap());
        link_mut(&mut event).unwrap().digest = v1_digest.to_vec();
        let written = crate::codec::encode_as(&event, 1).unwrap();
        assert_eq!(crate::codec::peek_version(&written).unwrap(), Some(1));
        let read = crate::codec::decode(&written).unwrap();
        assert_eq!(verify(&read, None), Ok(()));
        // Changed, it no longer does, in any version.
        let Event::CredentialReleased(mut changed) = read.clone() else {
            unreachable!()
        };
        changed.credential_id.push('!');
        assert_eq!(
            verify(&Event::CredentialReleased(changed.clone()), None),
            Err(LinkError::Digest)
        );
        // Nor does a field v1 cannot carry, set after the digest: v1's encoding does not cover it.
        changed.credential_id.pop();
        changed.subscriber_signing_key = vec![7; 32];
        assert_eq!(
            verify(&Event::CredentialReleased(changed), None),
            Err(LinkError::Digest)
        );
    }

    #[test]
    fn record_digests_tell_absent_from_empty() {
        assert_ne!(
            record_digest(None, Some(b"")),
            record_digest(Some(b""), Some(b""))
        );
        assert_ne!(
            record_digest(Some(b"ab"), Some(b"c")),
            record_digest(Some(b"a"), Some(b"bc"))
        );
    }
}
