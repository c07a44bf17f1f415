//! What every sealed field of the contract is bound to, and how it is sealed and opened.
//!
//! DESIGN.md ("Keys and secrets") fixes the scheme; this module is its one implementation, shared
//! by every party so that none can drift: the provider seals an offer, the timekeeper checks it,
//! re-seals its halves to a released responder, the provider's agent seals its own half to the
//! same responder, and the subscriber opens what it was delivered. Who wrote a record is proven
//! by signatures ([`crate::signing`]), not by anything sealed here. The suite is RFC 9180 HPKE with DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256 and ChaCha20-Poly1305 ([`SUITE`]).
//!
//! # The credential
//!
//! The target data is compressed (zlib) and encrypted with ChaCha20-Poly1305 under a fresh
//! 32-byte data key, its associated data naming the offer. The data key is split by XOR into a
//! random *platform half* and the *provider half* (the data key XOR the platform half): each half
//! alone is uniformly random and says nothing about the key. The platform half is sealed to the
//! timekeeper; in escrow custody the provider half is too, in co-sign custody the provider keeps it.
//!
//! # Bindings
//!
//! Every sealed box says in its HPKE `info` what it is (which half, to whom) and in its `aad`
//! whose it is (the ids it belongs to, each length-prefixed), so a box copied into another field,
//! offer, release or response does not open:
//!
//! | box | info | aad |
//! |---|---|---|
//! | package (AEAD, not HPKE) | - | `tessera/v1 package`, offer id |
//! | half sealed to the timekeeper | `tessera/v1 <half> to the timekeeper` | offer id |
//! | half sealed to a responder | `tessera/v1 <half> to the responder` | offer id, subscriber id, credential id |
//! | notice ([`notices`]) | `tessera/v1 notice to the subscriber` | subscriber id, notice's event id |
//! | contact and webhook ([`contacts`]) | `tessera/v1 contact to the platform` | subscriber id |
//!
//! # Determinism
//!
//! Sealing to a responder draws its HPKE ephemeral key from a ChaCha20 generator seeded by HKDF
//! over the half itself and everything the box is bound to (including the responder's key). The
//! timekeeper is a deterministic core and a provider's agent may retry, so both seal the same
//! half to the same release byte for byte, every time; the seed is as secret as the half, so no
//! one without the half can predict the ephemeral key. Sealing by the provider takes the caller's
//! generator (the operating system's in production).
//!
//! # Secrets
//!
//! Data keys, halves, private keys and opened target data live in types that are zeroed when
//! dropped and never print their bytes ([`KeyHalf`], [`PrivateKey`], `Zeroizing`). Errors name
//! what failed, never a byte of it.

use std::fmt;
use std::str::FromStr;

use chacha20::ChaCha20Rng;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use hpke::rand_core::{CryptoRng, SeedableRng};
use hpke::{Deserializable, Kem as _, OpModeR, Serializable};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::events::{CredentialDelivered, Custody, SealedBox, SealedCredential};

pub mod chunks;
pub mod contacts;
pub mod notices;
mod sender;

/// [`chunks::CHUNK_LEN`], for error messages.
const CHUNK_BYTES: usize = chunks::CHUNK_LEN;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// The HPKE suite every sealed box uses.
pub const SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305";
/// Bytes of a public key, a private key, a data key and each half of it.
pub const KEY_LEN: usize = 32;
/// Bytes of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a sealed half: the half and its tag.
pub const SEALED_HALF_LEN: usize = KEY_LEN + TAG_LEN;
/// The largest package an offer carries inline. Kafka's default record limit is 1 MiB
/// (`message.max.bytes`); this leaves a quarter of it for the rest of the offer.
pub const MAX_PACKAGE_LEN: usize = 768 * 1024;
/// The largest target data a provider seals inline, in the offer's own record: compressed, it
/// stays under [`MAX_PACKAGE_LEN`] whatever it holds. Larger target data goes in chunks
/// ([`chunks`]).
pub const INLINE_TARGET_DATA_LEN: usize = chunks::CHUNK_LEN;
/// The largest target data, before compression, that a party seals or opens. Highly compressible
/// data can stay under [`MAX_PACKAGE_LEN`] while being much larger; opening stops here, so a
/// package cannot inflate without bound.
pub const MAX_TARGET_DATA_LEN: usize = 64 * 1024 * 1024;

