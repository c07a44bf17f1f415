//! The matcher (the source document's steps S102-S103): it keeps every subscriber's interests
//! and, for each offer, invites each subscriber with an interest the offer meets.
//!
//! Each task holds one partition of `tessera.subscribers` (a compacted table) and reads every
//! partition of `tessera.offers` ([`Core::broadcast_inputs`]), so across tasks every subscriber is
//! considered exactly once per offer. Interests live in the task's state with an index over them
//! ([`index`]), so an offer costs a few lookups rather than a pass over all interests. Because
//! inputs are applied in receipt order, an interest change applies to exactly the offers received
//! after it, and to the offers still open that invite late.
//!
//! # Late invitations
//!
//! An offer published with `invite_late` (what `tessera provider publish` does unless given
//! `--no-late-invitations`) also invites the subscribers that register, or change their
//! interests, while it is open. Every task keeps such offers, from their arrival until they
//! close, in an index of their own ([`open`]), and matches each registration it accepts against
//! them after matching nothing else. Each match writes the invitation a forward match writes (the
//! same request id, offer terms and pinned keys, signed alike by the runtime); only its event id
//! differs, derived from the registration. The task remembers whom it invited to each open offer,
//! early or late, so a subscriber is invited to an offer once however often it registers.
//!
//! The matcher knows an offer is open from the offer itself. Its rule's last stamp
//! ([`TimeRule::ends_at`](tessera_contract::TimeRule::ends_at) from the offer's effective stamp)
//! sets a timer ([`open::CLOSES`], [`Core::next_due`]); the timer fires on the first input stamped
//! after it, before that input is applied, so a registration stamped after the rule ended finds
//! the offer gone, and the offer's index entries and whom it invited leave the state. A
//! withdrawal closes the offer too, but only one naming the offer's provider and signed with the
//! key the offer carried, as the timekeeper demands; any other changes nothing here (the
//! timekeeper dead-letters it). An offer that fills its capacity is not closed here: the matcher
//! never sees the timekeeper's verdicts, so it may still invite late to it, and the timekeeper
//! rejects those responses as it rejects any past the capacity. An invitation that arrives late
//! is judged like any other: the timekeeper judges the response, not the invitation.
//!
//! Late invitations are the offer's explicit choice, not a change of rule for every offer,
//! because `tessera audit` replays logs written before they existed: a log may hold a
//! registration made while a matching offer was open, and the replay must derive no invitation
//! the log lacks. Offers written with earlier versions of OfferPublished read `invite_late` as
//! false, so their replays invite exactly as they did.
//!
//! # Who a subscriber is
//!
//! No record is believed for the name it carries. A registration or removal changes the task's
//! state only if [`identity::check`] accepts its signature: the first registration of an id pins
//! its keys, and every later record of the id must be signed by the pinned key (or, with a trust
//! anchor, endorsed by it). A refused record goes to the dead letters with the refusal's name
//! (`Unauthenticated`, `NotOwner`, `Unendorsed`) and its reason. An invitation carries the
//! *pinned* keys, so the timekeeper checks the response's signature with, and seals the
//! credential to, keys the subscriber itself registered. An offer whose signature does not verify
//! with the provider key it carries invites no one: the timekeeper rejects it, once, on the log.
//!
//! # Who a provider is
//!
//! The first signed offer naming a provider id pins the id to the key it carries, and a later
//! offer naming it invites only if it carries the pinned key, or a new key endorsed by the pinned
//! one or by the trust anchor ([`provider`]). Every task reads every offer in the same order, so
//! all agree; a refused offer invites no one, and the task of the offer's own partition writes it
//! to the dead letters with the refusal (`NotOwner`, `Unendorsed`). Its responders are then
//! NotInvited.

pub mod index;
pub mod open;
pub mod predicate;

use tessera_contract::identity::provider::{self, ProviderPin};
use tessera_contract::identity::{self, Change, Pin};
use tessera_contract::rules::{check_offer, request_id};
use tessera_contract::topics::{OFFERS, SUBSCRIBERS};
use tessera_contract::{
    InteractionRequested, Interest, LogPosition, OfferPublished, OfferTerms, OfferWithdrawn,
    Recommendation, SubscriberRegistered, SubscriberRemoved,
};

use crate::core::{Emission, Position, derived_id};
use crate::prelude::*;
use crate::registry::{self, Inputs};
use open::OpenOffer;
use predicate::OfferFacts;

