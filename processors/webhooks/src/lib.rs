//! Webhook delivery: posts each credential in `tessera.deliveries` to the webhook its subscriber
//! registered, as well as leaving it in the inbox.
//!
//! The delivery core is pure and writes CredentialDelivered once; talking HTTP to a subscriber's
//! server is I/O with its own failures and timing, so it lives here, in a worker that follows the
//! inbox with its own consumer group (`tessera.webhooks`, read_committed), in the delivery's
//! process and with the delivery's key.
//!
//! # Whom it believes
//!
//! A webhook post sends a credential out of Kafka, where its ACLs and signatures no longer guard
//! it, so the worker believes nothing for the name it carries:
//!
//! - It posts only a CredentialDelivered whose record signature verifies with the delivery's own
//!   key: anyone else who can write the inbox gets a warning on the log, not a post.
//! - It keeps the subscribers' webhook URLs from `tessera.subscribers` folded through the pins
//!   ([`tessera_contract::identity`], the matcher's rules, with the same optional trust anchor): a
//!   registration or removal counts only if signed by the key the subscriber id pinned, so nobody
//!   points another subscriber's credentials at a webhook of their own. It catches up on the
//!   subscriber's partition before each post, so a registration already on the log is never
//!   missed.
//! - It posts only to hosts that resolve to public addresses, unless the operator allows others
//!   ([`target`]), and connects to the addresses it checked.
//!
//! # What a post carries
//!
//! `https://` webhooks are posted over rustls (`post.rs`): the receiver's certificate must chain to
//! Mozilla's roots or to the operator's CA file (`--webhook-ca`). `http://` stays for receivers
//! on a network the operator trusts: the body is sealed to the subscriber either way, and the
//! signature below holds either way, but over http the ids in it and the headers are readable on
//! the way. The body holds only what is sealed to the subscriber (the package and both sealed
//! halves, base64, with the credential, offer and subscriber ids); it is never logged.
//!
//! Each post is signed with the delivery's key ([`signature`]): `Tessera-Signature` over the
//! credential id, `Tessera-Timestamp` and the exact body, with `Tessera-Key-Fingerprint`, so a
//! receiver checks it with [`signature::verify_post`] and the delivery's verifying key, whoever
//! else knows its URL. `Idempotency-Key: <credential id>`: delivery is at least once (the offset
//! is committed only after the post succeeded or DeliveryFailed is written), so a receiver may
//! see a credential twice and deduplicates by that key.
//!
//! A non-2xx answer (redirects included: they are not followed), a connection error or a timeout
//! is retried with exponential backoff; after the budget the worker writes DeliveryFailed to
//! `tessera.deliveries`, signed, keyed by subscriber id, under an event id derived from the
//! credential so a rerun writes the same event. A webhook that cannot be posted to (not an http or
//! https URL, or a refused host) gets DeliveryFailed at once, without retries.

