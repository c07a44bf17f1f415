//! `tessera provider watch`: everything about one provider's offers as it happens, from the
//! offer to the reward: its offers and withdrawals (`tessera.offers`), invitations
//! (`tessera.requests`), responses (`tessera.responses`), verdicts and closes
//! (`tessera.decisions`), deliveries (`tessera.deliveries`), outcomes (`tessera.outcomes`) and
//! credits (`tessera.ledger`).
//!
//! A provider id is a name anyone can write, so the watch decides what is the provider's by
//! signatures, never by the name alone:
//!
//! - an offer counts if it is signed with the key it carries and that key is the one pinned for
//!   the provider ([`identity::provider`], folded from `tessera.offers` as the matcher folds it,
//!   which is why the topic is read to its end before anything is shown); a withdrawal counts if
//!   it is signed with its offer's key. Anything else naming the provider is ignored, with the
//!   reason, so no one adds an offer to the provider's watch;
//! - the rest is shown only for the provider's own offers (or, for credits, the provider's own
//!   partition). Verdicts, deliveries and credits must be signed by the pinned timekeeper,
//!   delivery worker and ledger key; one that is not is ignored, with the reason. Where no key is
//!   given for a role, its records are shown marked unverified;
//! - invitations, responses and outcomes are shown marked unverified: the matcher publishes no key
//!   a client can pin, and whether a response or an outcome counted is for the verdict or the
//!   credit that follows it to say.
//!
//! What is shown never includes a secret: no package, no sealed half, no private key.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde_json::{Map, Value, json};
use tessera_contract::identity::{self, provider::ProviderPin};
use tessera_contract::signing::{self, Signed, VerifyingKey};
use tessera_contract::topics::{
    DECISIONS, DELIVERIES, LEDGER, OFFERS, OUTCOMES, REQUESTS, RESPONSES, Topic,
};
use tessera_contract::{Event, OfferPublished, OfferWithdrawn};
use tokio::time::Instant;

use crate::client::{ClientError, Record, assign_after, next_record, read_to_end, reader};
use crate::describe;
use crate::status;

/// The topics a provider's offers leave a trace on, in the order things happen.
pub const TOPICS: [Topic; 7] = [
    OFFERS, REQUESTS, RESPONSES, DECISIONS, DELIVERIES, OUTCOMES, LEDGER,
];

/// Fields that hold sealed or encrypted material: never shown, not even encrypted.
const SECRET_FIELDS: [&str; 5] = [
    "credential",
    "package",
    "platform_half",
    "provider_half",
    "escrow_half",
];

/// The platform roles' pinned verifying keys; `None` where none was found, and the role's records
/// are shown unverified.
#[derive(Debug, Clone, Default)]
pub struct Pinned {
    /// Verdicts and closes on `tessera.decisions` must be signed with it.
    pub timekeeper: Option<VerifyingKey>,
    /// Deliveries on `tessera.deliveries` must be signed with it.
    pub delivery: Option<VerifyingKey>,
    /// Credits on `tessera.ledger` must be signed with it.
    pub ledger: Option<VerifyingKey>,
}

/// What `watch` follows.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The provider whose offers to follow.
    pub provider_id: String,
    /// Whose verdicts, deliveries and credits to believe.
    pub pinned: Pinned,
    /// The installation's trust anchor, if it vouches for parties (as the matcher is told): the
    /// provider's pin is folded as the matcher folds it.
    pub anchor: Option<VerifyingKey>,
    /// Show what the topics hold from their beginning, not only what comes from now on.
    pub from_beginning: bool,
    /// Stop after this long with nothing about the provider's offers; `None` follows forever.
    pub until_idle: Option<Duration>,
}

/// Who signed a record that is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The provider, with the key pinned for it.
    Provider,
    /// The pinned timekeeper.
    Timekeeper,
    /// The pinned delivery worker.
    Delivery,
    /// The pinned ledger.
    Ledger,
    /// No pinned key vouches for it.
    Unverified,
}

impl Signer {
    /// How the JSON lines name it; `None` for an unverified record.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Signer::Provider => Some("provider"),
            Signer::Timekeeper => Some("timekeeper"),
            Signer::Delivery => Some("delivery"),
            Signer::Ledger => Some("ledger"),
            Signer::Unverified => None,
        }
    }
}

