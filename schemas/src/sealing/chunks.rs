//! Packages too large for their offer's record: the target data sealed in chunks on
//! `tessera.packages`, and in the offer's `package` field a [`Manifest`] naming them.
//!
//! Each chunk of [`CHUNK_LEN`] bytes of target data (the last one shorter) is encrypted with
//! ChaCha20-Poly1305 under a chunk key derived from the data key (HKDF-SHA256, so no nonce is
//! ever shared with an inline package under the same key), its index as nonce, and in its
//! associated data the offer id, the index and whether it is the last chunk. So a chunk moved to
//! another place, another offer, repeated, dropped, or a package cut short, does not open: the
//! STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár.
//!
//! The key is shared by every recipient, so the AEAD alone would let one recipient forge chunks
//! for the others. The manifest therefore carries a SHA-256 over every sealed chunk in order, and
//! the provider's package signature (`crate::identity::sign_package`) covers the manifest; each
//! chunk record is also signed by the provider, so readers skip a forged one before opening it.
//!
//! Chunks are not compressed: what is this large (audio, video, archives) is compressed already,
//! and streaming stays one pass in bounded memory.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{KEY_LEN, KeyHalf, SealError, TAG_LEN, bound};

/// Bytes of target data per chunk: half of Kafka's default record limit, so a chunk's record
/// fits with room for its key, headers and batch overhead.
pub const CHUNK_LEN: usize = 512 * 1024;

/// How a manifest starts: a package that does not start so is sealed inline.
pub const MAGIC: &[u8] = b"tessera/v1 chunks";

/// Bytes of an encoded manifest.
pub const MANIFEST_LEN: usize = MAGIC.len() + 8 + 8 + 4 + 8 + 32;

const CHUNK_KEY_INFO: &[u8] = b"tessera/v1 package chunk key";
const CHUNK_AAD: &str = "tessera/v1 package chunk";
const DIGEST_LABEL: &[u8] = b"tessera/v1 package chunks digest";

/// What an offer's package says of its chunks, in place of the sealed target data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// How many chunks there are (at least one).
    pub chunks: u64,
    /// Bytes of target data they hold together.
    pub bytes: u64,
    /// The partition of `tessera.packages` they were written to.
    pub partition: i32,
    /// The offset of the first chunk there, where a reader starts.
    pub first_offset: i64,
    /// SHA-256 over every sealed chunk in order (see [`ChunkSealer`]).
    pub digest: [u8; 32],
}

impl Manifest {
    /// The manifest as an offer's package carries it.
    pub fn to_package(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MANIFEST_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.chunks.to_be_bytes());
        out.extend_from_slice(&self.bytes.to_be_bytes());
        out.extend_from_slice(&self.partition.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.digest);
        out
    }

    /// The manifest a package holds: `None` for a package sealed inline, an error for one that
    /// starts as a manifest but is not one.
    pub fn of_package(package: &[u8]) -> Option<Result<Manifest, SealError>> {
        let body = package.strip_prefix(MAGIC)?;
        Some(Self::read(body).ok_or(SealError::Manifest))
    }

    fn read(body: &[u8]) -> Option<Manifest> {
        if body.len() != MANIFEST_LEN - MAGIC.len() {
            return None;
        }
        let (chunks, rest) = body.split_first_chunk::<8>()?;
        let (bytes, rest) = rest.split_first_chunk::<8>()?;
        let (partition, rest) = rest.split_first_chunk::<4>()?;
        let (first_offset, digest) = rest.split_first_chunk::<8>()?;
        let manifest = Manifest {
            chunks: u64::from_be_bytes(*chunks),
            bytes: u64::from_be_bytes(*bytes),
            partition: i32::from_be_bytes(*partition),
            first_offset: i64::from_be_bytes(*first_offset),
            digest: digest.try_into().ok()?,
        };
        // Every chunk but the last is full, and the last holds at least a byte unless the
        // package is one empty chunk.
        let full = manifest
            .chunks
            .checked_sub(1)?
            .checked_mul(CHUNK_LEN as u64)?;
        let fits = manifest.bytes > full && manifest.bytes <= full + CHUNK_LEN as u64
            || manifest.chunks == 1 && manifest.bytes == 0;
        (fits && manifest.partition >= 0 && manifest.first_offset >= 0).then_some(manifest)
    }
}

/// The cipher and position shared by sealing and opening.
struct Stream {
    cipher: ChaCha20Poly1305,
    aad_id: Vec<u8>,
    next: u64,
    digest: Sha256,
    bytes: u64,
}

impl Stream {
    fn new(data_key: &KeyHalf, offer_id: &str) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        Hkdf::<Sha256>::new(None, data_key.as_bytes())
            .expand(CHUNK_KEY_INFO, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cipher = ChaCha20Poly1305::new_from_slice(key.as_ref())
            .expect("a chunk key is exactly the cipher's 32-byte key length");
        let mut digest = Sha256::new();
        digest.update(DIGEST_LABEL);
        Stream {
            cipher,
            aad_id: offer_id.as_bytes().to_vec(),
            next: 0,
            digest,
            bytes: 0,
        }
    }

