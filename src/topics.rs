//! `tessera topics`: applies the topic catalogue of `tessera-contract` to a cluster through the
//! Kafka admin API, and checks a cluster against it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tessera_contract::topics::{self, Difference, Observed};

use crate::kafka::KafkaArgs;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The topic flow table in Markdown: every catalogue topic with its key, shape and events, and
/// the roles that write and read it as the ACL plan grants them ([`crate::acl::plan`], whose
/// processor part is derived from the processors' cores). Printed by `tessera topics describe`
/// and kept in docs/CONTRACTS.md, where a test holds the two together. Writes a processor makes
/// only to tick its own inputs are left out (docs/TIME.md).
pub fn describe() -> String {
    use crate::acl::{Operation, Pattern, Resource};
    let grants = crate::acl::plan("");
    let roles = |topic: &str, operation: Operation| -> String {
        let mut names: Vec<&str> = grants
            .iter()
            .filter(|g| {
                g.resource == Resource::Topic
                    && g.pattern == Pattern::Literal
                    && g.name == topic
                    && g.operation == operation
                    && g.reason
                        .split("; ")
                        .any(|reason| !reason.ends_with("ticks its inputs"))
            })
            .map(|g| g.role.name())
            .collect();
        names.dedup();
        names.join(", ")
    };
    let mut table = String::from(
        "| topic | key | shape | events | written by | read by |\n|---|---|---|---|---|---|\n",
    );
    for topic in topics::ALL {
        let shape = match topic.shape {
            topics::Shape::EventLog => "log",
            topics::Shape::Table => "table",
        };
        let events: Vec<String> = topic.events.iter().map(|e| format!("{e:?}")).collect();
        table.push_str(&format!(
            "| `{}` | {} | {shape} | {} | {} | {} |\n",
            topic.name,
            topic.key,
            events.join(", "),
            roles(topic.name, Operation::Write),
            roles(topic.name, Operation::Read),
        ));
    }
    table.push_str(&processors());
    table
}

/// The processors table of `describe`: each registered processor's cores with their inputs in
/// merge rank order, outputs and state, from the registry's declarations.
fn processors() -> String {
    let list = |topics: &[topics::Topic], broadcast: &[usize]| -> String {
        let names: Vec<String> = topics
            .iter()
            .enumerate()
            .map(|(i, t)| match broadcast.contains(&i) {
                true => format!("`{}` (every partition)", t.name),
                false => format!("`{}`", t.name),
            })
            .collect();
        names.join(", ")
    };
    let mut table = String::from(
        "\n| processor | core | reads, in rank order | writes | state | metrics |\n\
         |---|---|---|---|---|---|\n",
    );
    for processor in tessera_cores::registry::ALL {
        for core in processor.cores {
            table.push_str(&format!(
                "| {} | {} | {} | {} | {} | :{} |\n",
                processor.name,
                core.name,
                list(core.inputs, core.broadcast),
                list(&core.outputs(), &[]),
                core.state,
                processor.metrics_port,
            ));
        }
    }
    table
}

/// What `create` did to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The topic was created.
    New(String),
    /// The topic already existed and was left as it is.
    Existing(String),
}

fn admin(kafka: &KafkaArgs) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    kafka
        .client_config()?
        .create()
        .context("cannot create a Kafka admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT))
}

/// Creates every catalogue topic that does not exist yet, with its configuration. Existing topics
/// are left untouched (`check` reports how they differ), so running it twice is harmless.
pub async fn create(
    kafka: &KafkaArgs,
    partitions: i32,
    replication: i32,
) -> anyhow::Result<Vec<Created>> {
    if partitions < 1 {
        bail!("--partitions must be at least 1, got {partitions}");
    }
    if replication < 1 {
        bail!("--replication-factor must be at least 1, got {replication}");
    }
    let admin = admin(kafka)?;
    let names: Vec<String> = topics::ALL
        .iter()
        .map(|t| t.full_name(&kafka.topic_prefix))
        .collect();
    let configs: Vec<_> = topics::ALL.iter().map(|t| t.configs()).collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .zip(&configs)
        .map(|(name, configs)| {
            configs.iter().fold(
                NewTopic::new(name, partitions, TopicReplication::Fixed(replication)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let results = admin
        .create_topics(&new_topics, &options())
        .await
        .with_context(|| format!("cannot create topics on {}", kafka.brokers))?;
    let mut done = Vec::new();
    for result in results {
        match result {
            Ok(name) => done.push(Created::New(name)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => done.push(Created::Existing(name)),
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    wait_until_led(&admin, &names).await?;
    Ok(done)
}

/// Waits until every partition of `names` has a leader in the metadata the brokers serve.
/// Creation returns once the controller has recorded the topics; brokers learn of them a moment
/// later, and a client that uses a topic in that moment sees it as missing.
async fn wait_until_led(
    admin: &AdminClient<DefaultClientContext>,
    names: &[String],
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(None, TIMEOUT)
            .context("cannot read cluster metadata")?;
        let ready = names.iter().all(|name| {
            metadata.topics().iter().any(|t| {
                t.name() == name
                    && t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0)
            })
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("topics were created but have no leaders after {TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads partition counts and configurations of the catalogue's topics from the cluster.
pub async fn observe(kafka: &KafkaArgs) -> anyhow::Result<BTreeMap<String, Observed>> {
    let admin = admin(kafka)?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .with_context(|| format!("cannot read cluster metadata from {}", kafka.brokers))?;
    let mut observed: BTreeMap<String, Observed> = BTreeMap::new();
    let wanted: Vec<String> = topics::ALL
        .iter()
        .map(|t| t.full_name(&kafka.topic_prefix))
        .collect();
    for topic in metadata.topics() {
        let unknown = topic.error().is_some_and(|e| {
            RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition
        });
        if wanted.iter().any(|w| w == topic.name()) && !unknown {
            observed.insert(
                topic.name().to_string(),
                Observed {
                    partitions: topic.partitions().len() as i32,
                    configs: BTreeMap::new(),
                },
            );
        }
    }
    let specifiers: Vec<ResourceSpecifier<'_>> = observed
        .keys()
        .map(|name| ResourceSpecifier::Topic(name))
        .collect();
    let described = admin
        .describe_configs(&specifiers, &options())
        .await
        .context("cannot describe topic configurations")?;
    let mut configs = Vec::new();
    for (name, result) in observed.keys().zip(described) {
        let resource = result.map_err(|code| anyhow::anyhow!("cannot describe {name}: {code}"))?;
        let values: BTreeMap<String, String> = resource
            .entries
            .into_iter()
            .filter_map(|entry| entry.value.map(|value| (entry.name, value)))
            .collect();
        configs.push((name.clone(), values));
    }
    for (name, values) in configs {
        if let Some(topic) = observed.get_mut(&name) {
            topic.configs = values;
        }
    }
    Ok(observed)
}

/// Every way the cluster differs from the catalogue.
pub async fn check(kafka: &KafkaArgs, partitions: i32) -> anyhow::Result<Vec<Difference>> {
    let observed = observe(kafka).await?;
    Ok(topics::differences(
        &kafka.topic_prefix,
        partitions,
        &observed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_hold_the_flow_table_as_the_code_declares_it() {
        let contracts = include_str!("../docs/CONTRACTS.md");
        assert!(
            contracts.contains(&describe()),
            "docs/CONTRACTS.md's topic and processor tables differ from what the code declares: replace it with \
             the output of `tessera topics describe`:\n{}",
            describe()
        );
    }
}
