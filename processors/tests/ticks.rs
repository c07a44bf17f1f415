//! Ticks on demand, on the real broker: a record that waits for an idle input partition is
//! decided as soon as a tick demanded on that partition comes back stamped, not a tick period
//! later. Needs `compose/kafka up` (or `TESSERA_BROKERS`).

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

mod broker;
use broker::client;


#[tokio::test(flavor = "multi_thread")]
async fn a_record_waiting_on_an_idle_partition_is_decided_within_the_hour_long_tick_period() {
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
            NewTopic::new(t, 1, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime")
        })
        .collect();
    for result in admin.create_topics(&topics, &AdminOptions::new()).await.unwrap() {
        result.unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let mut config = Config::new(client(), "test-1", state.path().to_path_buf());
    config.topic_prefix = prefix.clone();
    // No periodic tick comes during the test: only a demanded one can move `in.b`.
    config.tick_period = Some(Duration::from_secs(3600));
    let core = Counter::new("counter", vec!["in.a".into(), "in.b".into()], "counts", i64::MAX / 4);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = tokio::spawn(runtime::run(core, config, stop.clone()));

    // `in.b` stays empty: the merge cannot order this record until `in.b` shows a stamp at or
    // past it.
    let producer: FutureProducer = client().create().unwrap();
    producer
        .send(FutureRecord::to(&format!("{prefix}in.a")).key("k").payload("x"), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    let consumer: BaseConsumer = client()
        .set("group.id", format!("{prefix}reader"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&format!("{prefix}counts")]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut counted = None;
    while counted.is_none() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            counted = message.payload().map(|p| String::from_utf8_lossy(p).into_owned());
        }
    }
    stop.store(true, Ordering::Relaxed);
    handle.await.unwrap().unwrap();
    assert_eq!(
        counted.as_deref(),
        Some("k=1"),
        "the record was not decided within a minute, so no tick was demanded on the idle input"
    );
}
