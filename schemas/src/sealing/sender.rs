//! The sender's side of the suite ([`super::SUITE`]): RFC 9180 HPKE, base mode, single-shot seal,
//! with X25519 from AWS-LC.
//!
//! Every release seals the offer's half to its responder, so a seal is on the timekeeper's path
//! once per release. AWS-LC's X25519 takes about 6.7 µs for the ephemeral public key and 27 µs
//! for the shared secret on this project's CI machine, curve25519-dalek's 13 µs and 41 µs
//! (docs/BENCHMARKS.md). The `hpke` crate's X25519 is curve25519-dalek's and cannot be swapped,
//! so the seal is written out here as RFC 9180 gives it (§4.1 DHKEM, §7.1.3 DeriveKeyPair, §5.1
//! the key schedule, §5.2 seal); opening stays with the `hpke` crate.
//!
//! The ephemeral key is DeriveKeyPair over 32 bytes drawn from the caller's generator, as the
//! `hpke` crate draws it, so a box is byte for byte the one the `hpke` crate seals with the same
//! generator: halves sealed to responders before this module re-derive the same, and a replay or
//! an audit with the key reproduces every box on the log. The tests check it against RFC 9180's
//! test vector for this suite and against the `hpke` crate.

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::{Hkdf, HkdfExtract};
use hpke::rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::KEY_LEN;

/// `suite_id` of the KEM: "KEM" and DHKEM(X25519, HKDF-SHA256)'s id, 0x0020.
const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// `suite_id` of the key schedule: "HPKE", the KEM's id, HKDF-SHA256's (0x0001) and
/// ChaCha20-Poly1305's (0x0003).
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";
const VERSION: &[u8] = b"HPKE-v1";
/// `mode_base`.
const MODE_BASE: u8 = 0;
/// Bytes of ChaCha20-Poly1305's nonce.
const NONCE_LEN: usize = 12;

/// `LabeledExtract(salt, label, ikm)`: the pseudorandom key, as bytes and ready to expand.
fn labeled_extract(
    suite: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> (Zeroizing<[u8; 32]>, Hkdf<Sha256>) {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    for part in [VERSION, suite, label, ikm] {
        extract.input_ikm(part);
    }
    let (prk, hkdf) = extract.finalize();
    (Zeroizing::new(prk.into()), hkdf)
}

/// `LabeledExpand(prk, label, info, L)` into `out`, whose length is `L`.
fn labeled_expand(prk: &Hkdf<Sha256>, suite: &[u8], label: &[u8], info: &[u8], out: &mut [u8]) {
    let len = u16::try_from(out.len())
        .expect("an HPKE secret is short")
        .to_be_bytes();
    prk.expand_multi_info(&[&len, VERSION, suite, label, info], out)
        .expect("an HPKE secret is well within HKDF-SHA256's output length");
}

/// Seals `plaintext` to the X25519 public key `recipient` with `info` and `aad`, the ephemeral
/// key drawn from `rng`: the encapsulated key and the ciphertext with its tag. `None` when the
/// recipient's key gives an all-zero shared secret (a low-order point), which RFC 9180 §7.1.4
/// tells the sender to refuse.
pub(super) fn seal(
    recipient: &[u8; KEY_LEN],
    info: &[u8],
    plaintext: &[u8],
    aad: &[u8],
    rng: &mut impl CryptoRng,
) -> Option<([u8; KEY_LEN], Vec<u8>)> {
    let mut ikm = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill_bytes(ikm.as_mut());
    let (_, dkp_prk) = labeled_extract(KEM_SUITE, b"", b"dkp_prk", ikm.as_ref());
    let mut sk = Zeroizing::new([0u8; KEY_LEN]);
    labeled_expand(&dkp_prk, KEM_SUITE, b"sk", b"", sk.as_mut());
    let ephemeral = agreement::PrivateKey::from_private_key(&X25519, sk.as_ref()).ok()?;
    let enc: [u8; KEY_LEN] = ephemeral
        .compute_public_key()
        .ok()?
        .as_ref()
        .try_into()
        .ok()?;
    let mut dh = Zeroizing::new([0u8; KEY_LEN]);
    // AWS-LC refuses an all-zero shared secret itself; the check below states the RFC's rule.
    agreement::agree(
        &ephemeral,
        UnparsedPublicKey::new(&X25519, recipient),
        (),
        |shared| {
            dh.copy_from_slice(shared);
            Ok(())
        },
    )
    .ok()?;
    if dh.iter().all(|b| *b == 0) {
        return None;
    }
    let (_, eae_prk) = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh.as_ref());
    let mut shared_secret = Zeroizing::new([0u8; KEY_LEN]);
    let kem_context = [enc, *recipient].concat();
    labeled_expand(
        &eae_prk,
        KEM_SUITE,
        b"shared_secret",
        &kem_context,
        shared_secret.as_mut(),
    );
    let (psk_id_hash, _) = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"");
    let (info_hash, _) = labeled_extract(HPKE_SUITE, b"", b"info_hash", info);
    let context = [&[MODE_BASE][..], psk_id_hash.as_ref(), info_hash.as_ref()].concat();
    let (_, secret) = labeled_extract(HPKE_SUITE, shared_secret.as_ref(), b"secret", b"");
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    labeled_expand(&secret, HPKE_SUITE, b"key", &context, key.as_mut());
    let mut nonce = [0u8; NONCE_LEN];
    labeled_expand(&secret, HPKE_SUITE, b"base_nonce", &context, &mut nonce);
    let cipher = ChaCha20Poly1305::new_from_slice(key.as_ref())
        .expect("an HPKE key is exactly the cipher's 32-byte key length");
    let mut ciphertext = plaintext.to_vec();
    let tag: Tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce), aad, ciphertext.as_mut_slice().into())
        .ok()?;
    ciphertext.extend_from_slice(&tag);
    Some((enc, ciphertext))
}