/// A record about the provider's offers.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Where it was read.
    pub record: Record,
    /// What it says.
    pub event: Event,
    /// Who vouches for it.
    pub signer: Signer,
}

/// Something `watch` read.
#[derive(Debug, Clone)]
pub enum Watched {
    /// A record about the provider's offers.
    Seen(Box<Seen>),
    /// A record naming the provider or one of its offers that its signer's key does not vouch
    /// for, and why: not shown as the provider's.
    Ignored(Record, String),
    /// A record that is not a tessera event; it may have been meant for anyone.
    Unreadable(Record, String),
}

impl fmt::Display for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |r: &Record| describe::position(&r.topic, r.partition, r.offset, r.stamp);
        match self {
            Watched::Seen(seen) => {
                write!(f, "{} [{}]", describe::event(&seen.event), at(&seen.record))?;
                if seen.signer == Signer::Unverified {
                    f.write_str(" (unverified)")?;
                }
                Ok(())
            }
            Watched::Ignored(record, why) => {
                write!(f, "ignoring the record at {}: {why}", at(record))
            }
            Watched::Unreadable(record, error) => {
                write!(f, "unreadable record at {}: {error}", at(record))
            }
        }
    }
}

impl Seen {
    /// The offer the record is about.
    pub fn offer_id(&self) -> Option<&str> {
        offer_of(&self.event)
    }

    /// One JSON object: where the record sits, its type, its offer, who vouches for it, and the
    /// event's fields without sealed material (byte fields as hex).
    pub fn to_json(&self) -> Value {
        let mut line = status::place(&self.record);
        line.insert("type".into(), json!(self.event.kind().name()));
        line.insert("offer_id".into(), json!(self.offer_id()));
        line.insert("signed_by".into(), json!(self.signer.name()));
        line.insert("event".into(), public_fields(&self.event));
        Value::Object(line)
    }
}

/// The offer an event is about, for the events the watch shows.
fn offer_of(event: &Event) -> Option<&str> {
    Some(match event {
        Event::OfferPublished(e) => &e.offer_id,
        Event::OfferWithdrawn(e) => &e.offer_id,
        Event::InteractionRequested(e) => &e.offer_id,
        Event::ResponseSubmitted(e) => &e.offer_id,
        Event::CredentialReleased(e) => &e.offer_id,
        Event::ResponseRejected(e) => &e.offer_id,
        Event::OfferRejected(e) => &e.offer_id,
        Event::OfferClosed(e) => &e.offer_id,
        Event::CredentialDelivered(e) => &e.offer_id,
        Event::DeliveryFailed(e) => &e.offer_id,
        Event::CredentialAccepted(e) => &e.offer_id,
        Event::CredentialDeclined(e) => &e.offer_id,
        Event::RewardCredited(e) => &e.offer_id,
        _ => return None,
    })
}

/// The event's fields without sealed material, byte fields (public keys, signatures, digests)
/// as hex.
fn public_fields(event: &Event) -> Value {
    scrub(status::content(event))
}

/// Drops [`SECRET_FIELDS`] at any depth and writes byte arrays as hex.
fn scrub(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(name, _)| !SECRET_FIELDS.contains(&name.as_str()))
                .map(|(name, value)| (name, scrub(value)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|item| item.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            match bytes {
                Some(bytes) if !bytes.is_empty() => Value::String(signing::hex(&bytes)),
                _ => Value::Array(items.into_iter().map(scrub).collect()),
            }
        }
        other => other,
    }
}

/// The provider's offers as its signatures establish them.
#[derive(Debug)]
struct Offers {
    provider_id: String,
    anchor: Option<VerifyingKey>,
    /// The provider's pinned key so far.
    pin: Option<ProviderPin>,
    /// Each of its offers with the key it was signed with, which signs its withdrawal too.
    keys: HashMap<String, VerifyingKey>,
}

