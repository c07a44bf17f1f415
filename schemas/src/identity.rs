//! Identity that can't be taken: how a subscriber's keys are pinned, and which later record may
//! change them; a provider's are pinned the same way by its offers ([`provider`]).
//!
//! Every reader of `tessera.subscribers` (the matcher, the provider's agent, the delivery
//! worker's webhooks, a subscriber's own client) folds the topic through [`Pins::apply`], so they
//! all agree on who a subscriber id belongs to, whatever the newest record says:
//!
//! - The first registration of an id pins its keys (trust on first use). It must be signed with
//!   the signing key it carries, so nobody registers a key they do not hold.
//! - A later registration (new interests, a new contact, a key rotation) or a removal must be
//!   signed by the key pinned for the id. Anything else is refused ([`Refusal::NotOwner`]) and
//!   changes nothing; the reader writes the refusal, with its reason, to the log.
//! - An installation with an operator's trust anchor (`--trust-anchor`) also requires the first
//!   registration to carry the anchor's endorsement of the id and both keys. An endorsed
//!   registration may replace a pin that its own key did not sign: that is how a party that lost
//!   its key is recovered, and the only way.
//! - A removal keeps the pin: the id stays its owner's, so no one can register under it after the
//!   owner left. A tombstone (a record without a value, which compaction needs) cannot carry an
//!   event and changes nothing.

pub mod provider;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::{OfferPublished, SubscriberRegistered};
use crate::signing::{SignatureError, Signed, VerifyingKey};
use crate::topics;

/// The tag of an endorsement: the trust anchor's statement that an id owns two keys.
pub const ENDORSEMENT_TAG: &str = "tessera/v1 endorsement";

/// A subscriber's keys as the last accepted record left them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The X25519 key credentials are sealed to.
    pub sealing_key: Vec<u8>,
    /// The Ed25519 key its records must be signed with.
    pub signing_key: Vec<u8>,
    /// Whether the subscriber removed itself; the pin stays (see the module's rules).
    pub removed: bool,
}

impl Pin {
    /// The pinned verifying key. A pin is only made from a key that verified a signature, so
    /// this holds for every pin the fold made.
    pub fn verifying_key(&self) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::from_bytes(&self.signing_key)
    }
}

/// Why a record on `tessera.subscribers` changed nothing. The display starts with the refusal's
/// name, so a dead letter's reason says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The record is not signed by the key it had to be signed with.
    #[error("Unauthenticated: {0}")]
    Unauthenticated(String),
    /// The subscriber id is pinned to another key, and the record is not signed by it.
    #[error("NotOwner: {0}")]
    NotOwner(String),
    /// The installation vouches for parties, and this registration carries no valid endorsement.
    #[error("Unendorsed: {0}")]
    Unendorsed(String),
}

