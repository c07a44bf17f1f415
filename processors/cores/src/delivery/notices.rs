//! What the delivery tells each subscriber in its inbox besides its credentials: its invitations,
//! the verdicts on its responses, the ends of the offers it was invited to and its own decisions,
//! each as a Notice sealed to the subscriber's pinned key
//! ([`tessera_contract::sealing::notices`]).
//!
//! Subscribers may then read nothing but their inbox: `tessera.requests`, `tessera.decisions`
//! and `tessera.outcomes` name every party of every offer, and Kafka's ACLs cannot hide one key
//! of a topic from another. A notice shows the other readers of the inbox only that its
//! recipient got mail.
//!
//! The recipient's key is the one its invitation carries, which the matcher took from the
//! subscriber's pin: an invitation counts only if the matcher signed it. It is kept per offer
//! and invitee until the offer ends, and per credential for the decisions that follow.
//!
//! # Sealing, and the audit
//!
//! Sealing is deterministic given the delivery's private key, so a replay with the key writes
//! the same bytes. An auditor without it replays with [`NoticeSealer::Logged`]: every notice is
//! still derived (who is told what, when, under which event id), and its sealed bytes are taken
//! from the log where the delivery signed them, as the timekeeper's audit takes a release's
//! halves.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tessera_contract::sealing::notices::{Noticed, seal_notice, sealable};
use tessera_contract::sealing::{PrivateKey, PublicKey};
use tessera_contract::{LogPosition, Notice, SealedBox};

use crate::prelude::*;

/// An invited subscriber's keys, as its invitation carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Invitee {
    /// Its X25519 key: notices are sealed to it.
    pub(super) sealing_key: Vec<u8>,
}

/// Invitees by [`pair`] of offer id and subscriber id, until the offer ends.
pub(super) const INVITEES: Table<Invitee> = Table::new("invitee/");

/// How the delivery seals a notice.
#[derive(Debug)]
pub enum NoticeSealer {
    /// With its private key, as it runs.
    Key(PrivateKey),
    /// As an auditor without the key replays it: the sealed bytes as logged.
    Logged(Box<LoggedNotices>),
}

impl NoticeSealer {
    /// The box for the notice `event_id` of `noticed` to `subscriber_id`, sealed to
    /// `recipient`; `None` if nothing can be sealed to that key, which both modes tell alike (it
    /// depends on the key alone).
    fn seal(
        &self,
        noticed: &Noticed,
        subscriber_id: &str,
        event_id: &str,
        recipient: &PublicKey,
    ) -> Option<SealedBox> {
        if !sealable(recipient) {
            return None;
        }
        match self {
            NoticeSealer::Key(key) => {
                seal_notice(noticed, subscriber_id, event_id, recipient, key).ok()
            }
            // A notice the log lacks is derived with an empty box, so the audit names it.
            NoticeSealer::Logged(logged) => Some(logged.sealed(event_id).unwrap_or(SealedBox {
                enc: Vec::new(),
                ciphertext: Vec::new(),
            })),
        }
    }
}

/// Tells `subscriber_id` of `event`, read at `at`, in a notice sealed to `sealing_key`. A key
/// nothing can be sealed to gets no notice.
///
/// The notice's event id is derived, as every output's, from where its input sat, and also from
/// the recipient's key: from the position alone, anyone who reads the inbox and learns one
/// notice's input (its own, opened) could find the ids of the other notices of that input, and
/// so who else was told of the same offer. Subscribers do not read each other's keys.
pub(super) fn notify(
    sealer: &NoticeSealer,
    out: &mut Outputs,
    subscriber_id: &str,
    sealing_key: &[u8],
    at: LogPosition,
    event: Event,
) {
    let Ok(recipient) = PublicKey::from_bytes(sealing_key) else {
        return;
    };
    let noticed = Noticed { at, event };
    let event_id = notice_id(&out.next_event_id(), sealing_key);
    let Some(sealed) = sealer.seal(&noticed, subscriber_id, &event_id, &recipient) else {
        return;
    };
    out.emit(subscriber_id, |_| {
        Notice {
            event_id,
            subscriber_id: subscriber_id.to_string(),
            sealed,
        }
        .into()
    });
}

/// A notice's event id: a UUID (v5) of the derived id of its place among the outputs and the
/// recipient's key.
fn notice_id(derived: &str, sealing_key: &[u8]) -> String {
    let mut name = derived.as_bytes().to_vec();
    name.extend_from_slice(sealing_key);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &name).to_string()
}

/// The delivery's signed notices on `tessera.deliveries`, by event id: what an audit without the
/// delivery's key takes.
#[derive(Debug)]
pub struct LoggedNotices {
    delivery: VerifyingKey,
    sealed: HashMap<String, SealedBox>,
    unsigned: u64,
}

impl LoggedNotices {
    /// Nothing learned yet; only notices signed with `delivery` will count.
    pub fn new(delivery: VerifyingKey) -> Self {
        LoggedNotices {
            delivery,
            sealed: HashMap::new(),
            unsigned: 0,
        }
    }

    /// Learns from one record of `tessera.deliveries`, as read: its key, value and signature
    /// header. The first signed notice of an event id counts.
    pub fn learn(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, signature: Option<&[u8]>) {
        let Some(Ok(Event::Notice(notice))) = value.map(tessera_contract::decode) else {
            return;
        };
        let signed = Signed::of(key, value, signature);
        if self
            .delivery
            .verify_record(topics::DELIVERIES.name, &signed, "the delivery worker")
            .is_err()
        {
            self.unsigned += 1;
            return;
        }
        self.sealed.entry(notice.event_id).or_insert(notice.sealed);
    }

    fn sealed(&self, event_id: &str) -> Option<SealedBox> {
        self.sealed.get(event_id).cloned()
    }

    /// Notices taken from the log.
    pub fn taken(&self) -> usize {
        self.sealed.len()
    }

    /// Notices under the delivery's name whose signature did not verify: not taken.
    pub fn unsigned(&self) -> u64 {
        self.unsigned
    }
}
