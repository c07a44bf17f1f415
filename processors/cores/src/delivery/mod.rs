//! The delivery worker: assembles each released credential (the provider's encrypted package and
//! both sealed halves of its key) and puts it in its recipient's inbox, `tessera.deliveries`,
//! keyed by subscriber id (the source document's step S106, the credential reaching the second
//! terminal).
//!
//! It reads `tessera.offers` (the packages), `tessera.decisions` (the timekeeper's releases and
//! the offers' ends) and `tessera.cosigns` (the providers' halves), all keyed by offer id. A
//! credential is complete when its release and the provider's half are both in: in escrow custody
//! the release carries both halves; in co-sign custody the provider half comes from the
//! ProviderShareReleased that names the same credential and recipient. A complete credential is
//! delivered once, with `attempts` 1: a repeated cosign or release never delivers it again.
//! The delivery is sans-IO like every core; sealed halves and packages are opaque bytes to it.
//!
//! # Cosigns without a release
//!
//! Only the timekeeper decides who gets a credential, so a provider half never makes a delivery
//! by itself. A cosign whose release has not been seen yet is held, not refused: the provider
//! agent writes it after reading the release, but the two sit on different partitions, which
//! different brokers may stamp with clocks a little apart. It is dead-lettered once the offer's
//! end (OfferClosed, or OfferRejected) shows no release can follow, since the timekeeper writes
//! every release of an offer before its end on the same partition. A cosign for an offer that was
//! not on the log by its stamp is dead-lettered at once, as the timekeeper refuses responses to
//! unknown offers: the merge has applied every offer stamped before it.
//!
//! A cosign for a released credential is still delivered after the offer ended: a provider's
//! device may be offline when its offer's rule ends.
//!
//! # Repeats
//!
//! An event read again (the same event id) changes nothing. A second, different release or
//! provider half for a credential that has one, a half for another recipient than the released
//! one, and a cosign for an escrow release go to `tessera.dead-letters` with the reason.
//!
//! # Who wrote it
//!
//! Nothing is believed for the name it carries. An offer counts only if signed with the provider
//! key it carries, its package too (a forged one is ignored: the timekeeper rejects it); each
//! delivery carries that key and the package's signature, so its recipient checks them as well; a verdict only if signed
//! by the timekeeper whose key the delivery is given (else a dead letter, Unauthenticated, so no
//! one releases a credential or ends an offer in the timekeeper's name); a provider half only if
//! signed with the key of the offer it names (else a dead letter, NotOwner).
//!
//! # What is kept
//!
//! An offer's package is kept until the offer ended and every release of it was delivered, then
//! deleted; a credential's halves are dropped once delivered. What stays is small: per offer a
//! status, per credential its recipient and where its provider half came from, so repeats are
//! still told apart from strangers.

use serde::{Deserialize, Serialize};
use tessera_contract::identity;
use tessera_contract::rules::format_stamp;
use tessera_contract::{
    CredentialDelivered, CredentialReleased, LogPosition, OfferProblem, OfferPublished,
    OfferRejected, ProviderShareReleased, SealedBox,
};

use crate::news::OfferNews;
use crate::prelude::*;

/// `tessera run delivery`, with its webhook worker beside the core.
pub const PROCESSOR: Processor = Processor {
    name: "delivery",
    cores: &[&SHAPE],
    metrics_port: 9466,
    publishes_key: true,
    audit_secret: None,
};

shape! {
    /// The delivery's declaration.
    ///
    /// The inputs in rank order: on equal stamps an offer's package is in before its releases,
    /// and a release before the cosigns that answer it.
    pub const SHAPE: "delivery",
    inputs InputTopic { Offers = OFFERS, Decisions = DECISIONS, Cosigns = COSIGNS },
    output DELIVERIES,
    state "per offer: its package and status; released credentials; provider halves waiting \
          for their release";
}

/// How an offer ended: after it, the timekeeper releases nothing more.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Ending {
    /// OfferClosed, at this stream time.
    Closed(i64),
    /// OfferRejected, with the timekeeper's detail.
    Rejected(String),
}

/// What the delivery knows of an offer id. Kept apart from the package so that each release and
/// delivery rewrites a few bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OfferStatus {
    /// Its first OfferPublished was read (a later one under the same id is the timekeeper's
    /// DuplicateOffer and changes nothing).
    published: bool,
    /// The provider's verifying key, as its offer carried it: provider halves must be signed
    /// with it.
    #[serde(default)]
    provider_key: Vec<u8>,
    /// The provider its offer named, and the signature over the package: each delivery carries
    /// them, so the recipient checks the package is the provider's.
    #[serde(default)]
    provider_id: String,
    #[serde(default)]
    package_signature: Vec<u8>,
    ended: Option<Ending>,
    /// Releases not delivered yet: the package is kept while there are any.
    undelivered: u32,
}

