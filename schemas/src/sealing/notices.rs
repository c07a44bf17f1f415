//! Notices: what the platform tells one subscriber in its inbox, sealed so that only it reads
//! them.
//!
//! A notice carries an event the subscriber may know (its invitation, the verdict on its
//! response, the end of an offer it was invited to, its own decision) and where that event sat
//! on the log, with its effective stamp. It is sealed with HPKE to the subscriber's pinned key,
//! `info` `tessera/v1 notice to the subscriber`, `aad` the subscriber id and the notice's event
//! id, so a box copied to another subscriber's or another notice's record does not open. Who
//! wrote it is proven by the record's signature (the delivery worker's), as for any record. The
//! plaintext is padded to a multiple of [`PADDED_TO`] bytes, so a box's length does not say
//! which kind of event it tells of.
//!
//! # Determinism
//!
//! The delivery worker is a deterministic core, so sealing draws its HPKE ephemeral key from a
//! ChaCha20 generator seeded by HKDF over the sender's private key and everything the box holds
//! and is bound to: the same notice is sealed to the same bytes on every replay with that key,
//! and no one without the key can predict the ephemeral key (an auditor without it takes the
//! sealed bytes from the log, as it takes a release's halves).

use chacha20::ChaCha20Rng;
use hkdf::Hkdf;
use hpke::OpModeR;
use hpke::rand_core::SeedableRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{KEY_LEN, PrivateKey, PublicKey, SealError, bound, open, seal, unbound};
use crate::codec;
use crate::events::{Event, LogPosition, SealedBox};

/// A notice's plaintext is padded to a multiple of this many bytes.
pub const PADDED_TO: usize = 512;

const INFO: &str = "tessera/v1 notice to the subscriber";
const LABEL: &str = "tessera/v1 noticed event";
const SEED_SALT: &[u8] = b"tessera/v1 notice randomness";
const WHAT: &str = "notice";

/// An event told to a subscriber, and where it sat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noticed {
    /// Its position, the topic's name without an installation's prefix, its stamp the effective
    /// one the processors judged it by.
    pub at: LogPosition,
    /// The event.
    pub event: Event,
}

impl Noticed {
    fn to_bytes(&self) -> Result<Vec<u8>, SealError> {
        let event = codec::encode(&self.event).map_err(|_| SealError::Seal(WHAT))?;
        let parts = [
            self.at.topic.as_bytes(),
            &self.at.partition.to_be_bytes(),
            &self.at.offset.to_be_bytes(),
            &self.at.stamp.to_be_bytes(),
            &event,
        ];
        // The padding is a last part of zeros: its own length prefix takes 4 bytes.
        let len = bound(LABEL, &parts).len() + 4;
        let padding = vec![0; len.next_multiple_of(PADDED_TO) - len];
        let mut padded = parts.to_vec();
        padded.push(&padding);
        Ok(bound(LABEL, &padded))
    }

    fn from_bytes(bytes: &[u8]) -> Option<Noticed> {
        let [topic, partition, offset, stamp, event, _padding] =
            <[&[u8]; 6]>::try_from(unbound(LABEL, bytes)?).ok()?;
        Some(Noticed {
            at: LogPosition {
                topic: String::from_utf8(topic.to_vec()).ok()?,
                partition: i32::from_be_bytes(partition.try_into().ok()?),
                offset: i64::from_be_bytes(offset.try_into().ok()?),
                stamp: i64::from_be_bytes(stamp.try_into().ok()?),
            },
            event: codec::decode(event).ok()?,
        })
    }
}

fn aad(subscriber_id: &str, event_id: &str) -> Vec<u8> {
    bound("", &[subscriber_id.as_bytes(), event_id.as_bytes()])
}

/// Seals `noticed` to subscriber `subscriber_id`'s key `recipient`, as the notice with event id
/// `event_id`, by the holder of `sender`. Deterministic (see the module's Determinism).
pub fn seal_notice(
    noticed: &Noticed,
    subscriber_id: &str,
    event_id: &str,
    recipient: &PublicKey,
    sender: &PrivateKey,
) -> Result<SealedBox, SealError> {
    let plaintext = Zeroizing::new(noticed.to_bytes()?);
    let aad = aad(subscriber_id, event_id);
    let context = bound("", &[&aad, &recipient.to_bytes(), &plaintext]);
    let mut seed = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(SEED_SALT), sender.to_bytes().as_ref())
        .expand(&context, seed.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    let mut rng = ChaCha20Rng::from_seed(*seed);
    seal(recipient, INFO.as_bytes(), &plaintext, &aad, &mut rng, WHAT)
}

