//! `tessera provider`: publish an offer with its sealed target data, withdraw it, run the agent
//! that co-signs its releases, and watch everything that happens to its offers. The work is in `tessera-producers`; this only reads the
//! command line and reports what was written.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tessera_contract::sealing::{
    INLINE_TARGET_DATA_LEN, MAX_PACKAGE_LEN, MAX_TARGET_DATA_LEN, PublicKey,
};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::PACKAGES;
use tessera_contract::{Custody, Reward};
use tessera_producers::agent::{self, Acted, Agent};
use tessera_producers::client::Writer;
use tessera_producers::keys::{self, Halves, PlatformKeyError, Role};
use tessera_producers::packages;
use tessera_producers::provider::{
    self, OfferRequest, ProviderError, RuleSpec, Sealing, parse_decide_within, parse_feature,
    parse_parameter, parse_reward,
};
use tessera_producers::watch::{self, Pinned, Watch, Watched};
use tessera_producers::when::{Span, When, Zone, parse_duration_ms};
use zeroize::Zeroizing;

use crate::kafka::KafkaArgs;
use crate::keys::{DeliveryPin, LedgerPin, TimekeeperPin, platform, timekeeper, timekeeper_key};

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
        /// The provider's key directory (default `.tessera/keys/<provider>`): the withdrawal is
        /// signed with its `provider.key`, and takes effect only if that is the key the offer
        /// was signed with.
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
    /// Co-sign releases (co-sign custody): follow `tessera.decisions` and, for each credential
    /// the pinned timekeeper signed a release of for one of this provider's offers, check the
    /// response it cites (signed by the responder's pinned key, in time), seal the kept half to
    /// the responder's own pinned key (folded from `tessera.subscribers`, never taken from the
    /// platform) and write ProviderShareReleased to `tessera.cosigns`, signed with the provider's
    /// key. Each credential is co-signed once; a release that fails a check is refused, with the
    /// reason, on stderr.
    Agent {
        /// The provider's id.
        #[arg(long)]
        provider: String,
        /// Where the provider's key and halves are kept (default `.tessera/keys/<provider>`).
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
        /// How the timekeeper's key is pinned.
        #[command(flatten)]
        pin: TimekeeperPin,
        /// The installation's trust anchor (verifying key, 64 hex digits), if its matcher runs
        /// with one: registrations are folded as the matcher folds them.
        #[arg(long, value_name = "HEX")]
        trust_anchor: Option<VerifyingKey>,
        /// Stop after this long without a release of this provider's offers, e.g. `30s`
        /// (default: follow forever).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        until_idle: Option<Duration>,
    },
    /// Follow everything about a provider's offers as it happens: its offers and withdrawals
    /// (`tessera.offers`), invitations (`tessera.requests`), responses (`tessera.responses`),
    /// verdicts and closes (`tessera.decisions`), deliveries without their sealed content
    /// (`tessera.deliveries`), outcomes (`tessera.outcomes`) and credits (`tessera.ledger`), one
    /// line each.
    ///
    /// An offer counts as the provider's only if it is signed with the key it carries and that
    /// key is pinned for the provider (its first offer pins it, as the matcher folds
    /// `tessera.offers`, which is read to its end at start), and a withdrawal only if signed with
    /// its offer's key: offers naming the provider that fail are ignored, with a warning on
    /// stderr. Verdicts must be signed by the pinned timekeeper, deliveries by the delivery
    /// worker and credits by the ledger, or they are ignored likewise; a role whose key is not on
    /// `tessera.keys` (and whose fingerprint was not given) has its records shown marked
    /// `(unverified)` (`"signed_by": null`). Invitations, responses and outcomes are always
    /// marked unverified: no pinned key vouches for them, and the verdict or credit that follows
    /// says whether they counted.
    #[command(after_help = "\
Text lines read like `subscriber listen`'s, e.g.
  released credential 5d1c... to B1 for offer o1 (response received 2026-12-05T09:00:01.250Z) \
[tessera.decisions/2@17, received 2026-12-05T09:00:01.270Z]