/// Where a credential's provider half came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum ShareFrom {
    /// The release carried it (escrow custody).
    Escrow,
    /// The provider's cosign with this event id.
    Cosign(String),
}

/// A released credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credential {
    credential_id: String,
    subscriber_id: String,
    /// Event id of the release, to know it when it is read again.
    release_event: String,
    share_from: Option<ShareFrom>,
    /// The sealed halves while the credential waits; dropped once it is delivered.
    platform_half: Option<SealedBox>,
    provider_half: Option<SealedBox>,
    delivered: bool,
}

/// A cosign waiting for its release, with where it sat for a dead letter.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeldShare {
    share: ProviderShareReleased,
    source: LogPosition,
}

/// Status by offer id.
const STATUS: Table<OfferStatus> = Table::new("status/");
/// Encrypted packages by offer id.
const PACKAGES: Table<Vec<u8>> = Table::new("package/");
/// Released credentials by [`pair`] of offer id and credential id.
const CREDENTIALS: Table<Credential> = Table::new("credential/");
/// Cosigns waiting for their release, by [`held_key`].
const HELD: Table<HeldShare> = Table::new("held/");

/// Held cosigns sort by offer, then credential, then recipient, so one prefix scan finds those
/// of an offer or of a credential.
fn held_key(offer_id: &str, credential_id: &str, subscriber_id: &str) -> String {
    pair(offer_id, &pair(credential_id, subscriber_id))
}

/// An input record the delivery acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An offer with its package, or a verdict on it.
    News(OfferNews),
    /// A provider's half, from `tessera.cosigns`.
    Share(ProviderShareReleased),
}

/// The delivery core. All it knows is in the task's state, and the key verdicts are signed with.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    timekeeper: VerifyingKey,
}

impl Delivery {
    /// A delivery worker that believes verdicts signed with `timekeeper`.
    pub fn new(timekeeper: VerifyingKey) -> Self {
        Delivery { timekeeper }
    }

    /// Keeps an offer's package, and acts on the timekeeper's verdicts on it.
    fn follow(&self, state: &mut dyn State, news: OfferNews, signed: &Signed, out: &mut Outputs) {
        match news {
            OfferNews::Offer(offer) => publish(state, *offer, signed, out),
            OfferNews::Release(release) => {
                let event = || Event::CredentialReleased((*release).clone());
                if self.by_timekeeper(signed, &release.offer_id, event, out) {
                    release_credential(state, *release, out);
                }
            }
            OfferNews::Rejected(rejected) => {
                let event = || Event::OfferRejected(rejected.clone());
                if self.by_timekeeper(signed, &rejected.offer_id, event, out) {
                    reject(state, rejected, out);
                }
            }
            OfferNews::Closed(closed) => {
                let event = || Event::OfferClosed(closed.clone());
                if self.by_timekeeper(signed, &closed.offer_id, event, out) {
                    let ending = Ending::Closed(closed.closed_at);
                    end(state, &closed.offer_id, ending, out);
                }
            }
            OfferNews::Passed => {}
        }
    }

    /// Whether a verdict is the timekeeper's; dead-letters it if not.
    fn by_timekeeper(
        &self,
        signed: &Signed,
        offer_id: &str,
        event: impl FnOnce() -> Event,
        out: &mut Outputs,
    ) -> bool {
        let input = (topics::DECISIONS, offer_id, signed);
        out.signed_by(&self.timekeeper, "the timekeeper", input, event)
    }
}

impl Core for Delivery {
    type Record = Received;

    crate::declared_by!(SHAPE);

    fn decode(&self, raw: Raw<'_>) -> Result<Received, String> {
        match raw.event::<InputTopic>()? {
            (InputTopic::Cosigns, Event::ProviderShareReleased(e)) => {
                raw.keyed_by(&e.offer_id, "offer id")?;
                Ok(Received::Share(e))
            }
            (input, event) => OfferNews::read(&raw, input, event).map(Received::News),
        }
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<Received>) -> Vec<Emitted> {
        let mut out = Outputs::new(SHAPE.name, input.at());
        if let Input::Record { value, signed, .. } = input {
            match value {
                Received::News(news) => self.follow(state, news, &signed, &mut out),
                Received::Share(share) => cosign(state, share, &signed, &mut out),
            }
        }
        out.into_list()
    }
}