const PACKAGE_AAD: &str = "tessera/v1 package";
const SEED_SALT: &[u8] = b"tessera/v1 sealing randomness";

/// Why a key could not be read. Says what is wrong with it, never what it holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A public key of the wrong length.
    #[error("an X25519 public key is {KEY_LEN} bytes, not {0}")]
    PublicLength(usize),
    /// A private key of the wrong length.
    #[error("an X25519 private key is {KEY_LEN} bytes, not {0}")]
    PrivateLength(usize),
    /// A public key's text is not 64 hexadecimal digits.
    #[error("a public key is written as {} hexadecimal digits", 2 * KEY_LEN)]
    PublicText,
}

/// Why something could not be sealed or opened. Names the part, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum SealError {
    /// A key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Target data larger than any party opens.
    #[error("the target data is {len} bytes; an offer carries at most {max} bytes")]
    TargetDataTooLarge { len: usize, max: usize },
    /// Target data whose package does not fit in an offer.
    #[error(
        "the target data compresses to a {len}-byte package; an offer carries at most {max} bytes \
         inline (Kafka's default record limit is 1 MiB)"
    )]
    PackageTooLarge { len: usize, max: usize },
    /// The recipient's public key cannot be sealed to (a low-order point).
    #[error("cannot seal the {0}: the recipient's public key is not a usable X25519 key")]
    Seal(&'static str),
    /// A sealed box did not open.
    #[error(
        "the {0} does not open: it was sealed to another key, bound to another offer, release or \
         response, or altered"
    )]
    Open(&'static str),
    /// The package did not decrypt under the key the halves make.
    #[error(
        "the package does not decrypt with the two halves: the package or a half was altered, or \
         they belong to different offers"
    )]
    Package,
    /// The decrypted package is not zlib data.
    #[error("the decrypted package is not valid compressed data")]
    Decompress,
    /// The decrypted package inflates past the limit.
    #[error("the target data is larger than {max} bytes once decompressed")]
    Inflated { max: usize },
    /// A package that starts as a chunk manifest but is not one.
    #[error("the package is not a valid chunk manifest")]
    Manifest,
    /// A chunk of the wrong length for its place, or sealed after the last one.
    #[error(
        "a chunk holds {CHUNK_BYTES} bytes of target data, the last one at most that, and none \
         follows it"
    )]
    ChunkLength,
    /// A chunk read out of order, or one missing.
    #[error("chunk {expected} of the package is missing (found chunk {index} next)")]
    ChunkOrder { expected: u64, index: u64 },
    /// A chunk that does not decrypt in its place.
    #[error(
        "chunk {0} of the package does not decrypt in its place: it was altered, moved, belongs \
         to another offer, or the package was cut short"
    )]
    Chunk(u64),
    /// Chunks that open but are not the ones the provider signed.
    #[error("the package's chunks are not the ones its signed manifest names")]
    ChunksDigest,
    /// A box whose parts have the wrong lengths: no key opens it.
    #[error(
        "the {0} is not a sealed half: a {KEY_LEN}-byte encapsulated key and a \
         {SEALED_HALF_LEN}-byte ciphertext are expected"
    )]
    Malformed(&'static str),
}

/// An X25519 public key: what boxes are sealed to. Its text form
/// (`Display`, `FromStr`) is 64 lowercase hexadecimal digits.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(<Kem as hpke::Kem>::PublicKey);

impl PublicKey {
    /// The key in `bytes`; any 32 bytes are accepted (a low-order point fails when used).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::PublicLength(bytes.len()))
    }

    /// The key's 32 bytes, as registered and published.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::signing::hex(&self.0.to_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        let bytes = crate::signing::unhex(text.trim())
            .filter(|b| b.len() == KEY_LEN)
            .ok_or(KeyError::PublicText)?;
        PublicKey::from_bytes(&bytes)
    }
}

