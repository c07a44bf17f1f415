//! Hears partition assignments and revocations from the consumer group.
//!
//! librdkafka calls this inside `poll`, on the runtime's own thread. A revocation aborts the open
//! transaction before the partitions are given up, so no other instance can see half of a batch;
//! the runtime loop then rewinds its tasks and picks up the new assignment.
//!
//! An assignment is made with explicit offsets: the group's committed offsets, read here until
//! they are stable (KIP-447: offsets of a transaction still being aborted are not). Leaving
//! librdkafka to look them up itself stalled partitions for minutes after an instance was killed
//! mid-transaction: its lookup raced the fencing abort and some partitions never started
//! fetching.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::BaseProducer;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

/// A change of the partitions this instance owns.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Partitions now owned, with every input partition's committed offset.
    Assigned {
        partitions: Vec<i32>,
        committed: TopicPartitionList,
    },
    Revoked {
        partitions: Vec<i32>,
        aborted: bool,
    },
    /// The assignment could not be taken up; the instance must restart.
    Failed(String),
}

pub(crate) struct Context {
    pub producer: Arc<BaseProducer>,
    pub transaction_open: Arc<AtomicBool>,
    pub changes: Mutex<Vec<Change>>,
    pub timeout: Duration,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    partitions.sort_unstable();
    partitions.dedup();
    partitions
}

/// The committed offsets of `tpl`, retried while the group reports them unstable or the
/// coordinator is unavailable. Partitions without a committed offset start at the beginning.
///
/// Gives up after a minute: falling back to librdkafka's own lookup is what stalled partitions
/// before, and this runs inside `poll`, so waiting longer only wedges the instance. A restart
/// (static membership brings it back to the same partitions) is the clean way out.
fn stable_committed(
    consumer: &BaseConsumer<Context>,
    tpl: &TopicPartitionList,
) -> Result<TopicPartitionList, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(committed) if committed.elements().iter().all(|e| e.error().is_ok()) => {
                let mut explicit = TopicPartitionList::new();
                for element in committed.elements() {
                    let offset = match element.offset() {
                        Offset::Offset(n) => Offset::Offset(n),
                        _ => Offset::Beginning,
                    };
                    explicit
                        .add_partition_offset(element.topic(), element.partition(), offset)
                        .expect("valid offset");
                }
                return Ok(explicit);
            }
            Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(committed) => {
                return Err(format!(
                    "the group's committed offsets are still unstable after 60 s ({committed:?}): \
                     a transaction holds them open. Every instance aborts what its own earlier \
                     incarnations left open when it starts, so this one belongs to a producer \
                     that no longer runs (an instance id no longer in use?); find it with \
                     `kafka-transactions.sh --bootstrap-server HOST:PORT find-hanging --broker-id N` \
                     and end it with `kafka-transactions.sh ... abort --topic T --partition P \
                     --producer-id ID --producer-epoch E --coordinator-epoch C`"
                ));
            }
            Err(e) => return Err(format!("cannot read committed offsets for 60 s: {e}")),
        }
    }
}

impl ClientContext for Context {
    /// librdkafka's periodic statistics: exported as per-partition consumer lag.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(
                        "tessera_consumer_lag_records",
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let committed = match stable_committed(consumer, tpl) {
                    Ok(committed) => committed,
                    Err(reason) => {
                        self.changes
                            .lock()
                            .expect("rebalance lock")
                            .push(Change::Failed(reason));
                        return;
                    }
                };
                if let Err(e) = consumer.assign(&committed) {
                    warn!("cannot assign partitions: {e}");
                }
                let partitions = partitions(tpl);
                info!(?partitions, "partitions assigned");
                self.changes
                    .lock()
                    .expect("rebalance lock")
                    .push(Change::Assigned {
                        partitions,
                        committed,
                    });
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let aborted = self.transaction_open.swap(false, Ordering::SeqCst);
                if aborted {
                    if let Err(e) = super::abort(&self.producer, self.timeout) {
                        warn!("aborting the open transaction on revocation failed: {e}");
                    }
                    metrics::counter!("tessera_transactions_aborted_total", "reason" => "revoked")
                        .increment(1);
                }
                if let Err(e) = consumer.unassign() {
                    warn!("cannot unassign partitions: {e}");
                }
                let partitions = partitions(tpl);
                info!(?partitions, aborted, "partitions revoked");
                self.changes
                    .lock()
                    .expect("rebalance lock")
                    .push(Change::Revoked {
                        partitions,
                        aborted,
                    });
            }
            other => warn!("rebalance error: {other:?}"),
        }
    }
}
