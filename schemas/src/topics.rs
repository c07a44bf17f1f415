//! The topic catalogue: every topic of DESIGN.md with its key, its events and its configuration.
//!
//! `tessera topics create` applies it to a cluster and `tessera topics check` compares a cluster
//! against it with [`differences`]; processors use [`Topic::decides`] to refuse input topics that the
//! broker does not stamp. Keeping it as data here means the contract and the cluster cannot drift
//! apart unnoticed.

use std::collections::BTreeMap;
use std::fmt;

use crate::events::EventKind;

/// Default partition count of every tessera topic. Topics that share a key must share it too
/// (co-partitioning), so one number serves all.
pub const DEFAULT_PARTITIONS: i32 = 6;

/// The configuration key for the timestamp type, and the value every tessera topic needs.
pub const TIMESTAMP_TYPE: &str = "message.timestamp.type";
/// The broker's receipt stamp.
pub const LOG_APPEND_TIME: &str = "LogAppendTime";

/// What a topic is to its readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An immutable history, kept forever: auditors replay it from the start.
    EventLog,
    /// The latest value per key is what matters: compacted.
    Table,
}

/// One topic of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// The topic's name.
    pub name: &'static str,
    /// What its record keys are.
    pub key: &'static str,
    /// Log or table.
    pub shape: Shape,
    /// The events it carries (besides ticks on decision inputs).
    pub events: &'static [EventKind],
    /// Whether a processor decides on its records' receipt stamps, so it must carry ticks.
    pub decides: bool,
}

impl Topic {
    /// The topic's name on a cluster whose tessera topics carry `prefix` (empty by default). A
    /// prefix lets several tessera installations, or test runs, share one cluster.
    pub fn full_name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.name)
    }

    /// The configuration the topic must have, as Kafka topic-level settings.
    pub fn configs(&self) -> BTreeMap<&'static str, &'static str> {
        let mut configs = BTreeMap::new();
        // Every tessera topic is stamped by the broker: inputs of decisions must be (no client
        // clock decides anything), and outputs are too so a party reading them sees the same
        // clock that judged it.
        configs.insert(TIMESTAMP_TYPE, LOG_APPEND_TIME);
        match self.shape {
            Shape::EventLog => {
                configs.insert("cleanup.policy", "delete");
                configs.insert("retention.ms", "-1");
                configs.insert("retention.bytes", "-1");
            }
            Shape::Table => {
                configs.insert("cleanup.policy", "compact");
            }
        }
        configs
    }
}

use EventKind as E;

/// `tessera.keys`.
pub const KEYS: Topic = Topic {
    name: "tessera.keys",
    key: "role",
    shape: Shape::Table,
    events: &[E::KeyPublished],
    decides: false,
};
/// `tessera.subscribers`.
pub const SUBSCRIBERS: Topic = Topic {
    name: "tessera.subscribers",
    key: "subscriber id",
    shape: Shape::Table,
    events: &[E::SubscriberRegistered, E::SubscriberRemoved],
    decides: true,
};
/// `tessera.offers`.
pub const OFFERS: Topic = Topic {
    name: "tessera.offers",
    key: "offer id",
    shape: Shape::EventLog,
    events: &[E::OfferPublished, E::OfferWithdrawn],
    decides: true,
};
/// `tessera.requests`.
pub const REQUESTS: Topic = Topic {
    name: "tessera.requests",
    key: "offer id",
    shape: Shape::EventLog,
    events: &[E::InteractionRequested],
    decides: true,
};
/// `tessera.responses`.
pub const RESPONSES: Topic = Topic {
    name: "tessera.responses",
    key: "offer id",
    shape: Shape::EventLog,
    events: &[E::ResponseSubmitted],
    decides: true,
};
/// `tessera.decisions`.
pub const DECISIONS: Topic = Topic {
    name: "tessera.decisions",
    key: "offer id",
    shape: Shape::EventLog,
    events: &[
        E::CredentialReleased,
        E::ResponseRejected,
        E::OfferRejected,
        E::OfferClosed,
    ],
    decides: true,
};
/// `tessera.cosigns`.
pub const COSIGNS: Topic = Topic {
    name: "tessera.cosigns",
    key: "offer id",
    shape: Shape::EventLog,
    events: &[E::ProviderShareReleased],
    decides: true,
};
/// `tessera.deliveries`.
pub const DELIVERIES: Topic = Topic {
    name: "tessera.deliveries",
    key: "subscriber id",
    shape: Shape::EventLog,
    events: &[E::CredentialDelivered, E::DeliveryFailed, E::Notice],
    decides: false,
};
/// `tessera.outcomes`.
pub const OUTCOMES: Topic = Topic {
    name: "tessera.outcomes",
    key: "offer id",
    shape: Shape::EventLog,
    events: &[E::CredentialAccepted, E::CredentialDeclined],
    decides: true,
};
/// `tessera.ledger`.
pub const LEDGER: Topic = Topic {
    name: "tessera.ledger",
    key: "provider id",
    shape: Shape::EventLog,
    events: &[E::RewardCredited],
    decides: false,
};
/// `tessera.ledger-credits`: internal to the ledger, which re-keys the rewards that outcomes earn
/// from offer id to provider id here; the broker's stamps and ticks serve it as any input.
pub const LEDGER_CREDITS: Topic = Topic {
    name: "tessera.ledger-credits",
    key: "provider id",
    shape: Shape::EventLog,
    events: &[E::RewardDue],
    decides: true,
};
/// `tessera.dead-letters`.
pub const DEAD_LETTERS: Topic = Topic {
    name: "tessera.dead-letters",
    key: "source topic",
    shape: Shape::EventLog,
    events: &[E::DeadLetter],
    decides: false,
};

