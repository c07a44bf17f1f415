//! The delivery worker: assembles each released credential (the provider's encrypted package and
//! both sealed halves of its key) and puts it in its recipient's inbox, `tessera.deliveries`,
//! keyed by subscriber id (the source document's step S106, the credential reaching the second
//! terminal).
//!
//! It reads `tessera.offers` (the packages), `tessera.requests` (the invitations),
//! `tessera.decisions` (the timekeeper's verdicts and the offers' ends), `tessera.cosigns` (the
//! providers' halves) and `tessera.outcomes` (the recipients' decisions), all keyed by offer id. A
//! credential is complete when its release and the provider's half are both in: in escrow custody
//! the release carries both halves; in co-sign custody the provider half comes from the
//! ProviderShareReleased that names the same credential and recipient. A complete credential is
//! delivered once, with `attempts` 1: a repeated cosign or release never delivers it again.
//! The delivery is sans-IO like every core; sealed halves and packages are opaque bytes to it.
//!
//! Everything else a subscriber is told arrives in the same inbox, as notices sealed to it
//! ([`notices`]): its invitations, the verdicts on its responses, the ends of its offers and its
//! own decisions. So a subscriber reads one partition of one topic, and nothing of anyone else.
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
//! one releases a credential or ends an offer in the timekeeper's name); an invitation only if
//! signed by the matcher (else a dead letter, Unauthenticated: no one is told of an invitation
//! the matcher did not make); a provider half only if signed with the key of the offer it names
//! (else a dead letter, NotOwner); a decision is told to its recipient only if signed with the
//! key its release carries (the ledger dead-letters the others).
//!
//! # What is kept
//!
//! An offer's package is kept until the offer ended and every release of it was delivered, then
//! deleted; a credential's halves are dropped once delivered. What stays is small: per offer a
//! status, per credential its recipient and where its provider half came from, so repeats are
//! still told apart from strangers. An offer's invitees are kept until an hour after it closes,
//! as long as the timekeeper keeps the offer (forgotten on the first input after that, so no
//! tick is needed), or until it is rejected.

use serde::{Deserialize, Serialize};
use tessera_contract::identity;
use tessera_contract::rules::format_stamp;
use tessera_contract::sealing::PrivateKey;
use tessera_contract::{
    CredentialDelivered, CredentialReleased, InteractionRequested, LogPosition, OfferClosed,
    OfferProblem, OfferPublished, OfferRejected, ProviderShareReleased, ResponseRejected,
    SealedBox,
};

use crate::ledger::rewards::Outcome;
use crate::news::OfferNews;
use crate::prelude::*;
use crate::timekeeper::PRUNE_AFTER_MS;
use crate::timers::Timers;

mod notices;

use notices::{INVITEES, Invitee, notify};
pub use notices::{LoggedNotices, NoticeSealer};

/// `tessera run delivery`, with its webhook worker beside the core.
pub const PROCESSOR: Processor = Processor {
    name: "delivery",
    cores: &[&SHAPE],
    metrics_port: 9466,
    publishes_key: true,
    audit_secret: Some(
        "its key file (--delivery-key FILE), to re-seal the notices; without it they are taken \
         from the log where the delivery signed them (--delivery-verifying-key)",
    ),
};

shape! {
    /// The delivery's declaration.
    ///
    /// The inputs in rank order: on equal stamps an offer's package is in before its
    /// invitations, an invitation before the verdicts on it, a release before the cosigns that
    /// answer it and the decisions on it.
    pub const SHAPE: "delivery",
    inputs InputTopic {
        Offers = OFFERS,
        Requests = REQUESTS,
        Decisions = DECISIONS,
        Cosigns = COSIGNS,
        Outcomes = OUTCOMES,
    },
    output DELIVERIES,
    state "per offer: its package, status and invitees; released credentials; provider halves \
          waiting for their release";
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

/// A released credential's recipient's keys. In a table of their own, not in [`Credential`], so
/// that credentials stored before notices existed still decode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Recipient {
    /// Its sealing key, as its invitation carried it: its notices are sealed to it. Empty until
    /// the invitation is read (one read after its release, the partitions' clocks apart, fills
    /// it in).
    sealing_key: Vec<u8>,
    /// Its verifying key, as its release carried it: only decisions signed with it are told.
    signing_key: Vec<u8>,
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
/// The recipients' keys of released credentials, by [`pair`] of offer id and credential id.
const RECIPIENTS: Table<Recipient> = Table::new("recipient/");
/// When each closed offer's invitees are forgotten.
const INVITEES_FORGOTTEN: Timers = Timers::new("forget/", "next-forget/");

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
    /// An invitation, from `tessera.requests`.
    Invitation(Box<InteractionRequested>),
    /// A recipient's decision, from `tessera.outcomes`.
    Outcome(Outcome),
}

/// The delivery core. All it knows is in the task's state, the keys it believes verdicts and
/// invitations signed with, and how it seals notices.
#[derive(Debug)]
pub struct Delivery {
    timekeeper: VerifyingKey,
    matcher: VerifyingKey,
    sealer: NoticeSealer,
}