    fn nonce(index: u64) -> Nonce {
        let mut nonce = Nonce::default();
        nonce[4..].copy_from_slice(&index.to_be_bytes());
        nonce
    }

    fn aad(&self, index: u64, last: bool) -> Vec<u8> {
        bound(
            CHUNK_AAD,
            &[&self.aad_id, &index.to_be_bytes(), &[u8::from(last)]],
        )
    }

    fn absorb(&mut self, sealed: &[u8]) {
        self.digest.update((sealed.len() as u64).to_be_bytes());
        self.digest.update(sealed);
        self.next += 1;
    }
}

/// Seals an offer's target data chunk by chunk, in order, and makes its [`Manifest`].
pub struct ChunkSealer {
    stream: Stream,
    ended: bool,
}

impl ChunkSealer {
    /// A sealer for offer `offer_id` under its data key.
    pub fn new(data_key: &KeyHalf, offer_id: &str) -> Self {
        ChunkSealer {
            stream: Stream::new(data_key, offer_id),
            ended: false,
        }
    }

    /// The index the next chunk gets.
    pub fn next_index(&self) -> u64 {
        self.stream.next
    }

    /// Seals the next chunk, at most [`CHUNK_LEN`] bytes; `last` for the final one. Returns the
    /// sealed bytes, tag included.
    pub fn seal(&mut self, chunk: &[u8], last: bool) -> Result<Vec<u8>, SealError> {
        if self.ended || chunk.len() > CHUNK_LEN || !last && chunk.len() < CHUNK_LEN {
            return Err(SealError::ChunkLength);
        }
        let index = self.stream.next;
        let aad = self.stream.aad(index, last);
        let mut sealed = chunk.to_vec();
        let tag = self
            .stream
            .cipher
            .encrypt_inout_detached(&Stream::nonce(index), &aad, sealed.as_mut_slice().into())
            .map_err(|_| SealError::ChunkLength)?;
        sealed.extend_from_slice(&tag);
        self.stream.absorb(&sealed);
        self.stream.bytes += chunk.len() as u64;
        self.ended = last;
        Ok(sealed)
    }

    /// The manifest, once the last chunk is sealed, for chunks written from `first_offset` of
    /// `partition`.
    pub fn finish(self, partition: i32, first_offset: i64) -> Result<Manifest, SealError> {
        if !self.ended {
            return Err(SealError::ChunkLength);
        }
        Ok(Manifest {
            chunks: self.stream.next,
            bytes: self.stream.bytes,
            partition,
            first_offset,
            digest: self.stream.digest.finalize().into(),
        })
    }
}

/// Opens an offer's chunks in order against its [`Manifest`].
pub struct ChunkOpener {
    stream: Stream,
    manifest: Manifest,
}

impl ChunkOpener {
    /// An opener for offer `offer_id`'s chunks under its data key.
    pub fn new(data_key: &KeyHalf, offer_id: &str, manifest: Manifest) -> Self {
        ChunkOpener {
            stream: Stream::new(data_key, offer_id),
            manifest,
        }
    }

    /// The index of the chunk to open next; [`Manifest::chunks`] once all are open.
    pub fn next_index(&self) -> u64 {
        self.stream.next
    }

    /// Whether every chunk is open.
    pub fn is_done(&self) -> bool {
        self.stream.next == self.manifest.chunks
    }

    /// Opens chunk `index`, which must be the next one.
    pub fn open(&mut self, index: u64, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let expected = self.stream.next;
        if index != expected || self.is_done() {
            return Err(SealError::ChunkOrder { expected, index });
        }
        let split = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(SealError::Chunk(index))?;
        let (body, tag) = sealed.split_at(split);
        let tag = Tag::try_from(tag).map_err(|_| SealError::Chunk(index))?;
        let last = index + 1 == self.manifest.chunks;
        let aad = self.stream.aad(index, last);
        let mut chunk = Zeroizing::new(body.to_vec());
        self.stream
            .cipher
            .decrypt_inout_detached(
                &Stream::nonce(index),
                &aad,
                chunk.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| SealError::Chunk(index))?;
        self.stream.absorb(sealed);
        self.stream.bytes += chunk.len() as u64;
        Ok(chunk)
    }

