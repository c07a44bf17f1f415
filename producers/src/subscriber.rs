//! The subscriber's side (the source document's second terminal): registering stored needs,
//! leaving, answering invitations (every record signed with the subscriber's key), watching for invitations and
//! verdicts, opening a delivered credential, and accepting or declining it, once, opened or not.
//!
//! A subscriber is a row of the compacted `tessera.subscribers` table: registering again replaces
//! the row, and leaving writes a tombstone so compaction forgets it. Everything it is told
//! arrives in its inbox ([`crate::inbox`]): credentials, and notices of its invitations, verdicts,
//! offers' ends and decisions, sealed to it, on the one partition of `tessera.deliveries` its id
//! hashes to. Delivery is at least once, so the inbox may hold a credential more than once: the
//! first copy counts.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use getrandom::SysRng;
use hpke::rand_core::UnwrapErr;
use rdkafka::ClientConfig;
use tessera_contract::identity;
use tessera_contract::rules::{format_stamp, request_id};
use tessera_contract::sealing::chunks::{ChunkOpener, Manifest};
use tessera_contract::sealing::contacts::{Contact, seal_contact};
use tessera_contract::sealing::{self, PrivateKey, PublicKey, SealError};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::{DELIVERIES, OUTCOMES, RESPONSES, SUBSCRIBERS};
use tessera_contract::{
    CredentialAccepted, CredentialDeclined, CredentialDelivered, CredentialReleased, Event,
    InteractionRequested, Interest, LogPosition, OfferClosed, OfferTerms, RejectReason,
    ResponseRejected, ResponseSubmitted, SubscriberRegistered, SubscriberRemoved,
};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::client::{
    ClientError, Record, Writer, Written, assign_partition, event_id, next_record, reader,
};
use crate::clock::{BrokerClock, Plan, plan};
use crate::describe;
use crate::inbox::{self, Inbox, Mail};
use crate::interest::{self, InterestError};
use crate::keys::{self, KeyError};
use crate::packages::{PackageError, read_chunks};

/// Why a subscriber command failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    /// The key file could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Kafka could not be reached or used.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A credential could not be opened.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The inbox holds no credential that fits the choice.
    #[error("{0}")]
    NoCredential(String),
    /// A package in chunks could not be read, opened or written.
    #[error(transparent)]
    Package(#[from] PackageError),
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
    /// The operator's endorsement of the id and keys, in installations that vouch for parties.
    pub endorsement: Option<Vec<u8>>,
    /// The delivery worker's key, as published on `tessera.keys` and pinned: the contact and
    /// webhook are sealed to it, so that no other party reads them. `None` writes them in the
    /// clear.
    pub platform: Option<PublicKey>,
}

/// What registering did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Where the registration landed.
    pub written: Written,
    /// Whether a new key pair was created in the key file.
    pub key_created: bool,
    /// The public key registered.
    pub public_key: PublicKey,
}

