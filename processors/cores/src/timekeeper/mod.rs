//! The timekeeper: judges every response to an offer against the offer's time rule, on broker
//! receipt stamps, and releases the credential to the responders in time (the source document's
//! steps S105-S106).
//!
//! It reads `tessera.offers`, `tessera.requests` and `tessera.responses`, all keyed by offer id,
//! so one task sees everything about its offers. To `tessera.decisions` it writes exactly one
//! verdict per response, CredentialReleased or ResponseRejected, each carrying what a party needs
//! to check it without trusting the platform: the response's partition, offset and stamp, the
//! offer's position and stamp, and the rule applied. An offer that breaks a rule gets
//! OfferRejected; every valid offer gets one OfferClosed with its counts when its rule has ended
//! or its provider withdraws it. Input that cannot take effect (a withdrawal by another provider,
//! a second invitation under another id) goes to `tessera.dead-letters` with the reason.
//!
//! # Time
//!
//! Rules are judged on a record's effective stamp: the largest receipt stamp on its partition so
//! far, which is what the merge orders by, so a broker clock that steps back cannot make a late
//! response look early. Verdicts cite that stamp. A `Within` rule counts from the offer's own
//! effective stamp. Every bound is inclusive ([`tessera_contract::rules`]).
//!
//! # Absence
//!
//! Two verdicts rest on something not having happened: NotInvited (no invitation) and
//! UnknownOffer (no offer). DESIGN.md has such decisions wait until the stream time of every
//! input has passed the moment in question, and the merge already guarantees it: it hands a
//! record over only once every input partition has a record buffered at an equal or later
//! effective stamp, and it orders equal stamps by input rank (offers, requests, responses). So
//! when a response is applied, every offer and invitation stamped before it, or at the same
//! stamp, has been applied; one that has not carries a later stamp and came after the response.
//! A verdict is therefore final when the response is applied. Closing works the same way: the
//! close timer fires on the first input stamped after the rule's end, when every input's stream
//! time has passed it.
//!
//! # Bounded state
//!
//! A response naming no known offer is rejected (UnknownOffer) and leaves nothing behind, so no
//! volume of such responses grows the state; the same response again is rejected the same way.
//! Once an offer has closed, later responses and invitations to it are judged (or refused)
//! without being recorded, and [`PRUNE_AFTER_MS`] of stream time after the close its invitations
//! and judged responses are deleted. Until then a repeated response is still a Duplicate; after,
//! it is judged by the offer as closed (TooLate, or Withdrawn). What stays for good per offer id
//! is its terms and counts ([`StoredOffer`], [`Progress`]): they answer a late response, refuse a
//! second offer under the id, and are what an audit re-derives the close from.
//!
//! # Keys
//!
//! The timekeeper holds its private key ([`Timekeeper::new`]); the key never enters the task's
//! state, which is replicated to a changelog topic, and neither does anything it opens: the state
//! keeps halves sealed as the provider sealed them. An offer whose halves do not open with the key
//! is rejected (BadCredential). On release the timekeeper opens its halves and re-seals each to
//! the responder's pinned key, bound to offer, responder and credential id
//! ([`tessera_contract::sealing`]). Re-sealing is deterministic, so a replay with the same key
//! writes the same bytes. The halves of open offers it keeps opened in memory ([`secrets`]), so a
//! release costs one seal.
//!
//! An auditor replays the timekeeper without its key ([`Timekeeper::without_key`]): every verdict
//! follows from signed public data, and only the sealed bytes of releases and BadCredential
//! rejections are taken from the log, on the timekeeper's signature ([`logged`]).
//!
//! # Signatures
//!
//! Every input must prove who wrote it ([`tessera_contract::signing`]); a field naming its author
//! proves nothing. An offer must be signed with the provider key it carries (else OfferRejected
//! Unauthenticated, and nothing is kept of it), and its withdrawal with that same key (else a dead
//! letter, NotOwner). An invitation must be signed by the matcher whose key the timekeeper was
//! given (else a dead letter, Unauthenticated): it carries the keys the subscriber pinned. A
//! response must be signed with the subscriber's pinned signing key, which its invitation
//! carries; one that is not is rejected as Forged, before any rule that could release it.

mod ahead;
mod logged;
mod secrets;

