//! `tessera demo`: the source document's worked example, on the real broker.
//!
//! Provider A offers document X, sealed and with a reward, with a deadline a few seconds ahead.
//! Subscribers B1 and B2 have stored a need for such documents and are invited; B3 needs something
//! else and is not; B4 registers the same need while the offer is open and is invited late. B1
//! and B4 answer at once and are released; B2 answers after the deadline and is refused TooLate.
//! A's device then seals its half of the key to B1 and B4 (co-sign custody), the delivery worker
//! puts the credentials in their inboxes, B1 opens document X with both halves and accepts it, B4
//! opens it and declines it, and A is credited the reward once; B2 has nothing to open. Every step is an event on Kafka, judged by
//! the broker's receipt stamps; the demo prints the offer's timeline as the log holds it and exits
//! non-zero if anything differs from the worked example.
//!
//! The processors (matcher, timekeeper, delivery worker, ledger) run inside this process on the
//! exactly-once runtime, on topics of their own (a fresh `demo-…` prefix unless `--topic-prefix`
//! is given), so the demo touches nothing else on the cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::consumer::Consumer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tessera_contract::rules::format_stamp;
use tessera_contract::sealing::{PrivateKey, PublicKey};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::{DECISIONS, LEDGER, REQUESTS};
use tessera_contract::{CredentialDelivered, Custody, Event, Interest, RejectReason, Reward};
use tessera_cores::delivery::Delivery;
use tessera_cores::ledger::{Ledger, Rewards};
use tessera_cores::matcher::Matcher;
use tessera_cores::registry;
use tessera_cores::timekeeper::Timekeeper;
use tessera_producers::agent::{Acted, Agent};
use tessera_producers::client::{
    Record, Writer, partition_count, partition_for, read_partition_of, reader,
};
use tessera_producers::keys::{Halves, PlatformKeys, Role, new_private_key};
use tessera_producers::provider::{self, OfferRequest, RuleSpec, Sealing};
use tessera_producers::status;
use tessera_producers::subscriber::{self, Choice, Decision, Registration, Responder};
use tessera_producers::when::{When, Zone};
use tessera_runtime::{self as runtime, Config};

use crate::audit::AuditArgs;
use crate::kafka::KafkaArgs;
use crate::ledger::Balances;

/// Options of `tessera demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How far ahead of publication the offer's deadline lies. B2 answers just after it, so the
    /// demo takes about this long.
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    pub deadline_in: Duration,
    /// Partitions of the demo's topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
}

