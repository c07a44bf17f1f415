//! The broker the runtime's integration tests talk to (`TESSERA_BROKERS`, or the one
//! `compose/kafka up` starts on loopback), and their topics on it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Client settings that reach the test broker.
pub(crate) fn client() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set(
        "bootstrap.servers",
        std::env::var("TESSERA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    );
    config
}

/// Creates `{prefix}{name}` for each (name, timestamp type) with `partitions` partitions on the
/// broker `client` reaches, and waits until its metadata shows them: a fresh broker may answer the
/// creation before, and the runtime refuses inputs it cannot see.
pub(crate) async fn create_topics(
    client: &ClientConfig,
    prefix: &str,
    topics: &[(&str, &str)],
    partitions: i32,
) {
    let admin: AdminClient<DefaultClientContext> = client.create().unwrap();
    let names: Vec<String> = topics.iter().map(|(t, _)| format!("{prefix}{t}")).collect();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .zip(topics)
        .map(|(name, (_, stamps))| {
            NewTopic::new(name, partitions, TopicReplication::Fixed(1))
                .set("message.timestamp.type", stamps)
        })
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
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
}

/// A consumer on the broker `client` reaches that reads partitions `0..partitions` of `topic` from
/// their beginning, only what committed transactions wrote: what the processors' readers see. It
/// is assigned the partitions, so its group `group` never forms and takes nothing from another.
pub(crate) fn committed_reader(
    client: &ClientConfig,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BaseConsumer {
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    consumer
}