pub use self::logged::LoggedHalves;

use serde::{Deserialize, Serialize};
use tessera_contract::identity;
use tessera_contract::rules::{Timing, check_offer, format_stamp};
use tessera_contract::sealing::{Half, PrivateKey, PublicKey, Release, SealError};
use tessera_contract::signing::ParsedKeys;
use tessera_contract::{
    CredentialReleased, InteractionRequested, Link, LogPosition, OfferClosed, OfferProblem,
    OfferPublished, OfferRejected, OfferTerms, OfferWithdrawn, RejectReason, ResponseRejected,
    ResponseSubmitted, SealedBox, TimeRule,
};

use self::secrets::Secrets;
use crate::ahead::Checked;
use crate::merge::Entry;
use crate::prelude::*;
use crate::replay::RawRecord;
use crate::timers::Timers;

/// `tessera run timekeeper`.
pub const PROCESSOR: Processor = Processor {
    name: "timekeeper",
    cores: &[&SHAPE],
    metrics_port: 9465,
    publishes_key: true,
    audit_secret: Some("the timekeeper's key file, to open the halves it released"),
};

shape! {
    /// The timekeeper's declaration.
    ///
    /// The inputs in rank order: on equal stamps an offer is applied before the invitations to
    /// it, and those before the responses, so a response never misses what was stamped with it.
    pub const SHAPE: "timekeeper",
    inputs InputTopic { Offers = OFFERS, Requests = REQUESTS, Responses = RESPONSES },
    output DECISIONS,
    state "per offer: its rule, invitations, judged responses and counts; kept for an hour \
          after it closes";
}

/// An offer as the timekeeper keeps it: what verdicts need, without the encrypted package.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredOffer {
    provider_id: String,
    /// The provider's verifying key, as the offer carried it: its withdrawal must be signed with it.
    signing_key: Vec<u8>,
    /// Where the offer sat; its stamp (the effective one) starts a `Within` rule.
    position: LogPosition,
    time_rule: TimeRule,
    capacity: Option<i32>,
    platform_half: SealedBox,
    escrow_half: Option<SealedBox>,
    /// Why the offer was rejected, if it was: responses to it get InvalidOffer.
    rejected: Option<String>,
}

impl StoredOffer {
    fn terms(&self) -> OfferTerms {
        OfferTerms {
            position: self.position.clone(),
            time_rule: self.time_rule,
        }
    }
}

/// What happened to an offer id so far. Kept apart from [`StoredOffer`] so each verdict rewrites
/// a few bytes, and kept for ids with no offer too: invitations and responses may come first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    requested: i32,
    responded: i32,
    released: i32,
    rejected: i32,
    /// When the offer closed (its rule ended or it was withdrawn): it closes once.
    closed_at: Option<i64>,
    withdrawn: bool,
}

/// One subscriber's invitation to one offer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invitation {
    request_id: String,
    /// The subscriber's pinned sealing key, as the invitation carried it.
    subscriber_key: Vec<u8>,
    /// The subscriber's pinned verifying key: its response must be signed with it.
    subscriber_signing_key: Vec<u8>,
    /// Whether the subscriber has been released: a subscriber gets an offer's credential once.
    released: bool,
}

/// Offers by offer id; the first one published under an id stays.
const OFFERS: Table<StoredOffer> = Table::new("offer/");
/// Counts and status by offer id.
const PROGRESS: Table<Progress> = Table::new("progress/");
/// Invitations by [`pair`] of offer id and subscriber id.
const INVITATIONS: Table<Invitation> = Table::new("invitation/");
/// Responses judged, by [`pair`] of offer id and the response's event id.
const JUDGED: Table<()> = Table::new("judged/");
/// One timer per valid offer, due when its rule ends.
const CLOSES: Timers = Timers::new("close/", "next-close/");
/// One timer per closed offer, due [`PRUNE_AFTER_MS`] after its close.
const PRUNES: Timers = Timers::new("prune/", "next-prune/");

/// How long after an offer closes (stream time) its invitations and judged responses are kept:
/// long enough for a client's retries to be named Duplicate, short enough that an installation's
/// state follows its open offers, not its history.
pub const PRUNE_AFTER_MS: i64 = 60 * 60 * 1000;

