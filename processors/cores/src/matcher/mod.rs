//! The matcher (the source document's steps S102-S103): it keeps every subscriber's interests
//! and, for each offer, invites each subscriber with an interest the offer meets.
//!
//! Each task holds one partition of `tessera.subscribers` (a compacted table) and reads every
//! partition of `tessera.offers` ([`Core::broadcast_inputs`]), so across tasks every subscriber is
//! considered exactly once per offer. Interests live in the task's state with an index over them
//! ([`index`]), so an offer costs a few lookups rather than a pass over all interests. Because
//! inputs are applied in receipt order, an interest change applies to exactly the offers received
//! after it.
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
pub mod predicate;

use tessera_contract::identity::provider::{self, ProviderPin};
use tessera_contract::identity::{self, Change, Pin};
use tessera_contract::rules::{check_offer, request_id};
use tessera_contract::topics::{OFFERS, SUBSCRIBERS};
use tessera_contract::{
    InteractionRequested, LogPosition, OfferPublished, OfferTerms, SubscriberRegistered,
    SubscriberRemoved,
};

use crate::core::{Emission, Position, derived_id};
use crate::prelude::*;
use crate::registry::{self, Inputs};
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
          providers pinned; the offers invited to";
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
    /// An offer taken back: the timekeeper's business, nothing to invite.
    Withdrawn,
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

    /// Folds a registration or removal into the subscriber's pin, or dead-letters it.
    fn change(
        &self,
        state: &mut dyn State,
        out: &mut Outputs,
        subscriber_id: &str,
        change: Change<'_>,
        signed: &Signed,
        event: impl FnOnce() -> Event,
    ) {
        let pinned = PINS.get(state, subscriber_id);
        match identity::check(pinned.as_ref(), change, signed, self.anchor.as_ref()) {
            Ok(pin) => {
                match change {
                    Change::Registered(registered) => {
                        index::register(state, subscriber_id, &registered.interests);
                    }
                    Change::Removed(_) => index::remove(state, subscriber_id),
                }
                PINS.put(state, subscriber_id, &pin);
            }
            Err(refusal) => {
                out.dead_letter(SUBSCRIBERS, subscriber_id, event(), refusal.to_string());
            }
        }
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
        // One request, readdressed to each subscriber in turn: the recommendation and the terms
        // are encoded from the same value every time rather than cloned per subscriber. So the
        // matcher emits its requests encoded, which it may because a request carries no link.
        let offer_id = offer.offer_id;
        let mut event = Event::InteractionRequested(InteractionRequested {
            event_id: String::new(),
            request_id: String::new(),
            offer_id: offer_id.clone(),
            subscriber_id: String::new(),
            subscriber_key: Vec::new(),
            subscriber_signing_key: Vec::new(),
            recommendation: offer.recommendation,
            offer: OfferTerms {
                position: LogPosition {
                    topic: OFFERS.name.to_string(),
                    partition: at.partition,
                    offset: at.offset,
                    stamp: at.effective,
                },
                time_rule: offer.time_rule,
            },
            provider_contact: offer.provider_contact,
            decide_within: offer.decide_within,
        });
        let mut outputs = Vec::with_capacity(subscribers.len());
        for subscriber_id in subscribers {
            if let Event::InteractionRequested(request) = &mut event {
                request.request_id = request_id(&offer_id, &subscriber_id);
                request.event_id = request_event_id(&at, &request.request_id);
                // A subscriber the index returns is registered, so its pin is there.
                let pin = PINS.get(state, &subscriber_id);
                request.subscriber_key = pin
                    .as_ref()
                    .map(|p| p.sealing_key.clone())
                    .unwrap_or_default();
                request.subscriber_signing_key = pin.map(|p| p.signing_key).unwrap_or_default();
                request.subscriber_id = subscriber_id;
            }
            outputs.push(Emitted {
                topic: registry::OUTPUT,
                key: offer_id.clone(),
                value: Emission::Bytes(
                    tessera_contract::encode(&event)
                        .expect("an InteractionRequested built from decoded events encodes"),
                ),
            });
        }
        outputs
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
                Ok(MatcherRecord::Withdrawn)
            }
            (input, event) => Err(format!(
                "a {} does not belong on input {}",
                event.kind().name(),
                input.map_or("unknown", |input| input.topic().name)
            )),
        }
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<MatcherRecord>) -> Vec<Emitted> {
        let Input::Record {
            at, value, signed, ..
        } = input
        else {
            return Vec::new();
        };
        let mut out = Outputs::new("matcher", at);
        match value {
            MatcherRecord::Registered(registered) => {
                let id = registered.subscriber_id.clone();
                let change = Change::Registered(&registered);
                self.change(state, &mut out, &id, change, &signed, || {
                    registered.clone().into()
                });
            }
            MatcherRecord::Removed(removed) => {
                let id = removed.subscriber_id.clone();
                let change = Change::Removed(&id);
                self.change(state, &mut out, &id, change, &signed, || removed.into());
            }
            MatcherRecord::Tombstone | MatcherRecord::Withdrawn => {}
            MatcherRecord::Published(offer) => return self.invite(state, out, offer, &signed),
        }
        out.into_list()
    }
}

#[cfg(test)]
mod tests;
