//! A subscriber's inbox: its partition of `tessera.deliveries`, keyed by subscriber id, read and
//! opened.
//!
//! Everything a subscriber is told arrives there: its credentials, and notices of its
//! invitations, the verdicts on its responses, the ends of its offers and its own decisions,
//! each sealed to its key by the delivery worker. So a subscriber reads one partition, whatever
//! the traffic of others (it shares the partition with the subscribers whose ids hash to it, and
//! skips their mail unread), and needs no read access to the topics that name other parties.
//! A record counts only if the pinned delivery worker signed it; a notice only if it opens with
//! the subscriber's key and is addressed to it.

use rdkafka::ClientConfig;
use tessera_contract::sealing::PrivateKey;
use tessera_contract::sealing::notices::{Noticed, open_notice};
use tessera_contract::signing::VerifyingKey;
use tessera_contract::topics::DELIVERIES;
use tessera_contract::{CredentialDelivered, Event};
use tracing::warn;

use crate::client::{
    ClientError, Record, partition_count, partition_for, read_partition_of, reader,
};

/// Whose inbox, and what opens and checks it.
#[derive(Debug, Clone, Copy)]
pub struct Inbox<'a> {
    /// The subscriber.
    pub subscriber_id: &'a str,
    /// Its private key, which opens its notices; without it only credentials are read (they
    /// are opened later, with the key, by [`crate::subscriber::open`]).
    pub key: Option<&'a PrivateKey>,
    /// The pinned delivery worker's verifying key: only what it signed counts.
    pub delivery: &'a VerifyingKey,
}

/// A record of the inbox for its subscriber, checked and opened.
#[derive(Debug, Clone)]
pub enum Mail {
    /// A notice: the inbox record, and what it told.
    Notice(Record, Box<Noticed>),
    /// A credential, checked as `subscriber open` checks it
    /// ([`crate::subscriber::check_delivered`]).
    Delivered(Record, Box<CredentialDelivered>),
}

impl Inbox<'_> {
    /// The topic and partition the inbox is on, for an installation's `prefix`.
    pub fn partition(
        &self,
        config: &ClientConfig,
        prefix: &str,
    ) -> Result<(String, i32), ClientError> {
        let topic = DELIVERIES.full_name(prefix);
        let partitions = partition_count(&reader(config, false)?, &topic)?;
        Ok((topic.clone(), partition_for(self.subscriber_id, partitions)))
    }

    /// What `record`, read from the inbox's partition, is for this subscriber: `None` for
    /// another's mail, a tombstone or a DeliveryFailed (the webhook worker's word to the
    /// platform); `Err` with the reason for mail it refuses.
    pub fn open(&self, record: &Record) -> Option<Result<Mail, Refused>> {
        if record.key.as_deref() != Some(self.subscriber_id) {
            return None;
        }
        let refused = |what, reason| Refused { what, reason };
        let event = match record.event.as_ref()? {
            Ok(event) => event,
            Err(e) => return Some(Err(refused("record", format!("not a tessera event: {e}")))),
        };
        Some(match event {
            Event::Notice(notice) if notice.subscriber_id == self.subscriber_id => {
                let key = self.key?;
                let signed = self
                    .delivery
                    .verify_record(DELIVERIES.name, &record.signed, "the delivery worker")
                    .map_err(|e| {
                        format!(
                            "Unauthenticated: the notice is not the pinned delivery worker's \
                             (key fingerprint {}): {e}",
                            self.delivery.fingerprint()
                        )
                    });
                signed
                    .and_then(|()| {
                        let (id, event_id) = (self.subscriber_id, &notice.event_id);
                        open_notice(&notice.sealed, id, event_id, key).map_err(|e| e.to_string())
                    })
                    .map(|noticed| Mail::Notice(record.clone(), Box::new(noticed)))
                    .map_err(|reason| refused("notice", reason))
            }
            Event::CredentialDelivered(delivered)
                if delivered.subscriber_id == self.subscriber_id =>
            {
                crate::subscriber::check_delivered(self.delivery, record, delivered)
                    .map(|()| Mail::Delivered(record.clone(), Box::new(delivered.clone())))
                    .map_err(|reason| refused("delivery", reason))
            }
            _ => return None,
        })
    }

    /// Every mail in the inbox up to its current end, in order; mail it refuses is logged with
    /// the reason and left out.
    pub async fn read(
        &self,
        config: &ClientConfig,
        prefix: &str,
    ) -> Result<Vec<Mail>, ClientError> {
        let topic = DELIVERIES.full_name(prefix);
        let records = read_partition_of(config, &topic, self.subscriber_id).await?;
        Ok(records
            .iter()
            .filter_map(|record| match self.open(record)? {
                Ok(mail) => Some(mail),
                Err(refused) => {
                    let at = format!("{}/{}@{}", record.topic, record.partition, record.offset);
                    warn!("refusing the {} at {at}: {}", refused.what, refused.reason);
                    None
                }
            })
            .collect())
    }
}

/// Why a record of the subscriber's inbox is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What it is: `notice`, `delivery`, or `record` when it is no tessera event.
    pub what: &'static str,
    /// Why, as a sentence.
    pub reason: String,
}

/// The credentials in `mail`, the first copy of each.
pub fn credentials(mail: &[Mail]) -> Vec<(Record, CredentialDelivered)> {
    let mut seen = std::collections::HashSet::new();
    mail.iter()
        .filter_map(|m| match m {
            Mail::Delivered(record, delivered) => Some((record.clone(), (**delivered).clone())),
            Mail::Notice(..) => None,
        })
        .filter(|(_, delivered)| seen.insert(delivered.credential_id.clone()))
        .collect()
}

/// The events `mail`'s notices told, with where each sat on the log.
pub fn noticed(mail: &[Mail]) -> impl Iterator<Item = &Noticed> {
    mail.iter().filter_map(|m| match m {
        Mail::Notice(_, noticed) => Some(&**noticed),
        Mail::Delivered(..) => None,
    })
}
