//! `tessera run`: starts one processor instance on the exactly-once runtime, with a Prometheus
//! endpoint and a graceful stop on SIGTERM or Ctrl-C (commit, then leave the group).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tessera_contract::sealing::PrivateKey;
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_cores::counter::Counter;
use tessera_cores::delivery::Delivery;
use tessera_cores::ledger::{Ledger, Rewards};
use tessera_cores::matcher::Matcher;
use tessera_cores::registry;
use tessera_cores::timekeeper::Timekeeper;
use tessera_producers::client::Writer;
use tessera_producers::keys::{self, Role};
use tessera_runtime::{self as runtime, Config};
use tessera_webhooks::{self as webhooks, Retries, Settings};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

use crate::kafka::KafkaArgs;

/// Which processor to run.
#[derive(Debug, Clone, clap::Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "command-line arguments, parsed once"
)]
pub enum Processor {
    /// Invites the subscribers whose stored needs match each offer: keeps every subscriber's
    /// interests, indexed, in state and writes one InteractionRequested per match to
    /// `tessera.requests`. Reads `tessera.subscribers` (one partition per task) and every
    /// partition of `tessera.offers`. A registration or removal counts only if signed by the
    /// key its id pinned, and an offer invites only if it carries the key its provider id
    /// pinned with its first offer; a refused one goes to `tessera.dead-letters` with its reason.
    Matcher {
        /// The processor's own key.
        #[command(flatten)]
        key: KeyFile,
        /// The operator's trust anchor (an Ed25519 verifying key, 64 hex digits: `tessera keys
        /// public --signing FILE`): every subscriber's first registration and every provider's
        /// first offer must then carry its endorsement (`tessera keys endorse [--provider]`), and
        /// an endorsed registration or offer recovers a lost key.
        #[arg(long, env = "TESSERA_TRUST_ANCHOR", value_name = "HEX")]
        trust_anchor: Option<VerifyingKey>,
    },
    /// Judges each response to an offer by its broker receipt stamp against the offer's time
    /// rule and writes one verdict per response to `tessera.decisions` (CredentialReleased or
    /// ResponseRejected), plus OfferRejected and OfferClosed. Reads `tessera.offers`,
    /// `tessera.requests` and `tessera.responses`. Publishes its public key on `tessera.keys` at
    /// start, signed, for providers to seal to and clients to check its signatures with.
    /// Believes only offers and withdrawals signed by their provider's key, invitations signed by
    /// the matcher, and responses signed by the subscriber's pinned key.
    Timekeeper {
        /// The timekeeper's private key file (mode 0600; make one with `tessera keys generate`).
        #[arg(long, env = "TESSERA_TIMEKEEPER_KEY_FILE", value_name = "PATH")]
        key_file: PathBuf,
        /// The matcher's verifying key (64 hex digits: `tessera keys public --signing` on the
        /// matcher's key file): invitations must be signed with it.
        #[arg(long, env = "TESSERA_MATCHER_KEY", value_name = "HEX")]
        matcher_key: VerifyingKey,
    },
    /// Assembles each released credential (the offer's package, the timekeeper's half and the
    /// provider's half, from the release in escrow custody or from `tessera.cosigns` in co-sign
    /// custody) and writes it once as CredentialDelivered to the recipient's inbox,
    /// `tessera.deliveries`, keyed by subscriber id. Tells each subscriber there, in notices
    /// sealed to its pinned key, of its invitations, the verdicts on its responses, the ends of
    /// its offers and its own decisions, so subscribers read nothing but their inbox. Reads
    /// `tessera.offers`, `tessera.requests`, `tessera.decisions`, `tessera.cosigns` and
    /// `tessera.outcomes`. Alongside, unless `--no-webhooks`, it posts each delivered
    /// credential to the subscriber's registered `https://` or `http://` webhook (group
    /// `tessera.webhooks`), with `Idempotency-Key: <credential id>`, retrying with doubling
    /// pauses; after the last attempt it writes DeliveryFailed to `tessera.deliveries`. Each post
    /// is signed with the delivery's key (`Tessera-Signature`, `Tessera-Timestamp`,
    /// `Tessera-Key-Fingerprint`), and goes only to hosts with public addresses unless
    /// `--webhook-allow-private`. The worker posts only credentials signed with the delivery's
    /// key, and follows only registrations signed by the subscriber's pinned key.
    Delivery {
        /// The processor's own key.
        #[command(flatten)]
        key: KeyFile,
        /// The timekeeper's verifying key (64 hex digits: `tessera keys public --signing` on the
        /// timekeeper's key file): releases and offers' ends must be signed with it; provider
        /// halves must be signed with the key of the offer they name.
        #[arg(long, env = "TESSERA_TIMEKEEPER_VERIFYING_KEY", value_name = "HEX")]
        timekeeper_key: VerifyingKey,
        /// The matcher's verifying key (64 hex digits: `tessera keys public --signing` on the
        /// matcher's key file): only invitations signed with it are told to their subscriber.
        #[arg(long, env = "TESSERA_MATCHER_KEY", value_name = "HEX")]
        matcher_key: VerifyingKey,
        /// The operator's trust anchor, as given to the matcher: the webhook worker then follows
        /// a subscriber's first registration only if the anchor endorsed it, as the matcher does.
        #[arg(long, env = "TESSERA_TRUST_ANCHOR", value_name = "HEX")]
        trust_anchor: Option<VerifyingKey>,
        /// The webhook worker's settings.
        #[command(flatten)]
        webhooks: WebhookArgs,
    },
    /// Credits each accepted credential's reward to its provider once, as RewardCredited on
    /// `tessera.ledger` with the balance after it. Two cores in one process: `ledger-rewards`
    /// (by offer: reads `tessera.offers`, `tessera.decisions`, `tessera.outcomes`, writes
    /// `tessera.ledger-credits`) and `ledger` (by provider: reads `tessera.ledger-credits`).
    Ledger {
        /// The processor's own key.
        #[command(flatten)]
        key: KeyFile,
        /// The timekeeper's verifying key (64 hex digits: `tessera keys public --signing` on the
        /// timekeeper's key file): releases must be signed with it. Outcomes must be signed by
        /// the recipient's pinned key, and rewards by this ledger's own key.
        #[arg(long, env = "TESSERA_TIMEKEEPER_VERIFYING_KEY", value_name = "HEX")]
        timekeeper_key: VerifyingKey,
    },
}