    /// Checks, once every chunk is open, that they are the ones the manifest names.
    pub fn finish(self) -> Result<u64, SealError> {
        if !self.is_done() {
            return Err(SealError::ChunkOrder {
                expected: self.stream.next,
                index: self.manifest.chunks,
            });
        }
        let digest: [u8; 32] = self.stream.digest.finalize().into();
        if digest != self.manifest.digest || self.stream.bytes != self.manifest.bytes {
            return Err(SealError::ChunksDigest);
        }
        Ok(self.stream.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> KeyHalf {
        KeyHalf::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    /// `data` sealed for offer `o`, as (sealed chunks, manifest).
    fn sealed(data: &[u8]) -> (Vec<Vec<u8>>, Manifest) {
        let mut sealer = ChunkSealer::new(&key(1), "o");
        let mut chunks: Vec<&[u8]> = data.chunks(CHUNK_LEN).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        let out = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| sealer.seal(c, i + 1 == n).unwrap())
            .collect();
        (out, sealer.finish(2, 40).unwrap())
    }

    fn open_all(chunks: &[Vec<u8>], manifest: &Manifest) -> Result<Vec<u8>, SealError> {
        let mut opener = ChunkOpener::new(&key(1), "o", manifest.clone());
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            out.extend_from_slice(&opener.open(i as u64, chunk)?);
        }
        opener.finish()?;
        Ok(out)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn chunks_open_to_the_data_and_the_manifest_round_trips() {
        for len in [0, 1, CHUNK_LEN, CHUNK_LEN + 1, 3 * CHUNK_LEN - 5] {
            let data = data(len);
            let (chunks, manifest) = sealed(&data);
            assert_eq!(chunks.len() as u64, manifest.chunks);
            assert_eq!(manifest.bytes, len as u64);
            assert_eq!(open_all(&chunks, &manifest).unwrap(), data);
            let package = manifest.to_package();
            assert_eq!(package.len(), MANIFEST_LEN);
            assert_eq!(Manifest::of_package(&package), Some(Ok(manifest)));
        }
        assert_eq!(Manifest::of_package(b"inline ciphertext"), None);
    }

    #[test]
    fn a_missing_reordered_altered_or_cut_chunk_is_detected() {
        let (chunks, manifest) = sealed(&data(3 * CHUNK_LEN - 5));

        let missing = [chunks[0].clone(), chunks[2].clone()];
        let mut opener = ChunkOpener::new(&key(1), "o", manifest.clone());
        opener.open(0, &missing[0]).unwrap();
        assert_eq!(
            opener.open(2, &missing[1]).unwrap_err(),
            SealError::ChunkOrder {
                expected: 1,
                index: 2
            }
        );
        // Sent under the wrong index, a chunk does not open.
        assert_eq!(
            open_all(&missing, &manifest).unwrap_err(),
            SealError::Chunk(1)
        );

        let swapped = [chunks[1].clone(), chunks[0].clone(), chunks[2].clone()];
        assert_eq!(
            open_all(&swapped, &manifest).unwrap_err(),
            SealError::Chunk(0)
        );

        let mut altered = chunks.clone();
        altered[1][10] ^= 1;
        assert_eq!(
            open_all(&altered, &manifest).unwrap_err(),
            SealError::Chunk(1)
        );

        // Cut after a full chunk: the manifest says three, and the second is no last chunk.
        let cut = Manifest {
            chunks: 2,
            bytes: 2 * CHUNK_LEN as u64,
            ..manifest.clone()
        };
        assert_eq!(
            open_all(&chunks[..2], &cut).unwrap_err(),
            SealError::Chunk(1)
        );
        let mut opener = ChunkOpener::new(&key(1), "o", manifest.clone());
        opener.open(0, &chunks[0]).unwrap();
        assert!(matches!(
            opener.finish().unwrap_err(),
            SealError::ChunkOrder { .. }
        ));
    }

    #[test]
    fn chunks_of_another_offer_or_key_or_a_forged_manifest_do_not_pass() {
        let (chunks, manifest) = sealed(&data(CHUNK_LEN + 3));
        let mut other_offer = ChunkOpener::new(&key(1), "p", manifest.clone());
        assert_eq!(
            other_offer.open(0, &chunks[0]).unwrap_err(),
            SealError::Chunk(0)
        );
        let mut other_key = ChunkOpener::new(&key(2), "o", manifest.clone());
        assert_eq!(
            other_key.open(0, &chunks[0]).unwrap_err(),
            SealError::Chunk(0)
        );
        // A recipient with the key re-seals a chunk of its own: it opens, but the digest the
        // provider signed does not match.
        let mut forger = ChunkSealer::new(&key(1), "o");
        let forged = [
            forger.seal(&[0; CHUNK_LEN], false).unwrap(),
            chunks[1].clone(),
        ];
        assert_eq!(
            open_all(&forged, &manifest).unwrap_err(),
            SealError::ChunksDigest
        );
    }

    #[test]
    fn malformed_manifests_and_chunk_lengths_are_refused() {
        let (_, manifest) = sealed(&data(10));
        let mut package = manifest.to_package();
        package.pop();
        assert_eq!(
            Manifest::of_package(&package),
            Some(Err(SealError::Manifest))
        );
        let overfull = Manifest {
            bytes: CHUNK_LEN as u64 + 1,
            ..manifest.clone()
        };
        assert_eq!(
            Manifest::of_package(&overfull.to_package()),
            Some(Err(SealError::Manifest))
        );
        let mut sealer = ChunkSealer::new(&key(1), "o");
        assert_eq!(
            sealer.seal(&[0; 10], false).unwrap_err(),
            SealError::ChunkLength
        );
        assert_eq!(
            sealer.seal(&vec![0; CHUNK_LEN + 1], true).unwrap_err(),
            SealError::ChunkLength
        );
    }
}