/// Whether a notice can be sealed to `recipient`: not to a low-order point, whose shared secret
/// HPKE refuses, whoever seals. It depends on the key alone, so a replay without the sender's key
/// tells it as the sender did.
pub fn sealable(recipient: &PublicKey) -> bool {
    let mut rng = ChaCha20Rng::from_seed([0; KEY_LEN]);
    seal(recipient, INFO.as_bytes(), b"", b"", &mut rng, WHAT).is_ok()
}

/// Opens the notice with event id `event_id` to subscriber `subscriber_id` with its key.
pub fn open_notice(
    sealed: &SealedBox,
    subscriber_id: &str,
    event_id: &str,
    key: &PrivateKey,
) -> Result<Noticed, SealError> {
    let aad = aad(subscriber_id, event_id);
    let plaintext = open(&OpModeR::Base, key, sealed, INFO.as_bytes(), &aad, WHAT)?;
    Noticed::from_bytes(&plaintext).ok_or(SealError::Open(WHAT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_bytes(&[seed; KEY_LEN]).unwrap()
    }

    fn noticed() -> Noticed {
        let event = examples::all()
            .into_iter()
            .find(|e| matches!(e, Event::InteractionRequested(_)))
            .unwrap();
        Noticed {
            at: LogPosition {
                topic: "tessera.requests".into(),
                partition: 2,
                offset: 41,
                stamp: 1_764_061_200_041,
            },
            event,
        }
    }

    #[test]
    fn only_its_subscriber_opens_a_notice_as_sealed() {
        let (b1, b2, delivery) = (key(1), key(2), key(9));
        let sealed = seal_notice(&noticed(), "B1", "n-1", &b1.public_key(), &delivery).unwrap();
        assert_eq!(open_notice(&sealed, "B1", "n-1", &b1).unwrap(), noticed());
        let moved = [("B2", "n-1", &b2), ("B1", "n-1", &b2), ("B1", "n-2", &b1)];
        for (subscriber, event_id, key) in moved {
            assert_eq!(
                open_notice(&sealed, subscriber, event_id, key),
                Err(SealError::Open(WHAT)),
                "{subscriber} {event_id}"
            );
        }
    }

    #[test]
    fn sealing_is_a_function_of_the_senders_key_and_the_notice() {
        let (b1, delivery) = (key(1), key(9));
        let seal = |sender: &PrivateKey, event_id: &str| {
            seal_notice(&noticed(), "B1", event_id, &b1.public_key(), sender).unwrap()
        };
        assert_eq!(seal(&delivery, "n-1"), seal(&delivery, "n-1"));
        assert_ne!(seal(&delivery, "n-1").enc, seal(&key(8), "n-1").enc);
        assert_ne!(seal(&delivery, "n-1").enc, seal(&delivery, "n-2").enc);
    }

    #[test]
    fn boxes_are_padded_so_their_length_does_not_tell_the_event() {
        let (b1, delivery) = (key(1), key(9));
        let lengths: std::collections::BTreeSet<usize> = examples::all()
            .into_iter()
            .filter(|e| e.kind() != crate::events::EventKind::OfferPublished)
            .map(|event| {
                let noticed = Noticed { event, ..noticed() };
                let sealed =
                    seal_notice(&noticed, "B1", "n-1", &b1.public_key(), &delivery).unwrap();
                assert_eq!(open_notice(&sealed, "B1", "n-1", &b1).unwrap(), noticed);
                sealed.ciphertext.len()
            })
            .collect();
        assert_eq!(lengths.len(), 1, "{lengths:?}");
    }

    #[test]
    fn a_low_order_key_is_sealed_to_by_no_one() {
        assert!(sealable(&key(1).public_key()));
        let zero = PublicKey::from_bytes(&[0; KEY_LEN]).unwrap();
        assert!(!sealable(&zero));
        let noticed = noticed();
        assert!(seal_notice(&noticed, "B1", "n-1", &zero, &key(9)).is_err());
    }

    #[test]
    fn an_altered_notice_does_not_open() {
        let (b1, delivery) = (key(1), key(9));
        let mut sealed = seal_notice(&noticed(), "B1", "n-1", &b1.public_key(), &delivery).unwrap();
        sealed.ciphertext[3] ^= 1;
        assert!(open_notice(&sealed, "B1", "n-1", &b1).is_err());
    }
}