/// The runtime's test and benchmark workload (`tessera-bench counter`): a per-key counter with
/// an idle timer. It writes `key=n` for the n-th record of a key, and `key expired after n` when a
/// key goes idle.
#[derive(Debug, Clone, clap::Args)]
pub struct CounterArgs {
    /// Input topic (repeatable; co-partitioned, stamped LogAppendTime).
    #[arg(long = "input", required = true)]
    pub inputs: Vec<String>,
    /// Output topic.
    #[arg(long)]
    pub output: String,
    /// Forget a key after this much stream time without records.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
}

impl CounterArgs {
    /// The counter core these arguments describe.
    pub fn core(&self) -> Counter {
        Counter::new(
            "counter",
            self.inputs.clone(),
            self.output.clone(),
            millis(self.idle),
        )
    }
}

/// A platform processor's own key file: every record it writes is signed with the signing key
/// derived from it, so readers can tell its records from anyone else's.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyFile {
    /// The processor's private key file (mode 0600; make one with `tessera keys generate`).
    #[arg(long, env = "TESSERA_KEY_FILE", value_name = "PATH")]
    pub key_file: PathBuf,
}

impl KeyFile {
    fn signer(&self) -> anyhow::Result<Arc<SigningKey>> {
        Ok(Arc::new(SigningKey::derive(&keys::load(&self.key_file)?)))
    }

    /// The signer of `role`, its public keys published on `tessera.keys` first: clients believe
    /// only records signed with the key they find there and pin (subscribers the delivery
    /// worker's deliveries, `ledger balance` the ledger's credits).
    async fn publish(&self, kafka: &KafkaArgs, role: Role) -> anyhow::Result<Arc<SigningKey>> {
        let key = keys::load(&self.key_file)?;
        let writer = Writer::new(&kafka.client_config()?)?;
        let written = keys::publish(&writer, &kafka.topic_prefix, role, &key)
            .await
            .with_context(|| format!("cannot publish the {role}'s public key"))?;
        let signer = SigningKey::derive(&key);
        info!(
            "{role} signing key fingerprint {}, published [{written}]",
            signer.verifying_key().fingerprint()
        );
        Ok(Arc::new(signer))
    }
}