/// An input record the timekeeper acts on: only the events that belong on its input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "invitations are the most numerous input: a copy of a few hundred bytes costs less than an allocation each"
)]
pub enum Received {
    /// An offer, from `tessera.offers`.
    Offer(Box<OfferPublished>),
    /// A withdrawal, from `tessera.offers`.
    Withdrawal(OfferWithdrawn),
    /// An invitation, from `tessera.requests`.
    Invitation(InteractionRequested),
    /// A response, from `tessera.responses`.
    Response(ResponseSubmitted),
}

impl Received {
    fn offer_id(&self) -> &str {
        match self {
            Received::Offer(e) => &e.offer_id,
            Received::Withdrawal(e) => &e.offer_id,
            Received::Invitation(e) => &e.offer_id,
            Received::Response(e) => &e.offer_id,
        }
    }
}

/// The timekeeper core. It holds its private key and what it derived with it ([`secrets`]), or,
/// replayed by an auditor without the key, what the log says the key did ([`logged`]); all it
/// knows is in the task's state.
#[derive(Debug)]
pub struct Timekeeper {
    sealer: Sealer,
    /// The matcher's verifying key: invitations must be signed with it.
    matcher: VerifyingKey,
    /// Subscribers' verifying keys, parsed once for all their responses.
    subscribers: ParsedKeys,
    /// Signatures checked ahead of the batch's steps ([`ahead`]).
    checked: Checked,
}

impl Timekeeper {
    /// A timekeeper that opens halves sealed to `key`'s public key and believes invitations
    /// signed with `matcher`.
    pub fn new(key: PrivateKey, matcher: VerifyingKey) -> Self {
        Timekeeper {
            sealer: Sealer::Key(Secrets::new(key)),
            matcher,
            subscribers: ParsedKeys::default(),
            checked: Checked::default(),
        }
    }

    /// A timekeeper for an auditor without the key: it judges as the timekeeper does, and takes
    /// what only the key decides from `logged` (see [`logged`]).
    pub fn without_key(logged: LoggedHalves, matcher: VerifyingKey) -> Self {
        Timekeeper {
            sealer: Sealer::Logged(logged),
            matcher,
            subscribers: ParsedKeys::default(),
            checked: Checked::default(),
        }
    }

    /// What a timekeeper without its key takes from the log, to add to before its replay starts;
    /// `None` for one with its key.
    pub fn logged_mut(&mut self) -> Option<&mut LoggedHalves> {
        match &mut self.sealer {
            Sealer::Key(_) => None,
            Sealer::Logged(logged) => Some(logged),
        }
    }
}

/// Where the halves a release carries come from.
#[derive(Debug)]
enum Sealer {
    /// The timekeeper's key: it opens the provider's halves and seals them to the responder.
    Key(Secrets),
    /// The log, for an auditor without the key.
    Logged(LoggedHalves),
}