mod post;
pub mod signature;
pub mod target;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Bytes;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use tessera_contract::identity::{Change, Pins};
use tessera_contract::sealing::PrivateKey;
use tessera_contract::sealing::contacts::open_contact;
use tessera_contract::signing::{SignatureError, SigningKey, VerifyingKey};
use tessera_contract::topics::{DELIVERIES, SUBSCRIBERS};
use tessera_contract::{
    CredentialDelivered, DeliveryFailed, Event, SealedBox, SubscriberRegistered,
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use post::{Client, Endpoint, Failure};
use tessera_producers::client::{
    ClientError, Reader, Record, TIMEOUT, Writer, assign_all, kafka, next_record, partition_count,
    partition_for, reader,
};

pub use post::TlsError;

/// How often the worker looks at its stop flag while nothing arrives.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// How long a catch-up on `tessera.subscribers` waits for records up to the end it saw. Only a
/// partition whose last offsets hold no record (never written by tessera's clients) waits it out.
const CATCH_UP: Duration = Duration::from_secs(5);

/// How hard the worker tries one credential's webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Posts made at most, the first included (at least 1).
    pub attempts: u32,
    /// Pause after the first failed post; it doubles after each further one.
    pub first_backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
    /// How long one post may take, connecting included.
    pub timeout: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            attempts: 5,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Retries {
    /// The pause after `failed` posts have failed (1 for the first): `first_backoff` doubled
    /// `failed - 1` times, at most `max_backoff`.
    pub fn backoff(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(31);
        self.first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// How the worker posts.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// How hard it tries each credential.
    pub retries: Retries,
    /// A PEM file of CA certificates that https receivers' chains may also end in, besides
    /// Mozilla's roots: for receivers with certificates from a private CA.
    pub ca_file: Option<PathBuf>,
    /// Whether webhooks may point at loopback, private, link-local and other non-public
    /// addresses ([`target`]); by default they are refused.
    pub allow_private: bool,
    /// The operator's trust anchor, as the matcher is given it: first registrations must then
    /// be endorsed by it ([`tessera_contract::identity`]).
    pub trust_anchor: Option<VerifyingKey>,
    /// The delivery's private key, which opens the contacts and webhooks that registrations seal
    /// to it ([`tessera_contract::sealing::contacts`]); without it only webhooks in the clear
    /// are posted to.
    pub contact_key: Option<Arc<PrivateKey>>,
}

/// Why the worker stopped, or did not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Kafka could not be reached or used.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The TLS client could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The JSON a webhook receives: what the subscriber needs to open the credential, all of it
/// sealed to the subscriber.
fn body(delivered: &CredentialDelivered) -> Bytes {
    let sealed = |half: &SealedBox| json!({ "enc": STANDARD.encode(&half.enc), "ciphertext": STANDARD.encode(&half.ciphertext) });
    let body = json!({
        "credential_id": delivered.credential_id,
        "offer_id": delivered.offer_id,
        "subscriber_id": delivered.subscriber_id,
        "package": STANDARD.encode(&delivered.package),
        "platform_half": sealed(&delivered.platform_half),
        "provider_half": sealed(&delivered.provider_half),
    });
    Bytes::from(body.to_string())
}

/// What became of one credential's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A post got a 2xx answer, at this attempt.
    Posted { attempts: u32 },
    /// The budget ran out, or the webhook cannot be posted to (its URL, or a host it may not
    /// reach: no post made, no retry).
    Failed { attempts: u32, reason: String },
    /// The worker was told to stop between attempts.
    Stopped,
}

/// Sleeps `pause` unless `stop` is raised first; false if it was.
async fn pause_unless_stopped(pause: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + pause;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        tokio::time::sleep_until(until.min(Instant::now() + STOP_CHECK)).await;
    }
    !stop.load(Ordering::Relaxed)
}

async fn post_with_retries(
    client: &Client,
    signer: &SigningKey,
    retries: &Retries,
    url: &str,
    delivered: &CredentialDelivered,
    stop: &AtomicBool,
) -> Outcome {
    let endpoint = match Endpoint::parse(url) {
        Ok(endpoint) => endpoint,
        Err(reason) => {
            return Outcome::Failed {
                attempts: 0,
                reason,
            };
        }
    };
    let body = body(delivered);
    let mut attempts = 0;
    loop {
        attempts += 1;
        metrics::counter!("tessera_webhook_attempts_total").increment(1);
        // Each attempt is signed afresh, so its timestamp says when it was sent and a receiver
        // can hold every post to a short window.
        let now = chrono::Utc::now().timestamp_millis();
        let Ok(headers) = signature::sign_post(signer, &delivered.credential_id, now, &body) else {
            return Outcome::Failed {
                attempts: attempts - 1,
                reason: "the credential id cannot be an Idempotency-Key header".into(),
            };
        };
        let posted = tokio::time::timeout(
            retries.timeout,
            client.post(&endpoint, headers, body.clone()),
        )
        .await;
        let reason = match posted {
            Ok(Ok(())) => return Outcome::Posted { attempts },
            Ok(Err(Failure::Failed(reason))) => reason,
            Ok(Err(Failure::Refused(reason))) => {
                return Outcome::Failed {
                    attempts: attempts - 1,
                    reason,
                };
            }
            Err(_) => format!(
                "{endpoint} did not answer within {}",
                humantime::format_duration(retries.timeout)
            ),
        };
        if attempts >= retries.attempts.max(1) {
            return Outcome::Failed { attempts, reason };
        }
        let pause = retries.backoff(attempts);
        debug!(
            "webhook attempt {attempts} for credential {} failed: {reason}; retrying in {}",
            delivered.credential_id,
            humantime::format_duration(pause)
        );
        if !pause_unless_stopped(pause, stop).await {
            return Outcome::Stopped;
        }
    }
}

