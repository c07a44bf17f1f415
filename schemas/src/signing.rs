//! Who wrote a record: Ed25519 signatures (RFC 8032) that every reader checks before it acts.
//!
//! Kafka's ACLs are per topic, not per key: every subscriber may write `tessera.subscribers`, so
//! the broker cannot stop one writing as another, and a field naming the author proves nothing.
//! So every event travels with a signature by the party or platform role that may write it, in
//! the record header [`HEADER`], and every reader checks it against the key it has pinned for
//! that author (a subscriber's first registration, an offer's provider, the platform's
//! configured roles) before it lets the record change anything.
//!
//! # What a signature covers
//!
//! The message signed is the tag `tessera/v1 signed record`, the topic's name without an
//! installation's prefix (length-prefixed), and [`links::record_digest`] of the record's key and
//! value: the bytes on the wire, so there is nothing to canonicalise and a record moved to another
//! topic or key no longer verifies. A reader keeps only the digest and the signature ([`Signed`]),
//! so a core can check a record long after its bytes are gone. Signatures are public: an auditor
//! checks every one with no secret.
//!
//! # Keys
//!
//! A party's or role's key file holds one 32-byte secret: its X25519 sealing key
//! ([`crate::sealing::PrivateKey`]). Its Ed25519 signing key is derived from that secret with
//! HKDF-SHA256 under its own label ([`SigningKey::derive`]), so one file, backed up once, holds
//! both, and the two keys share no bytes. Ed25519 signing is deterministic, so a processor that
//! signs its outputs writes the same bytes on a replay. Verification is strict
//! (`verify_strict`): no small-order keys, no malleable signatures.

use std::fmt;
use std::str::FromStr;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::links::{self, DIGEST_LEN};
use crate::sealing::{KEY_LEN, PrivateKey, bound};

/// The record header that carries a record's signature.
pub const HEADER: &str = "tessera.signature";
/// Bytes of a signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of a verifying key.
pub const VERIFYING_KEY_LEN: usize = 32;

const RECORD_TAG: &str = "tessera/v1 signed record";
const DERIVE_SALT: &[u8] = b"tessera/v1 signing key";
const FINGERPRINT_TAG: &[u8] = b"tessera/v1 fingerprint";

/// Why a signature or a verifying key was refused. Each names the check that failed, so a refusal
/// on the log says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The record carries no signature header.
    #[error("the record is not signed (no {HEADER} header)")]
    Unsigned,
    /// The header or statement signature is not a signature.
    #[error("the signature is {0} bytes, not a {SIGNATURE_LEN}-byte Ed25519 signature")]
    Malformed(usize),
    /// The signature was not made by the key's holder over this record.
    #[error("the signature does not verify with {0}'s key")]
    Invalid(String),
    /// The key cannot verify anything (wrong length, not a curve point, or a weak point).
    #[error("{0}")]
    Key(String),
}

/// An Ed25519 verifying key: what a signer's records are checked with. Its text form (`Display`,
/// `FromStr`) is 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// The key in `bytes`, refused unless it is a 32-byte point of the curve's prime-order
    /// subgroup (a weak key would verify forged signatures).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        let array: [u8; VERIFYING_KEY_LEN] = bytes.try_into().map_err(|_| {
            SignatureError::Key(format!(
                "an Ed25519 verifying key is {VERIFYING_KEY_LEN} bytes, not {}",
                bytes.len()
            ))
        })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&array)
            .map_err(|_| SignatureError::Key("the verifying key is not a curve point".into()))?;
        if key.is_weak() {
            return Err(SignatureError::Key(
                "the verifying key is a small-order point".into(),
            ));
        }
        Ok(VerifyingKey(key))
    }

    /// The key's 32 bytes, as registered and published.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }

    /// A short name of the key to pin and compare by eye: the first 20 bytes of SHA-256 over a
    /// tag and the key, as 40 hexadecimal digits.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_TAG)
            .chain_update(self.0.as_bytes())
            .finalize();
        hex(&digest[..20])
    }

    /// Checks that `signed` is `signer`'s signature, made with this key, over the record it was
    /// read from on `topic` (the name without an installation's prefix).
    pub fn verify_record(
        &self,
        topic: &str,
        signed: &Signed,
        signer: &str,
    ) -> Result<(), SignatureError> {
        let signature = signed.signature()?;
        self.verify(&record_message(topic, &signed.digest), &signature, signer)
    }

    /// Checks `signature` over a statement `sign_statement` made.
    pub fn verify_statement(
        &self,
        tag: &str,
        parts: &[&[u8]],
        signature: &[u8],
        signer: &str,
    ) -> Result<(), SignatureError> {
        let signature = parse_signature(signature)?;
        self.verify(&bound(tag, parts), &signature, signer)
    }

    fn verify(
        &self,
        message: &[u8],
        signature: &ed25519_dalek::Signature,
        signer: &str,
    ) -> Result<(), SignatureError> {
        self.0
            .verify_strict(message, signature)
            .map_err(|_| SignatureError::Invalid(signer.to_string()))
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(self.0.as_bytes()))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({self})")
    }
}

