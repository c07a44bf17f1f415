//! Ends whatever an earlier incarnation of this instance left open on the broker.
//!
//! `init_transactions` bumps the producer epoch and has the transaction coordinator abort the
//! previous incarnation's open transaction, but only on the partitions the coordinator knows that
//! transaction wrote. A broker that stops while a transaction is starting can forget partitions
//! it had already accepted records on (seen here: a broker restart left records of an old epoch
//! on `__consumer_offsets` and two changelog partitions, with the coordinator's state `Empty`).
//! Such a partition holds an open transaction nobody will end:
//!
//! - on the group's offsets partition, the committed offsets stay unstable and no instance can
//!   take up its partitions;
//! - on any other partition, the instance's next commit there writes a commit marker that ends
//!   the leftover too, so records of a transaction whose offsets were never committed become
//!   committed (a changelog restored from them would count inputs twice).
//!
//! So before it commits anything, the instance runs one transaction that touches every partition
//! it may write transactionally, registers the group's offsets partition, and aborts. The abort
//! markers carry the new epoch and end whatever the same producer left open there. Its records are
//! invisible to `read_committed` readers; the cost is one transaction per start.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::info;

use super::Topics;

/// The key of the swept records; their payload is empty.
const SWEEP_KEY: &str = "tessera.sweep";

/// Runs the aborted transaction over every partition of `topics`' outputs, dead letters and
/// changelog, and over the offsets partition of `group`.
pub(crate) fn sweep(
    producer: &BaseProducer,
    client: &ClientConfig,
    group: &str,
    topics: &Topics,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut written: Vec<&str> = topics.outputs.iter().map(String::as_str).collect();
    written.push(&topics.dead_letters);
    written.push(&topics.changelog);
    written.sort_unstable();
    written.dedup();
    let mut partitions = Vec::new();
    for topic in written {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("cannot read the partitions of {topic}"))?;
        let count = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        partitions.extend((0..count as i32).map(|p| (topic, p)));
    }
    producer
        .begin_transaction()
        .context("cannot begin the sweep transaction")?;
    for (topic, partition) in &partitions {
        producer
            .send(
                BaseRecord::<str, [u8]>::to(topic)
                    .partition(*partition)
                    .key(SWEEP_KEY),
            )
            .map_err(|(e, _)| e)
            .with_context(|| format!("cannot write the sweep record to {topic}/{partition}"))?;
    }
    // A consumer that never joins the group: generation -1, no member id and no static instance
    // id, which the group coordinator accepts in a transactional offset commit while the group has
    // live members. These offsets are never committed; sending them is what adds the group's
    // offsets partition to the transaction, so the abort ends a leftover there too.
    let outsider: BaseConsumer = client
        .clone()
        .set("group.id", group)
        .create()
        .context("cannot create the sweep's group handle")?;
    let metadata = outsider
        .group_metadata()
        .context("no consumer group metadata for the sweep")?;
    let mut offsets = TopicPartitionList::new();
    let input = topics
        .partitioned()
        .first()
        .copied()
        .unwrap_or(&topics.inputs[0]);
    offsets.add_partition_offset(input, 0, Offset::Offset(0))?;
    let registered = producer.send_offsets_to_transaction(&offsets, &metadata, timeout);
    // The abort purges what is still queued, and a record purged before librdkafka added its
    // partition to the transaction would leave that partition unswept.
    let delivered = super::deliver_all(producer, started + timeout);
    super::abort(producer, timeout).context("cannot abort the sweep transaction")?;
    registered.context("cannot register the group's offsets partition in the sweep")?;
    anyhow::ensure!(
        delivered,
        "the sweep records were not delivered within {timeout:?}"
    );
    metrics::histogram!("tessera_sweep_seconds").record(started.elapsed().as_secs_f64());
    info!(
        partitions = partitions.len() + 1,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "swept partitions this instance writes"
    );
    Ok(())
}
