//! Ticks on demand, on the real broker: a record that waits for an idle input partition is
//! decided as soon as a tick asked for on that partition comes back stamped; a timer fires on an
//! installation with no traffic at all; and an installation with nothing to decide writes no
//! ticks. Needs `compose/kafka up` (or `TESSERA_BROKERS`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera_processors::counter::Counter;
use tessera_processors::runtime::{self, Config};
use tokio::task::JoinHandle;

mod broker;
use broker::client;

/// A counter forgetting keys idle for `idle_ms`, running on fresh one-partition topics `in.a` and
/// `in.b` (both inputs, so a record on one waits for the other) writing `counts`.
struct Setup {
    prefix: String,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<anyhow::Result<()>>,
    counts: BaseConsumer,
    _state: tempfile::TempDir,
}

impl Setup {
    async fn start(idle_ms: i64) -> Setup {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let prefix = format!("it-{}.", uuid::Uuid::new_v4().simple());
        let admin: AdminClient<DefaultClientContext> = client().create().unwrap();
        let names: Vec<String> = ["in.a", "in.b", "counts", "tessera.dead-letters"]
            .iter()
            .map(|t| format!("{prefix}{t}"))
            .collect();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|t| {
                NewTopic::new(t, 1, TopicReplication::Fixed(1))
                    .set("message.timestamp.type", "LogAppendTime")
            })
            .collect();
        for result in admin
            .create_topics(&topics, &AdminOptions::new())
            .await
            .unwrap()
        {
            result.unwrap();
        }
        // A fresh broker may answer the creation before its metadata shows the topics, and the
        // runtime refuses inputs it cannot see.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !names.iter().all(|name| {
            admin
                .inner()
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .is_ok_and(|m| {
                    m.topics()
                        .iter()
                        .any(|t| t.error().is_none() && !t.partitions().is_empty())
                })
        }) {
            assert!(
                Instant::now() < deadline,
                "the topics did not appear within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let state = tempfile::tempdir().unwrap();
        let mut config = Config::new(client(), "test-1", state.path().to_path_buf());
        config.topic_prefix = prefix.clone();
        let core = Counter::new(
            "counter",
            vec!["in.a".into(), "in.b".into()],
            "counts",
            idle_ms,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let handle = tokio::spawn(runtime::run(core, config, stop.clone()));
        let counts: BaseConsumer = client()
            .set("group.id", format!("{prefix}reader"))
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        counts.subscribe(&[&format!("{prefix}counts")]).unwrap();
        Setup {
            prefix,
            stop,
            handle,
            counts,
            _state: state,
        }
    }

    async fn send(&self, topic: &str, key: &str) {
        let producer: FutureProducer = client().create().unwrap();
        producer
            .send(
                FutureRecord::to(&format!("{}{topic}", self.prefix))
                    .key(key)
                    .payload("x"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    /// The next output of the counter, waiting up to `within`.
    fn next_count(&self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(message) = self.counts.poll(Duration::from_millis(200)) {
                let message = message.unwrap();
                return message
                    .payload()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
            }
        }
        None
    }

    /// Records on the inputs so far (end offsets of `in.a` and `in.b`).
    fn input_records(&self) -> i64 {
        ["in.a", "in.b"]
            .iter()
            .map(|t| {
                let (_, high) = self
                    .counts
                    .fetch_watermarks(&format!("{}{t}", self.prefix), 0, Duration::from_secs(10))
                    .unwrap();
                high
            })
            .sum()
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_waiting_on_an_idle_partition_is_decided_by_a_tick_asked_for_it() {
    // The counter's timers are far off: only the record itself can ask for ticks.
    let setup = Setup::start(i64::MAX / 4).await;
    // `in.b` stays empty: the merge cannot order this record until `in.b` shows a stamp at or
    // past it.
    setup.send("in.a", "k").await;
    let counted = setup.next_count(Duration::from_secs(60));
    setup.stop().await;
    assert_eq!(
        counted.as_deref(),
        Some("k=1"),
        "the record was not decided within a minute, so no tick was asked for on the idle input"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_fires_without_traffic_and_an_idle_installation_writes_no_ticks() {
    let setup = Setup::start(2_000).await;
    // Nothing to decide yet: no record, no timer, so no tick either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        setup.input_records(),
        0,
        "ticks were written while nothing waited for time"
    );

    setup.send("in.a", "k").await;
    assert_eq!(
        setup.next_count(Duration::from_secs(60)).as_deref(),
        Some("k=1")
    );
    // No record comes after this one: the key's idle timer (2 s of stream time) fires only
    // because the runtime asks for ticks once the broker's clock passes it.
    let started = Instant::now();
    let expired = setup.next_count(Duration::from_secs(60));
    assert_eq!(
        expired.as_deref(),
        Some("k expired after 1"),
        "the idle timer did not fire without traffic"
    );
    let waited = started.elapsed();

    // The timer has fired and nothing waits: the inputs stay as they are.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = setup.input_records();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = setup.input_records();
    setup.stop().await;
    assert_eq!(later, settled, "an idle installation kept writing ticks");
    assert!(
        settled <= 12,
        "{settled} records on the inputs for one record and one timer ({waited:?} to the expiry)"
    );
}