impl FromStr for VerifyingKey {
    type Err = SignatureError;

    fn from_str(text: &str) -> Result<Self, SignatureError> {
        let text = text.trim();
        let bytes = unhex(text)
            .filter(|b| b.len() == VERIFYING_KEY_LEN)
            .ok_or_else(|| {
                SignatureError::Key(format!(
                    "a verifying key is written as {} hexadecimal digits",
                    2 * VERIFYING_KEY_LEN
                ))
            })?;
        VerifyingKey::from_bytes(&bytes)
    }
}

/// Verifying keys parsed once. Parsing decompresses a curve point, about a quarter of what a
/// verification costs, and one subscriber's key checks all its responses. A cache, not state:
/// what it returns is what [`VerifyingKey::from_bytes`] returns, so a reader's decisions are the
/// same with it, without it, or after a restart. Bounded; it starts over when full.
#[derive(Debug, Default)]
pub struct ParsedKeys {
    keys: std::collections::HashMap<[u8; VERIFYING_KEY_LEN], VerifyingKey>,
}

impl ParsedKeys {
    /// Keys kept at most: 32 bytes and a parsed point each, a few MiB in all.
    const MAX: usize = 1 << 16;

    /// The key in `bytes`, parsed once.
    pub fn get(&mut self, bytes: &[u8]) -> Result<VerifyingKey, SignatureError> {
        let Ok(id) = <[u8; VERIFYING_KEY_LEN]>::try_from(bytes) else {
            return VerifyingKey::from_bytes(bytes);
        };
        if let Some(key) = self.keys.get(&id) {
            return Ok(*key);
        }
        let key = VerifyingKey::from_bytes(bytes)?;
        if self.keys.len() >= Self::MAX {
            self.keys.clear();
        }
        self.keys.insert(id, key);
        Ok(key)
    }
}

/// An Ed25519 signing key. Zeroed when dropped; its `Debug` shows only the verifying key.
///
/// It signs with AWS-LC, twice as fast here as ed25519-dalek (8 µs against 15 µs: every verdict
/// and notice is signed); Ed25519 signatures are deterministic (RFC 8032), so the bytes are the
/// same either way, which a test checks.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    signer: aws_lc_rs::signature::Ed25519KeyPair,
}

impl SigningKey {
    /// The signing key that goes with a sealing key: HKDF-SHA256 over the sealing key's secret
    /// under the label `tessera/v1 signing key` (see the module's Keys).
    pub fn derive(sealing: &PrivateKey) -> Self {
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        Hkdf::<Sha256>::new(Some(DERIVE_SALT), sealing.to_bytes().as_ref())
            .expand(b"ed25519", seed.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let signer = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .expect("any 32 bytes are an Ed25519 seed");
        SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
            signer,
        }
    }

    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signer
            .sign(message)
            .as_ref()
            .try_into()
            .expect("an Ed25519 signature is 64 bytes")
    }

    /// The key others verify this one's signatures with.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.key.verifying_key())
    }

    /// The signature of a record with `key` and `value` on `topic` (the name without an
    /// installation's prefix), for its [`HEADER`].
    pub fn sign_record(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> [u8; SIGNATURE_LEN] {
        let digest = links::record_digest(key, value);
        self.sign(&record_message(topic, &digest))
    }

    /// What a reader keeps of a record with `key` and `value` on `topic` that this key signed:
    /// for cores fed by hand (tests, benchmarks) rather than from Kafka.
    pub fn signed(&self, topic: &str, key: &[u8], value: &[u8]) -> Signed {
        let signature = self.sign_record(topic, Some(key), Some(value));
        Signed::of(Some(key), Some(value), Some(&signature))
    }

    /// The signature of a statement: `tag` names what is stated, `parts` are its
    /// length-prefixed contents (an endorsement of a party's keys, a provider's package).
    pub fn sign_statement(&self, tag: &str, parts: &[&[u8]]) -> [u8; SIGNATURE_LEN] {
        self.sign(&bound(tag, parts))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(verifying {})", self.verifying_key())
    }
}

/// What a reader keeps of a record to check its signature: the digest of its key and value, and
/// the signature header as read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signed {
    /// [`links::record_digest`] of the record's key and value.
    pub digest: [u8; DIGEST_LEN],
    /// The [`HEADER`] as read, if the record had one.
    pub signature: Option<Vec<u8>>,
}

