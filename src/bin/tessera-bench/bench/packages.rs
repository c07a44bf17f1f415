//! `tessera-bench packages`: a payload of any size published in chunks and opened again, each as
//! its own process (`tessera provider publish`, then `tessera-bench open-package`, which streams
//! the chunks back the way `tessera subscriber open` does), timed and with its peak RSS; beside
//! Kafka's own `ProducerPerformance` and `ConsumerPerformance` moving the same bytes in records
//! of the chunks' size on the same broker, the baseline a plain Kafka client reaches.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use tessera_contract::Event;
use tessera_contract::sealing::chunks::{CHUNK_LEN, ChunkOpener, Manifest};
use tessera_contract::sealing::{self, Half, PrivateKey};
use tessera_contract::signing::VerifyingKey;
use tessera_contract::topics::OFFERS;
use tessera_producers::client::read_partition_of;
use tessera_producers::keys;
use tessera_producers::packages::read_chunks;

use tessera::kafka::KafkaArgs;

/// What `tessera-bench packages` takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PackagesArgs {
    /// Bytes of target data, e.g. `200MiB` or `1GiB`.
    #[arg(long, default_value = "200MiB", value_parser = parse_size)]
    pub size: u64,
    /// The script that runs Kafka's own tools (`compose/kafka tool CLASS ...`).
    #[arg(long, value_name = "PATH", default_value = "compose/kafka")]
    pub kafka_script: PathBuf,
}

/// What `tessera-bench open-package` takes: the process the bench times for the opening side.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct OpenPackageArgs {
    /// The offer whose package to open.
    #[arg(long)]
    pub offer: String,
    /// The timekeeper's key file: an escrow offer's two halves are both sealed to it.
    #[arg(long, value_name = "PATH")]
    pub timekeeper_key_file: PathBuf,
    /// Where to write the target data.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Reads `200MiB`, `1GiB`, `512KiB` or a plain number of bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("`{text}` is not a size: e.g. 200MiB, 1GiB or 4096")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{text}` is not a positive size"))
}

/// How a child process went: its wall time and the peak RSS it reached, in MiB.
struct Ran {
    elapsed: Duration,
    peak_mib: f64,
    stdout: String,
}

