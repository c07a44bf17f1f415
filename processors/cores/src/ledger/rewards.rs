//! The ledger's first half, keyed by offer id: it decides which outcomes earn a reward and
//! re-keys each one by provider onto `tessera.ledger-credits`.
//!
//! It reads `tessera.offers` (provider, reward and decision deadline), `tessera.decisions` (which
//! credentials were released, to whom, and when) and `tessera.outcomes`. An acceptance earns the
//! offer's reward when the credential was released to the subscriber who accepts it, it is the
//! credential's first outcome, and, if the offer set `decide_within`, its effective stamp is at
//! most the release's effective stamp plus `decide_within`; a declined credential earns nothing but
//! is settled all the same, so a later acceptance cannot earn. Everything else goes to the dead
//! letters: an outcome for a credential never released (by the merge, every release stamped before
//! the outcome has been applied, as the subscriber can only open what was released), by someone
//! else than its recipient, or after the credential's first outcome, and an acceptance after the
//! decision deadline (`Late`; it settles nothing, so the recipient may still decline). The same
//! outcome read again (its event id) changes nothing. Lateness is judged on the two records'
//! effective stamps only, as the timekeeper judges responses: a replay judges it the same.
//!
//! Nothing is believed for the name it carries: an offer counts only if signed with the provider
//! key it carries (a forged one is ignored, as the timekeeper rejects it), a release only if
//! signed by the timekeeper whose key this core is given (else a dead letter, Unauthenticated),
//! and an outcome only if signed with the recipient's pinned key, which its release carries (else
//! a dead letter, NotOwner): nobody accepts another's credential or mints a reward.

use serde::{Deserialize, Serialize};
use tessera_contract::identity;
use tessera_contract::rules::format_stamp;
use tessera_contract::{
    CredentialAccepted, CredentialDeclined, CredentialReleased, OfferPublished, Reward, RewardDue,
};

use crate::news::OfferNews;
use crate::prelude::*;

shape! {
    /// The rewards core's declaration.
    ///
    /// The inputs in rank order: on equal stamps an offer, then its releases, then their
    /// outcomes.
    pub const SHAPE: "ledger-rewards",
    inputs InputTopic { Offers = OFFERS, Decisions = DECISIONS, Outcomes = OUTCOMES },
    output LEDGER_CREDITS,
    state "per offer: its reward terms, its decision deadline and its releases with their stamps, \
          until each is accepted or declined";
}

/// Who an offer's rewards go to; the first offer published under an id stays.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Terms {
    provider_id: String,
    reward: Option<Reward>,
}

/// A released credential and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Release {
    subscriber_id: String,
    /// The recipient's pinned verifying key, as its release carried it.
    subscriber_signing_key: Vec<u8>,
    release_event: String,
    outcome: Option<Settled>,
}

/// A credential's first outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settled {
    accepted: bool,
    event_id: String,
}

/// Offer terms by offer id.
const OFFERS: Table<Terms> = Table::new("offer/");
/// Releases by [`pair`] of offer id and credential id.
const RELEASES: Table<Release> = Table::new("release/");
/// The `decide_within` of each offer that set one (the first offer under the id), by offer id.
/// Tables of their own rather than fields of [`Terms`] and [`Release`]: values are postcard, which
/// is not self-describing, so a field added to a stored type would leave every value stored before
/// unreadable, serde default or not.
const DECIDE_WITHIN: Table<i64> = Table::new("decide-within/");
/// The effective stamp of each release by [`pair`] of offer id and credential id. A release
/// stored before this table existed has none, and its acceptance is judged as then: in time.
const RELEASED_AT: Table<i64> = Table::new("released-at/");

/// An outcome, accepted or declined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The recipient accepted the credential.
    Accepted(CredentialAccepted),
    /// The recipient declined it.
    Declined(CredentialDeclined),
}

impl Outcome {
    fn accepted(&self) -> bool {
        matches!(self, Outcome::Accepted(_))
    }

    fn event_id(&self) -> &str {
        match self {
            Outcome::Accepted(e) => &e.event_id,
            Outcome::Declined(e) => &e.event_id,
        }
    }

    pub(crate) fn offer_id(&self) -> &str {
        match self {
            Outcome::Accepted(e) => &e.offer_id,
            Outcome::Declined(e) => &e.offer_id,
        }
    }