/// `tessera.packages`: chunks of packages too large for their offer's record.
pub const PACKAGES: Topic = Topic {
    name: "tessera.packages",
    key: "offer id",
    shape: Shape::EventLog,
    events: &[E::PackageChunk],
    decides: false,
};

/// Every topic of DESIGN.md, in data-flow order.
pub const ALL: &[Topic] = &[
    KEYS,
    SUBSCRIBERS,
    PACKAGES,
    OFFERS,
    REQUESTS,
    RESPONSES,
    DECISIONS,
    COSIGNS,
    DELIVERIES,
    OUTCOMES,
    LEDGER_CREDITS,
    LEDGER,
    DEAD_LETTERS,
];

/// A topic as a cluster describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Number of partitions.
    pub partitions: i32,
    /// Topic-level configuration values (effective values, defaults included).
    pub configs: BTreeMap<String, String>,
}

/// One way a cluster differs from the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum Difference {
    /// The topic does not exist.
    Missing { topic: String },
    /// The topic has another partition count.
    Partitions {
        topic: String,
        expected: i32,
        actual: i32,
    },
    /// A configuration value differs (`actual` is `None` when the cluster did not report it).
    Config {
        topic: String,
        key: String,
        expected: String,
        actual: Option<String>,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Missing { topic } => write!(f, "{topic}: missing"),
            Difference::Partitions {
                topic,
                expected,
                actual,
            } => write!(f, "{topic}: {actual} partitions, expected {expected}"),
            Difference::Config {
                topic,
                key,
                expected,
                actual: Some(actual),
            } => write!(f, "{topic}: {key}={actual}, expected {key}={expected}"),
            Difference::Config {
                topic,
                key,
                expected,
                actual: None,
            } => write!(f, "{topic}: {key} not reported, expected {key}={expected}"),
        }
    }
}

/// Every difference between the catalogue (topic names behind `prefix`, `partitions` each) and
/// what a cluster has, keyed by full topic name. Empty means the cluster is as tessera needs it.
pub fn differences(
    prefix: &str,
    partitions: i32,
    observed: &BTreeMap<String, Observed>,
) -> Vec<Difference> {
    let mut found = Vec::new();
    for topic in ALL {
        let name = topic.full_name(prefix);
        let Some(actual) = observed.get(&name) else {
            found.push(Difference::Missing { topic: name });
            continue;
        };
        if actual.partitions != partitions {
            found.push(Difference::Partitions {
                topic: name.clone(),
                expected: partitions,
                actual: actual.partitions,
            });
        }
        for (key, expected) in topic.configs() {
            let value = actual.configs.get(key);
            if value.map(String::as_str) != Some(expected) {
                found.push(Difference::Config {
                    topic: name.clone(),
                    key: key.to_string(),
                    expected: expected.to_string(),
                    actual: value.cloned(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> BTreeMap<String, Observed> {
        ALL.iter()
            .map(|t| {
                let configs = t
                    .configs()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (
                    t.name.to_string(),
                    Observed {
                        partitions: DEFAULT_PARTITIONS,
                        configs,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_cluster_built_from_the_catalogue_has_no_differences() {
        assert_eq!(differences("", DEFAULT_PARTITIONS, &healthy()), vec![]);
    }

    #[test]
    fn each_kind_of_drift_is_named() {
        let mut cluster = healthy();
        cluster.remove("tessera.ledger");
        cluster.get_mut("tessera.requests").unwrap().partitions = 3;
        cluster
            .get_mut("tessera.responses")
            .unwrap()
            .configs
            .insert(TIMESTAMP_TYPE.into(), "CreateTime".into());
        cluster
            .get_mut("tessera.subscribers")
            .unwrap()
            .configs
            .remove("cleanup.policy");
        let found = differences("", DEFAULT_PARTITIONS, &cluster);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "tessera.subscribers: cleanup.policy not reported, expected cleanup.policy=compact",
                "tessera.requests: 3 partitions, expected 6",
                "tessera.responses: message.timestamp.type=CreateTime, expected message.timestamp.type=LogAppendTime",
                "tessera.ledger: missing",
            ]
        );
    }

    #[test]
    fn every_event_lives_on_exactly_one_topic() {
        for &kind in EventKind::ALL {
            let homes = ALL.iter().filter(|t| t.events.contains(&kind)).count();
            let expected = usize::from(kind != EventKind::Tick);
            assert_eq!(homes, expected, "{kind:?}");
        }
    }
}
