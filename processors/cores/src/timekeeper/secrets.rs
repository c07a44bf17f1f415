//! What the timekeeper opens with its private key, kept in memory so that a release costs one
//! seal; and seals made ahead of the steps that release them.
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
//!
//! The seals a batch's releases will need are made ahead, in parallel ([`Secrets::seal_ahead`],
//! [`crate::ahead`]): a seal is a pure function of the opened half, the release and the
//! responder's key, so one made ahead is kept with all of those and handed out only to a release
//! of exactly them.

use std::collections::HashMap;

use rayon::prelude::*;
use tessera_contract::SealedBox;
use tessera_contract::sealing::{self, Half, KeyHalf, PrivateKey, PublicKey, Release, SealError};

/// Offers whose opened halves are kept: the open offers of a busy task.
const MAX_OFFERS: usize = 1 << 14;

/// The timekeeper's private key and what it has derived with it.
pub(super) struct Secrets {
    key: PrivateKey,
    halves: HashMap<String, Vec<Opened>>,
    /// Seals made ahead, by credential id.
    sealed: HashMap<String, Vec<(Seal, SealedBox)>>,
}

/// A half as the provider sealed it, and opened.
struct Opened {
    which: Half,
    sealed: SealedBox,
    half: KeyHalf,
}

/// A seal a release will need: half `which` of `offer_id`, as the provider sealed it (`from`),
/// sealed to the responder of the release.
#[derive(Debug)]
pub(super) struct Seal {
    pub(super) offer_id: String,
    pub(super) subscriber_id: String,
    pub(super) credential_id: String,
    pub(super) which: Half,
    pub(super) from: SealedBox,
    pub(super) responder: PublicKey,
}

impl Seal {
    fn release(&self) -> Release<'_> {
        Release {
            offer_id: &self.offer_id,
            subscriber_id: &self.subscriber_id,
            credential_id: &self.credential_id,
        }
    }

    fn is(
        &self,
        from: &SealedBox,
        which: Half,
        release: &Release<'_>,
        responder: &PublicKey,
    ) -> bool {
        self.which == which
            && &self.from == from
            && self.release() == *release
            && &self.responder == responder
    }
}

impl Secrets {
    pub(super) fn new(key: PrivateKey) -> Self {
        Secrets {
            key,
            halves: HashMap::new(),
            sealed: HashMap::new(),
        }
    }

    /// Half `which` of offer `offer_id`, opened from `sealed` as the provider sealed it.
    pub(super) fn half(
        &mut self,
        offer_id: &str,
        which: Half,
        sealed: &SealedBox,
    ) -> Result<&KeyHalf, SealError> {
        if self.opened(offer_id, which, sealed).is_none() {
            let half = sealing::open_from_provider(sealed, which, offer_id, &self.key)?;
            if self.halves.len() >= MAX_OFFERS && !self.halves.contains_key(offer_id) {
                self.halves.clear();
            }
            self.halves
                .entry(offer_id.to_string())
                .or_default()
                .push(Opened {
                    which,
                    sealed: sealed.clone(),
                    half,
                });
        }
        Ok(self
            .opened(offer_id, which, sealed)
            .expect("the half was just opened"))
    }

    /// Half `which` of offer `offer_id`, if it was opened from `sealed` already.
    fn opened(&self, offer_id: &str, which: Half, sealed: &SealedBox) -> Option<&KeyHalf> {
        self.halves
            .get(offer_id)?
            .iter()
            .find(|o| o.which == which && &o.sealed == sealed)
            .map(|o| &o.half)
    }

    /// Half `which`, opened from `from`, sealed to `responder` for `release`: the seal made ahead
    /// for exactly these, or a new one.
    pub(super) fn seal(
        &mut self,
        from: &SealedBox,
        which: Half,
        release: &Release<'_>,
        responder: &PublicKey,
    ) -> Result<SealedBox, SealError> {
        if let Some(ahead) = self.sealed.get_mut(release.credential_id)
            && let Some(i) = ahead
                .iter()
                .position(|(seal, _)| seal.is(from, which, release, responder))
        {
            return Ok(ahead.swap_remove(i).1);
        }
        let opened = self.half(release.offer_id, which, from)?;
        sealing::seal_to_responder(opened, which, release, responder)
    }

    /// Makes `seals` on rayon's pool and keeps them for [`Secrets::seal`], in place of those
    /// kept before. A half that does not open is left to its release, which names why.
    pub(super) fn seal_ahead(&mut self, seals: Vec<Seal>) {
        self.sealed.clear();
        let seals: Vec<Seal> = seals
            .into_iter()
            .filter(|s| self.half(&s.offer_id, s.which, &s.from).is_ok())
            .collect();
        let this = &*self;
        let made: Vec<(Seal, SealedBox)> = seals
            .into_par_iter()
            .filter_map(|seal| {
                let half = this.opened(&seal.offer_id, seal.which, &seal.from)?;
                let sealed =
                    sealing::seal_to_responder(half, seal.which, &seal.release(), &seal.responder)
                        .ok()?;
                Some((seal, sealed))
            })
            .collect();
        for (seal, sealed) in made {
            self.sealed
                .entry(seal.credential_id.clone())
                .or_default()
                .push((seal, sealed));
        }
    }

    /// Drops what was kept for an offer that can release no more.
    pub(super) fn forget(&mut self, offer_id: &str) {
        self.halves.remove(offer_id);
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("offers", &self.halves.len())
            .field("sealed ahead", &self.sealed.len())
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