/// A record of `tessera.subscribers` as the fold sees it.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A SubscriberRegistered.
    Registered(&'a SubscriberRegistered),
    /// A SubscriberRemoved of this subscriber id.
    Removed(&'a str),
}

/// Checks `change`, signed as `signed`, against `pinned` (the id's pin so far, if any) and
/// returns the pin it leaves. Pure: the processors' cores and the clients call it alike.
pub fn check(
    pinned: Option<&Pin>,
    change: Change<'_>,
    signed: &Signed,
    anchor: Option<&VerifyingKey>,
) -> Result<Pin, Refusal> {
    let topic = topics::SUBSCRIBERS.name;
    match change {
        Change::Registered(registered) => {
            let id = &registered.subscriber_id;
            let own = VerifyingKey::from_bytes(&registered.signing_key).map_err(|e| {
                Refusal::Unauthenticated(format!("registration of {id} carries no usable key: {e}"))
            })?;
            // Signed with the key it registers: proves that whoever pins a key holds it.
            let self_signed = || {
                own.verify_record(topic, signed, id).map_err(|e| {
                    Refusal::Unauthenticated(format!(
                        "registration of {id} is not signed with the key it registers: {e}"
                    ))
                })
            };
            let new = Pin {
                sealing_key: registered.public_key.clone(),
                signing_key: registered.signing_key.clone(),
                removed: false,
            };
            let endorsed = anchor.map(|anchor| endorsement_holds(registered, anchor));
            match (pinned, endorsed) {
                // The anchor vouches for these keys: a first registration, or the recovery of
                // a lost key.
                (_, Some(Ok(()))) => self_signed().map(|()| new),
                (None, Some(Err(why))) => {
                    Err(Refusal::Unendorsed(format!("registration of {id}: {why}")))
                }
                (None, None) => self_signed().map(|()| new),
                // The owner changes its record, rotating its keys if it likes.
                (Some(pin), _) => owner_signed(pin, signed, id, "registration").map(|()| new),
            }
        }
        Change::Removed(id) => {
            let Some(pin) = pinned else {
                return Err(Refusal::NotOwner(format!(
                    "{id} was never registered, so there is no key its removal could be signed by"
                )));
            };
            owner_signed(pin, signed, id, "removal")?;
            Ok(Pin {
                removed: true,
                ..pin.clone()
            })
        }
    }
}

fn owner_signed(pin: &Pin, signed: &Signed, id: &str, what: &str) -> Result<(), Refusal> {
    let key = pin
        .verifying_key()
        .map_err(|e| Refusal::NotOwner(format!("{id}'s pinned key is unusable: {e}")))?;
    key.verify_record(topics::SUBSCRIBERS.name, signed, id)
        .map_err(|e| {
            Refusal::NotOwner(format!(
                "{what} of {id} is not signed by the key pinned for {id} (fingerprint {}): {e}",
                key.fingerprint()
            ))
        })
}

/// Checks that an offer is signed with the provider key it carries, and so is its package: what
/// every reader of `tessera.offers` requires before the offer counts. (Nothing yet pins a provider
/// id to one key across offers; the offer's key binds its withdrawal, co-signs and package.)
pub fn offer_signed(offer: &OfferPublished, signed: &Signed) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(&offer.signing_key)?;
    key.verify_record(topics::OFFERS.name, signed, &offer.provider_id)?;
    package_signed(
        &key,
        &offer.offer_id,
        &offer.credential.package,
        &offer.package_signature,
        &offer.provider_id,
    )
}

/// The tag of a package signature: the provider's statement that a package is its offer's.
pub const PACKAGE_TAG: &str = "tessera/v1 package";

/// The provider's signature over offer `offer_id`'s `package`. It travels with the package from
/// the offer to every delivery, so the recipient checks the document it opens is the provider's
/// without the offer record: the package is AEAD-sealed under the key the halves make, so what
/// opens from a signed package is what the provider sealed.
pub fn sign_package(
    signer: &crate::signing::SigningKey,
    offer_id: &str,
    package: &[u8],
) -> [u8; crate::signing::SIGNATURE_LEN] {
    let digest = Sha256::digest(package);
    signer.sign_statement(PACKAGE_TAG, &[offer_id.as_bytes(), &digest])
}

/// `offer` with its package signed by `signer`, which must be the key the offer carries.
pub fn with_package_signed(
    mut offer: OfferPublished,
    signer: &crate::signing::SigningKey,
) -> OfferPublished {
    offer.package_signature =
        sign_package(signer, &offer.offer_id, &offer.credential.package).to_vec();
    offer
}

/// Checks [`sign_package`]'s signature with the provider's `key`.
pub fn package_signed(
    key: &VerifyingKey,
    offer_id: &str,
    package: &[u8],
    signature: &[u8],
    provider_id: &str,
) -> Result<(), SignatureError> {
    let digest = Sha256::digest(package);
    key.verify_statement(
        PACKAGE_TAG,
        &[offer_id.as_bytes(), &digest],
        signature,
        &format!("provider {provider_id}"),
    )
}

