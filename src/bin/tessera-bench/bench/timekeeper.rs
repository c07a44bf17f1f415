//! `tessera-bench timekeeper`: how long a response waits for its verdict on the real broker, at a
//! sustained response rate, beside how long a raw transactional passthrough takes to copy a
//! record at the same rate in the same run.
//!
//! Latency is measured on the broker's clock only: a verdict's receipt stamp minus the receipt
//! stamp of the response it judges (which the verdict cites), and for the baseline the copy's
//! stamp minus the original's. Both sides commit every 100 ms. The timekeeper also waits, by
//! design, until every input partition has shown a stamp at or past the response's (a tick asked
//! for on demand moves an idle one), so its latency includes that round trip.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tessera_contract::rules::request_id;
use tessera_contract::sealing::PrivateKey;
use tessera_contract::signing::{self, SIGNATURE_LEN, SigningKey};
use tessera_contract::topics::{DECISIONS, OFFERS, REQUESTS, RESPONSES, Topic};
use tessera_contract::*;
use tessera_cores::timekeeper::Timekeeper;
use tessera_producers::client::{partition_for, read_to_end};
use tessera_producers::provider::Sealing;
use tessera_producers::subscriber::Responder;
use tessera_runtime::{self as runtime, Config};

use super::{bar, passthrough, send_waiting, wait_committed};
use tessera::kafka::KafkaArgs;

/// The pause between the invitations' commit and the first response.
const SETTLE: Duration = Duration::from_secs(5);

/// Options of `tessera-bench timekeeper`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LatencyArgs {
    /// Responses (and baseline records) per second, sustained.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u32,
    /// How long each side is fed, in seconds: long enough by default for a processor that falls
    /// behind the rate to show it.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Offers the responses answer (each gets rate × seconds / offers invitations).
    #[arg(long, default_value_t = 1_000)]
    pub offers: usize,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Percentage of the offers whose responses are all released; every response to the
    /// others is refused as TooEarly (their window opens tomorrow). Offers of both kinds
    /// alternate, so the mix is the same on every partition all run long. 100, the default, is
    /// the costliest case: a release seals a half to its responder, a refusal only checks the
    /// response's signature.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub released_percent: u8,
    /// Timekeeper instances sharing the partitions in one consumer group, each on a thread of
    /// its own, as `tessera run timekeeper` processes would.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub instances: u16,
    /// The timekeepers' least time between two ticks on one idle partition (`tessera run
    /// --tick-gap`): less waits less for ticks and writes more of them.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub tick_gap: Duration,
    /// Also write every response's receipt stamp and its verdict's latency (both in ms), a line
    /// each in the order of the verdicts, to this file: to see when in the run a tail happened.
    #[arg(long, value_name = "FILE")]
    pub latencies: Option<std::path::PathBuf>,
}

/// Writes `records` to `topic` at `rate` per second in 10 ms slices; returns the rate achieved.
/// A record to write: key, value, and its signature header if it has one.
pub(super) type Outgoing = (String, Vec<u8>, Option<[u8; SIGNATURE_LEN]>);

/// `event` under `key` on `topic`, signed by `signer` as its writer signs it in production.
fn signed(
    signer: &SigningKey,
    topic: Topic,
    key: String,
    event: Event,
) -> anyhow::Result<Outgoing> {
    let value = encode(&event)?;
    let signature = signer.sign_record(topic.name, Some(key.as_bytes()), Some(&value));
    Ok((key, value, Some(signature)))
}

fn paced(
    client: &ClientConfig,
    topic: &str,
    records: &[Outgoing],
    rate: u32,
) -> anyhow::Result<f64> {
    let producer: BaseProducer = client
        .clone()
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()?;
    let per_slice = (rate as usize / 100).max(1);
    let progress = bar(records.len() as u64, &format!("writing {} /s", rate));
    let mut started = Instant::now();
    for (slice, chunk) in records.chunks(per_slice).enumerate() {
        let due = started + Duration::from_millis(10 * slice as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (key, value, signature) in chunk {
            let mut record = BaseRecord::to(topic).key(key).payload(value);
            if let Some(signature) = signature {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: signing::HEADER,
                    value: Some(&signature[..]),
                }));
            }
            send_waiting(&producer, record)?;
        }
        producer.poll(Duration::ZERO);
        progress.inc(chunk.len() as u64);
        if slice == 0 {
            // The first slice waits for the connection, the producer id and the topic's
            // metadata, up to half a second: the schedule starts once it is through, or the
            // records due meanwhile would reach the broker in one burst.
            producer.flush(Duration::from_secs(30))?;
            started = Instant::now() - Duration::from_millis(10);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    progress.finish_and_clear();
    Ok(records.len() as f64 / started.elapsed().as_secs_f64())
}