/// Offer ids this task has invited to, so a republished id invites no one twice.
const SEEN: Table<()> = Table::new("seen/");
/// Each subscriber's pinned keys, by subscriber id ([`identity`]): an invitation carries them, so
/// the timekeeper verifies the response and seals the credential to keys the subscriber pinned.
const PINS: Table<Pin> = Table::new("pin/");
/// Each provider's pinned key, by provider id ([`provider`]): only offers carrying it invite.
const PROVIDERS: Table<ProviderPin> = Table::new("provider/");

/// `tessera run matcher`.
pub const PROCESSOR: Processor = Processor {
    name: "matcher",
    cores: &[&SHAPE],
    metrics_port: 9464,
    publishes_key: false,
    audit_secret: None,
};

shape! {
    /// The matcher's declaration. Every task reads every partition of the offers, so each offer
    /// meets the subscribers of every partition.
    ///
    /// The inputs in rank order: on equal stamps a subscriber change comes before an offer, so
    /// an offer sees every change received up to its own stamp.
    pub const SHAPE: "matcher",
    inputs InputTopic { Subscribers = SUBSCRIBERS, Offers = OFFERS },
    broadcast [Offers],
    output REQUESTS,
    state "each subscriber's interests, indexed by what they need; the keys subscribers and \
          providers pinned; the offers invited to; the open offers that invite late, indexed by \
          what they offer, with whom they invited and their close timers";
}

/// What the matcher makes of an input record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one record at a time, moved a few times: a copy of a few hundred bytes costs less than an allocation"
)]
pub enum MatcherRecord {
    /// A subscriber registers or replaces its interests.
    Registered(SubscriberRegistered),
    /// A subscriber leaves.
    Removed(SubscriberRemoved),
    /// A tombstone on the compacted topic: it lets compaction drop the id's records, and
    /// changes nothing (it cannot carry a signed event).
    Tombstone,
    /// An offer to match.
    Published(OfferPublished),
    /// An offer taken back: it invites no one late any more.
    Withdrawn(OfferWithdrawn),
}

/// The matcher core.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// The operator's trust anchor, in installations that vouch for parties.
    anchor: Option<VerifyingKey>,
}

impl Matcher {
    /// A matcher that requires every first registration to be endorsed by `anchor`, if given.
    pub fn new(anchor: Option<VerifyingKey>) -> Self {
        Matcher { anchor }
    }

    /// Folds a registration or removal into the subscriber's pin, or dead-letters it. A
    /// registration it accepts is invited to the open offers it meets that have not invited it.
    fn change(
        &self,
        state: &mut dyn State,
        mut out: Outputs,
        subscriber_id: &str,
        change: Change<'_>,
        signed: &Signed,
        event: impl FnOnce() -> Event,
    ) -> Vec<Emitted> {
        let pinned = PINS.get(state, subscriber_id);
        match identity::check(pinned.as_ref(), change, signed, self.anchor.as_ref()) {
            Ok(pin) => {
                PINS.put(state, subscriber_id, &pin);
                match change {
                    Change::Registered(registered) => {
                        index::register(state, subscriber_id, &registered.interests);
                        return invite_late(state, &out.at(), subscriber_id, &registered.interests);
                    }
                    Change::Removed(_) => index::remove(state, subscriber_id),
                }
            }
            Err(refusal) => {
                out.dead_letter(SUBSCRIBERS, subscriber_id, event(), refusal.to_string());
            }
        }
        out.into_list()
    }