/// The statement a trust anchor signs to vouch that `subscriber_id` owns both keys.
pub fn endorsement_parts<'a>(
    subscriber_id: &'a str,
    sealing_key: &'a [u8],
    signing_key: &'a [u8],
) -> [&'a [u8]; 3] {
    [subscriber_id.as_bytes(), sealing_key, signing_key]
}

fn endorsement_holds(
    registered: &SubscriberRegistered,
    anchor: &VerifyingKey,
) -> Result<(), String> {
    let Some(endorsement) = &registered.endorsement else {
        return Err("it carries no endorsement by the trust anchor".into());
    };
    let parts = endorsement_parts(
        &registered.subscriber_id,
        &registered.public_key,
        &registered.signing_key,
    );
    anchor
        .verify_statement(ENDORSEMENT_TAG, &parts, endorsement, "the trust anchor")
        .map_err(|e| format!("its endorsement is not the trust anchor's: {e}"))
}

/// The pins of every subscriber a client has read, for clients that fold the whole topic.
#[derive(Debug, Clone, Default)]
pub struct Pins {
    pins: BTreeMap<String, Pin>,
    anchor: Option<VerifyingKey>,
}

impl Pins {
    /// No pins yet; `anchor` as the installation's trust anchor, if it has one.
    pub fn new(anchor: Option<VerifyingKey>) -> Self {
        Pins {
            pins: BTreeMap::new(),
            anchor,
        }
    }

    /// Folds one record in; a refused one changes nothing and says why.
    pub fn apply(&mut self, change: Change<'_>, signed: &Signed) -> Result<(), Refusal> {
        let id = match change {
            Change::Registered(r) => r.subscriber_id.clone(),
            Change::Removed(id) => id.to_string(),
        };
        let pin = check(self.pins.get(&id), change, signed, self.anchor.as_ref())?;
        self.pins.insert(id, pin);
        Ok(())
    }