fn publish(state: &mut dyn State, offer: OfferPublished, signed: &Signed, out: &mut Outputs) {
    let genuine = identity::offer_signed(&offer, signed).is_ok();
    let offer_id = &offer.offer_id;
    let mut status = STATUS.get(state, offer_id).unwrap_or_default();
    if status.published || !genuine {
        return;
    }
    status.published = true;
    status.provider_key = offer.signing_key.clone();
    status.provider_id = offer.provider_id.clone();
    status.package_signature = offer.package_signature.clone();
    // An offer read after its end (the partitions' clocks apart) needs its package only for the
    // releases that wait for it.
    if status.ended.is_none() || status.undelivered > 0 {
        PACKAGES.put(state, offer_id, &offer.credential.package);
    }
    // Releases read before their offer (the partitions' clocks apart) have waited for it.
    if status.undelivered > 0 {
        let waiting = CREDENTIALS.range(state, &pair(offer_id, ""));
        for (key, credential) in waiting.into_iter().filter(|(_, c)| !c.delivered) {
            deliver_if_complete(state, offer_id, &key, credential, &mut status, out);
        }
    }
    STATUS.put(state, offer_id, &status);
}

fn reject(state: &mut dyn State, rejected: OfferRejected, out: &mut Outputs) {
    // A duplicate offer is rejected, but the first offer under its id stands.
    if rejected.problem == OfferProblem::DuplicateOffer {
        return;
    }
    end(
        state,
        &rejected.offer_id,
        Ending::Rejected(rejected.detail),
        out,
    );
}

/// The offer ended: no release can follow, so the cosigns still waiting for one never will.
fn end(state: &mut dyn State, offer_id: &str, ending: Ending, out: &mut Outputs) {
    let mut status = STATUS.get(state, offer_id).unwrap_or_default();
    if status.ended.is_some() {
        return;
    }
    for (key, held) in HELD.range(state, &pair(offer_id, "")) {
        HELD.delete(state, &key);
        let reason = format!(
            "offer {offer_id} {} without releasing credential {}",
            ended_in_words(&ending),
            held.share.credential_id
        );
        refuse_held(held, reason, out);
    }
    status.ended = Some(ending);
    if status.undelivered == 0 {
        PACKAGES.delete(state, offer_id);
    }
    STATUS.put(state, offer_id, &status);
}

fn ended_in_words(ending: &Ending) -> String {
    match ending {
        Ending::Closed(at) => format!("closed at {}", format_stamp(*at)),
        Ending::Rejected(detail) => format!("was rejected ({detail})"),
    }
}

fn refuse_held(held: HeldShare, reason: String, out: &mut Outputs) {
    let key = held.share.offer_id.clone();
    out.dead_letter_from(&held.source, &key, held.share.into(), reason);
}

fn release_credential(state: &mut dyn State, release: CredentialReleased, out: &mut Outputs) {
    let offer_id = &release.offer_id.clone();
    let key = pair(offer_id, &release.credential_id);
    let mut status = STATUS.get(state, offer_id).unwrap_or_default();
    if let Some(known) = CREDENTIALS.get(state, &key) {
        if known.release_event != release.event_id {
            let reason = format!(
                "credential {} was released already by event {}",
                release.credential_id, known.release_event
            );
            out.dead_letter(topics::DECISIONS, offer_id, release.into(), reason);
        }
        return;
    }
    if let Some(ending) = &status.ended {
        let reason = format!(
            "offer {offer_id} {}; nothing is released after an offer's end",
            ended_in_words(ending)
        );
        return out.dead_letter(topics::DECISIONS, offer_id, release.into(), reason);
    }
    let mut credential = Credential {
        credential_id: release.credential_id.clone(),
        subscriber_id: release.subscriber_id.clone(),
        release_event: release.event_id.clone(),
        share_from: release.provider_half.as_ref().map(|_| ShareFrom::Escrow),
        platform_half: Some(release.platform_half),
        provider_half: release.provider_half,
        delivered: false,
    };
    for (held_at, held) in HELD.range(state, &pair(offer_id, &pair(&release.credential_id, ""))) {
        HELD.delete(state, &held_at);
        match share_refusal(&credential, &release.credential_id, &held.share) {
            Some(reason) => refuse_held(held, reason, out),
            None => take_share(&mut credential, held.share),
        }
    }
    status.undelivered = status.undelivered.saturating_add(1);
    deliver_if_complete(state, offer_id, &key, credential, &mut status, out);
    STATUS.put(state, offer_id, &status);
}

/// Why `share` cannot be the provider half of the released `credential`, if it cannot. A share
/// it already holds (the same event read again) is refused by the caller, not here.
fn share_refusal(
    credential: &Credential,
    credential_id: &str,
    share: &ProviderShareReleased,
) -> Option<String> {
    if share.subscriber_id != credential.subscriber_id {
        return Some(format!(
            "credential {credential_id} was released to {}, not {}",
            credential.subscriber_id, share.subscriber_id
        ));
    }
    match &credential.share_from {
        None => None,
        Some(ShareFrom::Escrow) => Some(format!(
            "credential {credential_id} was released with the provider half in escrow"
        )),
        Some(ShareFrom::Cosign(event)) => Some(format!(
            "credential {credential_id} has its provider half already, from cosign {event}"
        )),
    }
}