#[cfg(test)]
mod tests {
    use chacha20::ChaCha20Rng;
    use hpke::rand_core::{SeedableRng, TryCryptoRng, TryRng};
    use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
    use proptest::prelude::*;

    use super::*;

    type Kem = hpke::kem::X25519HkdfSha256;
    type Kdf = hpke::kdf::HkdfSha256;
    type Aead = hpke::aead::ChaCha20Poly1305;

    fn unhex(text: &str) -> Vec<u8> {
        crate::signing::unhex(text).unwrap()
    }

    /// A generator that hands out fixed bytes: the RFC's `ikmE`.
    struct Fixed(Vec<u8>);

    impl TryRng for Fixed {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            unreachable!("HPKE draws bytes")
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            unreachable!("HPKE draws bytes")
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
            dest.copy_from_slice(&self.0[..dest.len()]);
            Ok(())
        }
    }

    impl TryCryptoRng for Fixed {}

    /// RFC 9180 A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode, the
    /// first encryption (sequence number 0).
    #[test]
    fn seals_as_rfc_9180_test_vector_a_2_1() {
        let ikm_e = unhex("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b");
        let pk_r = unhex("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a");
        let info = unhex("4f6465206f6e2061204772656369616e2055726e");
        let aad = unhex("436f756e742d30");
        let pt = unhex("4265617574792069732074727574682c20747275746820626561757479");
        let (enc, ct) = seal(
            &pk_r.try_into().unwrap(),
            &info,
            &pt,
            &aad,
            &mut Fixed(ikm_e),
        )
        .unwrap();
        assert_eq!(
            enc.to_vec(),
            unhex("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a")
        );
        assert_eq!(
            ct,
            unhex(
                "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"
            )
        );
    }

    #[test]
    fn a_low_order_key_is_refused() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        assert!(seal(&[0; 32], b"info", b"pt", b"aad", &mut rng).is_none());
        let mut one = [0; 32];
        one[0] = 1;
        assert!(seal(&one, b"info", b"pt", b"aad", &mut rng).is_none());
    }

    proptest! {
        /// The same box as the `hpke` crate's for the same generator, for any key the crate takes
        /// (top bit set and non-canonical encodings included), and the crate opens it.
        #[test]
        fn seals_byte_for_byte_as_the_hpke_crate(
            seed in any::<[u8; 32]>(),
            recipient in any::<[u8; 32]>(),
            info in proptest::collection::vec(any::<u8>(), 0..64),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
            pt in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let ours = seal(&recipient, &info, &pt, &aad, &mut ChaCha20Rng::from_seed(seed));
            let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient).unwrap();
            let theirs = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
                &OpModeS::Base,
                &pk,
                &info,
                &pt,
                &aad,
                &mut ChaCha20Rng::from_seed(seed),
            )
            .ok()
            .map(|(enc, ct)| (enc.to_bytes().into(), ct));
            prop_assert_eq!(&ours, &theirs);
        }

        #[test]
        fn the_hpke_crate_opens_what_is_sealed(seed in any::<[u8; 32]>(), secret in any::<[u8; 32]>()) {
            let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&secret).unwrap();
            let pk = <Kem as hpke::Kem>::sk_to_pk(&sk);
            let (enc, ct) = seal(
                &pk.to_bytes().into(),
                b"info",
                b"plaintext",
                b"aad",
                &mut ChaCha20Rng::from_seed(seed),
            )
            .unwrap();
            let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
            let opened =
                hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, &sk, &enc, b"info", &ct, b"aad")
                    .unwrap();
            prop_assert_eq!(opened, b"plaintext".to_vec());
        }
    }
}