--json prints one object per line: {\"topic\", \"partition\", \"offset\", \"stamp\", \"received\",
\"type\", \"offer_id\", \"signed_by\" (provider, timekeeper, delivery, ledger or null), \"event\"}, the
event's fields with byte fields as hex and never a package, a sealed half or a private key.")]
    Watch {
        /// The provider's id.
        #[arg(long)]
        provider: String,
        /// Show what the topics hold from their beginning, not only what comes from now on.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this long with nothing about the provider's offers, e.g. `30s` (default:
        /// follow forever).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        until_idle: Option<Duration>,
        /// Print one JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// The installation's trust anchor (verifying key, 64 hex digits), if its matcher runs
        /// with one: the provider's key is pinned as the matcher pins it.
        #[arg(long, value_name = "HEX")]
        trust_anchor: Option<VerifyingKey>,
        /// How the timekeeper's key is pinned.
        #[command(flatten)]
        timekeeper: TimekeeperPin,
        /// How the delivery worker's key is pinned.
        #[command(flatten)]
        delivery: DeliveryPin,
        /// How the ledger's key is pinned.
        #[command(flatten)]
        ledger: LedgerPin,
    },
}

/// Who keeps the provider half of the data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CustodyArg {
    /// The provider keeps it and its agent co-signs each release: the platform alone can never
    /// read the target data.
    Cosign,
    /// It is sealed to the timekeeper too, which releases both halves.
    Escrow,
}

impl From<CustodyArg> for Custody {
    fn from(custody: CustodyArg) -> Self {
        match custody {
            CustodyArg::Cosign => Custody::CoSign,
            CustodyArg::Escrow => Custody::Escrow,
        }
    }
}

/// The offer's content and rule.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).args(["deadline", "window", "within"])))]
#[command(after_help = "\
Times are RFC 3339 (2026-11-26T09:00:00+01:00) or a time of day today in --tz (09:00, 09:00:30).
Durations read like 90s, 15m, 1h, 1h30m, 2d. Every bound of a rule is inclusive and judged on the
broker's receipt stamp of each response, never on a client's clock.

A payload of at most 512 KiB travels inline in the offer, compressed and encrypted. A larger one,
of any size, is streamed to tessera.packages in sealed chunks of 512 KiB before the offer, which
names them; the chunks are not compressed (audio, video and archives are already).

Example:
  tessera provider publish --provider A --contact a@example.org --identifier doc-X \\
    --name 'Quarterly report X' --feature format=pdf --param price=9900 --deadline 09:00 --tz +01:00 \\
    --payload report-x.pdf")]
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
    /// How long each recipient has, from its credential's release, to accept it and still earn
    /// the reward, e.g. `24h`; judged by the broker's receipt stamps of the release and of the
    /// acceptance. A later acceptance earns nothing (the ledger's dead letters say why). Default:
    /// no limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_decide_within)]
    pub decide_within: Option<i64>,
    /// The offer's id (default: a random UUID).
    #[arg(long, value_name = "ID")]
    pub offer_id: Option<String>,
    /// The target data: encrypted under a fresh data key, and handed over only to responders
    /// the timekeeper releases. Up to 512 KiB it is compressed and travels in the offer; a larger
    /// file, of any size, is streamed to `tessera.packages` in 512 KiB chunks.
    #[arg(long, value_name = "FILE")]
    pub payload: PathBuf,
    /// Who keeps the provider half of the data key.
    #[arg(long, value_enum, default_value = "cosign")]
    pub custody: CustodyArg,
    /// The timekeeper's public key (64 hex digits; default: the one published on `tessera.keys`).
    #[arg(long, value_name = "HEX")]
    pub timekeeper_key: Option<PublicKey>,
    /// The provider's key directory (default `.tessera/keys/<provider>`): its `provider.key`
    /// (created on first use) signs the offer, and the provider half is kept there in co-sign
    /// custody, where `tessera provider agent` reads it.
    #[arg(long, value_name = "DIR")]
    pub key_dir: Option<PathBuf>,
    /// An endorsement of the provider id and its signing key (hex, from `tessera keys endorse
    /// --provider`). The provider's first offer pins its id to its key; an offer with another key
    /// invites no one unless the key pinned so far (a rotation) or the operator's trust anchor (a
    /// lost key, or any first offer where the matcher runs with `--trust-anchor`) endorsed it.
    #[arg(long, value_name = "HEX", value_parser = crate::keys::parse_hex)]
    pub endorsement: Option<Vec<u8>>,
    /// Invite only the subscribers registered when the offer arrives. By default a subscriber
    /// that registers, or adds an interest, while the offer is open is invited too.
    #[arg(long)]
    pub no_late_invitations: bool,
    /// How the timekeeper's key is pinned.
    #[command(flatten)]
    pub pin: TimekeeperPin,
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

