//! What the timekeeper opens with its private key, kept in memory so that a release costs one
//! seal.
//!
//! Without it every release cost three X25519 multiplications: one to open the offer's platform
//! half, two to seal that half to the responder. Only the last two depend on the response; an
//! offer's opened half is the same for all its releases, so it is opened once and kept here.
//!
//! This is a cache, not state: what it holds is a function of the key and of the task's state, so
//! the timekeeper's outputs are the same with it, without it, after a restart or on an auditor's
//! replay, which start empty. It never enters the task's state (that is written to a changelog
//! topic), and everything in it is zeroed when dropped. An offer's halves leave it when the offer
//! closes; the map is bounded and starts over when full, which costs only re-deriving.

use std::collections::HashMap;

use tessera_contract::SealedBox;
use tessera_contract::sealing::{self, Half, KeyHalf, PrivateKey, SealError};

/// Offers whose opened halves are kept: the open offers of a busy task.
const MAX_OFFERS: usize = 1 << 14;

/// The timekeeper's private key and what it has derived with it.
pub(super) struct Secrets {
    key: PrivateKey,
    halves: HashMap<String, Vec<Opened>>,
}

/// A half as the provider sealed it, and opened.
struct Opened {
    which: Half,
    sealed: SealedBox,
    half: KeyHalf,
}

impl Secrets {
    pub(super) fn new(key: PrivateKey) -> Self {
        Secrets {
            key,
            halves: HashMap::new(),
        }
    }

    /// Half `which` of offer `offer_id`, opened from `sealed` as the provider sealed it.
    pub(super) fn half(
        &mut self,
        offer_id: &str,
        which: Half,
        sealed: &SealedBox,
    ) -> Result<&KeyHalf, SealError> {
        let kept = self.halves.get(offer_id).and_then(|opened| {
            opened
                .iter()
                .position(|o| o.which == which && &o.sealed == sealed)
        });
        let index = match kept {
            Some(index) => index,
            None => {
                let half = sealing::open_from_provider(sealed, which, offer_id, &self.key)?;
                if self.halves.len() >= MAX_OFFERS && !self.halves.contains_key(offer_id) {
                    self.halves.clear();
                }
                let opened = self.halves.entry(offer_id.to_string()).or_default();
                opened.push(Opened {
                    which,
                    sealed: sealed.clone(),
                    half,
                });
                opened.len() - 1
            }
        };
        Ok(&self.halves[offer_id][index].half)
    }

    /// Drops what was opened for an offer that can release no more.
    pub(super) fn forget(&mut self, offer_id: &str) {
        self.halves.remove(offer_id);
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("offers", &self.halves.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use chacha20::ChaCha20Rng;
    use chacha20::rand_core::SeedableRng;
    use tessera_contract::Custody;
    use tessera_contract::sealing::{Release, SealedOffer};

    use super::*;

    fn key(byte: u8) -> PrivateKey {
        PrivateKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_kept_half_is_the_one_its_box_holds_and_is_forgotten_on_close() {
        let timekeeper = key(1);
        let sealed_offer = |seed: u8| {
            sealing::seal_offer(
                "o",
                b"target data",
                Custody::CoSign,
                &timekeeper.public_key(),
                &mut ChaCha20Rng::from_seed([seed; 32]),
            )
            .unwrap()
        };
        let first = sealed_offer(1);
        let second = sealed_offer(2);
        let mut secrets = Secrets::new(key(1));
        let platform = |secrets: &mut Secrets, offer: &SealedOffer| {
            let half = secrets
                .half("o", Half::Platform, &offer.credential.platform_half)
                .unwrap();
            let release = Release {
                offer_id: "o",
                subscriber_id: "s",
                credential_id: "c",
            };
            sealing::seal_to_responder(half, Half::Platform, &release, &key(2).public_key())
                .unwrap()
        };
        let from_first = platform(&mut secrets, &first);
        assert_eq!(platform(&mut secrets, &first), from_first);
        assert_ne!(
            platform(&mut secrets, &second),
            from_first,
            "another box under the same offer id opens to its own half"
        );
        secrets.forget("o");
        assert!(secrets.halves.is_empty());
        assert!(
            secrets
                .half("p", Half::Platform, &first.credential.platform_half)
                .is_err(),
            "a box opens only for the offer it is bound to"
        );
    }
}