/// An X25519 private key. Zeroed when dropped; its `Debug` shows only the public key.
pub struct PrivateKey(<Kem as hpke::Kem>::PrivateKey);

impl PrivateKey {
    /// A new key from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        PrivateKey(Kem::gen_keypair_with_rng(rng).0)
    }

    /// The key in `bytes` (clamped as RFC 7748 says, so any 32 bytes are a key).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map(PrivateKey)
            .map_err(|_| KeyError::PrivateLength(bytes.len()))
    }

    /// The key's 32 bytes, for its owner's key file only.
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes().into())
    }

    /// The public key that goes with it.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(Kem::sk_to_pk(&self.0))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public_key())
    }
}

/// One half of a data key (or, inside this module, a data key). Zeroed when dropped; never
/// printed.
pub struct KeyHalf(Zeroizing<[u8; KEY_LEN]>);

impl KeyHalf {
    fn random(rng: &mut impl CryptoRng) -> Self {
        let mut half = KeyHalf(Zeroizing::new([0; KEY_LEN]));
        rng.fill_bytes(half.0.as_mut());
        half
    }

    /// The XOR of two halves: a data key from its platform and provider halves.
    pub fn xor(&self, other: &KeyHalf) -> KeyHalf {
        let mut out = KeyHalf(Zeroizing::new([0; KEY_LEN]));
        for ((o, a), b) in out.0.iter_mut().zip(self.0.iter()).zip(other.0.iter()) {
            *o = a ^ b;
        }
        out
    }

    /// The half in `bytes`, as its keeper stored it; `None` unless exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(KeyHalf(Zeroizing::new(array)))
    }

    /// The half's bytes, for its keeper's file only.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHalf(..)")
    }
}

/// Which half of a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    /// Sealed to the timekeeper by the provider, released by the timekeeper.
    Platform,
    /// Kept by the provider (co-sign) or sealed to the timekeeper too (escrow).
    Provider,
}

impl Half {
    /// The half's name, as bindings and errors say it.
    pub fn name(self) -> &'static str {
        match self {
            Half::Platform => "platform half",
            Half::Provider => "provider half",
        }
    }
}

/// The release a half is sealed to a responder for: what the box is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release<'a> {
    /// The offer.
    pub offer_id: &'a str,
    /// The released responder.
    pub subscriber_id: &'a str,
    /// The release's credential id.
    pub credential_id: &'a str,
}

/// Each part's length (big-endian u32) then its bytes, after a label: unambiguous, so
/// ("a/b", "c") and ("a", "b/c") bind differently.
pub(crate) fn bound(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = label.as_bytes().to_vec();
    for part in parts {
        // Ids are far below 4 GiB; a longer one would be refused by Kafka long before.
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The parts [`bound`] joined after `label`, if `bytes` is exactly such a joining.
pub(crate) fn unbound<'a>(label: &str, bytes: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    let mut rest = bytes.strip_prefix(label.as_bytes())?;
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        parts.push(tail.get(..len)?);
        rest = tail.get(len..)?;
    }
    Some(parts)
}

fn to_timekeeper(half: Half) -> String {
    format!("tessera/v1 {} to the timekeeper", half.name())
}

fn to_responder(half: Half) -> String {
    format!("tessera/v1 {} to the responder", half.name())
}

fn release_aad(release: &Release<'_>) -> Vec<u8> {
    bound(
        "",
        &[
            release.offer_id.as_bytes(),
            release.subscriber_id.as_bytes(),
            release.credential_id.as_bytes(),
        ],
    )
}

/// Seals `plaintext` to `recipient` in HPKE's base mode ([`sender`]); `what` names the box if
/// the recipient's key cannot be sealed to.
fn seal(
    recipient: &PublicKey,
    info: &[u8],
    plaintext: &[u8],
    aad: &[u8],
    rng: &mut impl CryptoRng,
    what: &'static str,
) -> Result<SealedBox, SealError> {
    let recipient: [u8; KEY_LEN] = recipient.0.to_bytes().into();
    let (enc, ciphertext) =
        sender::seal(&recipient, info, plaintext, aad, rng).ok_or(SealError::Seal(what))?;
    Ok(SealedBox {
        enc: enc.to_vec(),
        ciphertext,
    })
}

