//! `tessera provider`: publish an offer, withdraw it. The offer is built and checked by
//! `tessera-producers`; this only reads the command line and reports what was written.

use anyhow::Context;
use tessera_producers::client::Writer;
use tessera_producers::provider::{
    self, OfferRequest, RuleSpec, parse_feature, parse_parameter, parse_reward,
};
use tessera_producers::when::{Span, When, Zone, parse_duration_ms};
use tessera_schemas::Reward;

use crate::kafka::KafkaArgs;

/// What a provider does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Provider {
    /// Publish an offer to `tessera.offers`: what it is (for matching), when responses count,
    /// and its sealed credential. An offer the timekeeper would reject (empty identifier, window
    /// ending before it starts, duration not positive, deadline or window already past, capacity
    /// or reward not positive) is refused here and nothing is written.
    Publish(Box<PublishArgs>),
    /// Withdraw an offer: responses received after the withdrawal are rejected as withdrawn.
    Withdraw {
        /// The offer's id.
        offer: String,
        /// The provider that published it (the withdrawal takes effect only if they match).
        #[arg(long)]
        provider: String,
        /// A reason shown to the parties.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// The offer's content and rule.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).args(["deadline", "window", "within"])))]
#[command(after_help = "\
Times are RFC 3339 (2026-11-26T09:00:00+01:00) or a time of day today in --tz (09:00, 09:00:30).
Durations read like 90s, 15m, 1h, 1h30m, 2d. Every bound of a rule is inclusive and judged on the
broker's receipt stamp of each response, never on a client's clock.

Example:
  tessera provider publish --provider A --contact a@example.org --identifier doc-X \\
    --name 'Quarterly report X' --feature format=pdf --param price=9900 --deadline 09:00 --tz +01:00")]
pub struct PublishArgs {
    /// The provider's id; rewards are credited to it.
    #[arg(long)]
    pub provider: String,
    /// How responders reach the provider (e-mail, URL, ...); sent with each invitation.
    #[arg(long)]
    pub contact: String,
    /// The target data's identifier (catalogue number, document name); must not be empty.
    #[arg(long)]
    pub identifier: String,
    /// The target data's human-readable name; subscribers' name terms are matched against it.
    #[arg(long)]
    pub name: String,
    /// A feature of the target data, e.g. `--feature format=pdf`. Repeatable.
    #[arg(long = "feature", value_name = "KEY=VALUE", value_parser = parse_feature)]
    pub features: Vec<(String, String)>,
    /// An integer parameter, money in minor units, e.g. `--param price=9900`. Repeatable.
    #[arg(long = "param", value_name = "NAME=INTEGER", value_parser = parse_parameter, allow_hyphen_values = true)]
    pub parameters: Vec<(String, i64)>,
    /// Responses received at or before this time count.
    #[arg(long, value_name = "TIME")]
    pub deadline: Option<When>,
    /// Responses received from FROM to TO, both included, count, e.g. `08:00..09:00`.
    #[arg(long, value_name = "FROM..TO")]
    pub window: Option<Span>,
    /// Responses received within this long after the offer itself was received count, e.g. `1h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms, allow_hyphen_values = true)]
    pub within: Option<i64>,
    /// The zone of times of day: `local`, `UTC`, or a fixed offset like `+08:00`. RFC 3339 times
    /// carry their own offset.
    #[arg(long, value_name = "ZONE", default_value = "local")]
    pub tz: Zone,
    /// Release the credential to at most N responders, the first by broker receipt order.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub capacity: Option<i32>,
    /// Credited to the provider per accepted credential, as AMOUNT:CURRENCY with the amount in
    /// minor units, e.g. `250:EUR` for 2.50 EUR.
    #[arg(long, value_name = "AMOUNT:CURRENCY", value_parser = parse_reward, allow_hyphen_values = true)]
    pub reward: Option<Reward>,
    /// The offer's id (default: a random UUID).
    #[arg(long, value_name = "ID")]
    pub offer_id: Option<String>,
}

impl PublishArgs {
    fn rule(&self) -> anyhow::Result<RuleSpec> {
        match (self.deadline, self.window, self.within) {
            (Some(at), None, None) => Ok(RuleSpec::Deadline(at)),
            (None, Some(span), None) => Ok(RuleSpec::Window(span)),
            (None, None, Some(duration_ms)) => Ok(RuleSpec::Within(duration_ms)),
            _ => anyhow::bail!("give exactly one of --deadline, --window and --within"),
        }
    }
}

/// Runs a provider command.
pub async fn run(kafka: &KafkaArgs, command: Provider) -> anyhow::Result<()> {
    let config = kafka.client_config()?;
    match command {
        Provider::Publish(args) => {
            let request = OfferRequest {
                offer_id: args
                    .offer_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                rule: args.rule()?,
                provider_id: args.provider,
                provider_contact: args.contact,
                identifier: args.identifier,
                name: args.name,
                features: args.features,
                parameters: args.parameters,
                zone: args.tz,
                capacity: args.capacity,
                reward: args.reward,
            };
            let offer = provider::build(request, chrono::Utc::now())?;
            let (offer_id, rule) = (offer.offer_id.clone(), offer.time_rule.describe());
            let writer = Writer::new(&config)?;
            let written = provider::publish(&writer, &kafka.topic_prefix, offer)
                .await
                .with_context(|| format!("cannot publish offer {offer_id}"))?;
            println!("offer {offer_id} published [{written}]");
            println!("  rule: {rule}");
        }
        Provider::Withdraw {
            offer,
            provider,
            reason,
        } => {
            let writer = Writer::new(&config)?;
            let written =
                provider::withdraw(&writer, &kafka.topic_prefix, &offer, &provider, reason)
                    .await
                    .with_context(|| format!("cannot withdraw offer {offer}"))?;
            println!("offer {offer} withdrawn [{written}]");
        }
    }
    Ok(())
}
