//! A subscriber's contact and webhook, sealed to the platform.
//!
//! `tessera.subscribers` is read by every provider (its agent seals to a responder's pinned key)
//! and Kafka's ACLs cannot hide one field of a record, so a registration may carry its contact
//! and webhook sealed to the delivery worker's key instead of in the clear: the delivery worker's
//! webhook worker is the one party that needs them. HPKE base mode, `info` `tessera/v1 contact
//! to the platform`, `aad` the subscriber id, so a box copied into another subscriber's
//! registration does not open. The registration's signature says who sealed it.

use hpke::OpModeR;
use hpke::rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{PrivateKey, PublicKey, SealError, bound, open, seal, unbound};
use crate::events::SealedBox;

const INFO: &[u8] = b"tessera/v1 contact to the platform";
const LABEL: &str = "tessera/v1 contact";
const WHAT: &str = "contact";

/// How to reach a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Its contact, e.g. an e-mail address.
    pub contact: String,
    /// The webhook its credentials are also posted to, if any.
    pub webhook: Option<String>,
}

fn aad(subscriber_id: &str) -> Vec<u8> {
    bound("", &[subscriber_id.as_bytes()])
}

/// Seals subscriber `subscriber_id`'s `contact` to the delivery worker's key `platform`, with
/// randomness from `rng`.
pub fn seal_contact(
    contact: &Contact,
    subscriber_id: &str,
    platform: &PublicKey,
    rng: &mut impl CryptoRng,
) -> Result<SealedBox, SealError> {
    let webhook = contact.webhook.as_deref().unwrap_or_default();
    let has_webhook = [u8::from(contact.webhook.is_some())];
    let plaintext = Zeroizing::new(bound(
        LABEL,
        &[contact.contact.as_bytes(), &has_webhook, webhook.as_bytes()],
    ));
    let aad = aad(subscriber_id);
    seal(platform, INFO, &plaintext, &aad, rng, WHAT)
}

/// Opens subscriber `subscriber_id`'s sealed contact with the delivery worker's key.
pub fn open_contact(
    sealed: &SealedBox,
    subscriber_id: &str,
    platform: &PrivateKey,
) -> Result<Contact, SealError> {
    let plaintext = open(
        &OpModeR::Base,
        platform,
        sealed,
        INFO,
        &aad(subscriber_id),
        WHAT,
    )?;
    let text = |part: &[u8]| String::from_utf8(part.to_vec()).ok();
    let parts = unbound(LABEL, &plaintext).and_then(|parts| <[&[u8]; 3]>::try_from(parts).ok());
    let contact = match parts {
        Some([contact, [1], webhook]) => text(contact).zip(text(webhook).map(Some)),
        Some([contact, [0], []]) => text(contact).map(|contact| (contact, None)),
        _ => None,
    };
    let (contact, webhook) = contact.ok_or(SealError::Open(WHAT))?;
    Ok(Contact { contact, webhook })
}

#[cfg(test)]
mod tests {
    use chacha20::ChaCha20Rng;
    use hpke::rand_core::SeedableRng;

    use super::*;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_bytes(&[seed; 32]).unwrap()
    }

    #[test]
    fn only_the_platform_opens_a_contact_and_only_as_its_subscribers() {
        let (platform, provider) = (key(1), key(2));
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        for webhook in [None, Some("https://b1.example.org/inbox".to_string())] {
            let contact = Contact {
                contact: "b1@example.org".into(),
                webhook,
            };
            let sealed = seal_contact(&contact, "B1", &platform.public_key(), &mut rng).unwrap();
            assert_eq!(open_contact(&sealed, "B1", &platform).unwrap(), contact);
            assert!(open_contact(&sealed, "B1", &provider).is_err());
            assert!(open_contact(&sealed, "B2", &platform).is_err());
        }
    }
}
