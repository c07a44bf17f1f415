//! Keeps stream time moving on idle partitions.
//!
//! A decision that waits for time to pass (an offer closes, a response had no invitation) needs
//! every input partition to show a stamp beyond that time. The ticker writes a `Tick` event to each
//! input partition this instance owns, once per period; the broker stamps it like any record, so a
//! replay sees the ticks at the same places and makes the same decisions.
//!
//! Ticks also come on demand. A task holding records it cannot order yet, because an input
//! partition shows nothing at or past them, asks for a tick on that partition at once
//! ([`Ticker::demand`]), so such a record waits about a round trip to the broker rather than up to
//! a period. A tick on demand is appended after whatever the partition holds and stamped by the
//! broker like any other, so it moves stream time only as far as the broker's clock has gone, and
//! a replay meets it at the same place.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tessera_schemas::{Event, Tick, encode};
use tracing::warn;

/// The key of every tick record.
const TICK_KEY: &str = "tick";
/// The longest the ticker sleeps before it looks at `stop` again.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Input partitions (topic, partition) a task waits on.
type Demanded = BTreeSet<(String, i32)>;

/// The ticker thread's handle: asks it for ticks on demand.
pub(crate) struct Ticker {
    demanded: Arc<(Mutex<Demanded>, Condvar)>,
}

impl Ticker {
    /// Starts a thread that ticks `topics` on the partitions in `owned` every `period`, and on
    /// demand, until `stop`.
    pub(crate) fn spawn(
        client: &ClientConfig,
        topics: Vec<String>,
        owned: Arc<Mutex<BTreeSet<i32>>>,
        period: Duration,
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
                let mut ticks = Ticks { producer, name, seq: 0 };
                let mut next = Instant::now() + period;
                while !stop.load(Ordering::Relaxed) {
                    let (lock, wake) = &*shared;
                    let mut wanted = lock.lock().expect("ticker lock");
                    if wanted.is_empty() {
                        let wait = next.saturating_duration_since(Instant::now()).min(STOP_CHECK);
                        wanted = wake.wait_timeout(wanted, wait).expect("ticker lock").0;
                    }
                    let wanted = std::mem::take(&mut *wanted);
                    for (topic, partition) in &wanted {
                        ticks.send(topic, *partition);
                    }
                    if Instant::now() >= next {
                        let partitions: Vec<i32> = owned.lock().expect("ticker lock").iter().copied().collect();
                        for partition in partitions {
                            for topic in &topics {
                                ticks.send(topic, partition);
                            }
                        }
                        next = Instant::now() + period;
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
        let record = BaseRecord::to(topic).partition(partition).key(TICK_KEY).payload(&bytes);
        if let Err((e, _)) = self.producer.send(record) {
            warn!(topic, partition, "cannot send tick: {e}");
        }
    }
}