    /// Invites every subscriber of this task's partition that the offer meets, unless its id
    /// was published before or the offer breaks a rule. Either way the timekeeper judges against
    /// the first offer published under an id (a later one is a DuplicateOffer), so an id is
    /// marked seen even when its first offer is invalid: inviting to a valid republication
    /// would only collect InvalidOffer verdicts.
    fn invite(
        &self,
        state: &mut dyn State,
        mut out: Outputs,
        offer: OfferPublished,
        signed: &Signed,
    ) -> Vec<Emitted> {
        let at = out.at();
        // A forged offer marks nothing, so it cannot take an id before its provider publishes
        // (the timekeeper keeps nothing of it either).
        if identity::offer_signed(&offer, signed).is_err()
            || SEEN.get(state, &offer.offer_id).is_some()
        {
            return Vec::new();
        }
        SEEN.put(state, &offer.offer_id, &());
        let pinned = PROVIDERS.get(state, &offer.provider_id);
        match provider::check(pinned.as_ref(), &offer, self.anchor.as_ref()) {
            Ok(pin) => PROVIDERS.put(state, &offer.provider_id, &pin),
            Err(refusal) => {
                // Every task reads every offer and refuses it alike; the task of the offer's own
                // partition number says so, once.
                if at.on_own_partition() {
                    let offer_id = offer.offer_id.clone();
                    out.dead_letter(OFFERS, &offer_id, offer.into(), refusal.to_string());
                }
                return out.into_list();
            }
        }
        if check_offer(&offer, at.effective).is_err() {
            return Vec::new();
        }
        let subscribers = index::matching(state, &OfferFacts::new(&offer.recommendation));
        let terms = OfferTerms {
            position: LogPosition {
                topic: OFFERS.name.to_string(),
                partition: at.partition,
                offset: at.offset,
                stamp: at.effective,
            },
            time_rule: offer.time_rule,
        };
        let offer_id = offer.offer_id;
        if offer.invite_late {
            let ends_at = terms.time_rule.ends_at(at.effective);
            let open = OpenOffer::new(
                offer.provider_id,
                offer.signing_key,
                offer.provider_contact.clone(),
                offer.recommendation.clone(),
                terms.clone(),
                offer.decide_within,
            );
            open::keep(state, &offer_id, open, ends_at);
            for subscriber_id in &subscribers {
                open::invited(state, &offer_id, subscriber_id);
            }
        }
        let mut event = unaddressed(
            offer_id.clone(),
            offer.recommendation,
            terms,
            offer.provider_contact,
            offer.decide_within,
        );
        subscribers
            .into_iter()
            .map(|subscriber_id| addressed(state, &mut event, &at, &offer_id, subscriber_id))
            .collect()
    }
}

/// Invites the subscriber, just registered with `interests`, to each open offer they meet that
/// has not invited it yet: each invitation is the one the offer would have made had the
/// subscriber been registered when it arrived, save its event id, which derives from the
/// registration. The offers whose rule ended before the registration are closed already
/// ([`open::expire`] runs first on every input).
fn invite_late(
    state: &mut dyn State,
    at: &Position,
    subscriber_id: &str,
    interests: &[Interest],
) -> Vec<Emitted> {
    let mut outputs = Vec::new();
    for (offer_id, offer) in open::matching(state, interests) {
        if open::was_invited(state, &offer_id, subscriber_id) {
            continue;
        }
        open::invited(state, &offer_id, subscriber_id);
        let mut event = unaddressed(
            offer_id.clone(),
            offer.recommendation,
            offer.terms,
            offer.provider_contact,
            offer.decide_within,
        );
        outputs.push(addressed(
            state,
            &mut event,
            at,
            &offer_id,
            subscriber_id.to_string(),
        ));
    }
    outputs
}

/// An invitation to an offer, addressed to no one yet. One request, readdressed to each
/// subscriber in turn by [`addressed`]: the recommendation and the terms are encoded from the same
/// value every time rather than cloned per subscriber. So the matcher emits its requests encoded,
/// which it may because a request carries no link.
fn unaddressed(
    offer_id: String,
    recommendation: Recommendation,
    terms: OfferTerms,
    provider_contact: String,
    decide_within: Option<i64>,
) -> Event {
    Event::InteractionRequested(InteractionRequested {
        event_id: String::new(),
        request_id: String::new(),
        offer_id,
        subscriber_id: String::new(),
        subscriber_key: Vec::new(),
        subscriber_signing_key: Vec::new(),
        recommendation,
        offer: terms,
        provider_contact,
        decide_within,
    })
}

/// `event`, an [`unaddressed`] invitation to `offer_id`, addressed to the subscriber with the
/// keys it pinned, for the input at `at`, encoded.
fn addressed(
    state: &dyn State,
    event: &mut Event,
    at: &Position,
    offer_id: &str,
    subscriber_id: String,
) -> Emitted {
    if let Event::InteractionRequested(request) = event {
        request.request_id = request_id(offer_id, &subscriber_id);
        request.event_id = request_event_id(at, &request.request_id);
        // A subscriber the index returns is registered, so its pin is there.
        let pin = PINS.get(state, &subscriber_id);
        request.subscriber_key = pin
            .as_ref()
            .map(|p| p.sealing_key.clone())
            .unwrap_or_default();
        request.subscriber_signing_key = pin.map(|p| p.signing_key).unwrap_or_default();
        request.subscriber_id = subscriber_id;
    }
    Emitted {
        topic: registry::OUTPUT,
        key: offer_id.to_string(),
        value: Emission::Bytes(
            tessera_contract::encode(event)
                .expect("an InteractionRequested built from decoded events encodes"),
        ),
    }
}