/// Writes a `SubscriberRegistered` with the public key of the key file (creating the key pair if
/// the file is missing). It replaces any earlier registration of the same id.
pub async fn register(
    writer: &Writer,
    prefix: &str,
    registration: Registration,
) -> Result<Registered, SubscriberError> {
    let (key, key_created) = keys::load_or_create(&registration.key_file)?;
    let public_key = key.public_key();
    let signer = SigningKey::derive(&key);
    let id = &registration.subscriber_id;
    let contact = Contact {
        contact: registration.contact,
        webhook: registration.webhook,
    };
    let (contact, sealed_contact) = match &registration.platform {
        Some(platform) => {
            let sealed = seal_contact(&contact, id, platform, &mut UnwrapErr(SysRng))?;
            (
                Contact {
                    contact: String::new(),
                    webhook: None,
                },
                Some(sealed),
            )
        }
        None => (contact, None),
    };
    let event = SubscriberRegistered {
        event_id: event_id(),
        subscriber_id: id.clone(),
        contact: contact.contact,
        public_key: public_key.to_bytes(),
        signing_key: signer.verifying_key().to_bytes(),
        interests: registration.interests,
        webhook: contact.webhook,
        endorsement: registration.endorsement,
        sealed_contact,
    };
    let written = writer
        .write_as(
            &signer,
            prefix,
            SUBSCRIBERS,
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

/// Writes a `SubscriberRemoved` signed with the subscriber's key (the matcher stops inviting at
/// once; the id stays pinned to the key) and then a tombstone under the same key (compaction
/// drops the registration, contact and key included). Returns both positions.
pub async fn remove(
    writer: &Writer,
    prefix: &str,
    subscriber_id: &str,
    key: &PrivateKey,
) -> Result<(Written, Written), ClientError> {
    let topic = SUBSCRIBERS.full_name(prefix);
    let removed = SubscriberRemoved {
        event_id: event_id(),
        subscriber_id: subscriber_id.to_string(),
    };
    let signer = SigningKey::derive(key);
    let event = writer
        .write_as(&signer, prefix, SUBSCRIBERS, subscriber_id, &removed.into())
        .await?;
    let tombstone = writer.tombstone(&topic, subscriber_id).await?;
    Ok((event, tombstone))
}

/// Who answers invitations: a subscriber with its private key, whose signing key signs its
/// responses and outcomes.
#[derive(Debug)]
pub struct Responder {
    /// The subscriber's id.
    pub subscriber_id: String,
    /// Its private key, which credentials are sealed to.
    pub key: PrivateKey,
    /// The signing key derived from it, which its records are signed with.
    pub signer: SigningKey,
}

impl Responder {
    /// Subscriber `subscriber_id` with its private key.
    pub fn new(subscriber_id: impl Into<String>, key: PrivateKey) -> Self {
        let signer = SigningKey::derive(&key);
        Responder {
            subscriber_id: subscriber_id.into(),
            key,
            signer,
        }
    }
}

/// The responder's response to its invitation to `offer_id`.
pub fn response(offer_id: &str, responder: &Responder) -> ResponseSubmitted {
    ResponseSubmitted {
        event_id: event_id(),
        offer_id: offer_id.to_string(),
        request_id: request_id(offer_id, &responder.subscriber_id),
        subscriber_id: responder.subscriber_id.clone(),
    }
}

/// Writes the responder's response to `offer_id` to `tessera.responses`, signed with its key;
/// its receipt stamp is what the offer's time rule judges.
pub async fn respond(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    responder: &Responder,
) -> Result<Written, SubscriberError> {
    let event = response(offer_id, responder);
    Ok(writer
        .write_as(
            &responder.signer,
            prefix,
            RESPONSES,
            offer_id,
            &event.into(),
        )
        .await?)
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
#[derive(Debug)]
pub struct Listen {
    /// Whose inbox to read, with the key its notices open with and its answers are signed with.
    pub responder: Responder,
    /// The pinned delivery worker's verifying key: only its notices count.
    pub delivery: VerifyingKey,
    /// When to answer by itself.
    pub policy: Policy,
    /// Read the topics from their beginning instead of from now on.
    pub from_beginning: bool,
    /// Stop after this long with nothing for the subscriber and no answer waiting for its
    /// window; `None` follows forever.
    pub until_idle: Option<Duration>,
    /// How long after a window opens, by the broker's estimated clock, an answer waiting for it
    /// is sent ([`crate::clock`]).
    pub margin: Duration,
}

/// Something `listen` saw or did.
#[derive(Debug, Clone)]
pub enum Heard {
    /// An invitation to the subscriber.
    Request(Record, InteractionRequested),
    /// The policy answered an invitation; where the response landed.
    Responded(String, Written),
    /// The policy will answer an invitation once its window opens.
    Scheduled {
        /// The offer.
        offer_id: String,
        /// When it will answer, on the broker's estimated clock (epoch milliseconds).
        at: i64,
        /// When the window opens (epoch milliseconds).
        opens: i64,
        /// The margin kept after the opening.
        margin: Duration,
    },
    /// The policy left an invitation unanswered, and why.
    NotAnswered(String, &'static str),
    /// A credential released to the subscriber.
    Released(Record, CredentialReleased),
    /// A response of the subscriber rejected.
    Rejected(Record, ResponseRejected),
    /// An offer the subscriber was invited to closed: its rule ended, or its provider withdrew
    /// it.
    Closed(Record, OfferClosed),
    /// A record of the inbox, under the subscriber's id, that is not believed: no tessera event,
    /// a notice the pinned delivery worker did not sign or that does not open with the
    /// subscriber's key, a delivery that fails its checks.
    Refused(Record, inbox::Refused),
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
            Heard::Scheduled {
                offer_id,
                at,
                opens,
                margin,
            } => write!(
                f,
                "answering offer {offer_id} at {} (window opens {}, margin {}; by the broker's \
                 clock as last seen)",
                format_stamp(*at),
                format_stamp(*opens),
                humantime::format_duration(*margin)
            ),
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
            Heard::Closed(record, closed) => write!(
                f,
                "{} [{}]",
                describe::event(&closed.clone().into()),
                at(record)
            ),
            Heard::Refused(record, refused) => write!(
                f,
                "refusing the {} at {}: {}",
                refused.what,
                at(record),
                refused.reason
            ),
        }
    }
}

/// What `listen` read before it stopped: its cost, which other subscribers' mail adds to only
/// where it shares the inbox's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listened {
    /// The inbox topic.
    pub topic: String,
    /// The one partition read.
    pub partition: i32,
    /// Records read there.
    pub records: u64,
    /// Of them, the subscriber's own.
    pub mine: u64,
}

impl fmt::Display for Listened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {} record(s) of {}/{}, {} of them for this subscriber",
            self.records, self.topic, self.partition, self.mine
        )
    }
}