impl Offers {
    /// Whether the published offer is the provider's; Err says why a record naming the provider
    /// is not. Its offer is remembered, and the pin moved, as the matcher would.
    fn publish(&mut self, offer: &OfferPublished, signed: &Signed) -> Result<(), String> {
        identity::offer_signed(offer, signed).map_err(|e| {
            format!(
                "offer {} names provider {} but is not signed with the key it carries: {e}",
                offer.offer_id, offer.provider_id
            )
        })?;
        let key = VerifyingKey::from_bytes(&offer.signing_key).map_err(|e| e.to_string())?;
        // Already the provider's (read before the watch began, or again from the beginning).
        if self.keys.get(&offer.offer_id) == Some(&key) {
            return Ok(());
        }
        let pin = identity::provider::check(self.pin.as_ref(), offer, self.anchor.as_ref())
            .map_err(|e| e.to_string())?;
        self.pin = Some(pin);
        // The first offer under an id is the one the platform judges; a later one is refused
        // as a duplicate, so it keeps the first one's key.
        self.keys.entry(offer.offer_id.clone()).or_insert(key);
        Ok(())
    }

    /// Whether the withdrawal is the provider's: signed with its offer's key.
    fn withdraw(&self, withdrawn: &OfferWithdrawn, signed: &Signed) -> Result<(), String> {
        let offer_id = &withdrawn.offer_id;
        let key = self.keys.get(offer_id).ok_or_else(|| {
            format!(
                "the withdrawal names provider {} but offer {offer_id} is not its",
                withdrawn.provider_id
            )
        })?;
        if withdrawn.provider_id != self.provider_id {
            return Err(format!(
                "the withdrawal of offer {offer_id} names provider {}",
                withdrawn.provider_id
            ));
        }
        key.verify_record(OFFERS.name, signed, &self.provider_id)
            .map_err(|e| {
                format!(
                    "the withdrawal of offer {offer_id} is not signed with the offer's key \
                     (fingerprint {}): {e}",
                    key.fingerprint()
                )
            })
    }

    fn owns(&self, offer_id: &str) -> bool {
        self.keys.contains_key(offer_id)
    }
}

/// What the watch makes of a record: `None` if it is not about the provider's offers.
fn judge(watch: &Watch, offers: &mut Offers, record: &Record, event: &Event) -> Option<Verdict> {
    let provider = &watch.provider_id;
    let platform = |key: Option<&VerifyingKey>, topic: Topic, role: &str, signer: Signer| match key
    {
        None => Verdict::Show(Signer::Unverified),
        Some(key) => match key.verify_record(topic.name, &record.signed, role) {
            Ok(()) => Verdict::Show(signer),
            Err(e) => Verdict::Ignore(format!(
                "it is not signed by the pinned {role} (key fingerprint {}): {e}",
                key.fingerprint()
            )),
        },
    };
    let pinned = &watch.pinned;
    let owned = offer_of(event).is_some_and(|id| offers.owns(id));
    Some(match event {
        Event::OfferPublished(offer) if &offer.provider_id == provider => {
            match offers.publish(offer, &record.signed) {
                Ok(()) => Verdict::Show(Signer::Provider),
                Err(why) => Verdict::Ignore(why),
            }
        }
        Event::OfferWithdrawn(withdrawn)
            if &withdrawn.provider_id == provider || offers.owns(&withdrawn.offer_id) =>
        {
            match offers.withdraw(withdrawn, &record.signed) {
                Ok(()) => Verdict::Show(Signer::Provider),
                Err(why) => Verdict::Ignore(why),
            }
        }
        Event::InteractionRequested(_)
        | Event::ResponseSubmitted(_)
        | Event::CredentialAccepted(_)
        | Event::CredentialDeclined(_)
            if owned =>
        {
            Verdict::Show(Signer::Unverified)
        }
        Event::CredentialReleased(_)
        | Event::ResponseRejected(_)
        | Event::OfferRejected(_)
        | Event::OfferClosed(_)
            if owned =>
        {
            platform(
                pinned.timekeeper.as_ref(),
                DECISIONS,
                "timekeeper",
                Signer::Timekeeper,
            )
        }
        Event::CredentialDelivered(_) | Event::DeliveryFailed(_) if owned => platform(
            pinned.delivery.as_ref(),
            DELIVERIES,
            "delivery worker",
            Signer::Delivery,
        ),
        Event::RewardCredited(e) if &e.provider_id == provider => {
            platform(pinned.ledger.as_ref(), LEDGER, "ledger", Signer::Ledger)
        }
        _ => return None,
    })
}

/// Whether to show a record about the provider's offers.
enum Verdict {
    Show(Signer),
    Ignore(String),
}

