//! What every tessera binary reads before its command: where the cluster is and how to log.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::kafka::KafkaArgs;
use crate::logging::LogArgs;

/// A tessera binary's command line: the cluster, the log format, then its command `C`.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true, max_term_width = 100)]
pub struct Cli<C: Subcommand> {
    /// How to reach the cluster.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// How to log.
    #[command(flatten)]
    pub log: LogArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: C,
}

impl<C: Subcommand> Cli<C> {
    /// Parses the process's arguments as the binary `name`, whose help opens with `about`; on
    /// bad input prints clap's message and exits non-zero.
    pub fn parse_as(name: &'static str, about: &'static str) -> Self {
        let matches = Self::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }
}