/// An answer waiting for its offer's window to open.
#[derive(Debug)]
struct Waiting {
    offer_id: String,
    terms: OfferTerms,
}

/// The local clock in epoch milliseconds, which [`BrokerClock`] relates to the broker's.
fn local_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Shows what the subscriber's inbox tells it as it arrives: its invitations, the verdicts on its
/// responses, and the close of each offer it was invited to (once; invitations already in the
/// inbox when it starts count, so it reads the inbox to its end first). It answers invitations as
/// the policy says, never an offer twice: not one it answered in this run, nor one whose verdict
/// is in the inbox (a response whose verdict had not arrived when it started may be answered
/// again, and the timekeeper rejects the second as Duplicate). An invitation whose window opens
/// later is answered once it has opened, by the broker's clock as estimated from the stamps read
/// ([`crate::clock`]), and one whose rule has ended by that clock is not answered.
pub async fn listen(
    config: &ClientConfig,
    prefix: &str,
    listen: Listen,
    mut heard: impl FnMut(Heard),
) -> Result<Listened, SubscriberError> {
    let writer = Writer::new(config)?;
    let responder = &listen.responder;
    let inbox = Inbox {
        subscriber_id: &responder.subscriber_id,
        key: Some(&responder.key),
        delivery: &listen.delivery,
    };
    let (topic, partition) = inbox.partition(config, prefix)?;
    let consumer = reader(config, false)?;
    let history = crate::client::read_to_end(config, &topic, Some(&[partition])).await?;
    let mine = |record: &Record| record.key.as_deref() == Some(&*responder.subscriber_id);
    // From the beginning, the history is read again below and counted there.
    let counted = match listen.from_beginning {
        true => &history[..0],
        false => &history[..],
    };
    let mut listened = Listened {
        topic: topic.clone(),
        partition,
        records: counted.len() as u64,
        mine: counted.iter().filter(|r| mine(r)).count() as u64,
    };
    // Offers answered (a verdict came), and offers whose close is still to show. Read from the
    // inbox's history, not only from this run: a close may come long after the invitation.
    let mut answered: HashSet<String> = HashSet::new();
    let mut invited: HashSet<String> = HashSet::new();
    for mail in history.iter().filter_map(|r| inbox.open(r)?.ok()) {
        let Mail::Notice(_, noticed) = mail else {
            continue;
        };
        match noticed.event {
            Event::CredentialReleased(e) => {
                answered.insert(e.offer_id);
            }
            Event::ResponseRejected(e) if answers_for_us(&e) => {
                answered.insert(e.offer_id);
            }
            Event::InteractionRequested(e) if !listen.from_beginning => {
                invited.insert(e.offer_id);
            }
            Event::OfferClosed(e) if !listen.from_beginning => {
                invited.remove(&e.offer_id);
            }
            _ => {}
        }
    }
    let start = match (listen.from_beginning, history.last()) {
        (false, Some(last)) => rdkafka::Offset::Offset(last.offset + 1),
        _ => rdkafka::Offset::Beginning,
    };
    assign_partition(&consumer, &topic, partition, start)?;
    let margin_ms = i64::try_from(listen.margin.as_millis()).unwrap_or(i64::MAX);
    let mut clock = BrokerClock::new();
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut last_heard = Instant::now();
    loop {
        // Answers whose time has come, or whose rule has ended meanwhile. Only a policy that
        // answers leaves answers waiting.
        let mut wake = None;
        let mut i = 0;
        while i < waiting.len() {
            let now = local_ms();
            match plan(&waiting[i].terms, clock.lead_ms(), margin_ms, now) {
                Plan::At { local_ms, .. } => {
                    let wait = Duration::from_millis(u64::try_from(local_ms - now).unwrap_or(0));
                    let due = Instant::now() + wait;
                    wake = Some(wake.map_or(due, |earliest: Instant| earliest.min(due)));
                    i += 1;
                }
                Plan::Now => {
                    let answer = waiting.swap_remove(i);
                    let written =
                        answer_now(&writer, prefix, &answer.offer_id, responder, &mut clock)
                            .await?;
                    answered.insert(answer.offer_id.clone());
                    last_heard = Instant::now();
                    heard(Heard::Responded(answer.offer_id, written));
                }
                Plan::Never { .. } => {
                    let answer = waiting.swap_remove(i);
                    heard(Heard::NotAnswered(answer.offer_id, RULE_ENDED));
                }
            }
        }
        // An answer waiting for its window keeps the listener up however idle it is.
        let idle = match waiting.is_empty() {
            true => listen.until_idle.map(|idle| last_heard + idle),
            false => None,
        };
        let deadline = match (idle, wake) {
            (Some(idle), Some(wake)) => Some(idle.min(wake)),
            (idle, wake) => idle.or(wake),
        };
        let Some(record) = next_record(&consumer, deadline, &topic).await? else {
            if waiting.is_empty() {
                return Ok(listened);
            }
            continue;
        };
        listened.records += 1;
        listened.mine += u64::from(mine(&record));
        if let Some(stamp) = record.stamp {
            clock.observe(stamp, local_ms());
        }
        let noticed = match inbox.open(&record) {
            None | Some(Ok(Mail::Delivered(..))) => continue,
            Some(Err(refused)) => {
                heard(Heard::Refused(record, refused));
                continue;
            }
            Some(Ok(Mail::Notice(_, noticed))) => noticed,
        };
        // Shown where the event sat on the log, not where its notice did.
        let at = Record {
            topic: format!("{prefix}{}", noticed.at.topic),
            partition: noticed.at.partition,
            offset: noticed.at.offset,
            stamp: Some(noticed.at.stamp),
            key: None,
            event: None,
            signed: record.signed.clone(),
        };
        match noticed.event {
            Event::InteractionRequested(request) => {
                last_heard = Instant::now();
                let offer_id = request.offer_id.clone();
                invited.insert(offer_id.clone());
                let answer = listen.policy.answers(&request);
                let first_time = !answered.contains(&offer_id)
                    && !waiting.iter().any(|w| w.offer_id == offer_id);
                let terms = request.offer.clone();
                heard(Heard::Request(at, request));
                match (answer, first_time) {
                    (true, true) => match plan(&terms, clock.lead_ms(), margin_ms, local_ms()) {
                        Plan::Now => {
                            let written =
                                answer_now(&writer, prefix, &offer_id, responder, &mut clock)
                                    .await?;
                            answered.insert(offer_id.clone());
                            heard(Heard::Responded(offer_id, written));
                        }
                        Plan::At { broker_ms, .. } => {
                            let opens = terms.time_rule.opens_at(terms.position.stamp);
                            heard(Heard::Scheduled {
                                offer_id: offer_id.clone(),
                                at: broker_ms,
                                opens,
                                margin: listen.margin,
                            });
                            waiting.push(Waiting { offer_id, terms });
                        }
                        Plan::Never { .. } => heard(Heard::NotAnswered(offer_id, RULE_ENDED)),
                    },
                    (true, false) => heard(Heard::NotAnswered(offer_id, "already answered")),
                    (false, _) if listen.policy != Policy::Never => heard(Heard::NotAnswered(
                        offer_id,
                        "it does not meet the --respond condition",
                    )),
                    (false, _) => {}
                }
            }
            Event::CredentialReleased(released) => {
                last_heard = Instant::now();
                answered.insert(released.offer_id.clone());
                heard(Heard::Released(at, released));
            }
            Event::ResponseRejected(rejected) => {
                last_heard = Instant::now();
                if answers_for_us(&rejected) {
                    answered.insert(rejected.offer_id.clone());
                }
                heard(Heard::Rejected(at, rejected));
            }
            // Forgotten once shown: an offer closes once.
            Event::OfferClosed(closed) if invited.remove(&closed.offer_id) => {
                last_heard = Instant::now();
                heard(Heard::Closed(at, closed));
            }
            _ => {}
        }
    }
}

