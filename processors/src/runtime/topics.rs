//! The processor's topics on one installation, and the checks made before it starts: inputs
//! exist, are co-partitioned and are stamped by the broker; the changelog topic exists.

use std::time::Duration;

use anyhow::{Context as _, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tessera_schemas::topics::{DEAD_LETTERS, LOG_APPEND_TIME, TIMESTAMP_TYPE};

use super::Config;
use crate::core::Core;

/// Names the processor's topics on this installation. Public so that an auditor builds each
/// task's lanes exactly as the runtime does.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Input topic names, prefixed, in [`Core::inputs`] order.
    pub inputs: Vec<String>,
    /// Per input: whether every task reads all its partitions ([`Core::broadcast_inputs`]).
    pub broadcast: Vec<bool>,
    /// Output topic names, prefixed, in [`Core::outputs`] order.
    pub outputs: Vec<String>,
    /// The same without the prefix: what a record's signature names.
    pub output_names: Vec<String>,
    /// The task states' compacted changelog.
    pub changelog: String,
    /// Where records that cannot be decoded go.
    pub dead_letters: String,
}

impl Topics {
    /// The topics of `core` on the installation whose topic names start with `prefix`.
    pub fn of<C: Core>(core: &C, prefix: &str) -> Self {
        let inputs: Vec<String> = core
            .inputs()
            .iter()
            .map(|t| format!("{prefix}{t}"))
            .collect();
        let broadcast_inputs = core.broadcast_inputs();
        Topics {
            broadcast: (0..inputs.len())
                .map(|i| broadcast_inputs.contains(&i))
                .collect(),
            inputs,
            outputs: core
                .outputs()
                .iter()
                .map(|t| format!("{prefix}{t}"))
                .collect(),
            output_names: core.outputs(),
            changelog: format!("{prefix}tessera.{}.changelog", core.name()),
            dead_letters: DEAD_LETTERS.full_name(prefix),
        }
    }

    /// The consumer group of the processor: its committed offsets say which inputs it consumed.
    pub fn group<C: Core>(core: &C, prefix: &str) -> String {
        format!("{prefix}tessera.{}", core.name())
    }

    /// The inputs the consumer group assigns by partition number.
    pub fn partitioned(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .zip(&self.broadcast)
            .filter(|(_, broadcast)| !**broadcast)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// Whether `topic` is an input every task reads in full.
    pub fn is_broadcast(&self, topic: &str) -> bool {
        self.inputs
            .iter()
            .zip(&self.broadcast)
            .any(|(t, broadcast)| *broadcast && t == topic)
    }

    /// The input partitions task `partition` merges, in merge rank order: its own partition of
    /// each input, or every partition of a broadcast input.
    pub fn lanes(&self, partition: i32, partitions: i32) -> Vec<Lane> {
        let mut lanes = Vec::new();
        for (input, topic) in self.inputs.iter().enumerate() {
            let owned: Vec<i32> = if self.broadcast[input] {
                (0..partitions).collect()
            } else {
                vec![partition]
            };
            for partition in owned {
                lanes.push(Lane {
                    input,
                    topic: topic.clone(),
                    partition,
                    broadcast: self.broadcast[input],
                });
            }
        }
        lanes
    }
}

/// One input partition of a task: a lane of its merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// Index of the topic in [`Core::inputs`].
    pub input: usize,
    /// The topic's name, prefixed.
    pub topic: String,
    /// The partition read.
    pub partition: i32,
    /// Read by the task's own consumer rather than assigned by the group.
    pub broadcast: bool,
}

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
