//! The checks made before a processor starts: inputs exist, are co-partitioned and are stamped by
//! the broker; the changelog topic exists.

use std::time::Duration;

use anyhow::{Context as _, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tessera_contract::topics::{LOG_APPEND_TIME, TIMESTAMP_TYPE};

use tessera_cores::layout::Topics;

use super::Config;

/// Checks the inputs are stamped by the broker and creates the changelog topic if missing.
/// Returns the input partition count.
pub(crate) async fn prepare(config: &Config, topics: &Topics) -> anyhow::Result<i32> {
    let admin: AdminClient<DefaultClientContext> = config.client.create()?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .context("cannot read cluster metadata")?;
    let mut partitions = None;
    for input in &topics.inputs {
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == input) else {
            bail!("input topic {input} does not exist; run `tessera topics create` first");
        };
        let count = topic.partitions().len() as i32;
        match partitions {
            Some(p) if p != count => bail!(
                "input topics are not co-partitioned: {input} has {count} partitions, others {p}"
            ),
            _ => partitions = Some(count),
        }
    }
    let partitions = partitions.context("a processor needs at least one input topic")?;
    let specifiers: Vec<_> = topics
        .inputs
        .iter()
        .map(|t| ResourceSpecifier::Topic(t))
        .collect();
    let described = admin
        .describe_configs(&specifiers, &AdminOptions::new())
        .await?;
    for (input, result) in topics.inputs.iter().zip(described) {
        let resource = result.map_err(|e| anyhow::anyhow!("cannot describe {input}: {e}"))?;
        let kind = resource.get(TIMESTAMP_TYPE).and_then(|e| e.value.clone());
        if kind.as_deref() != Some(LOG_APPEND_TIME) {
            bail!(
                "input topic {input} has {TIMESTAMP_TYPE}={}, but decisions need the broker's \
                 receipt stamps: set it to {LOG_APPEND_TIME}",
                kind.as_deref().unwrap_or("unknown")
            );
        }
    }
    // -1 asks the broker for its default.replication.factor (KIP-464), as Kafka Streams does.
    let replication = TopicReplication::Fixed(config.changelog_replication.unwrap_or(-1));
    let changelog =
        NewTopic::new(&topics.changelog, partitions, replication).set("cleanup.policy", "compact");
    for result in admin
        .create_topics(&[changelog], &AdminOptions::new())
        .await?
    {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, RDKafkaErrorCode::InvalidReplicationFactor)) => bail!(
                "cannot create changelog topic {name}: the cluster has fewer brokers than the \
                 replication factor asked (--changelog-replication-factor, or the broker's \
                 default.replication.factor)"
            ),
            Err((name, code)) => bail!("cannot create changelog topic {name}: {code}"),
        }
    }
    Ok(partitions)
}