    /// The pin of `subscriber_id`, if it has one.
    pub fn get(&self, subscriber_id: &str) -> Option<&Pin> {
        self.pins.get(subscriber_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::PrivateKey;
    use crate::signing::SigningKey;
    use crate::{Event, encode};

    struct Party {
        sealing: PrivateKey,
        signing: SigningKey,
    }

    fn party(seed: u8) -> Party {
        let sealing = PrivateKey::from_bytes(&[seed; 32]).unwrap();
        let signing = SigningKey::derive(&sealing);
        Party { sealing, signing }
    }

    fn registration(id: &str, keys: &Party) -> SubscriberRegistered {
        SubscriberRegistered {
            event_id: "00000000-0000-4000-8000-000000000000".into(),
            subscriber_id: id.into(),
            contact: "c".into(),
            public_key: keys.sealing.public_key().to_bytes(),
            signing_key: keys.signing.verifying_key().to_bytes(),
            interests: Vec::new(),
            webhook: None,
            endorsement: None,
            sealed_contact: None,
        }
    }

    fn signed_by(signer: &Party, id: &str, event: Event) -> Signed {
        let value = encode(&event).unwrap();
        let signature =
            signer
                .signing
                .sign_record(topics::SUBSCRIBERS.name, Some(id.as_bytes()), Some(&value));
        Signed::of(Some(id.as_bytes()), Some(&value), Some(&signature))
    }

    fn register(
        pins: &mut Pins,
        signer: &Party,
        registered: &SubscriberRegistered,
    ) -> Result<(), Refusal> {
        let signed = signed_by(signer, &registered.subscriber_id, registered.clone().into());
        pins.apply(Change::Registered(registered), &signed)
    }

    #[test]
    fn the_first_registration_pins_and_a_takeover_is_refused() {
        let (owner, impostor) = (party(1), party(2));
        let mut pins = Pins::new(None);
        register(&mut pins, &owner, &registration("B1", &owner)).unwrap();
        let takeover = register(&mut pins, &impostor, &registration("B1", &impostor));
        assert!(
            matches!(takeover, Err(Refusal::NotOwner(_))),
            "{takeover:?}"
        );
        assert_eq!(
            pins.get("B1").unwrap().signing_key,
            owner.signing.verifying_key().to_bytes()
        );
    }

    #[test]
    fn a_registration_must_be_signed_with_its_own_key() {
        let (owner, other) = (party(1), party(2));
        let mut pins = Pins::new(None);
        let refused = register(&mut pins, &other, &registration("B1", &owner));
        assert!(
            matches!(refused, Err(Refusal::Unauthenticated(_))),
            "{refused:?}"
        );
        assert!(pins.get("B1").is_none());
    }

    #[test]
    fn the_owner_rotates_and_removes_and_the_pin_outlives_removal() {
        let (owner, next, impostor) = (party(1), party(2), party(3));
        let mut pins = Pins::new(None);
        register(&mut pins, &owner, &registration("B1", &owner)).unwrap();
        // Rotation: the new keys, signed by the pinned one; then the old key no longer acts.
        let rotated = registration("B1", &next);
        assert!(matches!(
            register(&mut pins, &next, &rotated),
            Err(Refusal::NotOwner(_))
        ));
        register(&mut pins, &owner, &rotated).unwrap();
        assert!(matches!(
            register(&mut pins, &owner, &registration("B1", &owner)),
            Err(Refusal::NotOwner(_))
        ));
        let owner = next;
        let removal = |signer: &Party| {
            let event = crate::SubscriberRemoved {
                event_id: "00000000-0000-4000-8000-000000000001".into(),
                subscriber_id: "B1".into(),
            };
            signed_by(signer, "B1", event.into())
        };
        assert!(matches!(
            pins.apply(Change::Removed("B1"), &removal(&impostor)),
            Err(Refusal::NotOwner(_))
        ));
        pins.apply(Change::Removed("B1"), &removal(&owner)).unwrap();
        assert!(pins.get("B1").unwrap().removed);
        let after = register(&mut pins, &impostor, &registration("B1", &impostor));
        assert!(matches!(after, Err(Refusal::NotOwner(_))), "{after:?}");
        register(&mut pins, &owner, &registration("B1", &owner)).unwrap();
        assert!(!pins.get("B1").unwrap().removed);
    }

    #[test]
    fn with_a_trust_anchor_only_endorsed_keys_pin_and_an_endorsement_recovers_a_lost_key() {
        let (anchor, owner, lost_and_found, impostor) = (party(9), party(1), party(2), party(3));
        let endorse = |id: &str, keys: &Party| {
            let mut registered = registration(id, keys);
            let parts = endorsement_parts(id, &registered.public_key, &registered.signing_key);
            registered.endorsement = Some(
                anchor
                    .signing
                    .sign_statement(ENDORSEMENT_TAG, &parts)
                    .to_vec(),
            );
            registered
        };
        let mut pins = Pins::new(Some(anchor.signing.verifying_key()));
        let unendorsed = register(&mut pins, &owner, &registration("B1", &owner));
        assert!(
            matches!(unendorsed, Err(Refusal::Unendorsed(_))),
            "{unendorsed:?}"
        );
        register(&mut pins, &owner, &endorse("B1", &owner)).unwrap();
        // An endorsement of other keys or another id does not carry over.
        let mut stolen = registration("B1", &impostor);
        stolen.endorsement = endorse("B2", &impostor).endorsement;
        assert!(matches!(
            register(&mut pins, &impostor, &stolen),
            Err(Refusal::NotOwner(_))
        ));
        // The owner lost its key: the anchor vouches for a new one, which replaces the pin.
        register(&mut pins, &lost_and_found, &endorse("B1", &lost_and_found)).unwrap();
        assert_eq!(
            pins.get("B1").unwrap().signing_key,
            lost_and_found.signing.verifying_key().to_bytes()
        );
    }
}
