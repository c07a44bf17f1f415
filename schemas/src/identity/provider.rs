//! Whose offers may name a provider id: a provider's keys are pinned as a subscriber's are.
//!
//! A provider has no registration of its own; its first offer is one. Every offer carries the
//! provider's verifying key and is signed with it ([`super::offer_signed`]), so the first signed
//! offer naming a provider id pins the id to that key (trust on first use), and every later offer
//! naming the id must carry the pinned key. Anything else is refused ([`Refusal::NotOwner`]), so
//! no one publishes under another provider's name, and a document offered as A's is A's.
//!
//! A provider changes its key with an offer that carries the new key and an endorsement of it
//! ([`endorsement_parts`]) signed with the pinned key; a provider that lost its key is given a new
//! one by the operator's trust anchor, endorsing it the same way. An installation that vouches for
//! its parties (`--trust-anchor`) requires the anchor's endorsement for the first offer too
//! ([`Refusal::Unendorsed`]).
//!
//! The matcher applies it: it reads every offer in every task, so each task folds the same pins
//! in the same order, and a refused offer invites no one.

use serde::{Deserialize, Serialize};

use super::Refusal;
use crate::events::OfferPublished;
use crate::signing::VerifyingKey;

/// The tag of a provider endorsement: a statement, by the trust anchor or by the key pinned for
/// a provider, that the provider id owns a verifying key.
pub const ENDORSEMENT_TAG: &str = "tessera/v1 provider endorsement";

/// What a provider endorsement states: that `provider_id` owns `signing_key`.
pub fn endorsement_parts<'a>(provider_id: &'a str, signing_key: &'a [u8]) -> [&'a [u8]; 2] {
    [provider_id.as_bytes(), signing_key]
}

/// A provider id's pinned verifying key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPin {
    /// The Ed25519 key its offers must carry.
    pub signing_key: Vec<u8>,
}

/// Checks that `offer`, whose signature with the key it carries was checked already, may speak
/// for its provider id given `pinned` (the id's pin so far, if any); returns the pin it leaves.
pub fn check(
    pinned: Option<&ProviderPin>,
    offer: &OfferPublished,
    anchor: Option<&VerifyingKey>,
) -> Result<ProviderPin, Refusal> {
    let id = &offer.provider_id;
    let offered = ProviderPin {
        signing_key: offer.signing_key.clone(),
    };
    if pinned == Some(&offered) {
        return Ok(offered);
    }
    let endorsed_by = |key: &VerifyingKey, who: &str| match &offer.provider_endorsement {
        Some(endorsement) => key
            .verify_statement(
                ENDORSEMENT_TAG,
                &endorsement_parts(id, &offer.signing_key),
                endorsement,
                who,
            )
            .map_err(|e| e.to_string()),
        None => Err("it carries no endorsement".to_string()),
    };
    let by_anchor = anchor.map(|anchor| endorsed_by(anchor, "the trust anchor"));
    match (pinned, by_anchor) {
        // The anchor vouches for the key: a first offer, or a lost key replaced.
        (_, Some(Ok(()))) => Ok(offered),
        (None, Some(Err(why))) => Err(Refusal::Unendorsed(format!(
            "offer {} is provider {id}'s first, and the trust anchor did not endorse its key: \
             {why}",
            offer.offer_id
        ))),
        (None, None) => Ok(offered),
        (Some(pin), _) => {
            let pinned_key = VerifyingKey::from_bytes(&pin.signing_key)
                .map_err(|e| Refusal::NotOwner(format!("{id}'s pinned key is unusable: {e}")))?;
            endorsed_by(&pinned_key, id)
                .map(|()| offered)
                .map_err(|why| {
                    Refusal::NotOwner(format!(
                        "offer {} names provider {id} but carries another key than the one pinned \
                     for {id} (fingerprint {}), without an endorsement by it: {why}",
                        offer.offer_id,
                        pinned_key.fingerprint()
                    ))
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples;
    use crate::sealing::PrivateKey;
    use crate::signing::SigningKey;
    use crate::{Custody, OfferPublished};

    fn key(seed: u8) -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[seed; 32]).unwrap())
    }

    fn offer(
        offer_id: &str,
        signer: &SigningKey,
        endorsement: Option<&SigningKey>,
    ) -> OfferPublished {
        let mut offer = examples::offer(offer_id, "A", Custody::Escrow);
        offer.signing_key = signer.verifying_key().to_bytes();
        offer.provider_endorsement = endorsement.map(|by| {
            by.sign_statement(ENDORSEMENT_TAG, &endorsement_parts("A", &offer.signing_key))
                .to_vec()
        });
        offer
    }

    fn pin(signer: &SigningKey) -> ProviderPin {
        ProviderPin {
            signing_key: signer.verifying_key().to_bytes(),
        }
    }

    #[test]
    fn the_first_offer_pins_and_later_ones_must_carry_the_pinned_key() {
        let (a, impostor) = (key(1), key(2));
        let first = check(None, &offer("o1", &a, None), None).unwrap();
        assert_eq!(first, pin(&a));
        assert_eq!(
            check(Some(&first), &offer("o2", &a, None), None),
            Ok(pin(&a))
        );
        let refused = check(Some(&first), &offer("o3", &impostor, None), None).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("NotOwner: offer o3 names provider A but carries another key"),
            "{refused}"
        );
        let self_endorsed = offer("o4", &impostor, Some(&impostor));
        assert!(matches!(
            check(Some(&first), &self_endorsed, None),
            Err(Refusal::NotOwner(_))
        ));
    }

    #[test]
    fn the_pinned_key_rotates_itself_and_the_anchor_recovers_or_vouches() {
        let (a, rotated, lost, anchor) = (key(1), key(3), key(4), key(9));
        let pinned = pin(&a);
        let rotation = offer("o2", &rotated, Some(&a));
        assert_eq!(check(Some(&pinned), &rotation, None), Ok(pin(&rotated)));
        let recovery = offer("o3", &lost, Some(&anchor));
        let anchor_key = anchor.verifying_key();
        assert_eq!(
            check(Some(&pinned), &recovery, Some(&anchor_key)),
            Ok(pin(&lost))
        );
        assert!(matches!(
            check(Some(&pinned), &recovery, None),
            Err(Refusal::NotOwner(_))
        ));
        let unendorsed = check(None, &offer("o1", &a, None), Some(&anchor_key)).unwrap_err();
        assert!(
            unendorsed.to_string().starts_with("Unendorsed: offer o1"),
            "{unendorsed}"
        );
        assert_eq!(
            check(None, &offer("o1", &a, Some(&anchor)), Some(&anchor_key)),
            Ok(pin(&a))
        );
    }
}
