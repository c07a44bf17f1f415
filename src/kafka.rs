//! How every tessera command reaches Kafka: the bootstrap address, rdkafka properties passed
//! through from the command line or a file, and the topic prefix.
//!
//! Users who run Kafka already have client settings (security, timeouts, tuning); they pass them
//! as librdkafka properties, exactly as they would to any librdkafka-based tool, instead of
//! learning tessera-specific flags for each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;

/// Connection options shared by every subcommand that talks to Kafka.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated.
    #[arg(
        long,
        env = "TESSERA_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,

    /// A librdkafka property, e.g. `-X security.protocol=ssl`. Repeatable; overrides
    /// `--kafka-config`.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property, global = true)]
    pub property: Vec<(String, String)>,

    /// A file of librdkafka properties, one `key=value` per line (`#` starts a comment).
    #[arg(long, env = "TESSERA_KAFKA_CONFIG", value_name = "FILE", global = true)]
    pub kafka_config: Option<PathBuf>,

    /// Prefix for every tessera topic name, so several installations (or test runs) can share a
    /// cluster. Empty by default: topics are named `tessera.offers` and so on.
    #[arg(long, env = "TESSERA_TOPIC_PREFIX", default_value = "", global = true)]
    pub topic_prefix: String,
}

impl KafkaArgs {
    /// Arguments for `brokers` with no extra properties and no prefix.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaArgs {
            brokers: brokers.into(),
            property: Vec::new(),
            kafka_config: None,
            topic_prefix: String::new(),
        }
    }

    /// The client configuration: bootstrap servers, then the file's properties, then `-X` ones.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        if let Some(path) = &self.kafka_config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read Kafka config file {}", path.display()))?;
            for (key, value) in parse_properties(&text)
                .with_context(|| format!("in Kafka config file {}", path.display()))?
            {
                config.set(key, value);
            }
        }
        for (key, value) in &self.property {
            config.set(key, value);
        }
        Ok(config)
    }
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

/// Parses a Java-style properties file (the subset librdkafka users write): `key=value` lines,
/// blank lines and `#` or `!` comments.
pub fn parse_properties(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut properties = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        match parse_property(line) {
            Ok((key, value)) => {
                properties.insert(key, value);
            }
            Err(_) => bail!("line {}: expected key=value, got `{line}`", number + 1),
        }
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_files_allow_comments_and_spaces() {
        let parsed =
            parse_properties("# tuning\n\nlinger.ms = 5\n! old style\nacks=all\n").unwrap();
        assert_eq!(
            parsed,
            BTreeMap::from([
                ("acks".to_string(), "all".to_string()),
                ("linger.ms".to_string(), "5".to_string())
            ])
        );
    }

    #[test]
    fn a_line_without_equals_names_its_line() {
        let err = parse_properties("acks=all\nlinger.ms\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: expected key=value, got `linger.ms`"
        );
    }

    #[test]
    fn command_line_properties_override_the_file() {
        let dir = std::env::temp_dir().join(format!("tessera-kafka-{}", std::process::id()));
        std::fs::write(&dir, "acks=1\nlinger.ms=5\n").unwrap();
        let args = KafkaArgs {
            property: vec![("acks".into(), "all".into())],
            kafka_config: Some(dir.clone()),
            ..KafkaArgs::new("b:9092")
        };
        let config = args.client_config().unwrap();
        std::fs::remove_file(dir).unwrap();
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("linger.ms"), Some("5"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }
}
