//! What the timekeeper works out ahead of a batch of steps ([`crate::ahead`]): the matcher's
//! signature on each invitation, the subscriber's on each response, and the seals of the
//! releases the batch will make.
//!
//! Each response is judged here by the very rules its step applies ([`verdict`]), over the state
//! as the batch found it, taking its signature as good; a response that would be released gets
//! its seals made. Where an earlier step of the same batch changes the answer (an offer closes, its
//! capacity fills, an invitation arrives), the guess is wrong and costs only a seal made for
//! nothing, or one made in the step: the steps decide, and the memos answer only what was asked
//! with exactly their inputs.

use tessera_contract::sealing::{Half, PublicKey};
use tessera_contract::topics;

use super::secrets::Seal;
use super::{
    InputTopic, Invitation, OFFERS, PROGRESS, Received, Sealer, Timekeeper, credential_id, verdict,
};
use crate::ahead::Claim;
use crate::merge::Entry;
use crate::prelude::*;
use crate::registry::Inputs;
use crate::replay::{self, RawRecord};

/// Checks the batch's signatures and makes its releases' seals, on rayon's pool.
pub(super) fn prepare(timekeeper: &mut Timekeeper, state: &dyn State, batch: &[Entry<RawRecord>]) {
    let mut claims = Vec::new();
    let mut seals = Vec::new();
    for Entry { at, item } in batch {
        if item.refused.is_some()
            || item.signature.is_none()
            || replay::is_tick(item.value.as_deref())
        {
            continue;
        }
        let signed = || {
            Signed::of(
                item.key.as_deref(),
                item.value.as_deref(),
                item.signature.as_deref(),
            )
        };
        match InputTopic::of(at.topic) {
            Some(InputTopic::Requests) => claims.push(Claim {
                key: timekeeper.matcher,
                topic: topics::REQUESTS.name,
                signed: signed(),
            }),
            Some(InputTopic::Responses) => {
                let raw = Raw {
                    topic: at.topic,
                    key: item.key.as_deref(),
                    value: item.value.as_deref(),
                };
                let Ok(Received::Response(response)) = timekeeper.decode(raw) else {
                    continue;
                };
                let offer = OFFERS.get(state, &response.offer_id);
                let progress = PROGRESS.get(state, &response.offer_id).unwrap_or_default();
                let keys = &mut timekeeper.subscribers;
                let claim = |invitation: &Invitation| {
                    let key = keys
                        .get(&invitation.subscriber_signing_key)
                        .map_err(|e| e.to_string())?;
                    claims.push(Claim {
                        key,
                        topic: topics::RESPONSES.name,
                        signed: signed(),
                    });
                    Ok(())
                };
                let released = verdict(
                    state,
                    claim,
                    &response,
                    offer.as_ref(),
                    &progress,
                    at.effective,
                );
                if let Ok((offer, invitation)) = released
                    && let Ok(responder) = PublicKey::from_bytes(&invitation.subscriber_key)
                {
                    let credential_id = credential_id(&response.offer_id, &response.subscriber_id);
                    let halves = std::iter::once((Half::Platform, &offer.platform_half)).chain(
                        offer
                            .escrow_half
                            .as_ref()
                            .map(|escrow| (Half::Provider, escrow)),
                    );
                    for (which, from) in halves {
                        seals.push(Seal {
                            offer_id: response.offer_id.clone(),
                            subscriber_id: response.subscriber_id.clone(),
                            credential_id: credential_id.clone(),
                            which,
                            from: from.clone(),
                            responder: responder.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    timekeeper.checked.check_all(claims);
    if let Sealer::Key(secrets) = &mut timekeeper.sealer {
        secrets.seal_ahead(seals);
    }
}
