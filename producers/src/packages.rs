//! Packages in chunks (`tessera_contract::sealing::chunks`): the provider streams its target data
//! to `tessera.packages` as sealed, signed chunks before the offer that names them, and a
//! recipient streams them back, checking and opening each as it comes. Neither side holds more
//! than a few chunks in memory, whatever the size of the target data.

use std::collections::VecDeque;
use std::io::{Read, Write};

use rdkafka::consumer::Consumer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tessera_contract::sealing::SealError;
use tessera_contract::sealing::chunks::{CHUNK_LEN, ChunkOpener, ChunkSealer, Manifest};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::PACKAGES;
use tessera_contract::{Event, PackageChunk};
use tracing::warn;

use crate::client::{ClientError, TIMEOUT, Writer, event_id, kafka, next_record, reader};

/// Chunks handed to the producer and not yet acknowledged, at most: enough to keep the broker
/// busy, few enough to bound memory (each is [`CHUNK_LEN`] bytes and some).
const IN_FLIGHT: usize = 8;

/// Why a package could not be written or read.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum PackageError {
    /// Kafka could not be reached or used.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A chunk could not be sealed or opened, or the chunks are not the manifest's.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The target data could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The next chunk did not come in time.
    #[error(
        "chunk {index} of offer {offer_id}'s package did not arrive within {TIMEOUT:?} on \
         {topic}/{partition}"
    )]
    Missing {
        offer_id: String,
        index: u64,
        topic: String,
        partition: i32,
    },
}

/// Fills `buffer` from `data` as far as it goes; how many bytes it holds.
fn fill(data: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match data.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes the target data `data` yields as offer `offer_id`'s chunks, sealed by `sealer` and
/// signed by `signer`, to `tessera.packages` of the installation `prefix` names; `progress`
/// hears the bytes written so far. Returns the manifest for the offer's package.
pub async fn write_chunks(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    data: &mut impl Read,
    mut sealer: ChunkSealer,
    signer: &SigningKey,
    mut progress: impl FnMut(u64),
) -> Result<Manifest, PackageError> {
    let read_error = |source| PackageError::Io {
        what: "cannot read the target data".into(),
        source,
    };
    // One chunk ahead, to know whether the current one is the last.
    let mut current = vec![0; CHUNK_LEN];
    let mut len = fill(data, &mut current).map_err(read_error)?;
    let mut next = vec![0; CHUNK_LEN];
    let mut pending = VecDeque::new();
    let mut first = None;
    let mut written = 0u64;
    loop {
        let next_len = if len == CHUNK_LEN {
            fill(data, &mut next).map_err(read_error)?
        } else {
            0
        };
        let last = next_len == 0;
        let chunk = PackageChunk {
            event_id: event_id(),
            offer_id: offer_id.to_string(),
            index: sealer.next_index() as i64,
            sealed: sealer.seal(&current[..len], last)?,
        };
        pending.push_back(writer.enqueue_as(
            signer,
            prefix,
            PACKAGES,
            offer_id,
            &Event::PackageChunk(chunk),
        )?);
        written += len as u64;
        if pending.len() >= IN_FLIGHT || last {
            while pending.len() >= IN_FLIGHT || last && !pending.is_empty() {
                let landed = pending.pop_front().expect("not empty").written().await?;
                first.get_or_insert(landed);
            }
            progress(written);
        }
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        len = next_len;
    }
    let first = first.expect("at least one chunk is written");
    Ok(sealer.finish(first.partition, first.offset)?)
}

/// Reads offer `offer_id`'s chunks from where `manifest` says they start, skips each record not
/// signed with `provider` (the key the offer carries; `provider_id` names it in the log), opens
/// the rest in order with `opener`, and writes the target data to `out` as it goes; `progress`
/// hears the bytes written so far. Returns how many bytes the target data has. An error leaves
/// in `out` what was written before it: write to a temporary file and keep it only on success.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument named there"
)]
pub async fn read_chunks(
    config: &ClientConfig,
    prefix: &str,
    offer_id: &str,
    manifest: &Manifest,
    provider: (&VerifyingKey, &str),
    mut opener: ChunkOpener,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64, PackageError> {
    let topic = PACKAGES.full_name(prefix);
    let mut config = config.clone();
    // librdkafka prefetches up to 64 MiB per partition by default; 16 MiB (some 30 chunks) keep
    // the fetch busy, and memory stays flat whatever the package's size. A full queue pauses
    // fetching for fetch.queue.backoff.ms, a second by default: an eternity at this size.
    config
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.max.bytes", "8388608")
        .set("max.partition.fetch.bytes", "4194304")
        .set("fetch.queue.backoff.ms", "10");
    let consumer = reader(&config, false)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(
            &topic,
            manifest.partition,
            Offset::Offset(manifest.first_offset),
        )
        .map_err(kafka(format!(
            "cannot assign {topic}/{}",
            manifest.partition
        )))?;
    consumer
        .assign(&assignment)
        .map_err(kafka(format!("cannot assign {topic}")))?;
    let (provider, provider_id) = provider;
    let mut written = 0u64;
    while !opener.is_done() {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let Some(record) = next_record(&consumer, Some(deadline), &topic).await? else {
            return Err(PackageError::Missing {
                offer_id: offer_id.to_string(),
                index: opener.next_index(),
                topic,
                partition: manifest.partition,
            });
        };
        // The partition holds other offers' chunks too.
        if record.key.as_deref() != Some(offer_id) {
            continue;
        }
        let Some(Ok(Event::PackageChunk(chunk))) = record.event else {
            continue;
        };
        if chunk.offer_id != offer_id {
            continue;
        }
        if let Err(e) = provider.verify_record(PACKAGES.name, &record.signed, provider_id) {
            warn!(
                "skipping the chunk at {topic}/{}@{}: {e}",
                record.partition, record.offset
            );
            continue;
        }
        let index = u64::try_from(chunk.index).unwrap_or(u64::MAX);
        // A provider's retry may have written a chunk twice; the first copy counts.
        if index < opener.next_index() {
            continue;
        }
        let data = opener.open(index, &chunk.sealed)?;
        out.write_all(&data).map_err(|source| PackageError::Io {
            what: "cannot write the target data".into(),
            source,
        })?;
        written += data.len() as u64;
        progress(written);
    }
    out.flush().map_err(|source| PackageError::Io {
        what: "cannot write the target data".into(),
        source,
    })?;
    Ok(opener.finish()?)
}