/// The event id of the DeliveryFailed for `credential_id`: derived, so a rerun writes the same.
fn failure_id(credential_id: &str) -> String {
    let name = format!("webhook-failed/{credential_id}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// The subscribers' webhooks, as `tessera.subscribers` holds them once folded through the pins
/// ([`tessera_contract::identity`]), as the matcher folds it: a registration or removal counts only
/// if the key the id pinned signed it, so nobody moves another subscriber's credentials to a
/// webhook of their own.
#[derive(Debug, Default)]
struct Registry {
    pins: Pins,
    by_subscriber: HashMap<String, String>,
    /// Opens sealed contacts.
    contact_key: Option<Arc<PrivateKey>>,
}

/// [`Registry`], kept up to date from `tessera.subscribers`.
struct Webhooks {
    consumer: Reader,
    topic: String,
    partitions: i32,
    registry: Registry,
    /// Per partition, the offset after the last record read.
    next: Vec<i64>,
}

impl Webhooks {
    fn open(
        config: &ClientConfig,
        prefix: &str,
        anchor: Option<VerifyingKey>,
        contact_key: Option<Arc<PrivateKey>>,
    ) -> Result<Webhooks, ClientError> {
        let topic = SUBSCRIBERS.full_name(prefix);
        let consumer = reader(config, false)?;
        let partitions = partition_count(&consumer, &topic)?;
        assign_all(&consumer, &[&topic], true)?;
        Ok(Webhooks {
            consumer,
            topic,
            partitions,
            registry: Registry {
                pins: Pins::new(anchor),
                by_subscriber: HashMap::new(),
                contact_key,
            },
            next: vec![0; partitions as usize],
        })
    }

    /// The webhook of `subscriber_id`'s last accepted registration, once its partition is read
    /// up to its end as it is now.
    async fn of(&mut self, subscriber_id: &str) -> Result<Option<String>, ClientError> {
        let partition = partition_for(subscriber_id, self.partitions);
        let (_, end) = self
            .consumer
            .fetch_watermarks(&self.topic, partition, TIMEOUT)
            .map_err(kafka(format!("cannot read the end of {}", self.topic)))?;
        let deadline = Instant::now() + CATCH_UP;
        while self.next[partition as usize] < end {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    self.next[message.partition() as usize] = message.offset() + 1;
                    if let Some(record) = Record::from_message(&message) {
                        self.registry.learn(&record);
                    }
                }
                Ok(Err(e)) => return Err(kafka(format!("cannot read {}", self.topic))(e)),
                Err(_) => {
                    warn!(
                        "{}/{partition} shows no record up to its end {end}; taking it as read",
                        self.topic
                    );
                    self.next[partition as usize] = end;
                }
            }
        }
        Ok(self.registry.by_subscriber.get(subscriber_id).cloned())
    }
}

impl Registry {
    /// The webhook a registration names: in the clear, or sealed to the delivery's key. One
    /// sealed to another key, or that does not open, names none.
    fn webhook_of(&self, registered: &SubscriberRegistered) -> Option<String> {
        let Some(sealed) = &registered.sealed_contact else {
            return registered.webhook.clone();
        };
        let id = &registered.subscriber_id;
        let opened = self
            .contact_key
            .as_ref()
            .map(|key| open_contact(sealed, id, key));
        match opened {
            Some(Ok(contact)) => contact.webhook,
            Some(Err(e)) => {
                warn!(
                    "subscriber {id}'s sealed contact does not open with this delivery's key: {e}"
                );
                None
            }
            None => {
                warn!("subscriber {id}'s contact is sealed, and this worker has no key to open it");
                None
            }
        }
    }

    /// Folds one record of `tessera.subscribers` in; one refused changes nothing and is logged.
    fn learn(&mut self, record: &Record) {
        let (id, change, webhook) = match &record.event {
            Some(Ok(Event::SubscriberRegistered(registered))) => (
                &registered.subscriber_id,
                Change::Registered(registered),
                self.webhook_of(registered),
            ),
            Some(Ok(Event::SubscriberRemoved(removed))) => (
                &removed.subscriber_id,
                Change::Removed(&removed.subscriber_id),
                None,
            ),
            // A tombstone cannot be signed, so it changes nothing: the signed removal before it
            // already took the webhook away.
            _ => return,
        };
        let at = format!("{}/{}@{}", record.topic, record.partition, record.offset);
        // The key decides the partition the matcher reads a record on; a record filed under
        // another key is one the matcher refuses, so the webhooks must not follow it either.
        if record.key.as_deref() != Some(id.as_str()) {
            warn!("ignoring {at}: its key is not its subscriber id {id}");
            return;
        }
        match self.pins.apply(change, &record.signed) {
            Ok(()) => match webhook {
                Some(url) => self.by_subscriber.insert(id.clone(), url),
                None => self.by_subscriber.remove(id),
            },
            Err(refusal) => {
                metrics::counter!("tessera_webhook_refused_registrations_total").increment(1);
                warn!("ignoring {at} for subscriber {id}'s webhook: {refusal}");
                None
            }
        };
    }
}