/// Runtime options shared by every processor.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// This instance's id, unique among running instances and stable across its restarts (it
    /// fences a previous incarnation's transactions).
    #[arg(long, env = "TESSERA_INSTANCE", default_value = "0")]
    pub instance: String,
    /// Directory for the tasks' RocksDB state stores.
    #[arg(long, env = "TESSERA_STATE_DIR", default_value = ".tessera/state")]
    pub state_dir: PathBuf,
    /// Commit the open transaction this often.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,
    /// Write no ticks. By default a processor writes a tick to an idle input partition when a
    /// decision waits for time to pass on it (an offer's window closing, a response waiting for
    /// the invitations stamped before it), and only then; without ticks such a decision waits
    /// for the next record on that partition. For a processor not allowed to write its inputs.
    #[arg(long)]
    pub no_ticks: bool,
    /// The least time between two ticks on one idle input partition. A decision waiting on idle
    /// partitions waits about a tick's round trip plus half this; an idle partition beside busy
    /// ones gets at most one tick per gap (docs/TIME.md).
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub tick_gap: Duration,
    /// Threads of the processor, 0 for one per core of the machine: one runs the processing
    /// loop, and all of them check the signatures and make the seals a batch of records will need
    /// (the timekeeper's), before the loop steps through the batch in order.
    #[arg(long, default_value_t = 0, env = "TESSERA_WORK_THREADS")]
    pub work_threads: usize,
    /// Replicas of each changelog partition when this processor creates its changelog topic
    /// (`tessera.<processor>.changelog`); by default the broker's `default.replication.factor`.
    /// An existing changelog is left as it is.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub changelog_replication_factor: Option<i32>,
    /// Where to serve Prometheus metrics; the help lists each processor's default port.
    #[arg(long, env = "TESSERA_METRICS_ADDR", help = metrics_addr_help())]
    pub metrics_addr: Option<String>,
}

/// How the delivery worker posts to webhooks.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Do not post to webhooks: credentials only go to the inbox.
    #[arg(long)]
    pub no_webhooks: bool,
    /// Posts per credential at most, the first included. The whole budget (attempts, pauses,
    /// timeouts) should stay well under the consumer's `max.poll.interval.ms` (5 min).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_attempts: u32,
    /// Pause after the first failed post; it doubles after each further one.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub webhook_backoff: Duration,
    /// The longest pause between posts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_max_backoff: Duration,
    /// How long one post may take, connecting included.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,
    /// A PEM file of CA certificates to trust for `https://` webhooks, added to the built-in
    /// Mozilla roots (webpki-roots), not replacing them: for receivers whose certificates come
    /// from a private CA.
    #[arg(long, env = "TESSERA_WEBHOOK_CA", value_name = "FILE")]
    pub webhook_ca: Option<PathBuf>,
    /// Also post to webhooks whose host is, or resolves to, a loopback, private (RFC 1918,
    /// fc00::/7), link-local, carrier-grade NAT or other non-public address. Without it such a
    /// webhook gets DeliveryFailed "Refused: ..." and no post, so a registration cannot aim the
    /// worker at services only the platform reaches. For receivers on the same host or network.
    #[arg(long)]
    pub webhook_allow_private: bool,
}

impl WebhookArgs {
    fn settings(&self, trust_anchor: Option<VerifyingKey>) -> Settings {
        Settings {
            retries: Retries {
                attempts: self.webhook_attempts,
                first_backoff: self.webhook_backoff,
                max_backoff: self.webhook_max_backoff,
                timeout: self.webhook_timeout,
            },
            ca_file: self.webhook_ca.clone(),
            allow_private: self.webhook_allow_private,
            trust_anchor,
            contact_key: None,
        }
    }
}

/// The counter is a test workload (`tessera-bench counter`), not a registered processor: its
/// port follows theirs.
const COUNTER_METRICS_PORT: u16 = 9468;

impl Processor {
    /// The processor's name in the registry.
    fn name(&self) -> &'static str {
        match self {
            Processor::Matcher { .. } => "matcher",
            Processor::Timekeeper { .. } => "timekeeper",
            Processor::Delivery { .. } => "delivery",
            Processor::Ledger { .. } => "ledger",
        }
    }

    /// The processor's own default metrics port, as the registry declares it.
    fn metrics_port(&self) -> u16 {
        registry::find(self.name())
            .expect("every processor of tessera run is registered")
            .metrics_port
    }
}

/// Runs the counter until SIGTERM or Ctrl-C.
pub async fn run_counter(
    kafka: &KafkaArgs,
    args: &RunArgs,
    counter: &CounterArgs,
) -> anyhow::Result<()> {
    let (config, stop) = prepare(kafka, args, COUNTER_METRICS_PORT)?;
    runtime::run(counter.core(), config, stop).await
}

/// `--metrics-addr`'s help, with each processor's default port from the registry.
fn metrics_addr_help() -> String {
    let ports: Vec<String> = registry::ALL
        .iter()
        .map(|p| format!("{} 127.0.0.1:{}", p.name, p.metrics_port))
        .collect();
    format!(
        "Serve Prometheus metrics at this address (`/metrics`); `off` disables it. By default \
         each processor has its own port, so one of each can run on a host: {}. Give further \
         instances on the same host their own address",
        ports.join(", ")
    )
}