impl Sealer {
    /// Whether the halves offer sealed to the timekeeper open; the detail if not.
    fn check(&mut self, offer: &OfferPublished) -> Result<(), String> {
        let secrets = match self {
            Sealer::Key(secrets) => secrets,
            Sealer::Logged(logged) => {
                return match logged.bad_credential(&offer.offer_id) {
                    Some(detail) => Err(detail.to_string()),
                    None => Ok(()),
                };
            }
        };
        let credential = &offer.credential;
        secrets
            .half(&offer.offer_id, Half::Platform, &credential.platform_half)
            .map_err(|e| e.to_string())?;
        if let Some(escrow) = &credential.escrow_half {
            secrets
                .half(&offer.offer_id, Half::Provider, escrow)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The halves `release` gives its responder: each half the timekeeper holds, opened and
    /// re-sealed to the responder's pinned key.
    fn halves(
        &mut self,
        offer: &StoredOffer,
        release: &Release<'_>,
        responder: &PublicKey,
    ) -> Result<(SealedBox, Option<SealedBox>), String> {
        let secrets = match self {
            Sealer::Key(secrets) => secrets,
            Sealer::Logged(logged) => {
                return logged.released(release.credential_id, offer.escrow_half.is_some());
            }
        };
        let mut reseal = |sealed: &SealedBox, half: Half| -> Result<SealedBox, SealError> {
            secrets.seal(sealed, half, release, responder)
        };
        let platform = reseal(&offer.platform_half, Half::Platform).map_err(|e| e.to_string())?;
        let provider = offer
            .escrow_half
            .as_ref()
            .map(|sealed| reseal(sealed, Half::Provider))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok((platform, provider))
    }

    /// Drops what was kept for an offer that can release no more.
    fn forget(&mut self, offer_id: &str) {
        if let Sealer::Key(secrets) = self {
            secrets.forget(offer_id);
        }
    }
}

impl Core for Timekeeper {
    type Record = Received;

    crate::declared_by!(SHAPE);

    fn decode(&self, raw: Raw<'_>) -> Result<Received, String> {
        let (input, event) = raw.event::<InputTopic>()?;
        let received = match (input, event) {
            (InputTopic::Offers, Event::OfferPublished(e)) => Received::Offer(Box::new(e)),
            (InputTopic::Offers, Event::OfferWithdrawn(e)) => Received::Withdrawal(e),
            (InputTopic::Requests, Event::InteractionRequested(e)) => Received::Invitation(e),
            (InputTopic::Responses, Event::ResponseSubmitted(e)) => Received::Response(e),
            (_, other) => return Err(misplaced(&other, input)),
        };
        raw.keyed_by(received.offer_id(), "offer id")?;
        Ok(received)
    }

    fn next_due(&self, state: &dyn State) -> Option<i64> {
        [CLOSES.next_due(state), PRUNES.next_due(state)]
            .into_iter()
            .flatten()
            .min()
    }

    fn prepare(&mut self, state: &dyn State, batch: &[Entry<RawRecord>]) {
        ahead::prepare(self, state, batch);
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<Received>) -> Vec<Emitted> {
        let mut out = Outputs::new(SHAPE.name, input.at());
        let sealer = &mut self.sealer;
        close_ended(state, sealer, &mut out);
        prune_closed(state, out.at().effective);
        if let Input::Record { value, signed, .. } = input {
            match value {
                Received::Offer(offer) => publish(state, sealer, *offer, &signed, &mut out),
                Received::Withdrawal(withdrawal) => {
                    withdraw(state, sealer, withdrawal, &signed, &mut out)
                }
                Received::Invitation(invitation) => {
                    let input = (topics::REQUESTS, invitation.offer_id.as_str(), &signed);
                    let event = || invitation.clone().into();
                    let checked_ahead =
                        self.checked
                            .take(&self.matcher, topics::REQUESTS.name, &signed);
                    if checked_ahead || out.signed_by(&self.matcher, "the matcher", input, event) {
                        invite(state, invitation, &mut out);
                    }
                }
                Received::Response(response) => {
                    let check = |invitation: &Invitation| {
                        signed_by_subscriber(
                            (&signed, &mut self.subscribers, &mut self.checked),
                            &response,
                            invitation,
                        )
                    };
                    respond(state, sealer, &response, check, &mut out)
                }
            }
        }
        out.into_list()
    }
}

/// Closes every valid offer whose rule ended before the input's stamp.
fn close_ended(state: &mut dyn State, sealer: &mut Sealer, out: &mut Outputs) {
    let now = out.at().effective;
    while let Some((_, offer_id)) = CLOSES.pop_due(state, now) {
        let mut progress = PROGRESS.get(state, &offer_id).unwrap_or_default();
        // A withdrawn offer has closed already.
        if progress.closed_at.is_some() {
            continue;
        }
        let Some(offer) = OFFERS.get(state, &offer_id) else {
            continue;
        };
        progress.closed_at = Some(now);
        PROGRESS.put(state, &offer_id, &progress);
        closed(out, &offer_id, &offer, &progress);
        sealer.forget(&offer_id);
        PRUNES.schedule(state, now.saturating_add(PRUNE_AFTER_MS), &offer_id);
    }
}

/// Deletes the invitations and judged responses of offers closed [`PRUNE_AFTER_MS`] before `now`.
fn prune_closed(state: &mut dyn State, now: i64) {
    while let Some((_, offer_id)) = PRUNES.pop_due(state, now) {
        let prefix = pair(&offer_id, "");
        for (key, _) in INVITATIONS.range(state, &prefix) {
            INVITATIONS.delete(state, &key);
        }
        for (key, ()) in JUDGED.range(state, &prefix) {
            JUDGED.delete(state, &key);
        }
    }
}

/// Whether the invitations and judged responses of an offer closed at `closed_at` are gone by
/// `now`: [`prune_closed`] has run at any input past the prune time, this one included.
fn pruned(closed_at: Option<i64>, now: i64) -> bool {
    closed_at.is_some_and(|closed_at| now > closed_at.saturating_add(PRUNE_AFTER_MS))
}

fn closed(out: &mut Outputs, offer_id: &str, offer: &StoredOffer, progress: &Progress) {
    let closed_at = out.at().effective;
    out.emit(offer_id, |event_id| {
        OfferClosed {
            event_id,
            offer_id: offer_id.to_string(),
            offer: offer.terms(),
            closed_at,
            requested: progress.requested,
            responded: progress.responded,
            released: progress.released,
            rejected: progress.rejected,
            withdrawn: progress.withdrawn,
            // The runtime's step chains it (tessera_contract::links).
            link: Link::default(),
        }
        .into()
    });
}

fn publish(
    state: &mut dyn State,
    sealer: &mut Sealer,
    offer: OfferPublished,
    signed: &Signed,
    out: &mut Outputs,
) {
    let position = out.position(topics::OFFERS);
    // Checked first, and nothing kept of an offer that fails it, so that a forger cannot take an
    // offer id before its provider publishes.
    if let Err(e) = identity::offer_signed(&offer, signed) {
        let detail = format!(
            "offer {} is not signed with the provider key it carries: {e}",
            offer.offer_id
        );
        return reject_offer(out, &offer, position, OfferProblem::Unauthenticated, detail);
    }
    if let Some(first) = OFFERS.get(state, &offer.offer_id) {
        let detail = format!(
            "offer {} was already published at {} partition {} offset {}",
            offer.offer_id,
            format_stamp(first.position.stamp),
            first.position.partition,
            first.position.offset
        );
        return reject_offer(out, &offer, position, OfferProblem::DuplicateOffer, detail);
    }
    // Checked last: only the timekeeper's key decides it.
    let problem = check_offer(&offer, out.at().effective)
        .and_then(|()| {
            sealer
                .check(&offer)
                .map_err(|detail| (OfferProblem::BadCredential, detail))
        })
        .err();
    let ends_at = offer.time_rule.ends_at(out.at().effective);
    let stored = StoredOffer {
        provider_id: offer.provider_id.clone(),
        signing_key: offer.signing_key.clone(),
        position: position.clone(),
        time_rule: offer.time_rule,
        capacity: offer.capacity,
        platform_half: offer.credential.platform_half.clone(),
        escrow_half: offer.credential.escrow_half.clone(),
        rejected: problem.as_ref().map(|(_, detail)| detail.clone()),
    };
    OFFERS.put(state, &offer.offer_id, &stored);
    match problem {
        Some((problem, detail)) => reject_offer(out, &offer, position, problem, detail),
        None => CLOSES.schedule(state, ends_at, &offer.offer_id),
    }
}

fn reject_offer(
    out: &mut Outputs,
    offer: &OfferPublished,
    position: LogPosition,
    problem: OfferProblem,
    detail: String,
) {
    out.emit(&offer.offer_id, |event_id| {
        OfferRejected {
            event_id,
            offer_id: offer.offer_id.clone(),
            provider_id: offer.provider_id.clone(),
            problem,
            offer: position,
            detail,
            // The runtime's step chains it (tessera_contract::links).
            link: Link::default(),
        }
        .into()
    });
}

fn withdraw(
    state: &mut dyn State,
    sealer: &mut Sealer,
    withdrawal: OfferWithdrawn,
    signed: &Signed,
    out: &mut Outputs,
) {
    let offer_id = withdrawal.offer_id.clone();
    let mut progress = PROGRESS.get(state, &offer_id).unwrap_or_default();
    match withdrawable(OFFERS.get(state, &offer_id), &progress, &withdrawal, signed) {
        Ok(offer) => {
            let now = out.at().effective;
            progress.closed_at = Some(now);
            progress.withdrawn = true;
            PROGRESS.put(state, &offer_id, &progress);
            closed(out, &offer_id, &offer, &progress);
            sealer.forget(&offer_id);
            PRUNES.schedule(state, now.saturating_add(PRUNE_AFTER_MS), &offer_id);
        }
        Err(reason) => out.dead_letter(topics::OFFERS, &offer_id, withdrawal.into(), reason),
    }
}

/// The offer a withdrawal takes back, or why it cannot.
fn withdrawable(
    offer: Option<StoredOffer>,
    progress: &Progress,
    withdrawal: &OfferWithdrawn,
    signed: &Signed,
) -> Result<StoredOffer, String> {
    let offer_id = &withdrawal.offer_id;
    let Some(offer) = offer else {
        return Err(format!("there is no offer {offer_id} to withdraw"));
    };
    if offer.rejected.is_some() {
        return Err(format!(
            "offer {offer_id} was rejected, so it cannot be withdrawn"
        ));
    }
    if offer.provider_id != withdrawal.provider_id {
        return Err(format!(
            "NotOwner: provider {} cannot withdraw offer {offer_id} of provider {}",
            withdrawal.provider_id, offer.provider_id
        ));
    }
    let key = VerifyingKey::from_bytes(&offer.signing_key)
        .map_err(|e| format!("NotOwner: offer {offer_id} has no usable provider key: {e}"))?;
    key.verify_record(topics::OFFERS.name, signed, &offer.provider_id)
        .map_err(|e| {
            format!(
                "NotOwner: the withdrawal of offer {offer_id} is not signed by its provider {} \
                 (key fingerprint {}): {e}",
                offer.provider_id,
                key.fingerprint()
            )
        })?;
    if let Some(closed_at) = progress.closed_at {
        return Err(format!(
            "offer {offer_id} had already closed at {}",
            format_stamp(closed_at)
        ));
    }
    Ok(offer)
}

fn invite(state: &mut dyn State, invitation: InteractionRequested, out: &mut Outputs) {
    // Nothing is kept for a closed offer: an invitation to it can lead to no release.
    if let Some(closed_at) = PROGRESS
        .get(state, &invitation.offer_id)
        .and_then(|p| p.closed_at)
    {
        let reason = format!(
            "offer {} closed at {}: an invitation after its close can lead to nothing",
            invitation.offer_id,
            format_stamp(closed_at)
        );
        let offer_id = invitation.offer_id.clone();
        return out.dead_letter(topics::REQUESTS, &offer_id, invitation.into(), reason);
    }
    let key = pair(&invitation.offer_id, &invitation.subscriber_id);
    match INVITATIONS.get(state, &key) {
        None => {
            INVITATIONS.put(
                state,
                &key,
                &Invitation {
                    request_id: invitation.request_id.clone(),
                    subscriber_key: invitation.subscriber_key.clone(),
                    subscriber_signing_key: invitation.subscriber_signing_key.clone(),
                    released: false,
                },
            );
            let mut progress = PROGRESS
                .get(state, &invitation.offer_id)
                .unwrap_or_default();
            progress.requested = progress.requested.saturating_add(1);
            PROGRESS.put(state, &invitation.offer_id, &progress);
        }
        // The same invitation again (a matcher re-inviting after a restart) changes nothing.
        Some(known) if known.request_id == invitation.request_id => {}
        Some(known) => {
            let reason = format!(
                "subscriber {} was already invited to offer {} under request {}",
                invitation.subscriber_id, invitation.offer_id, known.request_id
            );
            let offer_id = invitation.offer_id.clone();
            out.dead_letter(topics::REQUESTS, &offer_id, invitation.into(), reason);
        }
    }
}

/// Judges `response`; `signed_by_subscriber` checks its signature against the invitation's key.
fn respond(
    state: &mut dyn State,
    sealer: &mut Sealer,
    response: &ResponseSubmitted,
    signed_by_subscriber: impl FnOnce(&Invitation) -> Result<(), String>,
    out: &mut Outputs,
) {
    let offer_id = &response.offer_id;
    let offer = OFFERS.get(state, offer_id);
    let mut progress = PROGRESS.get(state, offer_id).unwrap_or_default();
    // Only a response to a known offer that is still open is recorded: one to no offer, or to a
    // closed one, is rejected whatever came before it, and costs no state.
    let recorded = offer.is_some() && progress.closed_at.is_none();
    let judged = pair(offer_id, &response.event_id);
    let verdict = if offer.is_some() && JUDGED.get(state, &judged).is_some() {
        Err((
            RejectReason::Duplicate,
            format!("response {} was judged already", response.event_id),
        ))
    } else {
        if recorded {
            JUDGED.put(state, &judged, &());
        }
        verdict(
            state,
            signed_by_subscriber,
            response,
            offer.as_ref(),
            &progress,
            out.at().effective,
        )
    };
    let credential_id = credential_id(offer_id, &response.subscriber_id);
    let release = Release {
        offer_id,
        subscriber_id: &response.subscriber_id,
        credential_id: &credential_id,
    };
    let verdict = verdict.and_then(|(offer, invitation)| {
        let halves = halves_for_responder(sealer, offer, &release, &invitation)?;
        Ok((offer, invitation, halves))
    });
    progress.responded = progress.responded.saturating_add(1);
    let position = out.position(topics::RESPONSES);
    match verdict {
        Ok((offer, invitation, (platform_half, provider_half))) => {
            progress.released = progress.released.saturating_add(1);
            let subscriber_signing_key = invitation.subscriber_signing_key.clone();
            INVITATIONS.put(
                state,
                &pair(offer_id, &response.subscriber_id),
                &Invitation {
                    released: true,
                    ..invitation
                },
            );
            out.emit(offer_id, |event_id| {
                CredentialReleased {
                    event_id,
                    offer_id: offer_id.clone(),
                    credential_id: credential_id.clone(),
                    subscriber_id: response.subscriber_id.clone(),
                    subscriber_signing_key,
                    request_id: response.request_id.clone(),
                    response: position,
                    offer: offer.terms(),
                    platform_half,
                    provider_half,
                    // The runtime's step chains it (tessera_contract::links).
                    link: Link::default(),
                }
                .into()
            });
        }
        Err((reason, detail)) => {
            progress.rejected = progress.rejected.saturating_add(1);
            out.emit(offer_id, |event_id| {
                ResponseRejected {
                    event_id,
                    offer_id: offer_id.clone(),
                    subscriber_id: response.subscriber_id.clone(),
                    request_id: response.request_id.clone(),
                    reason,
                    response: position,
                    offer: offer.as_ref().map(StoredOffer::terms),
                    detail,
                    // The runtime's step chains it (tessera_contract::links).
                    link: Link::default(),
                }
                .into()
            });
        }
    }
    if offer.is_some() {
        PROGRESS.put(state, offer_id, &progress);
    }
}

/// The rules a response meets, in their fixed order (the first one broken is the reason), for a
/// response received at `stamp` that was not judged before. Ok is the offer to release and the
/// responder's invitation. `signed_by_subscriber` checks the response's signature with the key
/// the invitation pinned.
fn verdict<'a>(
    state: &dyn State,
    signed_by_subscriber: impl FnOnce(&Invitation) -> Result<(), String>,
    response: &ResponseSubmitted,
    offer: Option<&'a StoredOffer>,
    progress: &Progress,
    stamp: i64,
) -> Result<(&'a StoredOffer, Invitation), (RejectReason, String)> {
    let offer_id = &response.offer_id;
    let subscriber_id = &response.subscriber_id;
    let Some(offer) = offer else {
        return Err((
            RejectReason::UnknownOffer,
            format!(
                "no offer {offer_id} was on the log by {}",
                format_stamp(stamp)
            ),
        ));
    };
    if let Some(problem) = &offer.rejected {
        return Err((
            RejectReason::InvalidOffer,
            format!("offer {offer_id} was rejected: {problem}"),
        ));
    }
    if pruned(progress.closed_at, stamp) {
        let (reason, how) = match progress.withdrawn {
            true => (RejectReason::Withdrawn, "was withdrawn"),
            false => (RejectReason::TooLate, "closed"),
        };
        let closed_at = format_stamp(progress.closed_at.unwrap_or_default());
        return Err((reason, format!("offer {offer_id} {how} at {closed_at}")));
    }
    let invitation = match INVITATIONS.get(state, &pair(offer_id, subscriber_id)) {
        None => {
            return Err((
                RejectReason::NotInvited,
                format!(
                    "subscriber {subscriber_id} was not invited to offer {offer_id} by {}",
                    format_stamp(stamp)
                ),
            ));
        }
        Some(invitation) if invitation.request_id != response.request_id => {
            return Err((
                RejectReason::NotInvited,
                format!(
                    "subscriber {subscriber_id} was invited under request {}, not {}",
                    invitation.request_id, response.request_id
                ),
            ));
        }
        Some(invitation) => invitation,
    };
    signed_by_subscriber(&invitation).map_err(|detail| (RejectReason::Forged, detail))?;
    if invitation.released {
        return Err((
            RejectReason::Duplicate,
            format!("subscriber {subscriber_id} has the credential of offer {offer_id} already"),
        ));
    }
    if progress.withdrawn {
        let at = progress
            .closed_at
            .map_or_else(String::new, |t| format!(" at {}", format_stamp(t)));
        return Err((
            RejectReason::Withdrawn,
            format!("offer {offer_id} was withdrawn{at}"),
        ));
    }
    let timing = match offer.time_rule.judge(offer.position.stamp, stamp) {
        Timing::InTime => None,
        Timing::TooEarly => Some(RejectReason::TooEarly),
        Timing::TooLate => Some(RejectReason::TooLate),
    };
    if let Some(reason) = timing {
        let detail = format!("received {}, {}", format_stamp(stamp), rule_in_words(offer));
        return Err((reason, detail));
    }
    if let Some(capacity) = offer.capacity
        && progress.released >= capacity
    {
        return Err((
            RejectReason::CapacityReached,
            format!("all {capacity} credentials of offer {offer_id} were released already"),
        ));
    }
    Ok((offer, invitation))
}

/// Whether the response is signed with the key the subscriber pinned, which its invitation
/// carries.
fn signed_by_subscriber(
    (signed, keys, checked): (&Signed, &mut ParsedKeys, &mut Checked),
    response: &ResponseSubmitted,
    invitation: &Invitation,
) -> Result<(), String> {
    let subscriber_id = &response.subscriber_id;
    let key = keys.get(&invitation.subscriber_signing_key).map_err(|e| {
        format!(
            "subscriber {subscriber_id} has no usable pinned key to check the response with: {e}"
        )
    })?;
    checked
        .verify(&key, topics::RESPONSES.name, signed, subscriber_id)
        .map_err(|e| {
            format!(
                "response {} is not signed by subscriber {subscriber_id}'s pinned key \
                 (fingerprint {}): {e}",
                response.event_id,
                key.fingerprint()
            )
        })
}

/// The rule in words; a `Within` rule also says when it started and ends.
fn rule_in_words(offer: &StoredOffer) -> String {
    let rule = &offer.time_rule;
    match rule {
        TimeRule::Within(_) => format!(
            "{} received {} (until {})",
            rule.describe(),
            format_stamp(offer.position.stamp),
            format_stamp(rule.ends_at(offer.position.stamp))
        ),
        TimeRule::Deadline(_) | TimeRule::Window(_) => rule.describe(),
    }
}

/// The halves a released responder gets, sealed to the responder's pinned key for this release.
/// Only a timekeeper whose key changed since the offer was checked fails here; the offer is then
/// unusable, and the response is refused as such.
fn halves_for_responder(
    sealer: &mut Sealer,
    offer: &StoredOffer,
    release: &Release<'_>,
    invitation: &Invitation,
) -> Result<(SealedBox, Option<SealedBox>), (RejectReason, String)> {
    let unusable = |e: String| {
        (
            RejectReason::InvalidOffer,
            format!("the credential cannot be released: {e}"),
        )
    };
    let responder =
        PublicKey::from_bytes(&invitation.subscriber_key).map_err(|e| unusable(e.to_string()))?;
    sealer.halves(offer, release, &responder).map_err(unusable)
}

/// The id of the credential released to `subscriber_id` for `offer_id`: derived, so a replay
/// names the same credential, and one per pair because a subscriber is released once.
fn credential_id(offer_id: &str, subscriber_id: &str) -> String {
    let name = format!("credential/{}", pair(offer_id, subscriber_id));
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests;
