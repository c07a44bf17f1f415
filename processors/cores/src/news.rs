//! What the cores after the timekeeper (the delivery and the ledger's rewards) read of an
//! offer's life: the offer as its provider published it, and the timekeeper's verdicts on it.
//! One reading, so both take the same records for the same news.

use tessera_contract::topics::{self, Topic};
use tessera_contract::{
    CredentialReleased, Event, OfferClosed, OfferPublished, OfferRejected, ResponseRejected,
};

use crate::core::{Raw, misplaced};
use crate::registry::Inputs;

/// An offer's publication or a verdict on it, from `tessera.offers` or `tessera.decisions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferNews {
    /// The offer, from `tessera.offers`.
    Offer(Box<OfferPublished>),
    /// A release, from `tessera.decisions`.
    Release(Box<CredentialReleased>),
    /// An invalid offer, from `tessera.decisions`.
    Rejected(OfferRejected),
    /// The offer's end, from `tessera.decisions`.
    Closed(OfferClosed),
    /// A rejected response, from `tessera.decisions`: its responder is told, nothing else
    /// follows.
    Rejection(Box<ResponseRejected>),
    /// A withdrawal, from `tessera.offers`: it changes nothing downstream, its OfferClosed
    /// follows.
    Passed,
}

impl OfferNews {
    /// The news `event` is, read on `input`, keyed by its offer id; an error for an event that
    /// is no such news or does not belong on `input`.
    pub(crate) fn read(raw: &Raw<'_>, input: impl Inputs, event: Event) -> Result<Self, String> {
        let on = |topic: Topic| input.topic() == topic;
        let (offer_id, news) = match event {
            Event::OfferPublished(e) if on(topics::OFFERS) => {
                (e.offer_id.clone(), OfferNews::Offer(Box::new(e)))
            }
            Event::OfferWithdrawn(e) if on(topics::OFFERS) => (e.offer_id, OfferNews::Passed),
            Event::CredentialReleased(e) if on(topics::DECISIONS) => {
                (e.offer_id.clone(), OfferNews::Release(Box::new(e)))
            }
            Event::OfferRejected(e) if on(topics::DECISIONS) => {
                (e.offer_id.clone(), OfferNews::Rejected(e))
            }
            Event::OfferClosed(e) if on(topics::DECISIONS) => {
                (e.offer_id.clone(), OfferNews::Closed(e))
            }
            Event::ResponseRejected(e) if on(topics::DECISIONS) => {
                (e.offer_id.clone(), OfferNews::Rejection(Box::new(e)))
            }
            other => return Err(misplaced(&other, input)),
        };
        raw.keyed_by(&offer_id, "offer id")?;
        Ok(news)
    }
}
