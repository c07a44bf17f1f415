//! The runtime decides on the broker's receipt stamps only: on the real broker, it refuses to
//! start on an input topic that keeps the producers' stamps (CreateTime), naming the topic and
//! the setting. (A CreateTime record on a topic altered after start is a dead letter; the poison
//! test at the workspace root shows that.) Needs `compose/kafka up` (or `TESSERA_BROKERS`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tessera_processors::counter::Counter;
use tessera_processors::runtime::{self, Config};

mod broker;
use broker::client;

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_refuses_to_start_on_an_input_stamped_by_its_producers() {
    let prefix = format!("it-{}.", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = client().create().unwrap();
    let (a, b) = (format!("{prefix}in.a"), format!("{prefix}in.b"));
    let topics = [
        NewTopic::new(&a, 1, TopicReplication::Fixed(1))
            .set("message.timestamp.type", "LogAppendTime"),
        NewTopic::new(&b, 1, TopicReplication::Fixed(1))
            .set("message.timestamp.type", "CreateTime"),
    ];
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let mut config = Config::new(client(), "test-1", state.path().to_path_buf());
    config.topic_prefix = prefix.clone();
    let core = Counter::new(
        "counter",
        vec!["in.a".into(), "in.b".into()],
        "counts",
        1_000,
    );
    let mut refused = None;
    // A fresh broker may not show new topics at once; only the timestamp refusal counts.
    for _ in 0..50 {
        let stop = Arc::new(AtomicBool::new(false));
        let error = runtime::run(core.clone(), config.clone(), stop)
            .await
            .expect_err("the runtime started on a CreateTime input");
        let message = format!("{error:#}");
        if !message.contains("does not exist") {
            refused = Some(message);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let refused = refused.expect("the topics never appeared");
    assert!(
        refused.contains(&b)
            && refused.contains("message.timestamp.type=CreateTime")
            && refused.contains("LogAppendTime"),
        "{refused}"
    );
}