impl Signed {
    /// What to keep of a record with `key`, `value` and the [`HEADER`] value `signature`.
    pub fn of(key: Option<&[u8]>, value: Option<&[u8]>, signature: Option<&[u8]>) -> Self {
        Signed {
            digest: links::record_digest(key, value),
            signature: signature.map(<[u8]>::to_vec),
        }
    }

    fn signature(&self) -> Result<ed25519_dalek::Signature, SignatureError> {
        parse_signature(self.signature.as_deref().ok_or(SignatureError::Unsigned)?)
    }
}

fn parse_signature(bytes: &[u8]) -> Result<ed25519_dalek::Signature, SignatureError> {
    ed25519_dalek::Signature::from_slice(bytes).map_err(|_| SignatureError::Malformed(bytes.len()))
}

fn record_message(topic: &str, digest: &[u8; DIGEST_LEN]) -> Vec<u8> {
    bound(RECORD_TAG, &[topic.as_bytes(), digest])
}

/// `bytes` as lowercase hexadecimal digits: the text form of every key, fingerprint, signature
/// and endorsement the command line prints.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes hexadecimal digits stand for (either case); `None` unless every pair is one.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[seed; 32]).unwrap())
    }

    proptest::proptest! {
        /// AWS-LC signs byte for byte as ed25519-dalek, so records signed before it verify the
        /// same and a replay re-signs them the same.
        #[test]
        fn signs_as_ed25519_dalek(seed in proptest::prelude::any::<[u8; 32]>(), message in proptest::collection::vec(0u8.., 0..300)) {
            use ed25519_dalek::Signer as _;
            let key = SigningKey {
                key: ed25519_dalek::SigningKey::from_bytes(&seed),
                signer: aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap(),
            };
            proptest::prop_assert_eq!(key.sign(&message), key.key.sign(&message).to_bytes());
        }
    }

    #[test]
    fn a_record_verifies_with_its_signers_key_only() {
        let (a, b) = (key(1), key(2));
        let signature = a.sign_record("tessera.offers", Some(b"o"), Some(b"value"));
        let signed = Signed::of(Some(b"o"), Some(b"value"), Some(&signature));
        assert_eq!(
            a.verifying_key()
                .verify_record("tessera.offers", &signed, "A"),
            Ok(())
        );
        assert_eq!(
            b.verifying_key()
                .verify_record("tessera.offers", &signed, "B"),
            Err(SignatureError::Invalid("B".into()))
        );
    }

    #[test]
    fn a_signature_binds_topic_key_and_value() {
        let a = key(1);
        let vk = a.verifying_key();
        let signature = a.sign_record("tessera.offers", Some(b"o"), Some(b"value"));
        let check = |topic: &str, key: &[u8], value: &[u8]| {
            vk.verify_record(
                topic,
                &Signed::of(Some(key), Some(value), Some(&signature)),
                "A",
            )
        };
        assert!(check("tessera.offers", b"o", b"value").is_ok());
        assert!(check("tessera.responses", b"o", b"value").is_err());
        assert!(check("tessera.offers", b"p", b"value").is_err());
        assert!(check("tessera.offers", b"o", b"valuf").is_err());
    }

    #[test]
    fn unsigned_and_malformed_records_are_named() {
        let vk = key(1).verifying_key();
        let unsigned = Signed::of(Some(b"o"), Some(b"v"), None);
        assert_eq!(
            vk.verify_record("t", &unsigned, "A"),
            Err(SignatureError::Unsigned)
        );
        let short = Signed::of(Some(b"o"), Some(b"v"), Some(&[0; 10]));
        assert_eq!(
            vk.verify_record("t", &short, "A"),
            Err(SignatureError::Malformed(10))
        );
    }

    #[test]
    fn derivation_is_stable_and_keys_round_trip_as_text() {
        assert_eq!(key(7).verifying_key(), key(7).verifying_key());
        assert_ne!(key(7).verifying_key(), key(8).verifying_key());
        let vk = key(7).verifying_key();
        assert_eq!(vk.to_string().parse::<VerifyingKey>(), Ok(vk));
        assert_eq!(vk.fingerprint().len(), 40);
        assert!("zz".parse::<VerifyingKey>().is_err());
        // The identity point is small-order: a signature "by" it is trivially forged.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(VerifyingKey::from_bytes(&identity).is_err());
    }

    #[test]
    fn statements_bind_their_tag_and_parts() {
        let a = key(1);
        let vk = a.verifying_key();
        let signature = a.sign_statement("tessera/v1 package", &[b"o", b"digest"]);
        assert!(
            vk.verify_statement("tessera/v1 package", &[b"o", b"digest"], &signature, "A")
                .is_ok()
        );
        assert!(
            vk.verify_statement("tessera/v1 package", &[b"o/", b"digest"], &signature, "A")
                .is_err()
        );
        assert!(
            vk.verify_statement("tessera/v1 other", &[b"o", b"digest"], &signature, "A")
                .is_err()
        );
    }
}
