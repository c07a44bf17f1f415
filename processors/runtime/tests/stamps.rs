//! The runtime decides on the broker's receipt stamps only: on the real broker, it refuses to
//! start on an input topic that keeps the producers' stamps (CreateTime), naming the topic and
//! the setting. (A CreateTime record on a topic altered after start is a dead letter; the poison
//! test at the workspace root shows that.) Needs `compose/kafka up` (or `TESSERA_BROKERS`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tessera_runtime as runtime;

mod broker;
mod counting;

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_refuses_to_start_on_an_input_stamped_by_its_producers() {
    let prefix = format!("it-{}.", uuid::Uuid::new_v4().simple());
    let topics = [("in.a", "LogAppendTime"), ("in.b", "CreateTime")];
    broker::create_topics(&broker::client(), &prefix, &topics, 1).await;
    let (core, config, _state) = counting::counter(&prefix, 1_000);
    let stop = Arc::new(AtomicBool::new(false));
    let refused = runtime::run(core, config, stop)
        .await
        .expect_err("the runtime started on a CreateTime input");
    let refused = format!("{refused:#}");
    let b = format!("{prefix}in.b");
    assert!(
        refused.contains(&b)
            && refused.contains("message.timestamp.type=CreateTime")
            && refused.contains("LogAppendTime"),
        "{refused}"
    );
}