/// Reads the payload file, refusing one larger than any party opens before reading it.
fn read_payload(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read payload {}", path.display()))?;
    let mut payload = Zeroizing::new(Vec::new());
    // One byte past the limit tells a file that is too large without reading all of it.
    file.take(MAX_TARGET_DATA_LEN as u64 + 1)
        .read_to_end(&mut payload)
        .with_context(|| format!("cannot read payload {}", path.display()))?;
    if payload.len() > MAX_TARGET_DATA_LEN {
        anyhow::bail!(
            "payload {} is larger than {MAX_TARGET_DATA_LEN} bytes; an offer carries at most a \
             {MAX_PACKAGE_LEN}-byte package inline",
            path.display()
        );
    }
    Ok(payload)
}

fn halves(provider: &str, key_dir: Option<PathBuf>) -> anyhow::Result<Halves> {
    Ok(match key_dir {
        Some(dir) => Halves::new(dir),
        None => Halves::of_provider(provider)?,
    })
}

/// The provider's signing key, from `provider.key` in its key directory, which must exist: only
/// the key an offer was published with can withdraw it or co-sign its releases.
fn signer(halves: &Halves) -> anyhow::Result<SigningKey> {
    let path = halves.identity();
    let key = keys::load(&path).with_context(|| {
        format!(
            "the provider signs with the key its offers were published with, in {}",
            path.display()
        )
    })?;
    Ok(SigningKey::derive(&key))
}