/// The processors (matcher, timekeeper, delivery worker, ledger), running in this process until
/// stopped.
pub struct Processors {
    /// The matcher's verifying key, which the timekeeper believes invitations signed with (an
    /// audit of the timekeeper needs it).
    pub matcher: VerifyingKey,
    /// The ledger's verifying key, which its balances core believes rewards signed with (an
    /// audit of the ledger needs it).
    pub ledger: VerifyingKey,
    /// The delivery worker's verifying key, which subscribers open deliveries signed with; it is
    /// published on `tessera.keys` as `tessera run delivery` publishes it.
    pub delivery: VerifyingKey,
    /// The delivery worker's sealing key, which subscribers seal their contact and webhook to.
    pub delivery_sealing: PublicKey,
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Processors {
    /// Starts them on `kafka`'s topics, with task state under `state_dir`; the timekeeper holds `timekeeper_key`.
    pub fn start(
        kafka: &KafkaArgs,
        state_dir: &Path,
        timekeeper_key: PrivateKey,
    ) -> anyhow::Result<Processors> {
        let stop = Arc::new(AtomicBool::new(false));
        let config = |name: &str| -> anyhow::Result<Config> {
            let mut config = Config::new(kafka.client_config()?, "demo", state_dir.join(name));
            config.topic_prefix = kafka.topic_prefix.clone();
            Ok(config)
        };
        // Each platform role signs what it writes with its own key; the timekeeper believes
        // invitations signed by the matcher's.
        let signer = |key: &PrivateKey| Some(Arc::new(SigningKey::derive(key)));
        let matcher_key = new_private_key();
        let matcher = SigningKey::derive(&matcher_key).verifying_key();
        let (delivery_key, ledger_key) = (new_private_key(), new_private_key());
        let delivery = SigningKey::derive(&delivery_key).verifying_key();
        let signed = |name: &str, key: &PrivateKey| -> anyhow::Result<Config> {
            Ok(Config {
                signer: signer(key),
                ..config(name)?
            })
        };
        let timekeeper_signing = SigningKey::derive(&timekeeper_key).verifying_key();
        let ledger_signing = SigningKey::derive(&ledger_key).verifying_key();
        // Every registered processor, each core on its own task, as `tessera run` starts them.
        let mut handles = Vec::new();
        for processor in registry::ALL {
            // The timekeeper's keys are on `tessera.keys` before this starts: the caller
            // publishes them, since parties seal to them before any processor runs.
            let (key, publishes) = match processor.name {
                "matcher" => (&matcher_key, None),
                "timekeeper" => (&timekeeper_key, None),
                "delivery" => (&delivery_key, Some(Role::Delivery)),
                "ledger" => (&ledger_key, Some(Role::Ledger)),
                other => bail!("the demo does not run the processor {other} yet"),
            };
            let mut cores: Vec<CoreRun> = Vec::new();
            for core in processor.cores {
                let (config, stop) = (signed(core.name, key)?, stop.clone());
                cores.push(match core.name {
                    "matcher" => Box::pin(runtime::run(Matcher::default(), config, stop)),
                    "timekeeper" => {
                        let key = PrivateKey::from_bytes(timekeeper_key.to_bytes().as_ref())?;
                        Box::pin(runtime::run(Timekeeper::new(key, matcher), config, stop))
                    }
                    "delivery" => {
                        let key = PrivateKey::from_bytes(delivery_key.to_bytes().as_ref())?;
                        let delivery = Delivery::new(key, timekeeper_signing, matcher);
                        Box::pin(runtime::run(delivery, config, stop))
                    }
                    "ledger-rewards" => {
                        Box::pin(runtime::run(Rewards::new(timekeeper_signing), config, stop))
                    }
                    "ledger" => Box::pin(runtime::run(Ledger::new(ledger_signing), config, stop)),
                    other => bail!("the demo does not run the core {other} yet"),
                });
            }
            match publishes {
                None => handles.extend(cores.into_iter().map(tokio::spawn)),
                // Published before its cores start, as `tessera run` does.
                Some(role) => handles.push(tokio::spawn(after_publishing(
                    kafka,
                    role,
                    key,
                    async move {
                        let running: Vec<_> = cores.into_iter().map(tokio::spawn).collect();
                        for core in running {
                            core.await??;
                        }
                        Ok(())
                    },
                )?)),
            }
        }
        Ok(Processors {
            matcher,
            ledger: ledger_signing,
            delivery,
            delivery_sealing: delivery_key.public_key(),
            stop,
            handles,
        })
    }

    /// Commits, leaves the groups, and reports the first failure of either.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        for handle in std::mem::take(&mut self.handles) {
            handle.await.context("a processor panicked")??;
        }
        Ok(())
    }
}