/// Checks that a CredentialDelivered on the inbox was written by this delivery worker's core,
/// whose key `own` is: anyone who may write the inbox could otherwise have a package of their
/// own posted, signed by the worker, to any subscriber's webhook.
fn own_delivery(own: &VerifyingKey, record: &Record) -> Result<(), SignatureError> {
    own.verify_record(DELIVERIES.name, &record.signed, "the delivery worker")
}

/// Follows `tessera.deliveries` and posts each delivered credential to its subscriber's webhook,
/// until `stop` is raised. `signer` is the delivery's own key: it signs the posts and the
/// DeliveryFailed records, and only CredentialDelivered records it signed are posted.
pub async fn run(
    config: &ClientConfig,
    prefix: &str,
    settings: Settings,
    signer: Arc<SigningKey>,
    stop: &AtomicBool,
) -> Result<(), WebhookError> {
    let own = signer.verifying_key();
    let client = Client {
        tls: post::tls_config(settings.ca_file.as_deref())?,
        allow_private: settings.allow_private,
    };
    let retries = settings.retries;
    let deliveries = DELIVERIES.full_name(prefix);
    let mut group = config.clone();
    group
        .set("group.id", format!("{prefix}tessera.webhooks"))
        // A new group starts at the inbox's beginning: posting a credential twice is harmless
        // (the idempotency key), never posting it is not.
        .set("auto.offset.reset", "earliest");
    let consumer = reader(&group, false)?;
    consumer
        .subscribe(&[&deliveries])
        .map_err(kafka(format!("cannot subscribe to {deliveries}")))?;
    let mut webhooks = Webhooks::open(
        config,
        prefix,
        settings.trust_anchor,
        settings.contact_key.clone(),
    )?;
    let writer = Writer::new(config)?;
    info!("posting credentials from {deliveries} to subscribers' webhooks");
    while !stop.load(Ordering::Relaxed) {
        let deadline = Instant::now() + STOP_CHECK;
        let Some(record) = next_record(&consumer, Some(deadline), &deliveries).await? else {
            continue;
        };
        if let Some(Ok(Event::CredentialDelivered(delivered))) = &record.event {
            if let Err(why) = own_delivery(&own, &record) {
                metrics::counter!("tessera_webhook_skipped_total", "reason" => "unauthenticated")
                    .increment(1);
                warn!(
                    "not posting credential {} for subscriber {} ({}/{}@{}): \
                     Unauthenticated: {why}",
                    delivered.credential_id,
                    delivered.subscriber_id,
                    record.topic,
                    record.partition,
                    record.offset
                );
            } else if let Some(url) = webhooks.of(&delivered.subscriber_id).await? {
                let outcome =
                    post_with_retries(&client, &signer, &retries, &url, delivered, stop).await;
                if !settle(&writer, &signer, prefix, delivered, outcome).await? {
                    break;
                }
            }
        }
        commit(&consumer, &record);
    }
    info!("webhook worker stopped");
    Ok(())
}

/// Reports `outcome`, writing DeliveryFailed if it failed; false if the worker was stopped
/// before the credential was settled, so its offset must not be committed.
async fn settle(
    writer: &Writer,
    signer: &SigningKey,
    prefix: &str,
    delivered: &CredentialDelivered,
    outcome: Outcome,
) -> Result<bool, ClientError> {
    let credential = &delivered.credential_id;
    let subscriber = &delivered.subscriber_id;
    match outcome {
        Outcome::Posted { attempts } => {
            metrics::counter!("tessera_webhook_posts_total", "outcome" => "ok").increment(1);
            info!(
                "posted credential {credential} to subscriber {subscriber}'s webhook \
                 (attempt {attempts})"
            );
        }
        Outcome::Failed { attempts, reason } => {
            metrics::counter!("tessera_webhook_posts_total", "outcome" => "failed").increment(1);
            let failed = DeliveryFailed {
                event_id: failure_id(credential),
                credential_id: credential.clone(),
                offer_id: delivered.offer_id.clone(),
                subscriber_id: subscriber.clone(),
                attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
                reason: reason.clone(),
            };
            // Signed like the core's records on the inbox, so a subscriber can tell the worker's
            // report from one anyone else wrote there.
            let written = writer
                .write_as(signer, prefix, DELIVERIES, subscriber, &failed.into())
                .await?;
            warn!(
                "credential {credential} not posted to subscriber {subscriber}'s webhook after \
                 {attempts} attempts: {reason} (DeliveryFailed [{written}])"
            );
        }
        Outcome::Stopped => return Ok(false),
    }
    Ok(true)
}