/// Whether a rejection is a verdict on an answer the subscriber wrote: one on a response forged
/// in its name (Forged), or written before its invitation was (NotInvited), leaves the
/// invitation to answer.
fn answers_for_us(rejected: &ResponseRejected) -> bool {
    !matches!(
        rejected.reason,
        RejectReason::Forged | RejectReason::NotInvited
    )
}

/// Responds to `offer_id` and learns the broker's clock from the response's stamp: the freshest
/// one there is, taken a round trip ago at most.
async fn answer_now(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    responder: &Responder,
    clock: &mut BrokerClock,
) -> Result<Written, SubscriberError> {
    let written = respond(writer, prefix, offer_id, responder).await?;
    if let Some(stamp) = written.stamp {
        clock.observe(stamp, local_ms());
    }
    Ok(written)
}

/// Why an invitation whose rule has ended is not answered.
const RULE_ENDED: &str = "its rule has ended by the broker's clock as last seen";

/// Which delivered credential to open or decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The one with this credential id.
    Credential(String),
    /// The one of this offer (a subscriber is released at most once per offer).
    Offer(String),
    /// The only one in the inbox.
    Only,
}

/// Whether a delivery may be opened: the record must be signed by the delivery worker
/// (`delivery`, its key as the subscriber pinned it), and its package by the provider key the
/// offer carried. The package is AEAD-sealed under the key the two halves make, so what opens
/// from a package the provider signed is what the provider sealed: no one else's document passes
/// as the provider's. Err says which check failed.
pub fn check_delivered(
    delivery: &VerifyingKey,
    record: &Record,
    delivered: &CredentialDelivered,
) -> Result<(), String> {
    let credential = &delivered.credential_id;
    delivery
        .verify_record(DELIVERIES.name, &record.signed, "the delivery worker")
        .map_err(|e| {
            format!(
                "Unauthenticated: the delivery of credential {credential} is not the pinned \
                 delivery worker's (key fingerprint {}): {e}",
                delivery.fingerprint()
            )
        })?;
    let provider = &delivered.provider_id;
    let key = VerifyingKey::from_bytes(&delivered.provider_signing_key).map_err(|e| {
        format!("Unauthenticated: credential {credential} names no usable key of provider {provider}: {e}")
    })?;
    identity::package_signed(
        &key,
        &delivered.offer_id,
        &delivered.package,
        &delivered.package_signature,
        provider,
    )
    .map_err(|e| {
        format!(
            "Unauthenticated: the package of credential {credential} is not signed by provider \
             {provider}'s key (fingerprint {}): {e}",
            key.fingerprint()
        )
    })
}