fn open(
    mode: &OpModeR<'_, Kem>,
    recipient: &PrivateKey,
    sealed: &SealedBox,
    info: &[u8],
    aad: &[u8],
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc)
        .map_err(|_| SealError::Open(what))?;
    hpke::single_shot_open::<HpkeAead, Kdf, Kem>(
        mode,
        &recipient.0,
        &enc,
        info,
        &sealed.ciphertext,
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| SealError::Open(what))
}

fn open_half(
    recipient: &PrivateKey,
    sealed: &SealedBox,
    info: &[u8],
    aad: &[u8],
    half: Half,
) -> Result<KeyHalf, SealError> {
    let bytes = open(&OpModeR::Base, recipient, sealed, info, aad, half.name())?;
    KeyHalf::from_bytes(&bytes).ok_or(SealError::Open(half.name()))
}

/// The package cipher: a data key encrypts exactly one package, so a fixed nonce never repeats
/// under a key.
fn package_cipher(data_key: &KeyHalf) -> (ChaCha20Poly1305, Nonce) {
    let cipher = ChaCha20Poly1305::new_from_slice(data_key.0.as_ref())
        .expect("a data key is exactly the cipher's 32-byte key length");
    (cipher, Nonce::default())
}

/// An offer's sealed credential, and the half its provider keeps (co-sign custody).
#[derive(Debug)]
pub struct SealedOffer {
    /// What the offer carries.
    pub credential: SealedCredential,
    /// Co-sign custody: the provider half, to be kept on the provider's device and sealed to each
    /// released responder by its agent. `None` in escrow custody.
    pub kept_half: Option<KeyHalf>,
}

/// An offer's fresh data key, split, with its halves sealed as the offer's credential carries
/// them: what sealing its package needs, inline ([`seal_offer`]) or in chunks
/// ([`chunks::ChunkSealer`]).
pub struct OfferKey {
    /// The key the package is encrypted under.
    pub data_key: KeyHalf,
    custody: Custody,
    platform_half: SealedBox,
    escrow_half: Option<SealedBox>,
    kept_half: Option<KeyHalf>,
}

impl OfferKey {
    /// Draws a data key and its platform half from `rng`, and seals the platform half (and in
    /// escrow custody the provider half) to the timekeeper, bound to offer `offer_id`.
    pub fn new(
        offer_id: &str,
        custody: Custody,
        timekeeper: &PublicKey,
        rng: &mut impl CryptoRng,
    ) -> Result<OfferKey, SealError> {
        let data_key = KeyHalf::random(rng);
        let platform = KeyHalf::random(rng);
        let provider = data_key.xor(&platform);
        let seal_to_timekeeper = |half: &KeyHalf, which: Half, rng: &mut _| {
            let aad = bound("", &[offer_id.as_bytes()]);
            let info = to_timekeeper(which);
            seal(
                timekeeper,
                info.as_bytes(),
                half.as_bytes(),
                &aad,
                rng,
                which.name(),
            )
        };
        let platform_half = seal_to_timekeeper(&platform, Half::Platform, rng)?;
        let (escrow_half, kept_half) = match custody {
            Custody::Escrow => (
                Some(seal_to_timekeeper(&provider, Half::Provider, rng)?),
                None,
            ),
            Custody::CoSign => (None, Some(provider)),
        };
        Ok(OfferKey {
            data_key,
            custody,
            platform_half,
            escrow_half,
            kept_half,
        })
    }

    /// The sealed offer whose package is `package`: the target data sealed inline under
    /// [`OfferKey::data_key`], or a [`chunks::Manifest`].
    pub fn with_package(self, package: Vec<u8>) -> SealedOffer {
        SealedOffer {
            credential: SealedCredential {
                custody: self.custody,
                package,
                platform_half: self.platform_half,
                escrow_half: self.escrow_half,
            },
            kept_half: self.kept_half,
        }
    }
}