/// Latencies in milliseconds: the median, the 99th and 99.9th percentiles and the maximum.
struct Percentiles {
    p50: i64,
    p99: i64,
    p999: i64,
    max: i64,
}

fn percentiles(latencies: &[i64]) -> Percentiles {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    Percentiles {
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
    }
}

/// Latencies in the order of the responses' stamps, cut in thirds: the first carries the start,
/// and the last shows whether the latency grew during the run, as it does when the processor
/// falls behind the rate.
fn thirds(mut by_stamp: Vec<(i64, i64)>) -> [Percentiles; 3] {
    by_stamp.sort_unstable();
    let latencies: Vec<i64> = by_stamp.into_iter().map(|(_, latency)| latency).collect();
    let third = latencies.len().div_ceil(3);
    let mut parts = latencies.chunks(third.max(1)).map(percentiles);
    let mut next = || {
        parts.next().unwrap_or(Percentiles {
            p50: 0,
            p99: 0,
            p999: 0,
            max: 0,
        })
    };
    [next(), next(), next()]
}

/// Whether the latency held over the run: the last third's median within a tenth (and 5 ms of
/// scheduling noise) of the middle third's. A processor behind the rate queues ever more, and
/// each third waits longer than the one before; the tails are too noisy to judge growth by.
fn sustained([_, middle, last]: &[Percentiles; 3]) -> bool {
    last.p50 <= middle.p50 + middle.p50 / 10 + 5
}

fn ends_of(keys: impl Iterator<Item = String>, partitions: i32) -> BTreeMap<i32, i64> {
    let mut ends: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    for key in keys {
        *ends.entry(partition_for(&key, partitions)).or_default() += 1;
    }
    ends
}