/// The credential `choice` picks from the subscriber's inbox (`tessera.deliveries`), with where
/// it was read. Only deliveries that pass [`check_delivered`] with the pinned `delivery` key
/// count (each one that does not is logged with its reason); of several copies of one credential,
/// the first that passes counts. Reads the credentials only, with no key: [`Inbox::read`] with
/// the subscriber's key opens the notices too.
pub async fn delivered(
    config: &ClientConfig,
    prefix: &str,
    delivery: &VerifyingKey,
    subscriber_id: &str,
    choice: &Choice,
) -> Result<(Record, CredentialDelivered), SubscriberError> {
    let inbox = Inbox {
        subscriber_id,
        key: None,
        delivery,
    };
    let mail = inbox.read(config, prefix).await?;
    choose(&mail, subscriber_id, choice)
}

/// The credential `choice` picks from the subscriber's mail.
pub fn choose(
    mail: &[Mail],
    subscriber_id: &str,
    choice: &Choice,
) -> Result<(Record, CredentialDelivered), SubscriberError> {
    let fits = |delivered: &CredentialDelivered| match choice {
        Choice::Credential(id) => &delivered.credential_id == id,
        Choice::Offer(id) => &delivered.offer_id == id,
        Choice::Only => true,
    };
    let mut fitting: Vec<_> = inbox::credentials(mail)
        .into_iter()
        .filter(|(_, d)| fits(d))
        .collect();
    match (fitting.len(), choice) {
        (1, _) => Ok(fitting.remove(0)),
        (0, Choice::Credential(id)) => Err(SubscriberError::NoCredential(format!(
            "no credential {id} was delivered to {subscriber_id}"
        ))),
        (0, Choice::Offer(id)) => Err(SubscriberError::NoCredential(format!(
            "no credential of offer {id} was delivered to {subscriber_id}"
        ))),
        (0, Choice::Only) => Err(SubscriberError::NoCredential(format!(
            "no credential was delivered to {subscriber_id} yet"
        ))),
        (n, _) => {
            let ids: Vec<String> = fitting
                .iter()
                .map(|(_, d)| format!("{} (offer {})", d.credential_id, d.offer_id))
                .collect();
            Err(SubscriberError::NoCredential(format!(
                "{n} credentials were delivered to {subscriber_id}: {}; choose one with \
                 --credential or --offer",
                ids.join(", ")
            )))
        }
    }
}

