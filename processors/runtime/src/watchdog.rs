//! Kills the process when a transactional call hangs.
//!
//! librdkafka's `send_offsets_to_transaction` and `commit_transaction` can block beyond their own
//! timeout when the transaction coordinator disappears. A stuck call would stall every task of the
//! instance forever; exiting instead lets the restarted process fence the stuck incarnation and
//! recover from what the broker committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the current transactional call started (ms since the runtime started), or 0: read by
/// the watchdog.
pub(crate) struct Watchdog {
    started: Instant,
    busy_since: Arc<AtomicU64>,
}

impl Watchdog {
    pub(crate) fn spawn(limit: Duration, stop: Arc<AtomicBool>) -> Self {
        let started = Instant::now();
        let busy_since = Arc::new(AtomicU64::new(0));
        let watched = busy_since.clone();
        std::thread::Builder::new()
            .name("tessera-watchdog".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    let since = watched.load(Ordering::Relaxed);
                    if since != 0
                        && started.elapsed().as_millis() as u64 - since > limit.as_millis() as u64
                    {
                        // A transactional call that hangs past its own timeout (a known
                        // librdkafka failure when the coordinator is gone) would stall the task
                        // forever; exiting lets the restarted process fence the stuck one.
                        tracing::error!("a transactional call hung for over {limit:?}; exiting");
                        std::process::exit(70);
                    }
                }
            })
            .expect("spawn watchdog");
        Watchdog {
            started,
            busy_since,
        }
    }

    pub(crate) fn guard<T>(&self, call: impl FnOnce() -> T) -> T {
        self.busy_since.store(
            self.started.elapsed().as_millis().max(1) as u64,
            Ordering::Relaxed,
        );
        let result = call();
        self.busy_since.store(0, Ordering::Relaxed);
        result
    }
}