fn take_share(credential: &mut Credential, share: ProviderShareReleased) {
    credential.share_from = Some(ShareFrom::Cosign(share.event_id));
    credential.provider_half = Some(share.provider_half);
}

fn cosign(state: &mut dyn State, share: ProviderShareReleased, signed: &Signed, out: &mut Outputs) {
    let offer_id = share.offer_id.clone();
    let mut status = STATUS.get(state, &offer_id).unwrap_or_default();
    if !status.published {
        let reason = format!(
            "no offer {offer_id} was on the log by {}",
            format_stamp(out.at().effective)
        );
        return out.dead_letter(topics::COSIGNS, &offer_id, share.into(), reason);
    }
    if let Err(e) = VerifyingKey::from_bytes(&status.provider_key)
        .and_then(|key| key.verify_record(topics::COSIGNS.name, signed, "the offer's provider"))
    {
        let reason = format!(
            "NotOwner: the provider half for credential {} is not signed by offer {offer_id}'s \
             provider: {e}",
            share.credential_id
        );
        return out.dead_letter(topics::COSIGNS, &offer_id, share.into(), reason);
    }
    let key = pair(&offer_id, &share.credential_id);
    let Some(mut credential) = CREDENTIALS.get(state, &key) else {
        return hold(state, share, &status, out);
    };
    if credential.share_from == Some(ShareFrom::Cosign(share.event_id.clone())) {
        return;
    }
    if let Some(reason) = share_refusal(&credential, &share.credential_id, &share) {
        return out.dead_letter(topics::COSIGNS, &offer_id, share.into(), reason);
    }
    take_share(&mut credential, share);
    deliver_if_complete(state, &offer_id, &key, credential, &mut status, out);
    STATUS.put(state, &offer_id, &status);
}

/// Keeps a cosign whose release has not been read, unless the offer's end says none will be.
fn hold(
    state: &mut dyn State,
    share: ProviderShareReleased,
    status: &OfferStatus,
    out: &mut Outputs,
) {
    let offer_id = share.offer_id.clone();
    if let Some(ending) = &status.ended {
        let reason = format!(
            "offer {offer_id} {} without releasing credential {}",
            ended_in_words(ending),
            share.credential_id
        );
        return out.dead_letter(topics::COSIGNS, &offer_id, share.into(), reason);
    }
    let key = held_key(&offer_id, &share.credential_id, &share.subscriber_id);
    match HELD.get(state, &key) {
        None => HELD.put(
            state,
            &key,
            &HeldShare {
                share,
                source: out.source(topics::COSIGNS),
            },
        ),
        Some(held) if held.share.event_id == share.event_id => {}
        Some(held) => {
            let reason = format!(
                "cosign {} for credential {} to {} waits for its release already",
                held.share.event_id, share.credential_id, share.subscriber_id
            );
            out.dead_letter(topics::COSIGNS, &offer_id, share.into(), reason);
        }
    }
}

/// Delivers `credential` if it has both halves and its package is in, and stores it either way.
fn deliver_if_complete(
    state: &mut dyn State,
    offer_id: &str,
    key: &str,
    mut credential: Credential,
    status: &mut OfferStatus,
    out: &mut Outputs,
) {
    if !credential.delivered
        && let (Some(platform_half), Some(provider_half)) = (
            credential.platform_half.clone(),
            credential.provider_half.clone(),
        )
        && let Some(package) = PACKAGES.get(state, offer_id)
    {
        let credential_id = credential.credential_id.clone();
        let subscriber_id = credential.subscriber_id.clone();
        out.emit(&subscriber_id, |event_id| {
            CredentialDelivered {
                event_id,
                credential_id,
                offer_id: offer_id.to_string(),
                subscriber_id: subscriber_id.clone(),
                package,
                platform_half,
                provider_half,
                attempts: 1,
                provider_id: status.provider_id.clone(),
                provider_signing_key: status.provider_key.clone(),
                package_signature: status.package_signature.clone(),
            }
            .into()
        });
        credential.delivered = true;
        credential.platform_half = None;
        credential.provider_half = None;
        status.undelivered = status.undelivered.saturating_sub(1);
        if status.ended.is_some() && status.undelivered == 0 {
            PACKAGES.delete(state, offer_id);
        }
    }
    CREDENTIALS.put(state, key, &credential);
}

#[cfg(test)]
mod tests;
