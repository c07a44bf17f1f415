//! The subscriber's side (the source document's second terminal): registering stored needs,
//! leaving, answering invitations, and watching for invitations and verdicts.
//!
//! A subscriber is a row of the compacted `tessera.subscribers` table: registering again replaces
//! the row, and leaving writes a tombstone so compaction forgets it. Invitations and verdicts are
//! keyed by offer, so a subscriber finds its own by reading every partition and keeping what
//! names it.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use tessera_schemas::rules::request_id;
use tessera_schemas::topics::{DECISIONS, REQUESTS, RESPONSES, SUBSCRIBERS};
use tessera_schemas::{
    CredentialReleased, Event, InteractionRequested, Interest, ResponseRejected, ResponseSubmitted,
    SealedBox, SubscriberRegistered, SubscriberRemoved,
};
use tokio::time::Instant;

use crate::client::{
    ClientError, Record, Writer, Written, assign_all, event_id, random_bytes, read_to_end, reader,
};
use crate::describe;
use crate::interest::{self, InterestError};
use crate::keys::{self, KeyError};

/// Why a subscriber command failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    /// The key file could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Kafka could not be reached or used.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What a subscriber registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The subscriber's id; also the record key.
    pub subscriber_id: String,
    /// How to reach it.
    pub contact: String,
    /// Its stored needs; an offer matching any one of them invites it.
    pub interests: Vec<Interest>,
    /// Where the delivery worker also posts released credentials.
    pub webhook: Option<String>,
    /// Its private key file; created with a new key pair if missing.
    pub key_file: PathBuf,
}

/// What registering did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Where the registration landed.
    pub written: Written,
    /// Whether a new key pair was created in the key file.
    pub key_created: bool,
    /// The public key registered.
    pub public_key: Vec<u8>,
}

/// Writes a `SubscriberRegistered` with the public key of the key file (creating the key pair if
/// the file is missing). It replaces any earlier registration of the same id.
pub async fn register(
    writer: &Writer,
    prefix: &str,
    registration: Registration,
) -> Result<Registered, SubscriberError> {
    let (public_key, key_created) = keys::load_or_create(&registration.key_file)?;
    let event = SubscriberRegistered {
        event_id: event_id(),
        subscriber_id: registration.subscriber_id.clone(),
        contact: registration.contact,
        public_key: public_key.clone(),
        interests: registration.interests,
        webhook: registration.webhook,
    };
    let written = writer
        .write(
            &SUBSCRIBERS.full_name(prefix),
            &registration.subscriber_id,
            &event.into(),
        )
        .await?;
    Ok(Registered {
        written,
        key_created,
        public_key,
    })
}

/// Writes a `SubscriberRemoved` (the matcher stops inviting at once) and then a tombstone under
/// the same key (compaction drops the registration, contact and key included). Returns both
/// positions.
pub async fn remove(
    writer: &Writer,
    prefix: &str,
    subscriber_id: &str,
) -> Result<(Written, Written), ClientError> {
    let topic = SUBSCRIBERS.full_name(prefix);
    let removed = SubscriberRemoved {
        event_id: event_id(),
        subscriber_id: subscriber_id.to_string(),
    };
    let event = writer.write(&topic, subscriber_id, &removed.into()).await?;
    let tombstone = writer.tombstone(&topic, subscriber_id).await?;
    Ok((event, tombstone))
}

/// The response of `subscriber_id` to its invitation to `offer_id`.
///
/// Its proof is a placeholder until the credentials issue adds the HPKE auth-mode proof: random
/// bytes shaped like a sealed box (32-byte encapsulated key, a 16-byte tag) that prove nothing.
pub fn response(offer_id: &str, subscriber_id: &str) -> ResponseSubmitted {
    ResponseSubmitted {
        event_id: event_id(),
        offer_id: offer_id.to_string(),
        request_id: request_id(offer_id, subscriber_id),
        subscriber_id: subscriber_id.to_string(),
        proof: SealedBox {
            enc: random_bytes(32),
            ciphertext: random_bytes(16),
        },
    }
}

/// Writes the response of `subscriber_id` to `offer_id` to `tessera.responses`; its receipt stamp
/// is what the offer's time rule judges.
pub async fn respond(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    subscriber_id: &str,
) -> Result<Written, ClientError> {
    let event = response(offer_id, subscriber_id);
    writer
        .write(&RESPONSES.full_name(prefix), offer_id, &event.into())
        .await
}

/// When `listen` answers an invitation by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Never: answer with `subscriber respond`.
    Never,
    /// Every invitation.
    Always,
    /// Invitations whose recommendation satisfies this condition (interest syntax).
    When(Interest),
}

impl FromStr for Policy {
    type Err = InterestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "never" => Ok(Policy::Never),
            "always" => Ok(Policy::Always),
            condition => interest::parse(condition).map(Policy::When),
        }
    }
}

impl Policy {
    /// Whether to answer this invitation.
    pub fn answers(&self, request: &InteractionRequested) -> bool {
        match self {
            Policy::Never => false,
            Policy::Always => true,
            Policy::When(condition) => interest::satisfies(condition, &request.recommendation),
        }
    }
}

/// What `listen` reads and does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Whose invitations and verdicts to show.
    pub subscriber_id: String,
    /// When to answer by itself.
    pub policy: Policy,
    /// Read the topics from their beginning instead of from now on.
    pub from_beginning: bool,
    /// Stop after this long with nothing for the subscriber; `None` follows forever.
    pub until_idle: Option<Duration>,
}