/// Runs the processor until SIGTERM or Ctrl-C.
pub async fn run(kafka: &KafkaArgs, args: &RunArgs, processor: Processor) -> anyhow::Result<()> {
    let (mut config, stop) = prepare(kafka, args, processor.metrics_port())?;
    match processor {
        Processor::Matcher { key, trust_anchor } => {
            config.signer = Some(key.signer()?);
            runtime::run(Matcher::new(trust_anchor), config, stop).await
        }
        Processor::Timekeeper {
            key_file,
            matcher_key,
        } => {
            let key = keys::load(&key_file)?;
            config.signer = Some(Arc::new(SigningKey::derive(&key)));
            let timekeeper = timekeeper(kafka, key, matcher_key).await?;
            runtime::run(timekeeper, config, stop).await
        }
        Processor::Delivery {
            key,
            timekeeper_key,
            matcher_key,
            webhooks,
            ..
        } if webhooks.no_webhooks => {
            config.signer = Some(key.publish(kafka, Role::Delivery).await?);
            let delivery = Delivery::new(keys::load(&key.key_file)?, timekeeper_key, matcher_key);
            runtime::run(delivery, config, stop).await
        }
        Processor::Delivery {
            key,
            timekeeper_key,
            matcher_key,
            trust_anchor,
            webhooks,
        } => {
            let signer = key.publish(kafka, Role::Delivery).await?;
            config.signer = Some(signer.clone());
            let client = kafka.client_config()?;
            // The webhook worker has its own consumer group and shares only the process, the
            // stop signal and the key with the core: the key it checks the core's records with
            // is the one it signs its posts with.
            let settings = Settings {
                contact_key: Some(Arc::new(keys::load(&key.key_file)?)),
                ..webhooks.settings(trust_anchor)
            };
            let posting = webhooks::run(&client, &kafka.topic_prefix, settings, signer, &stop);
            let delivery = Delivery::new(keys::load(&key.key_file)?, timekeeper_key, matcher_key);
            tokio::try_join!(runtime::run(delivery, config, stop.clone()), async {
                posting.await.context("the webhook worker failed")
            })?;
            Ok(())
        }
        Processor::Ledger {
            key,
            timekeeper_key,
        } => {
            let signer = key.publish(kafka, Role::Ledger).await?;
            let (rewards, ledger) = (
                Rewards::new(timekeeper_key),
                Ledger::new(signer.verifying_key()),
            );
            config.signer = Some(signer);
            // Each core's name makes its own consumer group, transactional ids, changelog and
            // state directory, so the two share only the process and the stop signal.
            tokio::try_join!(
                runtime::run(rewards, config.clone(), stop.clone()),
                runtime::run(ledger, config, stop),
            )?;
            Ok(())
        }
    }
}

/// The timekeeper core with `key`, once its public keys are on `tessera.keys`.
async fn timekeeper(
    kafka: &KafkaArgs,
    key: PrivateKey,
    matcher: VerifyingKey,
) -> anyhow::Result<Timekeeper> {
    let public = key.public_key();
    let fingerprint = SigningKey::derive(&key).verifying_key().fingerprint();
    let writer = Writer::new(&kafka.client_config()?)?;
    let written = keys::publish(&writer, &kafka.topic_prefix, Role::Timekeeper, &key)
        .await
        .context("cannot publish the timekeeper's public key")?;
    info!(
        "timekeeper public key {public}, signing key fingerprint {fingerprint}, published [{written}]"
    );
    Ok(Timekeeper::new(key, matcher))
}

/// A duration as the cores count stream time: whole milliseconds, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Serves metrics, builds the runtime's configuration and arms the stop flag on SIGTERM or
/// Ctrl-C: what every processor does before it starts.
fn prepare(
    kafka: &KafkaArgs,
    args: &RunArgs,
    metrics_port: u16,
) -> anyhow::Result<(Config, Arc<AtomicBool>)> {
    let metrics_addr = args
        .metrics_addr
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{metrics_port}"));
    if metrics_addr != "off" {
        let addr: SocketAddr = metrics_addr
            .parse()
            .with_context(|| format!("--metrics-addr {metrics_addr} is not host:port or off"))?;
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        info!("metrics at http://{addr}/metrics");
    }
    let mut config = Config::new(
        kafka.client_config()?,
        &args.instance,
        args.state_dir.clone(),
    );
    config.topic_prefix = kafka.topic_prefix.clone();
    config.commit_interval = args.commit_interval;
    config.ticks = !args.no_ticks;
    config.tick_gap = args.tick_gap;
    config.work_threads = args.work_threads;
    config.changelog_replication = args.changelog_replication_factor;

    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        info!("stopping: committing and leaving the group");
        on_signal.store(true, Ordering::Relaxed);
    });
    Ok((config, stop))
}