/// Commits the group's offset past `record`. A failed commit only means the record is posted
/// again by whoever owns its partition next, so it is logged, not fatal.
fn commit(consumer: &Reader, record: &Record) {
    let mut offsets = TopicPartitionList::new();
    let committed = offsets
        .add_partition_offset(
            &record.topic,
            record.partition,
            Offset::Offset(record.offset + 1),
        )
        .and_then(|()| consumer.commit(&offsets, CommitMode::Sync));
    if let Err(e) = committed {
        warn!(
            "cannot commit {}/{}@{}; it will be posted again: {e}",
            record.topic, record.partition, record.offset
        );
    }
}

#[cfg(test)]
mod tests {
    use tessera_contract::SubscriberRemoved;
    use tessera_contract::identity::{ENDORSEMENT_TAG, endorsement_parts};
    use tessera_contract::sealing::contacts::{Contact, seal_contact};
    use tessera_contract::signing::Signed;

    use super::*;

    fn party(seed: u8) -> (PrivateKey, SigningKey) {
        let sealing = PrivateKey::from_bytes(&[seed; 32]).unwrap();
        let signing = SigningKey::derive(&sealing);
        (sealing, signing)
    }

    fn registration(id: &str, keys: &(PrivateKey, SigningKey), webhook: &str) -> Event {
        Event::SubscriberRegistered(SubscriberRegistered {
            event_id: "00000000-0000-4000-8000-000000000000".into(),
            subscriber_id: id.into(),
            contact: "c".into(),
            public_key: keys.0.public_key().to_bytes(),
            signing_key: keys.1.verifying_key().to_bytes(),
            interests: Vec::new(),
            webhook: Some(webhook.into()),
            endorsement: None,
            sealed_contact: None,
        })
    }

    fn removal(id: &str) -> Event {
        Event::SubscriberRemoved(SubscriberRemoved {
            event_id: "00000000-0000-4000-8000-000000000001".into(),
            subscriber_id: id.into(),
        })
    }

    /// A record of `tessera.subscribers` keyed `key` and signed by `signer`.
    fn record(signer: &SigningKey, key: &str, event: Event) -> Record {
        let value = tessera_contract::encode(&event).unwrap();
        let signature = signer.sign_record(SUBSCRIBERS.name, Some(key.as_bytes()), Some(&value));
        Record {
            topic: "tessera.subscribers".into(),
            partition: 0,
            offset: 0,
            stamp: None,
            key: Some(key.into()),
            event: Some(Ok(event)),
            signed: Signed::of(Some(key.as_bytes()), Some(&value), Some(&signature)),
        }
    }

    fn webhook(registry: &Registry, id: &str) -> Option<String> {
        registry.by_subscriber.get(id).cloned()
    }

    #[test]
    fn a_forged_registration_or_removal_does_not_move_a_webhook() {
        let (owner, impostor) = (party(1), party(2));
        let mut registry = Registry::default();
        registry.learn(&record(
            &owner.1,
            "B1",
            registration("B1", &owner, "https://b1/in"),
        ));
        assert_eq!(webhook(&registry, "B1").as_deref(), Some("https://b1/in"));
        // The impostor's own keys, signed with its own key: B1 is pinned to the owner's.
        let forged = registration("B1", &impostor, "https://evil/in");
        registry.learn(&record(&impostor.1, "B1", forged));
        assert_eq!(webhook(&registry, "B1").as_deref(), Some("https://b1/in"));
        // The owner's keys with another webhook, signed by the impostor.
        let forged = registration("B1", &owner, "https://evil/in");
        registry.learn(&record(&impostor.1, "B1", forged));
        assert_eq!(webhook(&registry, "B1").as_deref(), Some("https://b1/in"));
        registry.learn(&record(&impostor.1, "B1", removal("B1")));
        assert_eq!(webhook(&registry, "B1").as_deref(), Some("https://b1/in"));
        // A tombstone carries no signature and changes nothing.
        let mut tombstone = record(&impostor.1, "B1", removal("B1"));
        tombstone.event = None;
        registry.learn(&tombstone);
        assert_eq!(webhook(&registry, "B1").as_deref(), Some("https://b1/in"));
        // The owner moves and removes its webhook.
        registry.learn(&record(
            &owner.1,
            "B1",
            registration("B1", &owner, "https://b1/v2"),
        ));
        assert_eq!(webhook(&registry, "B1").as_deref(), Some("https://b1/v2"));
        registry.learn(&record(&owner.1, "B1", removal("B1")));
        assert_eq!(webhook(&registry, "B1"), None);
    }