/// Opens a delivered credential with the recipient's private key: the target data.
pub fn open(
    delivered: &CredentialDelivered,
    key: &PrivateKey,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    sealing::open_credential(delivered, key)
}

/// Opens a delivered credential whose package is in chunks (`crate::packages`): both halves
/// with the recipient's key, then every chunk streamed from `tessera.packages`, each checked as
/// the provider's and opened in its place, into a new file beside `out` (mode 0600), renamed to
/// `out` once all match the manifest the provider signed, so a package cut short or altered
/// leaves nothing at `out`. `progress` hears the bytes written so far; returns their number.
pub async fn open_chunks(
    config: &ClientConfig,
    prefix: &str,
    delivered: &CredentialDelivered,
    manifest: Manifest,
    key: &PrivateKey,
    out: &Path,
    progress: impl FnMut(u64),
) -> Result<u64, SubscriberError> {
    let data_key = sealing::open_data_key(delivered, key)?;
    let provider = VerifyingKey::from_bytes(&delivered.provider_signing_key).map_err(|e| {
        SubscriberError::NoCredential(format!(
            "credential {} names no usable key of provider {}: {e}",
            delivered.credential_id, delivered.provider_id
        ))
    })?;
    let opener = ChunkOpener::new(&data_key, &delivered.offer_id, manifest.clone());
    let name = out.file_name().map_or_else(
        || "opened".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let part = out.with_file_name(format!(".{name}.tessera-part"));
    let io = |what: &str, source| PackageError::Io {
        what: format!("{what} {}", part.display()),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&part)
        .map_err(|e| io("cannot create", e))?;
    let mut writer = std::io::BufWriter::new(file);
    let read = read_chunks(
        config,
        prefix,
        &delivered.offer_id,
        &manifest,
        (&provider, &delivered.provider_id),
        opener,
        &mut writer,
        progress,
    )
    .await;
    drop(writer);
    let written = match read {
        Ok(written) => written,
        Err(e) => {
            // What was written is unchecked: it must not be mistaken for the document.
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
    };
    std::fs::rename(&part, out).map_err(|e| io("cannot rename", e))?;
    Ok(written)
}

/// The first outcome of the delivered credential that the inbox told of, if any, with where it
/// sat on `tessera.outcomes` (the ledger counts the first).
pub fn outcome<'m>(
    mail: &'m [Mail],
    delivered: &CredentialDelivered,
) -> Option<(&'m LogPosition, &'m Event)> {
    inbox::noticed(mail).find_map(|noticed| {
        let credential_id = match &noticed.event {
            Event::CredentialAccepted(e) => &e.credential_id,
            Event::CredentialDeclined(e) => &e.credential_id,
            _ => return None,
        };
        (credential_id == &delivered.credential_id).then_some((&noticed.at, &noticed.event))
    })
}

/// A delivered credential's decision deadline, as its recipient can know it: the invitation
/// carries the offer's `decide_within` (subscribers do not read `tessera.offers`), and the time
/// counts from the release's effective stamp, which its notice carries. Only for the recipient to
/// see: the ledger judges the acceptance on the log, whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionDeadline {
    /// The release's effective stamp, as the ledger takes it: the largest receipt stamp on its
    /// partition up to and including the release.
    pub released: i64,
    /// How long after the release an acceptance still earns, in milliseconds.
    pub within: i64,
    /// The latest receipt stamp of the subscriber's own mail: the broker's clock read at least
    /// this when the inbox was read.
    pub broker_seen: i64,
}

