//! Work a core does ahead of a batch of steps, spread over every core of the machine.
//!
//! A task's steps run one after another, in the merge's order: each may read what the one before
//! wrote. But the costly part of many steps is a pure function of the record and of state the
//! batch before it already holds: an Ed25519 check of the record's signature (about 37 µs), an
//! HPKE seal to a responder (about 40 µs). A core that can tell, before a batch is stepped, which
//! of these its steps will ask for does them all at once on rayon's pool ([`Core::prepare`]), and
//! its steps take the answers from a memo.
//!
//! A memo, not state: it answers only a question asked with exactly the inputs it was computed
//! from, and what it answers is what the function returns. So a step's outputs are the same with
//! it, without it, with a guess that was wrong (a record the batch's earlier steps changed the
//! answer for is simply worked out again in its step) and on an auditor's replay; and the order
//! of the outputs is the steps' order, as ever. Each `prepare` starts the memo over, so it holds
//! one batch at most.
//!
//! [`Core::prepare`]: crate::Core::prepare

use std::collections::HashMap;

use rayon::prelude::*;
use tessera_contract::signing::{SignatureError, Signed, VerifyingKey};

/// A signature a step will check: `signed` (the record's digest and signature header) with `key`
/// on `topic`.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) key: VerifyingKey,
    pub(crate) topic: &'static str,
    pub(crate) signed: Signed,
}

/// Record signatures checked ahead, and found good.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    good: HashMap<Signed, (VerifyingKey, &'static str)>,
}

impl Checked {
    /// Checks every claim in parallel and keeps the good ones, in place of what was kept.
    pub(crate) fn check_all(&mut self, claims: Vec<Claim>) {
        self.good.clear();
        if claims.is_empty() {
            return;
        }
        let good: Vec<_> = claims
            .into_par_iter()
            .filter(|c| c.key.verify_record(c.topic, &c.signed, "").is_ok())
            .map(|c| (c.signed, (c.key, c.topic)))
            .collect();
        self.good.extend(good);
    }

    /// Whether this very claim was checked ahead and found good; an answer is given once.
    pub(crate) fn take(
        &mut self,
        key: &VerifyingKey,
        topic: &'static str,
        signed: &Signed,
    ) -> bool {
        matches!(self.good.remove(signed), Some((k, t)) if k == *key && t == topic)
    }

    /// [`VerifyingKey::verify_record`], answered from what was checked ahead when it holds this
    /// very claim.
    pub(crate) fn verify(
        &mut self,
        key: &VerifyingKey,
        topic: &'static str,
        signed: &Signed,
        signer: &str,
    ) -> Result<(), SignatureError> {
        match self.take(key, topic, signed) {
            true => Ok(()),
            false => key.verify_record(topic, signed, signer),
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_contract::sealing::PrivateKey;
    use tessera_contract::signing::SigningKey;

    use super::*;

    fn signer(byte: u8) -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[byte; 32]).unwrap())
    }

    /// A memo holding `signed` checked with `signer`'s key on `tessera.responses`, good or not.
    fn checked_ahead(signer: &SigningKey, signed: &Signed) -> Checked {
        let mut checked = Checked::default();
        checked.check_all(vec![Claim {
            key: signer.verifying_key(),
            topic: "tessera.responses",
            signed: signed.clone(),
        }]);
        checked
    }

    #[test]
    fn a_memo_answers_only_the_claim_it_checked() {
        let alice = signer(1);
        let mallory = signer(2);
        let signed = alice.signed("tessera.responses", b"o", b"value");
        // The same signature claimed for another key or topic is checked afresh, and fails.
        let mut checked = checked_ahead(&alice, &signed);
        assert!(
            checked
                .verify(&mallory.verifying_key(), "tessera.responses", &signed, "m")
                .is_err()
        );
        let mut checked = checked_ahead(&alice, &signed);
        assert!(
            checked
                .verify(&alice.verifying_key(), "tessera.offers", &signed, "a")
                .is_err()
        );
        // Another record under the same signature header has another digest.
        let forged = Signed {
            signature: signed.signature.clone(),
            ..alice.signed("tessera.responses", b"o", b"other")
        };
        let mut checked = checked_ahead(&alice, &signed);
        assert!(
            checked
                .verify(&alice.verifying_key(), "tessera.responses", &forged, "a")
                .is_err()
        );
        assert!(checked.take(&alice.verifying_key(), "tessera.responses", &signed));
    }

    #[test]
    fn a_bad_signature_checked_ahead_is_not_kept() {
        let alice = signer(1);
        let mut signed = alice.signed("tessera.responses", b"o", b"value");
        if let Some(s) = signed.signature.as_mut() {
            s[0] ^= 1;
        }
        let mut checked = checked_ahead(&alice, &signed);
        assert!(checked.good.is_empty());
        assert!(
            checked
                .verify(&alice.verifying_key(), "tessera.responses", &signed, "a")
                .is_err()
        );
    }
}
