//! Hears partition assignments and revocations from the consumer group.
//!
//! librdkafka calls these hooks inside `poll`, on the runtime's own thread. A revocation aborts the
//! open transaction before the partitions are given up, so no other instance can see half of a
//! batch; the runtime loop then rewinds its tasks and picks up the new assignment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseProducer, Producer};
use tracing::{info, warn};

/// A change of the partitions this instance owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Assigned(Vec<i32>),
    Revoked { partitions: Vec<i32>, aborted: bool },
}

pub(crate) struct Context {
    pub producer: Arc<BaseProducer>,
    pub transaction_open: Arc<AtomicBool>,
    pub changes: Mutex<Vec<Change>>,
    pub timeout: Duration,
}

fn partitions(rebalance: &Rebalance<'_>) -> Vec<i32> {
    let tpl = match rebalance {
        Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) => *tpl,
        Rebalance::Error(_) => return Vec::new(),
    };
    let mut partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    partitions.sort_unstable();
    partitions.dedup();
    partitions
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            let aborted = self.transaction_open.swap(false, Ordering::SeqCst);
            if aborted {
                if let Err(e) = self.producer.abort_transaction(self.timeout) {
                    warn!("aborting the open transaction on revocation failed: {e}");
                }
                metrics::counter!("tessera_transactions_aborted_total", "reason" => "revoked")
                    .increment(1);
            }
            let partitions = partitions(rebalance);
            info!(?partitions, aborted, "partitions revoked");
            self.changes
                .lock()
                .expect("rebalance lock")
                .push(Change::Revoked { partitions, aborted });
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => {
                let partitions = partitions(rebalance);
                info!(?partitions, "partitions assigned");
                self.changes
                    .lock()
                    .expect("rebalance lock")
                    .push(Change::Assigned(partitions));
            }
            Rebalance::Error(e) => warn!("rebalance error: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}