/// Runs both sides and prints their latencies.
pub(super) async fn verdict_latency(kafka: &KafkaArgs, args: LatencyArgs) -> anyhow::Result<()> {
    if args.rate == 0 || args.seconds == 0 || args.offers == 0 || args.partitions < 1 {
        bail!("--rate, --seconds, --offers and --partitions must be positive");
    }
    let total = args.rate as usize * args.seconds as usize;
    if total < args.offers {
        bail!(
            "--rate × --seconds ({total}) must be at least --offers ({})",
            args.offers
        );
    }
    let prefix = format!(
        "{}bench-{}.",
        kafka.topic_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let scoped = KafkaArgs {
        topic_prefix: prefix.clone(),
        ..kafka.clone()
    };
    let client = kafka.client_config()?;
    tessera::topics::create(&scoped, args.partitions, 1).await?;

    let baseline = baseline(&client, &prefix, &args, total).await?;
    let timekeeper = timekeeper(&scoped, &client, &args, total).await?;

    if let Some(path) = &args.latencies {
        let lines: String = timekeeper
            .latencies
            .iter()
            .map(|(stamp, latency)| format!("{stamp} {latency}\n"))
            .collect();
        std::fs::write(path, lines)
            .with_context(|| format!("cannot write the latencies to {}", path.display()))?;
    }
    let base = percentiles(&baseline.1);
    let judged: Vec<i64> = timekeeper.latencies.iter().map(|(_, l)| *l).collect();
    let tk = percentiles(&judged);
    let thirds = thirds(timekeeper.latencies);
    println!(
        "responses          {total} at {} /s ({} offers, {} partitions, {} timekeeper \
         instance(s), tick gap {}), {} released",
        args.rate,
        args.offers,
        args.partitions,
        args.instances,
        humantime::format_duration(args.tick_gap),
        timekeeper.released
    );
    println!("                   achieved /s     p50 ms   p99 ms p99.9 ms   max ms");
    let row = |name: &str, rate: f64, p: &Percentiles| {
        println!(
            "{name:<18} {rate:>11.0} {:>10} {:>8} {:>8} {:>8}",
            p.p50, p.p99, p.p999, p.max
        )
    };
    row("raw passthrough", baseline.0, &base);
    row("timekeeper", timekeeper.rate, &tk);
    for (name, third) in ["  first third", "  middle third", "  last third"]
        .iter()
        .zip(&thirds)
    {
        row(name, timekeeper.rate, third);
    }
    println!(
        "sustained          {}",
        if sustained(&thirds) {
            "yes (the last third's p50 within a tenth of the middle's)"
        } else {
            "no: the latency grew during the run (the last third's p50 beyond a tenth over the \
             middle's)"
        }
    );
    println!(
        "ratio (timekeeper / passthrough)  p50 {:.2}  p99 {:.2}",
        tk.p50 as f64 / base.p50.max(1) as f64,
        tk.p99 as f64 / base.p99.max(1) as f64
    );
    println!(
        "ticks              {} on the timekeeper's inputs ({:.0} /s of the run)",
        timekeeper.ticks,
        timekeeper.ticks as f64 / args.seconds as f64
    );
    Ok(())
}

/// The raw passthrough at the same rate: (achieved rate, latencies).
async fn baseline(
    client: &ClientConfig,
    prefix: &str,
    args: &LatencyArgs,
    total: usize,
) -> anyhow::Result<(f64, Vec<i64>)> {
    let (input, output) = (
        format!("{prefix}latency.in"),
        format!("{prefix}latency.out"),
    );
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let topics: Vec<NewTopic<'_>> = [&input, &output]
        .iter()
        .map(|t| {
            NewTopic::new(t, args.partitions, TopicReplication::Fixed(1))
                .set("message.timestamp.type", "LogAppendTime")
        })
        .collect();
    for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
        result.map_err(|(name, code)| anyhow::anyhow!("cannot create {name}: {code}"))?;
    }
    let records: Vec<Outgoing> = (0..total)
        .map(|i| (format!("r{i}"), vec![b'x'; 64], None))
        .collect();
    let ends = ends_of(records.iter().map(|(k, _, _)| k.clone()), args.partitions);
    let copier = {
        let (client, input, output, group) = (
            client.clone(),
            input.clone(),
            output.clone(),
            format!("{prefix}raw"),
        );
        tokio::task::spawn_blocking(move || {
            passthrough(
                &client,
                &input,
                &output,
                &group,
                &ends,
                Duration::from_millis(100),
            )
        })
    };
    // The copier initialises its transactions and fetches first: time that is not latency.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rate = {
        let (client, input) = (client.clone(), input.clone());
        let pace = args.rate;
        tokio::task::spawn_blocking(move || paced(&client, &input, &records, pace)).await??
    };
    copier.await??;
    let stamps = |records: Vec<tessera_producers::client::Record>| -> BTreeMap<String, i64> {
        records
            .into_iter()
            .filter_map(|r| Some((r.key?, r.stamp?)))
            .collect()
    };
    let sent = stamps(read_to_end(client, &input, None).await?);
    let copied = stamps(read_to_end(client, &output, None).await?);
    let latencies = copied
        .iter()
        .filter_map(|(key, stamp)| sent.get(key).map(|s| stamp - s))
        .collect();
    Ok((rate, latencies))
}

/// The timekeeper at the same rate: offers and invitations first, then the responses paced;
/// (achieved rate, latencies, credentials released).
/// The records of a timekeeper run, signed as their writers sign them: `offers_n` offers with
/// real sealed credentials, one invitation per (offer, subscriber), and one response per
/// invitation, subscriber by subscriber across all offers so every partition gets a steady share.
pub(super) struct Workload {
    /// The timekeeper's key, which the offers' halves are sealed to.
    pub timekeeper_key: PrivateKey,
    /// The matcher's key, which the invitations are signed with.
    pub matcher: SigningKey,
    pub offers: Vec<Outgoing>,
    pub invitations: Vec<Outgoing>,
    pub responses: Vec<Outgoing>,
    /// Subscribers invited to each offer.
    pub per_offer: usize,
}