/// Runs `command` to its end, sampling its peak RSS (VmHWM, a high-water mark, so sampling
/// misses nothing but the last few milliseconds) every 20 ms.
fn run(mut command: Command, what: &str) -> anyhow::Result<Ran> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let mut peak_mib: f64 = 0.0;
    let status = loop {
        if let Ok((peak, _)) = super::rss_mib(child.id()) {
            peak_mib = peak_mib.max(peak);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    if !status.success() {
        bail!("{what} failed ({status}): {stdout}");
    }
    Ok(Ran {
        elapsed,
        peak_mib,
        stdout,
    })
}

/// A payload file of `size` bytes that does not compress, written in chunks.
fn payload(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(())
}

/// `compose/kafka tool CLASS ARGS`; its output's last line, where Kafka's tools report.
fn kafka_tool(script: &Path, class: &str, args: &[String]) -> anyhow::Result<String> {
    let mut command = Command::new(script);
    command.arg("tool").arg(class).args(args);
    let ran = run(command, class)?;
    Ok(ran.stdout.lines().last().unwrap_or_default().to_string())
}

/// The MiB/s ProducerPerformance reports: "N records sent, R records/sec (M MB/sec), ...", its
/// MB being 2^20 bytes, timed from its first send (the JVM's start left out).
fn producer_rate(line: &str) -> Option<f64> {
    let (_, rest) = line.split_once("records/sec (")?;
    rest.split_once(" MB/sec")?.0.trim().parse().ok()
}

/// The MiB/s ConsumerPerformance reports while fetching (`fetch.MB.sec`, the ninth field: the
/// group's join left out).
fn consumer_rate(line: &str) -> Option<f64> {
    line.split(", ").nth(8)?.trim().parse().ok()
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

/// Runs the bench and prints its result.
pub(crate) async fn publish_and_open(kafka: &KafkaArgs, args: PackagesArgs) -> anyhow::Result<()> {
    let prefix = super::installation(kafka, "packages", 1).await?;
    let dir = tempfile::tempdir()?;
    let timekeeper_file = dir.path().join("timekeeper.key");
    let timekeeper = keys::generate(&timekeeper_file)?;
    let source = dir.path().join("payload.bin");
    payload(&source, args.size)?;
    let tessera = super::tessera_command()?;

    let mut publish = Command::new(&tessera);
    super::on_cluster(&mut publish, kafka, &prefix);
    publish
        .args([
            "provider",
            "publish",
            "--provider",
            "P",
            "--contact",
            "p@example.org",
        ])
        .args(["--identifier", "bench", "--name", "bench", "--within", "1h"])
        .args(["--custody", "escrow", "--offer-id", "bench-offer"])
        .arg("--timekeeper-key")
        .arg(timekeeper.public_key().to_string())
        .arg("--key-dir")
        .arg(dir.path().join("provider"))
        .arg("--payload")
        .arg(&source);
    let published = run(publish, "tessera provider publish")?;

    let opened_file = dir.path().join("opened.bin");
    let mut open = Command::new(std::env::current_exe()?);
    super::on_cluster(&mut open, kafka, &prefix);
    open.args(["open-package", "--offer", "bench-offer"])
        .arg("--timekeeper-key-file")
        .arg(&timekeeper_file)
        .arg("--out")
        .arg(&opened_file);
    let opened = run(open, "tessera-bench open-package")?;
    if std::fs::read(&opened_file)? != std::fs::read(&source)? {
        bail!("the opened payload differs from the published one");
    }

    let records = args.size.div_ceil(CHUNK_LEN as u64);
    super::create_topics(&kafka.client_config()?, &prefix, &["perf"], 1).await?;
    let perf_topic = format!("{prefix}perf");
    let producer_line = kafka_tool(
        &args.kafka_script,
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic".into(),
            perf_topic.clone(),
            "--num-records".into(),
            records.to_string(),
            "--record-size".into(),
            CHUNK_LEN.to_string(),
            "--throughput".into(),
            "-1".into(),
            "--producer-props".into(),
            format!("bootstrap.servers={}", kafka.brokers),
            "acks=all".into(),
            "enable.idempotence=true".into(),
            "max.request.size=2097152".into(),
        ],
    )?;
    let consumer_line = kafka_tool(
        &args.kafka_script,
        "org.apache.kafka.tools.ConsumerPerformance",
        &[
            "--bootstrap-server".into(),
            kafka.brokers.clone(),
            "--topic".into(),
            perf_topic,
            "--messages".into(),
            records.to_string(),
        ],
    )?;
    let producer_rate = producer_rate(&producer_line)
        .with_context(|| format!("cannot read ProducerPerformance's rate in: {producer_line}"))?;
    let consumer_rate = consumer_rate(&consumer_line)
        .with_context(|| format!("cannot read ConsumerPerformance's rate in: {consumer_line}"))?;

    let size = args.size;
    let publish_rate = mib_per_s(size, published.elapsed);
    let open_rate = mib_per_s(size, opened.elapsed);
    println!("payload {size} bytes in {records} chunks of {CHUNK_LEN} bytes on one partition");
    println!(
        "publish  {:>8.2?}  {publish_rate:>7.1} MiB/s  peak RSS {:>6.1} MiB   \
         ProducerPerformance {producer_rate:>7.1} MiB/s   ratio {:.2}",
        published.elapsed,
        published.peak_mib,
        publish_rate / producer_rate
    );
    println!(
        "open     {:>8.2?}  {open_rate:>7.1} MiB/s  peak RSS {:>6.1} MiB   \
         ConsumerPerformance {consumer_rate:>7.1} MiB/s   ratio {:.2}",
        opened.elapsed,
        opened.peak_mib,
        open_rate / consumer_rate
    );
    println!(
        "(tessera's times are whole processes, start included; Kafka's tools time their own \
         sending and fetching, the JVM's start left out)"
    );
    Ok(())
}

/// Opens an escrow offer's chunked package with the timekeeper's key: both halves, then the
/// chunks streamed to `out` through the reader `tessera subscriber open` uses.
pub(crate) async fn open_package(kafka: &KafkaArgs, args: OpenPackageArgs) -> anyhow::Result<()> {
    let config: ClientConfig = kafka.client_config()?;
    let timekeeper: PrivateKey = keys::load(&args.timekeeper_key_file)?;
    let offers = OFFERS.full_name(&kafka.topic_prefix);
    let offer = read_partition_of(&config, &offers, &args.offer)
        .await?
        .into_iter()
        .find_map(|record| match record.event {
            Some(Ok(Event::OfferPublished(offer))) if offer.offer_id == args.offer => Some(offer),
            _ => None,
        })
        .with_context(|| format!("no offer {} on {offers}", args.offer))?;
    let credential = &offer.credential;
    let escrow = credential
        .escrow_half
        .as_ref()
        .context("the bench publishes in escrow custody")?;
    let platform = sealing::open_from_provider(
        &credential.platform_half,
        Half::Platform,
        &offer.offer_id,
        &timekeeper,
    )?;
    let provider =
        sealing::open_from_provider(escrow, Half::Provider, &offer.offer_id, &timekeeper)?;
    let manifest: Manifest = Manifest::of_package(&credential.package)
        .context("the offer's package is inline, not in chunks")??;
    let signing = VerifyingKey::from_bytes(&offer.signing_key)?;
    let data_key = platform.xor(&provider);
    let opener = ChunkOpener::new(&data_key, &offer.offer_id, manifest.clone());
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    read_chunks(
        &config,
        &kafka.topic_prefix,
        &offer.offer_id,
        &manifest,
        (&signing, &offer.provider_id),
        opener,
        &mut out,
        |_| {},
    )
    .await?;
    Ok(())
}