/// Compresses and encrypts `target_data` for offer `offer_id` under a fresh data key from `rng`,
/// splits the key, and seals the platform half (and in escrow custody the provider half) to the
/// timekeeper.
pub fn seal_offer(
    offer_id: &str,
    target_data: &[u8],
    custody: Custody,
    timekeeper: &PublicKey,
    rng: &mut impl CryptoRng,
) -> Result<SealedOffer, SealError> {
    if target_data.len() > MAX_TARGET_DATA_LEN {
        return Err(SealError::TargetDataTooLarge {
            len: target_data.len(),
            max: MAX_TARGET_DATA_LEN,
        });
    }
    let mut package = Zeroizing::new(miniz_oxide::deflate::compress_to_vec_zlib(target_data, 6));
    if package.len() + TAG_LEN > MAX_PACKAGE_LEN {
        return Err(SealError::PackageTooLarge {
            len: package.len() + TAG_LEN,
            max: MAX_PACKAGE_LEN,
        });
    }
    let key = OfferKey::new(offer_id, custody, timekeeper, rng)?;
    let (cipher, nonce) = package_cipher(&key.data_key);
    let aad = bound(PACKAGE_AAD, &[offer_id.as_bytes()]);
    let tag: Tag = cipher
        .encrypt_inout_detached(&nonce, &aad, package.as_mut_slice().into())
        .map_err(|_| SealError::PackageTooLarge {
            len: package.len(),
            max: MAX_PACKAGE_LEN,
        })?;
    let mut sealed_package = std::mem::take(&mut *package);
    sealed_package.extend_from_slice(&tag);
    Ok(key.with_package(sealed_package))
}

/// Opens a half the provider sealed to the timekeeper for offer `offer_id`.
pub fn open_from_provider(
    sealed: &SealedBox,
    half: Half,
    offer_id: &str,
    timekeeper: &PrivateKey,
) -> Result<KeyHalf, SealError> {
    let aad = bound("", &[offer_id.as_bytes()]);
    open_half(
        timekeeper,
        sealed,
        to_timekeeper(half).as_bytes(),
        &aad,
        half,
    )
}

/// Seals `half` to the responder of `release`, bound to it. Deterministic: the same half, release
/// and responder key always give the same box (see the module's Determinism).
pub fn seal_to_responder(
    half: &KeyHalf,
    which: Half,
    release: &Release<'_>,
    responder: &PublicKey,
) -> Result<SealedBox, SealError> {
    let info = to_responder(which);
    let aad = release_aad(release);
    let responder_key = responder.to_bytes();
    let context = bound("", &[info.as_bytes(), &aad, &responder_key]);
    let mut seed = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(SEED_SALT), half.as_bytes())
        .expand(&context, seed.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    let mut rng = ChaCha20Rng::from_seed(*seed);
    seal(
        responder,
        info.as_bytes(),
        half.as_bytes(),
        &aad,
        &mut rng,
        which.name(),
    )
}

/// Whether `sealed` has the shape of a sealed half: what anyone can check of it without the
/// recipient's key (an auditor without the timekeeper's, for one).
pub fn check_sealed_half(sealed: &SealedBox, which: Half) -> Result<(), SealError> {
    if sealed.enc.len() == KEY_LEN && sealed.ciphertext.len() == SEALED_HALF_LEN {
        Ok(())
    } else {
        Err(SealError::Malformed(which.name()))
    }
}

/// Opens a half sealed to the subscriber for `release`.
pub fn open_from_release(
    sealed: &SealedBox,
    which: Half,
    release: &Release<'_>,
    subscriber: &PrivateKey,
) -> Result<KeyHalf, SealError> {
    let info = to_responder(which);
    open_half(
        subscriber,
        sealed,
        info.as_bytes(),
        &release_aad(release),
        which,
    )
}

/// Decrypts and decompresses offer `offer_id`'s package with both halves of its data key.
pub fn open_package(
    package: &[u8],
    offer_id: &str,
    platform: &KeyHalf,
    provider: &KeyHalf,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    open_sealed_package(package, offer_id, &platform.xor(provider))
}