/// The event id of one invitation. Every task reads every offer, so an output's place among its
/// task's outputs, which [`derived_id`] numbers, repeats across tasks; the request id (offer and
/// subscriber, a UUID) tells their invitations apart.
fn request_event_id(at: &Position, request_id: &str) -> String {
    derived_id(&format!("matcher/{request_id}"), at, 0)
}

/// The event's id field must be the record key: the key decides the partition, so a record
/// filed under another key would be matched (or compacted) as someone else.
fn keyed(key: &str, id: &str, field: &str) -> Result<(), String> {
    if key == id {
        Ok(())
    } else {
        Err(format!(
            "record key {key:?} differs from the event's {field} {id:?}"
        ))
    }
}

impl Core for Matcher {
    type Record = MatcherRecord;

    crate::declared_by!(SHAPE);

    fn decode(&self, raw: Raw<'_>) -> Result<MatcherRecord, String> {
        // These reasons are on the dead letters of logs already written: an audit re-derives
        // them, so they keep their words.
        let key = match raw.key.map(std::str::from_utf8) {
            None => return Err("record has no key".into()),
            Some(Err(_)) => return Err("record key is not UTF-8".into()),
            Some(Ok("")) => return Err("record key is empty".into()),
            Some(Ok(key)) => key,
        };
        let input = InputTopic::of(raw.topic);
        let Some(value) = raw.value else {
            return match input {
                Some(InputTopic::Subscribers) => Ok(MatcherRecord::Tombstone),
                _ => Err("record has no value".into()),
            };
        };
        let event = tessera_contract::decode(value).map_err(|e| e.to_string())?;
        match (input, event) {
            (Some(InputTopic::Subscribers), Event::SubscriberRegistered(registered)) => {
                keyed(key, &registered.subscriber_id, "subscriber_id")?;
                Ok(MatcherRecord::Registered(registered))
            }
            (Some(InputTopic::Subscribers), Event::SubscriberRemoved(removed)) => {
                keyed(key, &removed.subscriber_id, "subscriber_id")?;
                Ok(MatcherRecord::Removed(removed))
            }
            (Some(InputTopic::Offers), Event::OfferPublished(offer)) => {
                keyed(key, &offer.offer_id, "offer_id")?;
                Ok(MatcherRecord::Published(offer))
            }
            (Some(InputTopic::Offers), Event::OfferWithdrawn(withdrawn)) => {
                keyed(key, &withdrawn.offer_id, "offer_id")?;
                Ok(MatcherRecord::Withdrawn(withdrawn))
            }
            (input, event) => Err(format!(
                "a {} does not belong on input {}",
                event.kind().name(),
                input.map_or("unknown", |input| input.topic().name)
            )),
        }
    }

    fn next_due(&self, state: &dyn State) -> Option<i64> {
        open::CLOSES.next_due(state)
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<MatcherRecord>) -> Vec<Emitted> {
        // Offers close before the input is applied, so a registration stamped after an offer's
        // rule ended finds the offer gone.
        open::expire(state, input.at().effective);
        let Input::Record {
            at, value, signed, ..
        } = input
        else {
            return Vec::new();
        };
        let out = Outputs::new("matcher", at);
        match value {
            MatcherRecord::Registered(registered) => {
                let id = registered.subscriber_id.clone();
                let change = Change::Registered(&registered);
                self.change(state, out, &id, change, &signed, || {
                    registered.clone().into()
                })
            }
            MatcherRecord::Removed(removed) => {
                let id = removed.subscriber_id.clone();
                let change = Change::Removed(&id);
                self.change(state, out, &id, change, &signed, || removed.into())
            }
            MatcherRecord::Tombstone => Vec::new(),
            MatcherRecord::Withdrawn(withdrawn) => {
                open::withdraw(state, &withdrawn, &signed);
                Vec::new()
            }
            MatcherRecord::Published(offer) => self.invite(state, out, offer, &signed),
        }
    }
}

#[cfg(test)]
mod tests;