/// Something `listen` saw or did.
#[derive(Debug, Clone)]
pub enum Heard {
    /// An invitation to the subscriber.
    Request(Record, InteractionRequested),
    /// The policy answered an invitation; where the response landed.
    Responded(String, Written),
    /// The policy left an invitation unanswered, and why.
    NotAnswered(String, &'static str),
    /// A credential released to the subscriber.
    Released(Record, CredentialReleased),
    /// A response of the subscriber rejected.
    Rejected(Record, ResponseRejected),
    /// A record that is not a tessera event; it may have been meant for anyone.
    Unreadable(Record, String),
}

impl fmt::Display for Heard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |r: &Record| describe::position(&r.topic, r.partition, r.offset, r.stamp);
        match self {
            Heard::Request(record, request) => write!(
                f,
                "{} [{}]",
                describe::event(&request.clone().into()),
                at(record)
            ),
            Heard::Responded(offer_id, written) => {
                write!(f, "responded to offer {offer_id} [{written}]")
            }
            Heard::NotAnswered(offer_id, why) => {
                write!(f, "not answering offer {offer_id}: {why}")
            }
            Heard::Released(record, released) => write!(
                f,
                "{} [{}]",
                describe::event(&released.clone().into()),
                at(record)
            ),
            Heard::Rejected(record, rejected) => write!(
                f,
                "{} [{}]",
                describe::event(&rejected.clone().into()),
                at(record)
            ),
            Heard::Unreadable(record, error) => {
                write!(f, "unreadable record at {}: {error}", at(record))
            }
        }
    }
}

/// Shows the subscriber's invitations (`tessera.requests`) and verdicts (`tessera.decisions`) as
/// they arrive, answering invitations as the policy says, and never the same invitation twice,
/// not even one answered before this run.
pub async fn listen(
    config: &ClientConfig,
    prefix: &str,
    listen: Listen,
    mut heard: impl FnMut(Heard),
) -> Result<(), ClientError> {
    let writer = Writer::new(config)?;
    let mut answered: HashSet<String> = HashSet::new();
    if listen.policy != Policy::Never {
        for record in read_to_end(config, &RESPONSES.full_name(prefix), None).await? {
            if let Some(Ok(Event::ResponseSubmitted(response))) = record.event
                && response.subscriber_id == listen.subscriber_id
            {
                answered.insert(response.request_id);
            }
        }
    }
    let requests = REQUESTS.full_name(prefix);
    let decisions = DECISIONS.full_name(prefix);
    let consumer = reader(config, false)?;
    assign_all(&consumer, &[&requests, &decisions], listen.from_beginning)?;
    let mut last_heard = Instant::now();
    loop {
        let message = match listen.until_idle {
            Some(idle) => match tokio::time::timeout_at(last_heard + idle, consumer.recv()).await {
                Ok(message) => message,
                Err(_) => return Ok(()),
            },
            None => consumer.recv().await,
        };
        let message = message.map_err(|e: KafkaError| ClientError::Kafka {
            what: format!("cannot read {requests} and {decisions}"),
            source: e,
        })?;
        let Some(record) = Record::from_message(&message) else {
            continue;
        };
        let event = match &record.event {
            Some(Ok(event)) => event.clone(),
            Some(Err(error)) => {
                let error = error.clone();
                heard(Heard::Unreadable(record, error));
                continue;
            }
            None => continue,
        };
        match event {
            Event::InteractionRequested(request)
                if request.subscriber_id == listen.subscriber_id =>
            {
                last_heard = Instant::now();
                let offer_id = request.offer_id.clone();
                let answer = listen.policy.answers(&request);
                let first_time = !answered.contains(&request.request_id);
                let request_id = request.request_id.clone();
                heard(Heard::Request(record, request));
                match (answer, first_time) {
                    (true, true) => {
                        let written =
                            respond(&writer, prefix, &offer_id, &listen.subscriber_id).await?;
                        answered.insert(request_id);
                        heard(Heard::Responded(offer_id, written));
                    }
                    (true, false) => heard(Heard::NotAnswered(offer_id, "already answered")),
                    (false, _) if listen.policy != Policy::Never => heard(Heard::NotAnswered(
                        offer_id,
                        "it does not meet the --respond condition",
                    )),
                    (false, _) => {}
                }
            }
            Event::CredentialReleased(released)
                if released.subscriber_id == listen.subscriber_id =>
            {
                last_heard = Instant::now();
                heard(Heard::Released(record, released));
            }
            Event::ResponseRejected(rejected) if rejected.subscriber_id == listen.subscriber_id => {
                last_heard = Instant::now();
                heard(Heard::Rejected(record, rejected));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_schemas::examples;

    use super::*;

    fn invitation() -> InteractionRequested {
        examples::all()
            .into_iter()
            .find_map(|e| match e {
                Event::InteractionRequested(r) => Some(r),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn policies_read_as_never_always_or_a_condition() {
        let request = invitation();
        assert!(!"never".parse::<Policy>().unwrap().answers(&request));
        assert!("always".parse::<Policy>().unwrap().answers(&request));
        let cheap: Policy = "price<=10000".parse().unwrap();
        assert!(cheap.answers(&request), "{:?}", request.recommendation);
        let cheaper: Policy = "price<=100".parse().unwrap();
        assert!(!cheaper.answers(&request));
        assert!("sometimes".parse::<Policy>().is_err());
    }

    #[test]
    fn a_response_names_the_invitation_the_matcher_sent() {
        let request = invitation();
        let response = response(&request.offer_id, &request.subscriber_id);
        assert_eq!(
            response.request_id,
            request_id(&request.offer_id, &request.subscriber_id)
        );
        assert_eq!(response.offer_id, request.offer_id);
        assert_eq!(response.proof.enc.len(), 32);
    }
}