/// Decrypts and decompresses offer `offer_id`'s package sealed inline under `data_key`.
fn open_sealed_package(
    package: &[u8],
    offer_id: &str,
    data_key: &KeyHalf,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let Some(split) = package.len().checked_sub(TAG_LEN) else {
        return Err(SealError::Package);
    };
    let (body, tag) = package.split_at(split);
    let tag = Tag::try_from(tag).map_err(|_| SealError::Package)?;
    let (cipher, nonce) = package_cipher(data_key);
    let aad = bound(PACKAGE_AAD, &[offer_id.as_bytes()]);
    let mut compressed = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_inout_detached(&nonce, &aad, compressed.as_mut_slice().into(), &tag)
        .map_err(|_| SealError::Package)?;
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, MAX_TARGET_DATA_LEN)
        .map(Zeroizing::new)
        .map_err(|e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => SealError::Inflated {
                max: MAX_TARGET_DATA_LEN,
            },
            _ => SealError::Decompress,
        })
}

/// Opens both halves of a delivered credential with the recipient's private key: the data key
/// its package (inline, or in chunks) is sealed under.
pub fn open_data_key(
    delivered: &CredentialDelivered,
    subscriber: &PrivateKey,
) -> Result<KeyHalf, SealError> {
    let release = Release {
        offer_id: &delivered.offer_id,
        subscriber_id: &delivered.subscriber_id,
        credential_id: &delivered.credential_id,
    };
    let platform = open_from_release(
        &delivered.platform_half,
        Half::Platform,
        &release,
        subscriber,
    )?;
    let provider = open_from_release(
        &delivered.provider_half,
        Half::Provider,
        &release,
        subscriber,
    )?;
    Ok(platform.xor(&provider))
}

/// Opens a delivered credential sealed inline with the recipient's private key: both halves,
/// then the package.
pub fn open_credential(
    delivered: &CredentialDelivered,
    subscriber: &PrivateKey,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let data_key = open_data_key(delivered, subscriber)?;
    open_sealed_package(&delivered.package, &delivered.offer_id, &data_key)
}

/// Checks a credential's shape, which anyone can without a key: each sealed half an encapsulated
/// key and a sealed 32-byte half, the escrow half present exactly in escrow custody, a package at
/// least a tag long and within [`MAX_PACKAGE_LEN`], and a package that starts as a chunk
/// manifest a valid one. The timekeeper also checks that its halves open.
pub fn check_credential(credential: &SealedCredential) -> Result<(), String> {
    let shaped = |sealed: &SealedBox, half: Half| {
        if sealed.enc.len() == KEY_LEN && sealed.ciphertext.len() == SEALED_HALF_LEN {
            Ok(())
        } else {
            Err(format!(
                "the sealed {} is {}+{} bytes, not {KEY_LEN}+{SEALED_HALF_LEN}",
                half.name(),
                sealed.enc.len(),
                sealed.ciphertext.len()
            ))
        }
    };
    shaped(&credential.platform_half, Half::Platform)?;
    match (credential.custody, &credential.escrow_half) {
        (Custody::Escrow, Some(sealed)) => shaped(sealed, Half::Provider)?,
        (Custody::CoSign, None) => {}
        (Custody::Escrow, None) => {
            return Err("escrow custody without the provider half sealed to the timekeeper".into());
        }
        (Custody::CoSign, Some(_)) => {
            return Err(
                "co-sign custody, yet the provider half is sealed to the timekeeper".into(),
            );
        }
    }
    let len = credential.package.len();
    if len < TAG_LEN {
        return Err(format!("the package is {len} bytes, shorter than its tag"));
    }
    if len > MAX_PACKAGE_LEN {
        return Err(format!(
            "the package is {len} bytes, more than the {MAX_PACKAGE_LEN} an offer carries"
        ));
    }
    if let Some(Err(e)) = chunks::Manifest::of_package(&credential.package) {
        return Err(e.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