    #[test]
    fn a_sealed_webhook_is_followed_only_with_the_delivery_key() {
        let (owner, delivery) = (party(1), party(5));
        let Event::SubscriberRegistered(mut sealed) = registration("B1", &owner, "https://x/")
        else {
            unreachable!()
        };
        let contact = Contact {
            contact: "b1@example.org".into(),
            webhook: Some("https://b1/sealed".into()),
        };
        let mut rng = <chacha20::ChaCha20Rng as hpke::rand_core::SeedableRng>::from_seed([4; 32]);
        let platform = delivery.0.public_key();
        sealed.sealed_contact = Some(seal_contact(&contact, "B1", &platform, &mut rng).unwrap());
        sealed.webhook = None;
        let sealed = record(&owner.1, "B1", sealed.into());
        let mut keyed = Registry {
            contact_key: Some(Arc::new(delivery.0)),
            ..Registry::default()
        };
        keyed.learn(&sealed);
        assert_eq!(webhook(&keyed, "B1").as_deref(), Some("https://b1/sealed"));
        let mut other = Registry {
            contact_key: Some(Arc::new(party(6).0)),
            ..Registry::default()
        };
        other.learn(&sealed);
        assert_eq!(webhook(&other, "B1"), None);
    }

    #[test]
    fn a_first_registration_must_be_signed_with_its_own_key_and_filed_under_its_id() {
        let (owner, other) = (party(1), party(2));
        let mut registry = Registry::default();
        registry.learn(&record(
            &other.1,
            "B1",
            registration("B1", &owner, "https://b1/in"),
        ));
        assert_eq!(webhook(&registry, "B1"), None);
        registry.learn(&record(
            &owner.1,
            "B2",
            registration("B1", &owner, "https://b1/in"),
        ));
        assert_eq!(webhook(&registry, "B1"), None);
        assert_eq!(webhook(&registry, "B2"), None);
    }

    #[test]
    fn with_a_trust_anchor_only_endorsed_registrations_count() {
        let (anchor, owner) = (party(9), party(1));
        let mut registry = Registry {
            pins: Pins::new(Some(anchor.1.verifying_key())),
            ..Registry::default()
        };
        registry.learn(&record(
            &owner.1,
            "B1",
            registration("B1", &owner, "https://b1/in"),
        ));
        assert_eq!(webhook(&registry, "B1"), None);
        let Event::SubscriberRegistered(mut endorsed) = registration("B1", &owner, "https://b1/in")
        else {
            unreachable!()
        };
        let parts = endorsement_parts("B1", &endorsed.public_key, &endorsed.signing_key);
        endorsed.endorsement = Some(anchor.1.sign_statement(ENDORSEMENT_TAG, &parts).to_vec());
        registry.learn(&record(&owner.1, "B1", endorsed.into()));
        assert_eq!(webhook(&registry, "B1").as_deref(), Some("https://b1/in"));
    }

    fn millis(pauses: impl IntoIterator<Item = Duration>) -> Vec<u128> {
        pauses.into_iter().map(|p| p.as_millis()).collect()
    }

    #[test]
    fn the_backoff_doubles_from_the_first_pause_up_to_the_cap() {
        let retries = Retries::default();
        let schedule = (1..retries.attempts).map(|failed| retries.backoff(failed));
        assert_eq!(millis(schedule), [200, 400, 800, 1600]);
        let capped = Retries {
            max_backoff: Duration::from_millis(500),
            ..Retries::default()
        };
        assert_eq!(
            millis((1..6).map(|f| capped.backoff(f))),
            [200, 400, 500, 500, 500]
        );
        assert_eq!(capped.backoff(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn a_rerun_fails_a_credential_under_the_same_event_id() {
        assert_eq!(failure_id("cred-1"), failure_id("cred-1"));
        assert_ne!(failure_id("cred-1"), failure_id("cred-2"));
    }
}