impl Workload {
    /// `released_percent` offers in a hundred release every response (`Within` 1 h); the others
    /// open tomorrow and refuse every response as TooEarly.
    pub(super) fn build(
        offers_n: usize,
        per_offer: usize,
        released_percent: u8,
    ) -> anyhow::Result<Workload> {
        let offer_id = |o: usize| format!("offer-{o}");
        let subscriber = |s: usize| format!("s{s}");
        let mut offers = Vec::new();
        let mut invitations = Vec::new();
        let mut responses = Vec::new();
        // Real credentials and signatures: the timekeeper checks who signed each offer, invitation
        // and response, and re-seals its half on release.
        let timekeeper_key = tessera_producers::keys::new_private_key();
        let timekeeper = timekeeper_key.public_key();
        let provider = SigningKey::derive(&tessera_producers::keys::new_private_key());
        let matcher = SigningKey::derive(&tessera_producers::keys::new_private_key());
        let responders: Vec<Responder> = (0..per_offer)
            .map(|s| Responder::new(subscriber(s), tessera_producers::keys::new_private_key()))
            .collect();
        let releasing = |o: usize| o % 100 < usize::from(released_percent);
        let tomorrow = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64
            + 86_400_000;
        let rule = |o: usize| {
            if releasing(o) {
                TimeRule::Within(Within {
                    duration_ms: 3_600_000,
                })
            } else {
                TimeRule::Window(Window {
                    from: tomorrow,
                    to: tomorrow + 3_600_000,
                })
            }
        };
        for o in 0..offers_n {
            let offer = tessera_contract::identity::with_package_signed(
                OfferPublished {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    offer_id: offer_id(o),
                    provider_id: "bench".into(),
                    signing_key: provider.verifying_key().to_bytes(),
                    package_signature: Vec::new(),
                    provider_endorsement: None,
                    provider_contact: "bench@localhost".into(),
                    recommendation: Recommendation {
                        identifier: format!("doc-{o}"),
                        name: "benchmark offer".into(),
                        features: BTreeMap::new(),
                        parameters: BTreeMap::new(),
                    },
                    time_rule: rule(o),
                    capacity: None,
                    reward: None,
                    decide_within: None,
                    credential: tessera_producers::provider::seal(
                        &offer_id(o),
                        Sealing {
                            target_data: b"benchmark document",
                            custody: Custody::CoSign,
                            timekeeper: &timekeeper,
                        },
                    )?
                    .credential,
                    invite_late: false,
                },
                &provider,
            );
            offers.push(signed(&provider, OFFERS, offer_id(o), offer.into())?);
            for (s, responder) in responders.iter().enumerate().take(per_offer) {
                let request = InteractionRequested {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    request_id: request_id(&offer_id(o), &subscriber(s)),
                    offer_id: offer_id(o),
                    subscriber_id: subscriber(s),
                    subscriber_key: responder.key.public_key().to_bytes(),
                    subscriber_signing_key: responder.signer.verifying_key().to_bytes(),
                    recommendation: Recommendation {
                        identifier: format!("doc-{o}"),
                        name: "benchmark offer".into(),
                        features: BTreeMap::new(),
                        parameters: BTreeMap::new(),
                    },
                    offer: OfferTerms {
                        position: LogPosition {
                            topic: OFFERS.name.into(),
                            partition: 0,
                            offset: 0,
                            stamp: 0,
                        },
                        time_rule: rule(o),
                    },
                    provider_contact: "bench@localhost".into(),
                    decide_within: None,
                };
                invitations.push(signed(&matcher, REQUESTS, offer_id(o), request.into())?);
            }
        }
        // Subscriber by subscriber across all offers, so every partition gets a steady share.
        for responder in responders.iter().take(per_offer) {
            for o in 0..offers_n {
                let response = tessera_producers::subscriber::response(&offer_id(o), responder);
                responses.push(signed(
                    &responder.signer,
                    RESPONSES,
                    offer_id(o),
                    response.into(),
                )?);
            }
        }
        Ok(Workload {
            timekeeper_key,
            matcher,
            offers,
            invitations,
            responses,
            per_offer,
        })
    }
}

/// What the timekeeper's side of the run measured.
struct Judged {
    /// Responses written per second.
    rate: f64,
    /// (response stamp, verdict latency in ms) per response.
    latencies: Vec<(i64, i64)>,
    /// Responses released.
    released: usize,
    /// Ticks the timekeepers wrote to their inputs.
    ticks: usize,
}