impl DecisionDeadline {
    /// The last instant an acceptance earns, inclusive.
    pub fn at(&self) -> i64 {
        self.released.saturating_add(self.within)
    }

    /// Whether the broker's clock, as last seen, is past the deadline already.
    pub fn passed(&self) -> bool {
        self.broker_seen > self.at()
    }
}

impl fmt::Display for DecisionDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decide by {} ({} after the release at {}); ",
            format_stamp(self.at()),
            describe::duration(self.within),
            format_stamp(self.released)
        )?;
        let seen = format_stamp(self.broker_seen);
        if self.passed() {
            write!(
                f,
                "the broker's clock is past it ({seen}): an acceptance now earns the provider nothing"
            )
        } else {
            write!(
                f,
                "at most {} left by the broker's clock as last seen ({seen})",
                describe::duration(self.at() - self.broker_seen)
            )
        }
    }
}

/// The decision deadline of the delivered credential, if its offer set one, from the notices of
/// its invitation (which carries the offer's `decide_within`) and its release (with its effective
/// stamp); `None` also when the inbox holds neither.
pub fn decision_deadline(
    mail: &[Mail],
    delivered: &CredentialDelivered,
) -> Option<DecisionDeadline> {
    let offer_id = &delivered.offer_id;
    // The matcher invites a subscriber once per offer; the first invitation counts.
    let within = inbox::noticed(mail).find_map(|noticed| match &noticed.event {
        Event::InteractionRequested(request) if &request.offer_id == offer_id => {
            Some(request.decide_within)
        }
        _ => None,
    })??;
    let released = inbox::noticed(mail).find_map(|noticed| match &noticed.event {
        Event::CredentialReleased(release) if release.credential_id == delivered.credential_id => {
            Some(noticed.at.stamp)
        }
        _ => None,
    })?;
    let broker_seen = mail
        .iter()
        .filter_map(|m| match m {
            Mail::Notice(record, _) | Mail::Delivered(record, _) => record.stamp,
        })
        .max()
        .unwrap_or(released);
    Some(DecisionDeadline {
        released,
        within,
        broker_seen,
    })
}

/// What a recipient does with a delivered credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept it: the provider earns the offer's reward.
    Accept,
    /// Decline it, with a reason if the recipient gives one: no reward is due.
    Decline(Option<String>),
}