impl Delivery {
    /// A delivery worker that seals notices with `key`, and believes verdicts signed with
    /// `timekeeper` and invitations signed with `matcher`.
    pub fn new(key: PrivateKey, timekeeper: VerifyingKey, matcher: VerifyingKey) -> Self {
        Delivery {
            timekeeper,
            matcher,
            sealer: NoticeSealer::Key(key),
        }
    }

    /// The delivery as an auditor without its key replays it: notices' sealed bytes are taken
    /// from `logged`.
    pub fn without_key(
        logged: LoggedNotices,
        timekeeper: VerifyingKey,
        matcher: VerifyingKey,
    ) -> Self {
        Delivery {
            timekeeper,
            matcher,
            sealer: NoticeSealer::Logged(Box::new(logged)),
        }
    }

    /// What an audit without the key learns from the log, if this is such a replay.
    pub fn logged_mut(&mut self) -> Option<&mut LoggedNotices> {
        match &mut self.sealer {
            NoticeSealer::Logged(logged) => Some(logged),
            NoticeSealer::Key(_) => None,
        }
    }

    /// Keeps an offer's package, and acts on the timekeeper's verdicts on it.
    fn follow(&self, state: &mut dyn State, news: OfferNews, signed: &Signed, out: &mut Outputs) {
        match news {
            OfferNews::Offer(offer) => publish(state, *offer, signed, out),
            OfferNews::Release(release) => {
                let event = || Event::CredentialReleased((*release).clone());
                if self.by_timekeeper(signed, &release.offer_id, event, out) {
                    release_credential(state, &self.sealer, *release, out);
                }
            }
            OfferNews::Rejection(rejected) => {
                let event = || Event::ResponseRejected((*rejected).clone());
                if self.by_timekeeper(signed, &rejected.offer_id, event, out) {
                    tell_rejection(state, &self.sealer, *rejected, out);
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
                    if end(state, &closed.offer_id, ending, out) {
                        tell_close(state, &self.sealer, closed, out);
                    }
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
        let (offer_id, received) = match raw.event::<InputTopic>()? {
            (InputTopic::Cosigns, Event::ProviderShareReleased(e)) => {
                (e.offer_id.clone(), Received::Share(e))
            }
            (InputTopic::Requests, Event::InteractionRequested(e)) => {
                (e.offer_id.clone(), Received::Invitation(Box::new(e)))
            }
            (InputTopic::Outcomes, Event::CredentialAccepted(e)) => {
                (e.offer_id.clone(), Received::Outcome(Outcome::Accepted(e)))
            }
            (InputTopic::Outcomes, Event::CredentialDeclined(e)) => {
                (e.offer_id.clone(), Received::Outcome(Outcome::Declined(e)))
            }
            (input, event) => return OfferNews::read(&raw, input, event).map(Received::News),
        };
        raw.keyed_by(&offer_id, "offer id")?;
        Ok(received)
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<Received>) -> Vec<Emitted> {
        let mut out = Outputs::new(SHAPE.name, input.at());
        forget_invitees(state, out.at().effective);
        if let Input::Record { value, signed, .. } = input {
            match value {
                Received::News(news) => self.follow(state, news, &signed, &mut out),
                Received::Share(share) => cosign(state, share, &signed, &mut out),
                Received::Invitation(invitation) => {
                    let input = (topics::REQUESTS, invitation.offer_id.as_str(), &signed);
                    let event = || (*invitation).clone().into();
                    if out.signed_by(&self.matcher, "the matcher", input, event) {
                        invite(state, &self.sealer, *invitation, &mut out);
                    }
                }
                Received::Outcome(outcome) => {
                    tell_outcome(state, &self.sealer, outcome, &signed, &mut out)
                }
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
    let offer_id = rejected.offer_id.clone();
    if end(state, &offer_id, Ending::Rejected(rejected.detail), out) {
        for (key, _) in INVITEES.range(state, &pair(&offer_id, "")) {
            INVITEES.delete(state, &key);
        }
    }
}

/// The offer ended: no release can follow, so the cosigns still waiting for one never will.
/// False if it had ended before.
fn end(state: &mut dyn State, offer_id: &str, ending: Ending, out: &mut Outputs) -> bool {
    let mut status = STATUS.get(state, offer_id).unwrap_or_default();
    if status.ended.is_some() {
        return false;
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
    true
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

fn release_credential(
    state: &mut dyn State,
    sealer: &NoticeSealer,
    release: CredentialReleased,
    out: &mut Outputs,
) {
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
    let invitee = INVITEES
        .get(state, &pair(offer_id, &release.subscriber_id))
        .unwrap_or_default();
    let at = out.position(topics::DECISIONS);
    let (subscriber_id, event) = (release.subscriber_id.clone(), release.clone().into());
    notify(sealer, out, &subscriber_id, &invitee.sealing_key, at, event);
    let mut credential = Credential {
        credential_id: release.credential_id.clone(),
        subscriber_id: release.subscriber_id.clone(),
        release_event: release.event_id.clone(),
        share_from: release.provider_half.as_ref().map(|_| ShareFrom::Escrow),
        platform_half: Some(release.platform_half),
        provider_half: release.provider_half,
        delivered: false,
    };
    let recipient = Recipient {
        sealing_key: invitee.sealing_key,
        signing_key: release.subscriber_signing_key.clone(),
    };
    RECIPIENTS.put(state, &key, &recipient);
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

/// Keeps an invitee's key until its offer ends, and tells it of the invitation.
fn invite(
    state: &mut dyn State,
    sealer: &NoticeSealer,
    invitation: InteractionRequested,
    out: &mut Outputs,
) {
    let offer_id = &invitation.offer_id;
    let ended = STATUS
        .get(state, offer_id)
        .is_some_and(|status| status.ended.is_some());
    if !ended {
        let invitee = Invitee {
            sealing_key: invitation.subscriber_key.clone(),
        };
        INVITEES.put(state, &pair(offer_id, &invitation.subscriber_id), &invitee);
    }
    // A release read before its invitation (their partitions' clocks apart) got no key: its
    // recipient's decisions are told from now on.
    for (key, credential) in CREDENTIALS.range(state, &pair(offer_id, "")) {
        if credential.subscriber_id == invitation.subscriber_id
            && let Some(mut recipient) = RECIPIENTS.get(state, &key)
            && recipient.sealing_key.is_empty()
        {
            recipient.sealing_key = invitation.subscriber_key.clone();
            RECIPIENTS.put(state, &key, &recipient);
        }
    }
    let (subscriber_id, key) = (
        invitation.subscriber_id.clone(),
        invitation.subscriber_key.clone(),
    );
    let at = out.position(topics::REQUESTS);
    notify(sealer, out, &subscriber_id, &key, at, invitation.into());
}

/// Tells a responder of the verdict against it, if it was invited: no one else is told of a
/// rejection (NotInvited's responders have no invitation, and so no key).
fn tell_rejection(
    state: &mut dyn State,
    sealer: &NoticeSealer,
    rejected: ResponseRejected,
    out: &mut Outputs,
) {
    let key = pair(&rejected.offer_id, &rejected.subscriber_id);
    if let Some(invitee) = INVITEES.get(state, &key) {
        let (subscriber_id, at) = (
            rejected.subscriber_id.clone(),
            out.position(topics::DECISIONS),
        );
        notify(
            sealer,
            out,
            &subscriber_id,
            &invitee.sealing_key,
            at,
            rejected.into(),
        );
    }
}

/// Tells every invitee of an offer that it closed. They are kept for as long as the timekeeper
/// keeps the offer ([`PRUNE_AFTER_MS`]), so a response it judges after the close is still told.
fn tell_close(
    state: &mut dyn State,
    sealer: &NoticeSealer,
    closed: OfferClosed,
    out: &mut Outputs,
) {
    let at = out.position(topics::DECISIONS);
    let forget_at = out.at().effective.saturating_add(PRUNE_AFTER_MS);
    INVITEES_FORGOTTEN.schedule(state, forget_at, &closed.offer_id);
    for (key, invitee) in INVITEES.range(state, &pair(&closed.offer_id, "")) {
        let Some(subscriber_id) = key.strip_prefix(&pair(&closed.offer_id, "")) else {
            continue;
        };
        let event = closed.clone().into();
        notify(
            sealer,
            out,
            subscriber_id,
            &invitee.sealing_key,
            at.clone(),
            event,
        );
    }
}

/// Forgets the invitees of the offers closed longer ago than the timekeeper keeps them, as of
/// stream time `now`.
fn forget_invitees(state: &mut dyn State, now: i64) {
    while let Some((_, offer_id)) = INVITEES_FORGOTTEN.pop_due(state, now) {
        for (key, _) in INVITEES.range(state, &pair(&offer_id, "")) {
            INVITEES.delete(state, &key);
        }
    }
}

/// Tells a recipient of its decision on a credential, if it signed it with the key its release
/// carried; the ledger judges the decision and dead-letters the others.
fn tell_outcome(
    state: &mut dyn State,
    sealer: &NoticeSealer,
    outcome: Outcome,
    signed: &Signed,
    out: &mut Outputs,
) {
    let key = pair(outcome.offer_id(), outcome.credential_id());
    let (Some(credential), Some(recipient)) =
        (CREDENTIALS.get(state, &key), RECIPIENTS.get(state, &key))
    else {
        return;
    };
    let genuine = VerifyingKey::from_bytes(&recipient.signing_key).is_ok_and(|key| {
        key.verify_record(topics::OUTCOMES.name, signed, "the recipient")
            .is_ok()
    });
    if genuine && outcome.subscriber_id() == credential.subscriber_id {
        let at = out.position(topics::OUTCOMES);
        let event = outcome.into_event();
        notify(
            sealer,
            out,
            &credential.subscriber_id,
            &recipient.sealing_key,
            at,
            event,
        );
    }
}

#[cfg(test)]
mod tests;
