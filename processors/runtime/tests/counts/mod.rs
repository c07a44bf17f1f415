//! What the counter must have written after counting inputs `0..total`: input `i` has key
//! `k{i % 17}`, and each key's outputs are `key=1`, `key=2`, ... in order, each once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera_cores::counter::Counter;

/// Fails unless `outputs` (per key, in order) are exactly the counts of inputs `0..total`.
pub(crate) fn assert_counts(outputs: &BTreeMap<String, Vec<String>>, total: usize) {
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..total {
        *per_key.entry(format!("k{}", i % 17)).or_default() += 1;
    }
    assert_eq!(outputs.len(), per_key.len(), "keys counted");
    for (key, n) in per_key {
        let expected: Vec<String> = (1..=n).map(|c| format!("{key}={c}")).collect();
        assert_eq!(outputs.get(&key), Some(&expected), "counts of {key}");
    }
}

/// Reads `expected` committed outputs from `consumer` (assigned to the counter's output topic),
/// per key in order. Fails if fewer arrive within `timeout` or before `alive` turns false, and if
/// any arrive in the two seconds after: those would be duplicates or leftovers.
pub(crate) fn read_counts(
    consumer: &BaseConsumer,
    expected: usize,
    timeout: Duration,
    alive: impl Fn() -> bool,
) -> BTreeMap<String, Vec<String>> {
    let mut outputs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = 0;
    let deadline = Instant::now() + timeout;
    while seen < expected {
        assert!(
            alive(),
            "the instance stopped after {seen} of {expected} outputs"
        );
        assert!(
            Instant::now() < deadline,
            "only {seen} of {expected} outputs committed"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            outputs.entry(key).or_default().push(value);
            seen += 1;
        }
    }
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            panic!(
                "unexpected output {:?}",
                String::from_utf8_lossy(message.payload().unwrap_or_default())
            );
        }
    }
    outputs
}

/// The counter these tests run: `in.a` and `in.b` counted into `counts`, no key ever idle.
pub(crate) fn counter() -> Counter {
    Counter::new(
        "counter",
        vec!["in.a".into(), "in.b".into()],
        "counts",
        i64::MAX / 4,
    )
}

/// Writes inputs `from..to` to `{prefix}in.a` and `{prefix}in.b` on the broker `client` reaches:
/// input `i` keyed `k{i % 17}`, every third on `in.b`, as [`assert_counts`] expects them.
pub(crate) async fn produce(client: &ClientConfig, prefix: &str, from: usize, to: usize) {
    let producer: FutureProducer = client
        .clone()
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for i in from..to {
        let topic = format!("{prefix}in.{}", if i % 3 == 0 { "b" } else { "a" });
        let key = format!("k{}", i % 17);
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload("x"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}