/// Follows the provider's offers and reports each record about them to `watched`, in the order
/// they are read (each partition in its order; the topics side by side).
pub async fn watch(
    config: &ClientConfig,
    prefix: &str,
    watch: &Watch,
    mut watched: impl FnMut(Watched),
) -> Result<(), ClientError> {
    let mut offers = Offers {
        provider_id: watch.provider_id.clone(),
        anchor: watch.anchor,
        pin: None,
        keys: HashMap::new(),
    };
    let names: Vec<String> = TOPICS.iter().map(|t| t.full_name(prefix)).collect();
    let topics: Vec<&str> = names.iter().map(String::as_str).collect();
    // The provider's pin and offers so far, folded in receipt order as the matcher folds them:
    // an offer that comes before the watch began still has invitations, verdicts and credits to
    // come, and only the pin tells the provider's offers from others naming it. From the
    // beginning, the whole history is read that way and shown in that order (the topics side by
    // side, as `offer status` orders an offer's records), then followed from where it ended.
    let offers_topic = OFFERS.full_name(prefix);
    let read_topics = match watch.from_beginning {
        true => topics.clone(),
        false => vec![offers_topic.as_str()],
    };
    let mut history = read_all(config, &read_topics).await?;
    let rank = |topic: &str| names.iter().position(|name| name == topic);
    history.sort_by_key(|r| (r.stamp, rank(&r.topic), r.partition, r.offset));
    let consumer = reader(config, false)?;
    let others: Vec<&str> = topics
        .iter()
        .copied()
        .filter(|t| !read_topics.contains(t))
        .collect();
    assign_after(&consumer, &read_topics, &history, &others)?;
    for record in history {
        match &record.event {
            _ if watch.from_beginning => {
                show(watch, &mut offers, record, &mut watched);
            }
            Some(Ok(Event::OfferPublished(offer))) if offer.provider_id == watch.provider_id => {
                // A refused offer changes nothing, here as in the matcher.
                let _ = offers.publish(offer, &record.signed);
            }
            _ => {}
        }
    }
    let what = names.join(", ");
    let mut last_seen = Instant::now();
    loop {
        let deadline = watch.until_idle.map(|idle| last_seen + idle);
        let Some(record) = next_record(&consumer, deadline, &what).await? else {
            return Ok(());
        };
        if show(watch, &mut offers, record, &mut watched) {
            last_seen = Instant::now();
        }
    }
}

/// Reports `record` to `watched` as [`judge`] says; whether it was about the provider's offers.
fn show(
    watch: &Watch,
    offers: &mut Offers,
    record: Record,
    watched: &mut impl FnMut(Watched),
) -> bool {
    let event = match &record.event {
        Some(Ok(event)) => event.clone(),
        Some(Err(error)) => {
            let error = error.clone();
            watched(Watched::Unreadable(record, error));
            return false;
        }
        None => return false,
    };
    match judge(watch, offers, &record, &event) {
        Some(Verdict::Show(signer)) => {
            watched(Watched::Seen(Box::new(Seen {
                record,
                event,
                signer,
            })));
            true
        }
        Some(Verdict::Ignore(why)) => {
            watched(Watched::Ignored(record, why));
            false
        }
        None => false,
    }
}

