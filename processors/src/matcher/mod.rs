//! The matcher (the source document's steps S102-S103): it keeps every subscriber's interests
//! and, for each offer, invites each subscriber with an interest the offer meets.
//!
//! Each task holds one partition of `tessera.subscribers` (a compacted table) and reads every
//! partition of `tessera.offers` ([`Core::broadcast_inputs`]), so across tasks every subscriber is
//! considered exactly once per offer. Interests live in the task's state with an index over them
//! ([`index`]), so an offer costs a few lookups rather than a pass over all interests. Because
//! inputs are applied in receipt order, an interest change applies to exactly the offers received
//! after it.

pub mod index;
pub mod predicate;

use tessera_schemas::rules::{check_offer, request_id};
use tessera_schemas::topics::{OFFERS, REQUESTS, SUBSCRIBERS};
use tessera_schemas::{
    Event, InteractionRequested, LogPosition, OfferPublished, OfferTerms, SubscriberRegistered,
};
use tessera_state_stores::{State, Table};

use crate::core::{Core, Input, Output, Position, derived_id};
use predicate::OfferFacts;

/// Offer ids this task has invited to, so a republished id invites no one twice.
const SEEN: Table<()> = Table::new("seen/");
/// Each registered subscriber's public key, by subscriber id: an invitation carries it, so the
/// timekeeper verifies the response and seals the credential to the key the subscriber registered.
const KEYS: Table<Vec<u8>> = Table::new("key/");

/// Input indices, in rank order: on equal stamps a subscriber change comes before an offer, so an
/// offer sees every change received up to its own stamp.
const SUBSCRIBERS_INPUT: usize = 0;
const OFFERS_INPUT: usize = 1;

/// What the matcher makes of an input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatcherRecord {
    /// A subscriber registers or replaces its interests.
    Registered(SubscriberRegistered),
    /// A subscriber leaves: a SubscriberRemoved, or a tombstone on the compacted topic.
    Removed {
        /// The subscriber that leaves.
        subscriber_id: String,
    },
    /// An offer to match.
    Published(OfferPublished),
    /// An offer taken back: the timekeeper's business, nothing to invite.
    Withdrawn,
}

/// The matcher core.
#[derive(Debug, Clone, Default)]
pub struct Matcher;

impl Matcher {
    /// Invites every subscriber of this task's partition that the offer meets, unless its id
    /// was published before or the offer breaks a rule. Either way the timekeeper judges against
    /// the first offer published under an id (a later one is a DuplicateOffer), so an id is
    /// marked seen even when its first offer is invalid: inviting to a valid republication
    /// would only collect InvalidOffer verdicts.
    fn invite(&self, state: &mut dyn State, at: Position, offer: OfferPublished) -> Vec<Output> {
        if SEEN.get(state, &offer.offer_id).is_some() {
            return Vec::new();
        }
        SEEN.put(state, &offer.offer_id, &());
        if check_offer(&offer, at.effective).is_err() {
            return Vec::new();
        }
        let subscribers = index::matching(state, &OfferFacts::new(&offer.recommendation));
        // One request, readdressed to each subscriber in turn: the recommendation and the terms
        // are encoded from the same value every time rather than cloned per subscriber.
        let offer_id = offer.offer_id;
        let mut event = Event::InteractionRequested(InteractionRequested {
            event_id: String::new(),
            request_id: String::new(),
            offer_id: offer_id.clone(),
            subscriber_id: String::new(),
            subscriber_key: Vec::new(),
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
        });
        let mut outputs = Vec::with_capacity(subscribers.len());
        for subscriber_id in subscribers {
            if let Event::InteractionRequested(request) = &mut event {
                request.request_id = request_id(&offer_id, &subscriber_id);
                request.event_id = request_event_id(&at, &request.request_id);
                // A subscriber the index returns is registered, so its key is there.
                request.subscriber_key = KEYS.get(state, &subscriber_id).unwrap_or_default();
                request.subscriber_id = subscriber_id;
            }
            outputs.push(Output {
                topic: 0,
                key: offer_id.clone(),
                value: tessera_schemas::encode(&event)
                    .expect("an InteractionRequested built from decoded events encodes"),
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

    fn name(&self) -> &str {
        "matcher"
    }

    fn inputs(&self) -> Vec<String> {
        vec![SUBSCRIBERS.name.to_string(), OFFERS.name.to_string()]
    }

    fn outputs(&self) -> Vec<String> {
        vec![REQUESTS.name.to_string()]
    }

    fn broadcast_inputs(&self) -> Vec<usize> {
        vec![OFFERS_INPUT]
    }

    fn decode(
        &self,
        topic: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<MatcherRecord, String> {
        let key = match key.map(std::str::from_utf8) {
            None => return Err("record has no key".into()),
            Some(Err(_)) => return Err("record key is not UTF-8".into()),
            Some(Ok("")) => return Err("record key is empty".into()),
            Some(Ok(key)) => key,
        };
        let Some(value) = value else {
            return match topic {
                SUBSCRIBERS_INPUT => Ok(MatcherRecord::Removed {
                    subscriber_id: key.to_string(),
                }),
                _ => Err("record has no value".into()),
            };
        };
        let event = tessera_schemas::decode(value).map_err(|e| e.to_string())?;
        match (topic, event) {
            (SUBSCRIBERS_INPUT, Event::SubscriberRegistered(registered)) => {
                keyed(key, &registered.subscriber_id, "subscriber_id")?;
                Ok(MatcherRecord::Registered(registered))
            }
            (SUBSCRIBERS_INPUT, Event::SubscriberRemoved(removed)) => {
                keyed(key, &removed.subscriber_id, "subscriber_id")?;
                Ok(MatcherRecord::Removed {
                    subscriber_id: removed.subscriber_id,
                })
            }
            (OFFERS_INPUT, Event::OfferPublished(offer)) => {
                keyed(key, &offer.offer_id, "offer_id")?;
                Ok(MatcherRecord::Published(offer))
            }
            (OFFERS_INPUT, Event::OfferWithdrawn(withdrawn)) => {
                keyed(key, &withdrawn.offer_id, "offer_id")?;
                Ok(MatcherRecord::Withdrawn)
            }
            (topic, event) => Err(format!(
                "a {} does not belong on input {}",
                event.kind().name(),
                self.inputs().get(topic).map_or("unknown", String::as_str)
            )),
        }
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<MatcherRecord>) -> Vec<Output> {
        let Input::Record { at, value, .. } = input else {
            return Vec::new();
        };
        match value {
            MatcherRecord::Registered(registered) => {
                index::register(state, &registered.subscriber_id, &registered.interests);
                KEYS.put(state, &registered.subscriber_id, &registered.public_key);
                Vec::new()
            }
            MatcherRecord::Removed { subscriber_id } => {
                index::remove(state, &subscriber_id);
                KEYS.delete(state, &subscriber_id);
                Vec::new()
            }
            MatcherRecord::Published(offer) => self.invite(state, at, offer),
            MatcherRecord::Withdrawn => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