/// Writes the decision on the delivered credential to `tessera.outcomes` (CredentialAccepted or
/// CredentialDeclined), keyed by its offer and signed with the recipient's key.
pub async fn decide(
    writer: &Writer,
    prefix: &str,
    delivered: &CredentialDelivered,
    decision: Decision,
    signer: &SigningKey,
) -> Result<Written, ClientError> {
    let (offer_id, credential_id, subscriber_id) = (
        delivered.offer_id.clone(),
        delivered.credential_id.clone(),
        delivered.subscriber_id.clone(),
    );
    let event: Event = match decision {
        Decision::Accept => CredentialAccepted {
            event_id: event_id(),
            offer_id,
            credential_id,
            subscriber_id,
        }
        .into(),
        Decision::Decline(reason) => CredentialDeclined {
            event_id: event_id(),
            offer_id,
            credential_id,
            subscriber_id,
            reason,
        }
        .into(),
    };
    writer
        .write_as(signer, prefix, OUTCOMES, &delivered.offer_id, &event)
        .await
}

#[cfg(test)]
mod tests {
    use tessera_contract::examples;

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
        let responder = Responder::new(
            request.subscriber_id.clone(),
            PrivateKey::from_bytes(&[2; 32]).unwrap(),
        );
        let answer = response(&request.offer_id, &responder);
        let another = response(&request.offer_id, &responder);
        assert_eq!(
            answer.request_id,
            request_id(&request.offer_id, &request.subscriber_id)
        );
        assert_eq!(answer.offer_id, request.offer_id);
        assert_ne!(another.event_id, answer.event_id);
    }

    #[test]
    fn a_decision_deadline_says_by_when_and_how_long_is_left_by_the_broker() {
        let deadline = DecisionDeadline {
            released: 1_764_061_200_000,
            within: 90_000,
            broker_seen: 1_764_061_230_000,
        };
        assert_eq!(deadline.at(), 1_764_061_290_000);
        assert!(!deadline.passed());
        assert_eq!(
            deadline.to_string(),
            "decide by 2025-11-25T09:01:30.000Z (1m 30s after the release at \
             2025-11-25T09:00:00.000Z); at most 1m left by the broker's clock as last seen \
             (2025-11-25T09:00:30.000Z)"
        );
        let passed = DecisionDeadline {
            broker_seen: deadline.at() + 1,
            ..deadline
        };
        assert!(passed.passed());
        assert!(
            passed.to_string().ends_with(
                "the broker's clock is past it (2025-11-25T09:01:30.001Z): an acceptance now \
                 earns the provider nothing"
            ),
            "{passed}"
        );
    }

    fn signer(seed: u8) -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[seed; 32]).unwrap())
    }

    /// A delivery of A's package, its package signed by `provider`, as read with `delivery`'s
    /// signature on the record.
    fn delivery(provider: &SigningKey, delivery: &SigningKey) -> (Record, CredentialDelivered) {
        let mut delivered = examples::all()
            .into_iter()
            .find_map(|e| match e {
                Event::CredentialDelivered(d) => Some(d),
                _ => None,
            })
            .unwrap();
        delivered.provider_id = "A".into();
        delivered.provider_signing_key = signer(1).verifying_key().to_bytes();
        delivered.package_signature =
            identity::sign_package(provider, &delivered.offer_id, &delivered.package).to_vec();
        let key = delivered.subscriber_id.clone();
        let value = tessera_contract::encode(&delivered.clone().into()).unwrap();
        let record = Record {
            topic: DELIVERIES.name.into(),
            partition: 0,
            offset: 0,
            stamp: None,
            key: Some(key.clone()),
            event: Some(Ok(delivered.clone().into())),
            signed: delivery.signed(DELIVERIES.name, key.as_bytes(), &value),
        };
        (record, delivered)
    }

    #[test]
    fn a_delivery_counts_only_signed_by_the_delivery_worker_with_the_providers_package() {
        let worker = signer(7).verifying_key();
        let (record, genuine) = delivery(&signer(1), &signer(7));
        assert_eq!(check_delivered(&worker, &record, &genuine), Ok(()));

        let (record, forged) = delivery(&signer(1), &signer(66));
        let why = check_delivered(&worker, &record, &forged).unwrap_err();
        assert!(
            why.starts_with("Unauthenticated: the delivery of credential"),
            "{why}"
        );

        let (record, repackaged) = delivery(&signer(66), &signer(7));
        let why = check_delivered(&worker, &record, &repackaged).unwrap_err();
        assert!(
            why.starts_with("Unauthenticated: the package of credential")
                && why.contains("is not signed by provider A's key"),
            "{why}"
        );
    }
}