/// Every record of `topics` up to their current end, the topics read side by side.
async fn read_all(config: &ClientConfig, topics: &[&str]) -> Result<Vec<Record>, ClientError> {
    let mut reads = tokio::task::JoinSet::new();
    for topic in topics {
        let (config, topic) = (config.clone(), topic.to_string());
        reads.spawn(async move { read_to_end(&config, &topic, None).await });
    }
    let mut records = Vec::new();
    for read in reads.join_all().await {
        records.extend(read?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use tessera_contract::sealing::PrivateKey;
    use tessera_contract::signing::SigningKey;
    use tessera_contract::{Custody, examples};

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[seed; 32]).unwrap())
    }

    fn record(topic: Topic, key: &str, event: &Event, signer: &SigningKey) -> Record {
        let value = tessera_contract::encode(event).unwrap();
        Record {
            topic: topic.name.into(),
            partition: 0,
            offset: 0,
            stamp: Some(1_000),
            key: Some(key.into()),
            event: Some(Ok(event.clone())),
            signed: signer.signed(topic.name, key.as_bytes(), &value),
        }
    }

    /// Offer `offer_id` of provider A, carrying and signed with `signer`'s key.
    fn offer(offer_id: &str, signer: &SigningKey) -> (Record, Event) {
        let mut offer = examples::offer(offer_id, "A", Custody::Escrow);
        offer.signing_key = signer.verifying_key().to_bytes();
        let event: Event = identity::with_package_signed(offer, signer).into();
        (record(OFFERS, offer_id, &event, signer), event)
    }

    fn watch(timekeeper: &SigningKey) -> Watch {
        Watch {
            provider_id: "A".into(),
            pinned: Pinned {
                timekeeper: Some(timekeeper.verifying_key()),
                ..Pinned::default()
            },
            anchor: None,
            from_beginning: true,
            until_idle: None,
        }
    }

    fn offers() -> Offers {
        Offers {
            provider_id: "A".into(),
            anchor: None,
            pin: None,
            keys: HashMap::new(),
        }
    }

    fn shown(verdict: Option<Verdict>) -> Option<Signer> {
        match verdict {
            Some(Verdict::Show(signer)) => Some(signer),
            _ => None,
        }
    }

    #[test]
    fn only_offers_signed_with_the_providers_pinned_key_are_its() {
        let (a, forger, timekeeper) = (key(1), key(2), key(9));
        let watch = watch(&timekeeper);
        let mut offers = offers();
        let (genuine, event) = offer("o1", &a);
        assert_eq!(
            shown(judge(&watch, &mut offers, &genuine, &event)),
            Some(Signer::Provider)
        );
        // Signed with its own key, naming A: the pin says it is not A's.
        let (forged, event) = offer("o2", &forger);
        let Some(Verdict::Ignore(why)) = judge(&watch, &mut offers, &forged, &event) else {
            panic!("a forged offer is ignored");
        };
        assert!(
            why.starts_with("NotOwner: offer o2 names provider A"),
            "{why}"
        );
        // Carrying A's key but signed by another.
        let (mut resigned, event) = offer("o3", &a);
        resigned.signed = forger.signed(OFFERS.name, b"o3", b"whatever");
        assert!(matches!(
            judge(&watch, &mut offers, &resigned, &event),
            Some(Verdict::Ignore(_))
        ));
        assert!(offers.owns("o1") && !offers.owns("o2") && !offers.owns("o3"));
    }

    #[test]
    fn verdicts_count_for_the_providers_offers_signed_by_the_timekeeper() {
        let (a, timekeeper) = (key(1), key(9));
        let watch = watch(&timekeeper);
        let mut offers = offers();
        let (genuine, event) = offer("o1", &a);
        judge(&watch, &mut offers, &genuine, &event);
        let closed = |offer_id: &str| -> Event {
            let mut closed = examples::all()
                .into_iter()
                .find_map(|e| match e {
                    Event::OfferClosed(c) => Some(c),
                    _ => None,
                })
                .unwrap();
            closed.offer_id = offer_id.into();
            closed.into()
        };
        let ours = closed("o1");
        let signed = record(DECISIONS, "o1", &ours, &timekeeper);
        assert_eq!(
            shown(judge(&watch, &mut offers, &signed, &ours)),
            Some(Signer::Timekeeper)
        );
        let forged = record(DECISIONS, "o1", &ours, &a);
        assert!(matches!(
            judge(&watch, &mut offers, &forged, &ours),
            Some(Verdict::Ignore(_))
        ));
        let theirs = closed("o9");
        let other = record(DECISIONS, "o9", &theirs, &timekeeper);
        assert!(judge(&watch, &mut offers, &other, &theirs).is_none());
    }

    #[test]
    fn json_lines_never_carry_sealed_material() {
        for event in examples::all() {
            let seen = Seen {
                record: record(OFFERS, "k", &event, &key(1)),
                event,
                signer: Signer::Unverified,
            };
            let line = seen.to_json().to_string();
            for secret in SECRET_FIELDS {
                assert!(!line.contains(&format!("\"{secret}\"")), "{line}");
            }
            assert!(!line.contains("[1,") && !line.contains(",0]"), "{line}");
        }
        let (record, event) = offer("o1", &key(1));
        let json = Seen {
            record,
            event,
            signer: Signer::Provider,
        }
        .to_json();
        assert_eq!(json["type"], "OfferPublished");
        assert_eq!(json["offer_id"], "o1");
        assert_eq!(json["signed_by"], "provider");
        assert_eq!(
            json["event"]["signing_key"],
            signing::hex(&key(1).verifying_key().to_bytes())
        );
        assert!(json["event"].get("credential").is_none());
    }
}