    pub(crate) fn credential_id(&self) -> &str {
        match self {
            Outcome::Accepted(e) => &e.credential_id,
            Outcome::Declined(e) => &e.credential_id,
        }
    }

    pub(crate) fn subscriber_id(&self) -> &str {
        match self {
            Outcome::Accepted(e) => &e.subscriber_id,
            Outcome::Declined(e) => &e.subscriber_id,
        }
    }

    pub(crate) fn into_event(self) -> Event {
        match self {
            Outcome::Accepted(e) => e.into(),
            Outcome::Declined(e) => e.into(),
        }
    }
}

/// An input record the rewards core acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An offer, or a verdict on it.
    News(OfferNews),
    /// An outcome, from `tessera.outcomes`.
    Outcome(Outcome),
}

/// The rewards core. All it knows is in the task's state, and the key releases are signed with.
#[derive(Debug, Clone, Copy)]
pub struct Rewards {
    timekeeper: VerifyingKey,
}

impl Rewards {
    /// A rewards core that believes releases signed with `timekeeper`.
    pub fn new(timekeeper: VerifyingKey) -> Self {
        Rewards { timekeeper }
    }
}

impl Core for Rewards {
    type Record = Received;

    crate::declared_by!(SHAPE);

    fn decode(&self, raw: Raw<'_>) -> Result<Received, String> {
        let outcome = match raw.event::<InputTopic>()? {
            (InputTopic::Outcomes, Event::CredentialAccepted(e)) => Outcome::Accepted(e),
            (InputTopic::Outcomes, Event::CredentialDeclined(e)) => Outcome::Declined(e),
            (input, event) => return OfferNews::read(&raw, input, event).map(Received::News),
        };
        raw.keyed_by(outcome.offer_id(), "offer id")?;
        Ok(Received::Outcome(outcome))
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<Received>) -> Vec<Emitted> {
        let mut out = Outputs::new(SHAPE.name, input.at());
        if let Input::Record { value, signed, .. } = input {
            match value {
                Received::News(OfferNews::Offer(offer)) => publish(state, *offer, &signed),
                Received::News(OfferNews::Release(release)) => {
                    let input = (topics::DECISIONS, release.offer_id.as_str(), &signed);
                    let event = || (*release).clone().into();
                    if out.signed_by(&self.timekeeper, "the timekeeper", input, event) {
                        let at = out.at().effective;
                        release_credential(state, *release, at, &mut out);
                    }
                }
                // Only a release earns, and only once accepted.
                Received::News(_) => {}
                Received::Outcome(outcome) => settle(state, outcome, &signed, &mut out),
            }
        }
        out.into_list()
    }
}

fn publish(state: &mut dyn State, offer: OfferPublished, signed: &Signed) {
    let genuine = identity::offer_signed(&offer, signed).is_ok();
    // A second offer under the id is the timekeeper's DuplicateOffer; the first one stands.
    if genuine && OFFERS.get(state, &offer.offer_id).is_none() {
        if let Some(within) = offer.decide_within {
            DECIDE_WITHIN.put(state, &offer.offer_id, &within);
        }
        let terms = Terms {
            provider_id: offer.provider_id,
            reward: offer.reward,
        };
        OFFERS.put(state, &offer.offer_id, &terms);
    }
}

/// Keeps the release applied at effective stamp `at`.
fn release_credential(
    state: &mut dyn State,
    release: CredentialReleased,
    at: i64,
    out: &mut Outputs,
) {
    let key = pair(&release.offer_id, &release.credential_id);
    match RELEASES.get(state, &key) {
        None => {
            // The decision deadline counts from here, whenever the offer set one.
            RELEASED_AT.put(state, &key, &at);
            RELEASES.put(
                state,
                &key,
                &Release {
                    subscriber_id: release.subscriber_id,
                    subscriber_signing_key: release.subscriber_signing_key,
                    release_event: release.event_id,
                    outcome: None,
                },
            )
        }
        Some(known) if known.release_event == release.event_id => {}
        Some(known) => {
            let reason = format!(
                "credential {} was released already by event {}",
                release.credential_id, known.release_event
            );
            let offer_id = release.offer_id.clone();
            out.dead_letter(topics::DECISIONS, &offer_id, release.into(), reason);
        }
    }
}