impl Drop for Processors {
    /// Processors dropped without [`Processors::stop`] (by a caller that failed, or a test that
    /// panicked) stop too: their loops would otherwise keep the async runtime from shutting
    /// down, and the process would hang instead of reporting the failure.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Follows the invitations and decisions of one offer as they are committed.
struct Follower {
    consumer: tessera_producers::client::Reader,
    offer_id: String,
}

impl Follower {
    fn new(config: &ClientConfig, prefix: &str, offer_id: &str) -> anyhow::Result<Follower> {
        let consumer = reader(config, false)?;
        let mut assignment = TopicPartitionList::new();
        for topic in [REQUESTS, DECISIONS] {
            let name = topic.full_name(prefix);
            let partition = partition_for(offer_id, partition_count(&consumer, &name)?);
            assignment.add_partition_offset(&name, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok(Follower {
            consumer,
            offer_id: offer_id.to_string(),
        })
    }

    /// The next event of the offer, or `None` after `timeout` without one.
    async fn next(&self, timeout: Duration) -> anyhow::Result<Option<(Record, Event)>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Ok(message) = tokio::time::timeout_at(deadline, self.consumer.recv()).await else {
                return Ok(None);
            };
            let Some(record) = Record::from_message(&message?) else {
                continue;
            };
            if record.key.as_deref() != Some(self.offer_id.as_str()) {
                continue;
            }
            if let Some(Ok(event)) = record.event.clone() {
                return Ok(Some((record, event)));
            }
        }
    }
}

/// `run`, once `role`'s public keys are on `tessera.keys`, as `tessera run delivery|ledger`
/// publish them at start: clients believe only what is signed with the keys they find there.
fn after_publishing<F: Future<Output = anyhow::Result<()>>>(
    kafka: &KafkaArgs,
    role: Role,
    key: &PrivateKey,
    run: F,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + use<F>> {
    let writer = Writer::new(&kafka.client_config()?)?;
    let prefix = kafka.topic_prefix.clone();
    let key = PrivateKey::from_bytes(key.to_bytes().as_ref())?;
    Ok(async move {
        tessera_producers::keys::publish(&writer, &prefix, role, &key).await?;
        run.await
    })
}

/// One core running on the runtime until the stop flag is set.
type CoreRun = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The platform roles' keys as the demo's parties pin them.
struct Platform {
    timekeeper: PlatformKeys,
    delivery: VerifyingKey,
    /// What subscribers seal their contact and webhook to.
    delivery_sealing: PublicKey,
    ledger: VerifyingKey,
}

/// What the demo expects of each party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Released,
    Rejected(RejectReason),
    NotInvited,
}

fn interest(text: &str) -> anyhow::Result<Interest> {
    tessera_producers::interest::parse(text)
        .map_err(|e| anyhow::anyhow!("demo interest {text:?}: {e}"))
}

/// Runs the demo; an error (including a verdict that differs from the expected one) exits
/// non-zero.
pub async fn run(kafka: &KafkaArgs, args: DemoArgs) -> anyhow::Result<()> {
    let mut kafka = kafka.clone();
    if kafka.topic_prefix.is_empty() {
        kafka.topic_prefix = format!("demo-{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    }
    let prefix = kafka.topic_prefix.clone();
    let config = kafka.client_config()?;
    println!(
        "tessera demo on topics {prefix}tessera.* (broker {})",
        kafka.brokers
    );
    crate::topics::create(&kafka, args.partitions, 1).await?;
    let state = tempfile::tempdir()?;
    let timekeeper_key = tessera_producers::keys::new_private_key();
    let timekeeper = timekeeper_key.public_key();
    let timekeeper_signing = SigningKey::derive(&timekeeper_key).verifying_key();
    tessera_producers::keys::publish(
        &Writer::new(&config)?,
        &prefix,
        Role::Timekeeper,
        &timekeeper_key,
    )
    .await?;
    let processors = Processors::start(&kafka, state.path(), timekeeper_key)?;
    let platform = Platform {
        timekeeper: PlatformKeys {
            sealing: timekeeper,
            signing: timekeeper_signing,
        },
        delivery: processors.delivery,
        delivery_sealing: processors.delivery_sealing.clone(),
        ledger: processors.ledger,
    };
    let matcher = processors.matcher;
    let outcome = scenario(&kafka, &config, &args, state.path(), &platform).await;
    let stopped = processors.stop().await;
    let offer_id = outcome?;
    stopped?;
    println!();
    println!(
        "the offer's timeline, as the log holds it (`tessera offer status {offer_id} --topic-prefix {prefix}`):"
    );
    print!("{}", status::read(&config, &prefix, &offer_id).await?);
    println!();
    audit_without_keys(&kafka, matcher, &platform).await?;
    println!("every verdict, the opened document and the reward as expected");
    Ok(())
}

/// Audits every processor from the demo's log as any party can, with the platform's public keys
/// only; a mismatch fails the demo.
async fn audit_without_keys(
    kafka: &KafkaArgs,
    matcher: VerifyingKey,
    platform: &Platform,
) -> anyhow::Result<()> {
    let args = AuditArgs {
        matcher_key: Some(matcher),
        timekeeper_verifying_key: Some(platform.timekeeper.signing),
        delivery_verifying_key: Some(platform.delivery),
        ledger_key: Some(platform.ledger),
        ..AuditArgs::of(Vec::new())
    };
    let reports = {
        let kafka = kafka.clone();
        tokio::task::spawn_blocking(move || crate::audit::audit(&kafka, &args))
            .await
            .context("the audit panicked")??
    };
    let findings: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.findings
                .iter()
                .map(move |f| format!("{}: {f}", r.processor))
        })
        .collect();
    if !findings.is_empty() {
        bail!(
            "the audit of the demo's log found {} mismatch(es): {}",
            findings.len(),
            findings.join("; ")
        );
    }
    let derived: u64 = reports.iter().map(|r| r.derived).sum();
    println!(
        "an audit with the platform's public keys only re-derives all {derived} records the \
         processors wrote, from the log, and finds each on it as derived (`tessera audit \
         --matcher-key {matcher} --timekeeper-verifying-key {} --delivery-verifying-key {} \
         --ledger-key {} --topic-prefix {}`)",
        platform.timekeeper.signing, platform.delivery, platform.ledger, kafka.topic_prefix
    );
    Ok(())
}

/// Demo party `id`'s registration: its needs, its key file under `keys`, its contact sealed to
/// the delivery worker.
fn party(id: &str, needs: &str, keys: &Path, platform: &Platform) -> anyhow::Result<Registration> {
    Ok(Registration {
        subscriber_id: id.into(),
        contact: format!("{}@example.org", id.to_lowercase()),
        interests: vec![interest(needs)?],
        webhook: None,
        key_file: keys.join(format!("{id}.key")),
        endorsement: None,
        platform: Some(platform.delivery_sealing.clone()),
    })
}

/// The worked example; returns the offer id.
async fn scenario(
    kafka: &KafkaArgs,
    config: &ClientConfig,
    args: &DemoArgs,
    keys: &Path,
    platform: &Platform,
) -> anyhow::Result<String> {
    let timekeeper = &platform.timekeeper;
    let prefix = &kafka.topic_prefix;
    let writer = Writer::new(config)?;
    let parties = [
        ("B1", "terms=report; format=pdf", Expected::Released),
        (
            "B2",
            "terms=report; format=pdf",
            Expected::Rejected(RejectReason::TooLate),
        ),
        ("B3", "terms=video", Expected::NotInvited),
    ];
    for (id, needs, _) in parties {
        let registration = party(id, needs, keys, platform)?;
        let registered = subscriber::register(&writer, prefix, registration).await?;
        println!(
            "{id} registers its needs ({needs}) at {}",
            registered.written
        );
    }

    // The processors join their groups while the subscribers register; the offer waits for the
    // matcher, so that the deadline measures the parties, not the start-up.
    println!("starting the processors ...");
    wait_until_ready(&writer, config, prefix, keys, &timekeeper.sealing).await?;

    let offer_id = format!(
        "offer-X-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let a = Halves::new(keys.join("A"));
    let now = chrono::Utc::now();
    let deadline = now + chrono::Duration::from_std(args.deadline_in)?;
    let offer = provider::build(
        OfferRequest {
            offer_id: offer_id.clone(),
            provider_id: "A".into(),
            provider_contact: "a@example.org".into(),
            identifier: "doc-X".into(),
            name: "Quarterly report X".into(),
            features: vec![("format".into(), "pdf".into())],
            parameters: vec![("pages".into(), 42)],
            rule: RuleSpec::Deadline(When::Instant(deadline.fixed_offset())),
            zone: Zone::Utc,
            capacity: None,
            reward: Some(Reward {
                amount: REWARD,
                currency: "EUR".into(),
            }),
            decide_within: None,
            signing_key: a.signer()?.0.verifying_key(),
            endorsement: None,
        },
        document_x(&timekeeper.sealing),
        now,
    )?;
    let deadline_ms = deadline.timestamp_millis();
    let published = provider::publish(&writer, prefix, offer, &a, &a.signer()?.0).await?;
    println!(
        "A publishes document X as {offer_id}, deadline {}, at {published}",
        format_stamp(deadline_ms)
    );
    let (late_id, late_needs) = LATE;
    let registration = party(late_id, late_needs, keys, platform)?;
    let registered = subscriber::register(&writer, prefix, registration).await?;
    println!(
        "{late_id} registers the same needs ({late_needs}) while the offer is open, at {}",
        registered.written
    );

    let follower = Follower::new(config, prefix, &offer_id)?;
    let mut outcome: BTreeMap<String, Expected> = BTreeMap::new();
    let mut invited = Vec::new();
    let mut closed = false;
    let mut b2_answered = false;
    while !(closed && outcome.len() >= 3) {
        let wait = if b2_answered {
            Duration::from_secs(30)
        } else {
            let until_late = deadline_ms + 300 - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(until_late.max(0) as u64)
        };
        match follower.next(wait).await? {
            Some((record, Event::InteractionRequested(request))) => {
                println!("{} is invited at {}", request.subscriber_id, stamp(&record));
                invited.push(request.subscriber_id.clone());
                let id = request.subscriber_id.as_str();
                if id == "B1" || id == late_id {
                    let answering = responder(keys, id)?;
                    let written =
                        subscriber::respond(&writer, prefix, &offer_id, &answering).await?;
                    println!("{id} answers at once: {written}");
                }
            }
            Some((record, Event::CredentialReleased(released))) => {
                println!(
                    "{} is released the credential (response received {}) at {}",
                    released.subscriber_id,
                    format_stamp(released.response.stamp),
                    stamp(&record)
                );
                outcome.insert(released.subscriber_id, Expected::Released);
            }
            Some((record, Event::ResponseRejected(rejected))) => {
                println!(
                    "{} is refused {:?}: {} (at {})",
                    rejected.subscriber_id,
                    rejected.reason,
                    rejected.detail,
                    stamp(&record)
                );
                outcome.insert(rejected.subscriber_id, Expected::Rejected(rejected.reason));
            }
            Some((record, Event::OfferClosed(c))) => {
                println!(
                    "the offer closes at {}: {} invited, {} answered before the close, {} released",
                    stamp(&record),
                    c.requested,
                    c.responded,
                    c.released
                );
                closed = true;
            }
            Some((_, other)) => bail!("unexpected event on the offer: {other:?}"),
            None if !b2_answered => {
                let b2 = responder(keys, "B2")?;
                let written = subscriber::respond(&writer, prefix, &offer_id, &b2).await?;
                println!("B2 answers after the deadline: {written}");
                b2_answered = true;
            }
            None => bail!("no verdict within 30 s; are the processors stuck?"),
        }
    }

    let mut wrong = Vec::new();
    for (id, _, expected) in parties
        .into_iter()
        .chain([(late_id, late_needs, Expected::Released)])
    {
        let got = outcome.get(id).copied().unwrap_or(Expected::NotInvited);
        if got != expected {
            wrong.push(format!("{id}: expected {expected:?}, got {got:?}"));
        }
    }
    if invited.iter().any(|id| id == "B3") {
        wrong.push("B3 was invited, though its needs do not match".into());
    } else {
        println!("B3 was never invited: its needs (terms=video) do not match document X");
    }
    if !wrong.is_empty() {
        bail!(
            "verdicts differ from the worked example: {}",
            wrong.join("; ")
        );
    }
    settle(config, prefix, keys, &offer_id, platform).await?;
    Ok(offer_id)
}

/// The source document's step S107: A's device supplies the second key, B1 opens document X and
/// accepts it, B4 opens it and declines it, A is credited the reward once; B2 has nothing to open.
async fn settle(
    config: &ClientConfig,
    prefix: &str,
    keys: &Path,
    offer_id: &str,
    platform: &Platform,
) -> anyhow::Result<()> {
    let Platform {
        timekeeper,
        delivery,
        ledger: ledger_key,
        ..
    } = platform;
    let halves = Halves::new(keys.join("A"));
    let agent = Agent {
        provider_id: "A".into(),
        signer: halves.signer()?.0,
        halves,
        timekeeper: timekeeper.signing,
        anchor: None,
        until_idle: Some(Duration::from_secs(2)),
    };
    tessera_producers::agent::run(config, prefix, &agent, |acted| match acted {
        Acted::Cosigned(released, written) => println!(
            "A's device seals its half of the key to {} (co-sign) at {written}",
            released.subscriber_id
        ),
        other => println!("A's device: {other}"),
    })
    .await?;

    let choice = Choice::Offer(offer_id.to_string());
    let writer = Writer::new(config)?;
    for (id, decision, verb) in [
        ("B1", Decision::Accept, "accepts"),
        (
            LATE.0,
            Decision::Decline(Some("not the region it needed".into())),
            "looks, then declines",
        ),
    ] {
        let (delivered, key) = open_delivered(config, prefix, delivery, keys, id, &choice).await?;
        let signer = SigningKey::derive(&key);
        let decided = subscriber::decide(&writer, prefix, &delivered, decision, &signer).await?;
        println!("{id} {verb} document X at {decided}");
    }
    match subscriber::delivered(config, prefix, delivery, "B2", &choice).await {
        Err(_) => println!("B2 has nothing to open"),
        Ok(_) => bail!("B2 was delivered a credential, though it answered late"),
    }

    let ledger = LEDGER.full_name(prefix);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let records = read_partition_of(config, &ledger, "A").await?;
        let balances = Balances::of("A", ledger_key, &records);
        if let Some(balance) = balances.by_currency.get("EUR") {
            println!("A is credited the reward: balance {balance} (EUR minor units)");
            if *balance != REWARD {
                bail!("A's balance is {balance}, expected {REWARD}");
            }
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("A was not credited within 30 s of the acceptance");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits for subscriber `id`'s credential of the offer `choice` names, and opens it with the key
/// `id` registered under `keys`, which must give document X: the credential and the key.
async fn open_delivered(
    config: &ClientConfig,
    prefix: &str,
    delivery: &VerifyingKey,
    keys: &Path,
    id: &str,
    choice: &Choice,
) -> anyhow::Result<(CredentialDelivered, PrivateKey)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (record, delivered) = loop {
        match subscriber::delivered(config, prefix, delivery, id, choice).await {
            Ok(found) => break found,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => bail!("{id}'s credential was not delivered within 30 s: {e}"),
        }
    };
    println!(
        "the delivery worker puts the credential in {id}'s inbox at {}",
        stamp(&record)
    );
    let key = tessera_producers::keys::load(&keys.join(format!("{id}.key")))?;
    let document = subscriber::open(&delivered, &key)?;
    if document.as_slice() != DOCUMENT_X {
        bail!("{id} opened something other than document X");
    }
    let first_line = String::from_utf8_lossy(&document);
    println!(
        "{id} opens it with its own key, the platform's half and A's half: {:?}",
        first_line.lines().next().unwrap_or_default()
    );
    Ok((delivered, key))
}

/// The subscriber that registers while the offer is open, and its needs.
const LATE: (&str, &str) = ("B4", "terms=report; format=pdf");

/// What A earns per accepted credential, in minor units (2.50 EUR).
const REWARD: i64 = 250;

/// The target data of the demo's offers.
const DOCUMENT_X: &[u8] = b"Quarterly report X: revenue rose in every region.\n";

/// Document X sealed to the timekeeper, the provider keeping its half.
fn document_x(timekeeper: &PublicKey) -> Sealing<'_> {
    Sealing {
        target_data: DOCUMENT_X,
        custody: Custody::CoSign,
        timekeeper,
    }
}

/// Subscriber `id` answering with the key it registered under `keys`.
fn responder(keys: &Path, id: &str) -> anyhow::Result<Responder> {
    let key = tessera_producers::keys::load(&keys.join(format!("{id}.key")))?;
    Ok(Responder::new(id, key))
}

fn stamp(record: &Record) -> String {
    record
        .stamp
        .map_or_else(|| "an unknown time".into(), format_stamp)
}

/// Sends a probe through both processors (a probe subscriber invited to a probe offer, then
/// answering it) and waits for its verdict: then both have joined their groups and opened their
/// tasks.
async fn wait_until_ready(
    writer: &Writer,
    config: &ClientConfig,
    prefix: &str,
    keys: &Path,
    timekeeper: &PublicKey,
) -> anyhow::Result<()> {
    let probe = format!("probe-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    subscriber::register(
        writer,
        prefix,
        Registration {
            subscriber_id: probe.clone(),
            contact: "probe@localhost".into(),
            interests: vec![interest(&format!("id={probe}"))?],
            webhook: None,
            key_file: keys.join("probe.key"),
            endorsement: None,
            platform: None,
        },
    )
    .await?;
    let prober = Halves::new(keys.join("demo"));
    let now = chrono::Utc::now();
    let offer = provider::build(
        OfferRequest {
            offer_id: probe.clone(),
            provider_id: "demo".into(),
            provider_contact: "demo@localhost".into(),
            identifier: probe.clone(),
            name: "start-up probe".into(),
            features: vec![],
            parameters: vec![],
            rule: RuleSpec::Within(60_000),
            zone: Zone::Utc,
            capacity: None,
            reward: None,
            decide_within: None,
            signing_key: prober.signer()?.0.verifying_key(),
            endorsement: None,
        },
        document_x(timekeeper),
        now,
    )?;
    provider::publish(writer, prefix, offer, &prober, &prober.signer()?.0).await?;
    let follower = Follower::new(config, prefix, &probe)?;
    loop {
        match follower.next(Duration::from_secs(120)).await? {
            Some((_, Event::InteractionRequested(_))) => {
                let responder = responder(keys, "probe")?;
                subscriber::respond(writer, prefix, &probe, &responder).await?;
            }
            Some((_, Event::CredentialReleased(_) | Event::ResponseRejected(_))) => return Ok(()),
            Some(_) => {}
            None => bail!("the processors did not start within 120 s; see the log above"),
        }
    }
}