async fn timekeeper(
    kafka: &KafkaArgs,
    client: &ClientConfig,
    args: &LatencyArgs,
    total: usize,
) -> anyhow::Result<Judged> {
    let prefix = &kafka.topic_prefix;
    let Workload {
        timekeeper_key,
        matcher,
        offers,
        invitations,
        responses,
        per_offer,
    } = Workload::build(args.offers, total / args.offers, args.released_percent)?;
    let releasing = |o: usize| o % 100 < usize::from(args.released_percent);

    let state = tempfile::tempdir()?;
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..args.instances)
        .map(|i| {
            let instance = format!("bench-{i}");
            let mut config = Config::new(client.clone(), &instance, state.path().join(&instance));
            config.topic_prefix = prefix.clone();
            config.tick_gap = args.tick_gap;
            let key = PrivateKey::from_bytes(timekeeper_key.to_bytes().as_ref())?;
            let core = Timekeeper::new(key, matcher.verifying_key());
            Ok(tokio::spawn(runtime::run(core, config, stop.clone())))
        })
        .collect::<anyhow::Result<_>>()?;
    let group = format!("{prefix}tessera.timekeeper");

    // Offers and invitations go in as fast as they can and are waited for: the measurement
    // starts with the timekeeper caught up.
    for (topic, records) in [(OFFERS, &offers), (REQUESTS, &invitations)] {
        let (client, name, records) = (client.clone(), topic.full_name(prefix), records.clone());
        tokio::task::spawn_blocking(move || paced(&client, &name, &records, 1_000_000)).await??;
    }
    let wait = |topic: &'static str, records: &Vec<Outgoing>| {
        let ends = ends_of(records.iter().map(|(k, _, _)| k.clone()), args.partitions);
        let (client, group, name) = (client.clone(), group.clone(), format!("{prefix}{topic}"));
        tokio::task::spawn_blocking(move || {
            let progress = bar(
                ends.values().sum::<i64>() as u64,
                &format!("timekeeper reads {topic}"),
            );
            wait_committed(&client, &group, &name, &ends, &progress).map(|_| ())
        })
    };
    wait(REQUESTS.name, &invitations).await??;
    // Writing the invitations at full speed leaves the broker and the task stores work to finish
    // (log segments, RocksDB flushes): the responses start once it is done, so the run measures
    // the rate, not the load before it.
    tokio::time::sleep(SETTLE).await;

    let rate = {
        let (client, name, records) = (
            client.clone(),
            RESPONSES.full_name(prefix),
            responses.clone(),
        );
        let pace = args.rate;
        tokio::task::spawn_blocking(move || paced(&client, &name, &records, pace)).await??
    };
    wait(RESPONSES.name, &responses).await??;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await??;
    }

    let mut latencies = Vec::new();
    let mut released = 0;
    for record in read_to_end(client, &DECISIONS.full_name(prefix), None).await? {
        let judged = match &record.event {
            Some(Ok(Event::CredentialReleased(r))) => {
                released += 1;
                r.response.stamp
            }
            Some(Ok(Event::ResponseRejected(r))) if r.reason == RejectReason::TooEarly => {
                r.response.stamp
            }
            Some(Ok(Event::ResponseRejected(r))) => {
                bail!(
                    "response {} was refused: {:?}, {}",
                    r.request_id,
                    r.reason,
                    r.detail
                )
            }
            _ => continue,
        };
        if let Some(stamp) = record.stamp {
            latencies.push((judged, stamp - judged));
        }
    }
    if latencies.len() != total {
        bail!("{} verdicts for {total} responses", latencies.len());
    }
    let expected = per_offer * (0..args.offers).filter(|o| releasing(*o)).count();
    if released != expected {
        bail!("{released} credentials released, {expected} expected");
    }
    // The bench's own writes are idempotent, not transactional, and the ticker's too: what the
    // inputs hold beyond what the bench wrote is ticks.
    let written = offers.len() + invitations.len() + responses.len();
    let ticks = records_on(
        client,
        &[OFFERS, REQUESTS, RESPONSES],
        prefix,
        args.partitions,
    )?
    .saturating_sub(written);
    Ok(Judged {
        rate,
        latencies,
        released,
        ticks,
    })
}

/// How many records `topics` hold, all partitions: the sum of their high watermarks.
fn records_on(
    client: &ClientConfig,
    topics: &[Topic],
    prefix: &str,
    partitions: i32,
) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = client.create()?;
    let mut total = 0;
    for topic in topics {
        for partition in 0..partitions {
            let (_, high) = consumer.fetch_watermarks(
                &topic.full_name(prefix),
                partition,
                Duration::from_secs(10),
            )?;
            total += usize::try_from(high).unwrap_or(0);
        }
    }
    Ok(total)
}
