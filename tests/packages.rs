//! Packages in chunks on the real broker: a 200 MiB payload streams out and back byte for byte,
//! and a reader skips chunks someone else signed and names a missing or altered one.

mod support;

use std::io::{Read, Write};

use sha2::{Digest, Sha256};
use tessera::demo::Processors;
use tessera_contract::sealing::chunks::{CHUNK_LEN, ChunkOpener, ChunkSealer, Manifest};
use tessera_contract::sealing::{KeyHalf, PrivateKey, SealError};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::PACKAGES;
use tessera_contract::topics::REQUESTS;
use tessera_contract::{Event, PackageChunk};
use tessera_producers::client::{Writer, Written, event_id};
use tessera_producers::packages::{PackageError, read_chunks, write_chunks};

/// `len` bytes that are not all alike, made as they are read so no copy is ever held whole.
struct Generated {
    left: u64,
    state: u64,
}

impl Read for Generated {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = buffer.len().min(self.left as usize);
        for byte in &mut buffer[..n] {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *byte = (self.state >> 56) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A writer that keeps only the SHA-256 and the length of what it is given.
#[derive(Default)]
struct Hashed {
    digest: Sha256,
    len: u64,
}

impl Write for Hashed {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.digest.update(data);
        self.len += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn key(byte: u8) -> KeyHalf {
    KeyHalf::from_bytes(&[byte; 32]).unwrap()
}

fn signer(seed: u8) -> SigningKey {
    SigningKey::derive(&PrivateKey::from_bytes(&[seed; 32]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_payload_streams_out_and_back_byte_for_byte() {
    let kafka = support::installation(2).await;
    let config = kafka.client_config().unwrap();
    let writer = Writer::new(&config).unwrap();
    let provider = signer(1);
    const LEN: u64 = 200 * 1024 * 1024;

    let mut sent = Hashed::default();
    let mut tee = TeeReader {
        inner: Generated {
            left: LEN,
            state: 7,
        },
        copy: &mut sent,
    };
    let manifest = write_chunks(
        &writer,
        &kafka.topic_prefix,
        "big",
        &mut tee,
        ChunkSealer::new(&key(3), "big"),
        &provider,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(manifest.bytes, LEN);
    assert_eq!(manifest.chunks, LEN.div_ceil(CHUNK_LEN as u64));

    let mut received = Hashed::default();
    let read = read_chunks(
        &config,
        &kafka.topic_prefix,
        "big",
        &manifest,
        (&provider.verifying_key(), "P"),
        ChunkOpener::new(&key(3), "big", manifest.clone()),
        &mut received,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(read, LEN);
    assert_eq!(received.len, LEN);
    assert_eq!(received.digest.finalize(), sent.digest.finalize());
}

/// Passes reads through and copies what it reads into `copy`.
struct TeeReader<'a, R> {
    inner: R,
    copy: &'a mut Hashed,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.copy.write_all(&buffer[..n])?;
        Ok(n)
    }
}

/// Writes chunk `index` of offer `o` holding `sealed`, signed by `by`.
async fn chunk(
    writer: &Writer,
    prefix: &str,
    index: i64,
    sealed: Vec<u8>,
    by: &SigningKey,
) -> Written {
    let event = Event::PackageChunk(PackageChunk {
        event_id: event_id(),
        offer_id: "o".into(),
        index,
        sealed,
    });
    writer
        .write_as(by, prefix, PACKAGES, "o", &event)
        .await
        .unwrap()
}

/// Reads offer `o`'s chunks as the provider `P` signed them.
async fn read(
    kafka: &tessera::kafka::KafkaArgs,
    manifest: &Manifest,
) -> Result<Vec<u8>, PackageError> {
    let mut out = Vec::new();
    read_chunks(
        &kafka.client_config().unwrap(),
        &kafka.topic_prefix,
        "o",
        manifest,
        (&signer(1).verifying_key(), "P"),
        ChunkOpener::new(&key(3), "o", manifest.clone()),
        &mut out,
        |_| {},
    )
    .await
    .map(|_| out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_chunks_are_skipped_and_a_missing_or_altered_one_is_named() {
    let kafka = support::installation(1).await;
    let prefix = &kafka.topic_prefix;
    let writer = Writer::new(&kafka.client_config().unwrap()).unwrap();
    let (provider, stranger) = (signer(1), signer(2));
    let data: Vec<u8> = (0..2 * CHUNK_LEN + 10).map(|i| (i % 253) as u8).collect();
    let mut sealer = ChunkSealer::new(&key(3), "o");
    let sealed: Vec<Vec<u8>> = data
        .chunks(CHUNK_LEN)
        .enumerate()
        .map(|(i, c)| sealer.seal(c, i == 2).unwrap())
        .collect();

    // The provider's chunks with a stranger's in between: a chunk 1 signed by the stranger that
    // would open (it is the real one's bytes) if the reader believed it, and an altered one.
    let first = chunk(&writer, prefix, 0, sealed[0].clone(), &provider).await;
    chunk(&writer, prefix, 1, sealed[1].clone(), &stranger).await;
    let mut altered = sealed[1].clone();
    altered[7] ^= 1;
    chunk(&writer, prefix, 1, altered.clone(), &stranger).await;
    chunk(&writer, prefix, 1, sealed[1].clone(), &provider).await;
    chunk(&writer, prefix, 2, sealed[2].clone(), &provider).await;
    let manifest = sealer.finish(first.partition, first.offset).unwrap();
    assert_eq!(read(&kafka, &manifest).await.unwrap(), data);

    // Chunk 1 never written: chunk 2 comes next, and the reader says which one is missing.
    let start = chunk(&writer, prefix, 0, sealed[0].clone(), &provider).await;
    chunk(&writer, prefix, 2, sealed[2].clone(), &provider).await;
    let gap = Manifest {
        first_offset: start.offset,
        ..manifest.clone()
    };
    let error = read(&kafka, &gap).await.unwrap_err();
    assert!(
        matches!(
            error,
            PackageError::Seal(SealError::ChunkOrder {
                expected: 1,
                index: 2
            })
        ),
        "{error}"
    );

    // Altered, even under the provider's own signature, a chunk does not open in its place.
    let start = chunk(&writer, prefix, 0, sealed[0].clone(), &provider).await;
    chunk(&writer, prefix, 1, altered, &provider).await;
    chunk(&writer, prefix, 2, sealed[2].clone(), &provider).await;
    let tampered = Manifest {
        first_offset: start.offset,
        ..manifest.clone()
    };
    let error = read(&kafka, &tampered).await.unwrap_err();
    assert!(
        matches!(error, PackageError::Seal(SealError::Chunk(1))),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("chunk 1 of the package does not decrypt"),
        "{error}"
    );
}

/// Runs `tessera args` in `world`'s directory, the platform's keys pinned by fingerprint.
fn tessera(
    world: &support::World,
    platform: (&VerifyingKey, &VerifyingKey),
    args: &[&str],
) -> std::process::Output {
    let (timekeeper, delivery) = platform;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(world.dir.path())
        .env("TESSERA_BROKERS", support::brokers())
        .env("TESSERA_TOPIC_PREFIX", world.prefix())
        .env("TESSERA_TIMEKEEPER_FINGERPRINT", timekeeper.fingerprint())
        .env("TESSERA_DELIVERY_FINGERPRINT", delivery.fingerprint())
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payload_in_chunks_is_published_released_and_opened_from_the_command_line() {
    let (world, timekeeper_key) = support::World::new(2).await;
    let state = world.dir.path().join("state");
    let timekeeper = SigningKey::derive(&timekeeper_key).verifying_key();
    let processors = Processors::start(&world.kafka, &state, timekeeper_key).unwrap();
    let platform = (&timekeeper, &processors.delivery);
    // Random bytes: 3 MiB and a few, so six full chunks and a short last one.
    let mut payload = vec![0u8; 3 * CHUNK_LEN * 2 + 77];
    let mut generated = Generated {
        left: payload.len() as u64,
        state: 11,
    };
    generated.read_exact(&mut payload).unwrap();
    std::fs::write(world.dir.path().join("video.bin"), &payload).unwrap();
    let key_file = world.dir.path().join("B1.key");
    support::register(&world.writer, world.prefix(), "B1", &key_file).await;

    let flags = [
        "--offer-id",
        "video",
        "--custody",
        "escrow",
        "--payload",
        "video.bin",
    ];
    let published = tessera(&world, platform, &support::publish_doc_x_args(&flags));
    let published = String::from_utf8(published.stdout).unwrap();
    assert!(
        published.contains(&format!(
            "  payload: {} bytes, sealed in 7 chunks on ",
            payload.len()
        )),
        "{published}"
    );
    world.wait_for(REQUESTS, "video", 1).await;
    let respond = ["subscriber", "respond", "video", "--id", "B1", "--key-file"];
    tessera(&world, platform, &[&respond[..], &["B1.key"]].concat());
    world.credentials("B1", 1).await;

    let open = [
        "subscriber",
        "open",
        "--id",
        "B1",
        "--offer",
        "video",
        "--key-file",
        "B1.key",
        "--out",
        "opened.bin",
    ];
    let opened = String::from_utf8(tessera(&world, platform, &open).stdout).unwrap();
    assert!(
        opened.contains(&format!(
            "opened: {} bytes from 7 chunks written to opened.bin",
            payload.len()
        )),
        "{opened}"
    );
    assert_eq!(
        std::fs::read(world.dir.path().join("opened.bin")).unwrap(),
        payload
    );
    assert!(
        !world.dir.path().join(".opened.bin.tessera-part").exists(),
        "the part file is renamed into place"
    );
    processors.stop().await.unwrap();
}