/// Runs a provider command.
pub async fn run(kafka: &KafkaArgs, command: Provider) -> anyhow::Result<()> {
    let config = kafka.client_config()?;
    match command {
        Provider::Publish(args) => {
            let size = std::fs::metadata(&args.payload)
                .with_context(|| format!("cannot read payload {}", args.payload.display()))?
                .len();
            let provider_id = args.provider.clone();
            let halves = halves(&provider_id, args.key_dir.clone())?;
            let (signer, key_created) = halves.signer()?;
            let timekeeper = timekeeper_key(
                &config,
                &kafka.topic_prefix,
                args.timekeeper_key.clone(),
                &args.pin,
            )
            .await?;
            let custody = Custody::from(args.custody);
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
                decide_within: args.decide_within,
                signing_key: signer.verifying_key(),
                endorsement: args.endorsement.clone(),
            };
            let writer = Writer::new(&config)?;
            let cannot_seal = |e: ProviderError| {
                let sealing = matches!(e, ProviderError::Seal(_));
                let e = anyhow::Error::from(e);
                if sealing {
                    e.context(format!("cannot seal payload {}", args.payload.display()))
                } else {
                    e
                }
            };
            let (mut built, sealed_how) = if size <= INLINE_TARGET_DATA_LEN as u64 {
                let payload = read_payload(&args.payload)?;
                let sealing = Sealing {
                    target_data: &payload,
                    custody,
                    timekeeper: &timekeeper,
                };
                let built =
                    provider::build(request, sealing, chrono::Utc::now()).map_err(cannot_seal)?;
                let package = built.offer.credential.package.len();
                (built, format!("sealed in a {package}-byte package"))
            } else {
                let (built, sealer) =
                    provider::build_chunked(request, custody, &timekeeper, chrono::Utc::now())
                        .map_err(cannot_seal)?;
                let offer_id = built.offer.offer_id.clone();
                let mut file = std::fs::File::open(&args.payload)
                    .with_context(|| format!("cannot read payload {}", args.payload.display()))?;
                let bar = crate::progress::bytes(size, "sealing and writing chunks");
                let manifest = packages::write_chunks(
                    &writer,
                    &kafka.topic_prefix,
                    &offer_id,
                    &mut file,
                    sealer,
                    &signer,
                    |written| bar.set_position(written),
                )
                .await
                .with_context(|| {
                    format!(
                        "cannot write the chunks of payload {}",
                        args.payload.display()
                    )
                })?;
                bar.finish_and_clear();
                let how = format!(
                    "sealed in {} chunks on {}/{} from offset {}",
                    manifest.chunks,
                    PACKAGES.full_name(&kafka.topic_prefix),
                    manifest.partition,
                    manifest.first_offset
                );
                (built.with_manifest(&manifest), how)
            };
            built.offer.invite_late = !args.no_late_invitations;
            let offer = &built.offer;
            let (offer_id, rule) = (offer.offer_id.clone(), offer.time_rule.describe());
            let kept = built.kept_half.is_some();
            let written = provider::publish(&writer, &kafka.topic_prefix, built, &halves, &signer)
                .await
                .with_context(|| format!("cannot publish offer {offer_id}"))?;
            println!("offer {offer_id} published [{written}]");
            println!("  rule: {rule}");
            println!("  payload: {size} bytes, {sealed_how} to timekeeper key {timekeeper}");
            if kept {
                println!(
                    "  custody: co-sign; the provider half is kept in {} (run `tessera provider agent --provider {}`)",
                    halves.dir().display(),
                    provider_id
                );
            } else {
                println!("  custody: escrow; the timekeeper holds both halves");
            }
            let key_state = if key_created { "created" } else { "existing" };
            println!(
                "  provider key: {} ({key_state}, never sent; signing key fingerprint {})",
                halves.identity().display(),
                signer.verifying_key().fingerprint()
            );
        }
        Provider::Withdraw {
            offer,
            provider,
            reason,
            key_dir,
        } => {
            let signer = signer(&halves(&provider, key_dir)?)?;
            let writer = Writer::new(&config)?;
            let written = provider::withdraw(
                &writer,
                &kafka.topic_prefix,
                &offer,
                &provider,
                reason,
                &signer,
            )
            .await
            .with_context(|| format!("cannot withdraw offer {offer}"))?;
            println!("offer {offer} withdrawn [{written}]");
        }
        Provider::Agent {
            provider,
            key_dir,
            pin,
            trust_anchor,
            until_idle,
        } => {
            let halves = halves(&provider, key_dir)?;
            let timekeeper = timekeeper(&config, &kafka.topic_prefix, &pin).await?;
            let agent = Agent {
                signer: signer(&halves)?,
                halves,
                provider_id: provider,
                timekeeper: timekeeper.signing,
                anchor: trust_anchor,
                until_idle,
            };
            println!(
                "agent of provider {} co-signing releases with the halves in {}",
                agent.provider_id,
                agent.halves.dir().display()
            );
            agent::run(&config, &kafka.topic_prefix, &agent, |acted| match acted {
                Acted::Refused(..) => eprintln!("warning: {acted}"),
                _ => println!("{acted}"),
            })
            .await?;
        }
        Provider::Watch {
            provider,
            from_beginning,
            until_idle,
            json,
            trust_anchor,
            timekeeper,
            delivery,
            ledger,
        } => {
            let prefix = &kafka.topic_prefix;
            let pinned = Pinned {
                timekeeper: pinned_key(
                    &config,
                    prefix,
                    Role::Timekeeper,
                    timekeeper.timekeeper_fingerprint,
                )
                .await?,
                delivery: pinned_key(
                    &config,
                    prefix,
                    Role::Delivery,
                    delivery.delivery_fingerprint,
                )
                .await?,
                ledger: pinned_key(&config, prefix, Role::Ledger, ledger.ledger_fingerprint)
                    .await?,
            };
            let watch = Watch {
                provider_id: provider,
                pinned,
                anchor: trust_anchor,
                from_beginning,
                until_idle,
            };
            watch::watch(&config, prefix, &watch, |watched| match watched {
                Watched::Seen(seen) if json => println!("{}", seen.to_json()),
                Watched::Seen(_) => println!("{watched}"),
                Watched::Ignored(..) | Watched::Unreadable(..) => eprintln!("warning: {watched}"),
            })
            .await?;
        }
    }
    Ok(())
}

/// `role`'s signing key as pinned, or `None` (with a warning) if the role has published none and
/// no fingerprint was given: its records are then shown unverified. A fingerprint given for a
/// key that is not there is an error, so that a withdrawn key cannot turn checks off.
async fn pinned_key(
    config: &rdkafka::ClientConfig,
    prefix: &str,
    role: Role,
    fingerprint: Option<String>,
) -> anyhow::Result<Option<VerifyingKey>> {
    let given = fingerprint.is_some();
    match platform(config, prefix, role, fingerprint).await {
        Ok(keys) => Ok(Some(keys.signing)),
        Err(e)
            if !given
                && matches!(
                    e.downcast_ref::<PlatformKeyError>(),
                    Some(PlatformKeyError::Missing { .. })
                ) =>
        {
            eprintln!("warning: {e:#}; its records are shown unverified");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
