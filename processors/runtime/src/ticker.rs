//! Moves stream time on idle partitions, only when a decision waits for it.
//!
//! A decision that waits for time to pass (an offer closes, a response had no invitation) needs
//! every input partition of its task to show a stamp beyond that time. A partition with no
//! traffic shows none, so the runtime asks the ticker to write a `Tick` event to it; the broker
//! stamps the tick like any record, appended after whatever the partition holds, so it moves
//! stream time only as far as the broker's clock has gone, and a replay meets it at the same
//! place and makes the same decisions.
//!
//! Ticks are written on demand only, never on a period: for a task holding a record it cannot
//! order yet (not a tick: ticks waiting on each other would keep asking for more), and for a task
//! whose earliest timer the broker's clock has passed. An installation with nothing to decide
//! writes no ticks at all, and the ticks in the long-retention history stay a small multiple of
//! the decisions that needed them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tessera_contract::{Event, Tick, encode};
use tracing::warn;

/// The key of every tick record.
const TICK_KEY: &str = "tick";
/// The longest the ticker sleeps before it looks at `stop` again.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Input partitions (topic, partition) a task waits on.
type Demanded = BTreeSet<(String, i32)>;

/// The ticker thread's handle: asks it for ticks.
pub(crate) struct Ticker {
    demanded: Arc<(Mutex<Demanded>, Condvar)>,
}

impl Ticker {
    /// Starts a thread that writes the ticks asked for with [`Ticker::demand`], until `stop`.
    pub(crate) fn spawn(
        client: &ClientConfig,
        name: String,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let producer: BaseProducer = client
            .clone()
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        let demanded: Arc<(Mutex<Demanded>, Condvar)> = Arc::default();
        let shared = demanded.clone();
        std::thread::Builder::new()
            .name("tessera-ticker".into())
            .spawn(move || {
                let mut ticks = Ticks {
                    producer,
                    name,
                    seq: 0,
                };
                while !stop.load(Ordering::Relaxed) {
                    let (lock, wake) = &*shared;
                    let mut wanted = lock.lock().expect("ticker lock");
                    if wanted.is_empty() {
                        wanted = wake
                            .wait_timeout(wanted, STOP_CHECK)
                            .expect("ticker lock")
                            .0;
                    }
                    let wanted = std::mem::take(&mut *wanted);
                    for (topic, partition) in &wanted {
                        ticks.send(topic, *partition);
                    }
                    ticks.producer.poll(Duration::ZERO);
                }
                let _ = ticks.producer.flush(Duration::from_secs(5));
            })?;
        Ok(Ticker { demanded })
    }

    /// Asks for a tick now on each input partition in `waiting`.
    pub(crate) fn demand(&self, waiting: impl IntoIterator<Item = (String, i32)>) {
        let (lock, wake) = &*self.demanded;
        lock.lock().expect("ticker lock").extend(waiting);
        wake.notify_one();
    }
}

/// Writes numbered ticks.
struct Ticks {
    producer: BaseProducer,
    name: String,
    seq: i64,
}

impl Ticks {
    fn send(&mut self, topic: &str, partition: i32) {
        self.seq += 1;
        let tick = Event::Tick(Tick {
            event_id: uuid::Uuid::new_v4().to_string(),
            ticker: self.name.clone(),
            seq: self.seq,
        });
        let bytes = encode(&tick).expect("ticks encode");
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(TICK_KEY)
            .payload(&bytes);
        if let Err((e, _)) = self.producer.send(record) {
            warn!(topic, partition, "cannot send tick: {e}");
        }
        metrics::counter!("tessera_ticks_written_total").increment(1);
    }
}