fn settle(state: &mut dyn State, outcome: Outcome, signed: &Signed, out: &mut Outputs) {
    let offer_id = outcome.offer_id().to_string();
    let key = pair(&offer_id, outcome.credential_id());
    match earning(state, &key, &outcome, signed, out.at().effective) {
        Ok(None) => {}
        Ok(Some((mut release, terms))) => {
            release.outcome = Some(Settled {
                accepted: outcome.accepted(),
                event_id: outcome.event_id().to_string(),
            });
            RELEASES.put(state, &key, &release);
            if let (Outcome::Accepted(accepted), Some(reward)) = (outcome, terms.reward) {
                credit(accepted, terms.provider_id, reward, out);
            }
        }
        Err(reason) => out.dead_letter(topics::OUTCOMES, &offer_id, outcome.into_event(), reason),
    }
}

/// The release `outcome` settles and its offer's terms; `None` when the outcome was settled
/// already by this very event; an error says why the outcome cannot take effect.
fn earning(
    state: &dyn State,
    key: &str,
    outcome: &Outcome,
    signed: &Signed,
    stamp: i64,
) -> Result<Option<(Release, Terms)>, String> {
    let (offer_id, credential_id) = (outcome.offer_id(), outcome.credential_id());
    let Some(release) = RELEASES.get(state, key) else {
        return Err(format!(
            "credential {credential_id} of offer {offer_id} was not released by {}",
            format_stamp(stamp)
        ));
    };
    if release.subscriber_id != outcome.subscriber_id() {
        return Err(format!(
            "credential {credential_id} was released to {}, not {}",
            release.subscriber_id,
            outcome.subscriber_id()
        ));
    }
    let recipient = &release.subscriber_id;
    VerifyingKey::from_bytes(&release.subscriber_signing_key)
        .and_then(|key| key.verify_record(topics::OUTCOMES.name, signed, recipient))
        .map_err(|e| {
            format!(
                "NotOwner: the outcome of credential {credential_id} is not signed by its \
                 recipient {recipient}'s pinned key: {e}"
            )
        })?;
    if let Some(settled) = &release.outcome {
        if settled.event_id == outcome.event_id() {
            return Ok(None);
        }
        let verb = if settled.accepted {
            "accepted"
        } else {
            "declined"
        };
        return Err(format!(
            "credential {credential_id} was {verb} already, by event {}",
            settled.event_id
        ));
    }
    let Some(terms) = OFFERS.get(state, offer_id) else {
        return Err(format!("no offer {offer_id} was on the log"));
    };
    if outcome.accepted() {
        in_time(state, key, offer_id, credential_id, stamp)?;
    }
    Ok(Some((release, terms)))
}

/// Whether an acceptance of credential `key` at effective stamp `stamp` meets its offer's
/// decision deadline; an error, `Late`, says when it came and when the deadline was.
fn in_time(
    state: &dyn State,
    key: &str,
    offer_id: &str,
    credential_id: &str,
    stamp: i64,
) -> Result<(), String> {
    let (Some(within), Some(released)) = (
        DECIDE_WITHIN.get(state, offer_id),
        RELEASED_AT.get(state, key),
    ) else {
        return Ok(());
    };
    let deadline = released.saturating_add(within);
    if stamp <= deadline {
        return Ok(());
    }
    Err(format!(
        "Late: credential {credential_id} of offer {offer_id} was accepted at {}, after its \
         decision deadline {} ({within} ms after its release at {}); it earns nothing",
        format_stamp(stamp),
        format_stamp(deadline),
        format_stamp(released)
    ))
}

fn credit(accepted: CredentialAccepted, provider_id: String, reward: Reward, out: &mut Outputs) {
    let position = out.position(topics::OUTCOMES);
    let key = provider_id.clone();
    out.emit(&key, |event_id| {
        RewardDue {
            event_id,
            provider_id,
            offer_id: accepted.offer_id,
            credential_id: accepted.credential_id,
            subscriber_id: accepted.subscriber_id,
            amount: reward.amount,
            currency: reward.currency,
            accepted: position,
        }
        .into()
    });
}
