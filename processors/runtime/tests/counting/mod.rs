//! A counter running on the real broker over fresh one-partition topics: what the runtime's
//! tests of ticks and of records that cannot be handled start from.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera_cores::counter::Counter;
use tessera_runtime::{self as runtime, Config};
use tokio::task::JoinHandle;

use super::broker::{client, committed_reader, create_topics};

/// A counter forgetting keys idle for `idle_ms`, running on fresh one-partition topics `in.a` and
/// `in.b` (both inputs, so a record on one waits for the other) writing `counts`.
pub(crate) struct Setup {
    pub prefix: String,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<anyhow::Result<()>>,
    pub counts: BaseConsumer,
    _state: tempfile::TempDir,
}

impl Setup {
    pub(crate) async fn start(idle_ms: i64) -> Setup {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let prefix = format!("it-{}.", uuid::Uuid::new_v4().simple());
        let names = ["in.a", "in.b", "counts", "tessera.dead-letters"];
        let topics = names.map(|name| (name, "LogAppendTime"));
        create_topics(&client(), &prefix, &topics, 1).await;
        let (core, config, state) = counter(&prefix, idle_ms);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = tokio::spawn(runtime::run(core, config, stop.clone()));
        let counts = committed_reader(
            &client(),
            &format!("{prefix}reader"),
            &format!("{prefix}counts"),
            1,
        );
        Setup {
            prefix,
            stop,
            handle,
            counts,
            _state: state,
        }
    }

    pub(crate) async fn send(&self, topic: &str, key: &str) {
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
    pub(crate) fn next_count(&self, within: Duration) -> Option<String> {
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
    pub(crate) fn input_records(&self) -> i64 {
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

    pub(crate) async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap().unwrap();
    }
}

/// A counter reading `in.a` and `in.b` and writing `counts` under `prefix`, forgetting keys idle
/// for `idle_ms`, with a runtime configuration whose state lives in the returned directory.
pub(crate) fn counter(prefix: &str, idle_ms: i64) -> (Counter, Config, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut config = Config::new(client(), "test-1", state.path().to_path_buf());
    config.topic_prefix = prefix.to_string();
    let core = Counter::new(
        "counter",
        vec!["in.a".into(), "in.b".into()],
        "counts",
        idle_ms,
    );
    (core, config, state)
}
