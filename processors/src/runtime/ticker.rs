//! Keeps stream time moving on idle partitions.
//!
//! A decision that waits for time to pass (an offer closes, a response had no invitation) needs
//! every input partition to show a stamp beyond that time. The ticker writes a `Tick` event to each
//! input partition this instance owns, once per period; the broker stamps it like any record, so a
//! replay sees the ticks at the same places and makes the same decisions.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tessera_schemas::{Event, Tick, encode};
use tracing::warn;

/// The key of every tick record.
const TICK_KEY: &str = "tick";

/// Starts a thread that ticks `topics` on the partitions in `owned` every `period` until `stop`.
pub(crate) fn spawn(
    client: &ClientConfig,
    topics: Vec<String>,
    owned: Arc<Mutex<BTreeSet<i32>>>,
    period: Duration,
    name: String,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let producer: BaseProducer = client
        .clone()
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()?;
    Ok(std::thread::Builder::new()
        .name("tessera-ticker".into())
        .spawn(move || {
            let mut seq = 0i64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(period);
                let partitions: Vec<i32> = owned.lock().expect("ticker lock").iter().copied().collect();
                for partition in partitions {
                    seq += 1;
                    let tick = Event::Tick(Tick {
                        event_id: uuid::Uuid::new_v4().to_string(),
                        ticker: name.clone(),
                        seq,
                    });
                    let bytes = encode(&tick).expect("ticks encode");
                    for topic in &topics {
                        let record = BaseRecord::to(topic)
                            .partition(partition)
                            .key(TICK_KEY)
                            .payload(&bytes);
                        if let Err((e, _)) = producer.send(record) {
                            warn!(topic, partition, "cannot send tick: {e}");
                        }
                    }
                }
                producer.poll(Duration::ZERO);
            }
            let _ = producer.flush(Duration::from_secs(5));
        })?)
}
