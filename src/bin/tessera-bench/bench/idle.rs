//! `tessera-bench idle`: what the four platform processors cost when nothing happens. Each runs
//! as its own `tessera run` process on fresh topics; after a warm-up the bench counts the records
//! written to the decision inputs (with no traffic, every one is a tick) and each process's CPU
//! time over the window. The baseline, measured over the same window in this process, is one
//! plain read_committed consumer subscribed to the same inputs: the floor any Kafka client pays
//! to sit idle.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{ALL, Topic};
use tessera_producers::keys;

use tessera::kafka::KafkaArgs;

/// What `tessera-bench idle` takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct IdleArgs {
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds the processors get to join their groups and open their tasks before the window.
    #[arg(long, default_value_t = 20)]
    pub warmup: u64,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
}

/// The four platform processors as `tessera run` arguments, each with the key files and the
/// verifying keys it needs.
fn processors(dir: &Path) -> anyhow::Result<Vec<(&'static str, Vec<String>)>> {
    let mut verifying = Vec::new();
    for role in ["matcher", "timekeeper", "delivery", "ledger"] {
        let key = keys::generate(&dir.join(format!("{role}.key")))?;
        verifying.push(SigningKey::derive(&key).verifying_key().to_string());
    }
    let file = |role: &str| dir.join(format!("{role}.key")).display().to_string();
    let (matcher, timekeeper) = (&verifying[0], &verifying[1]);
    Ok(vec![
        (
            "matcher",
            vec!["matcher".into(), "--key-file".into(), file("matcher")],
        ),
        (
            "timekeeper",
            vec![
                "timekeeper".into(),
                "--key-file".into(),
                file("timekeeper"),
                "--matcher-key".into(),
                matcher.clone(),
            ],
        ),
        (
            "delivery",
            vec![
                "delivery".into(),
                "--key-file".into(),
                file("delivery"),
                "--timekeeper-key".into(),
                timekeeper.clone(),
                "--matcher-key".into(),
                matcher.clone(),
                "--no-webhooks".into(),
            ],
        ),
        (
            "ledger",
            vec![
                "ledger".into(),
                "--key-file".into(),
                file("ledger"),
                "--timekeeper-key".into(),
                timekeeper.clone(),
            ],
        ),
    ])
}

/// The processes, killed when dropped so a failed bench leaves none behind.
struct Running(Vec<(&'static str, Child)>);

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time a process has used so far (user plus system), from `/proc/<pid>/stat`.
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (the bench needs Linux's /proc)"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis don't.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .context("unexpected /proc stat format")
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / USER_HZ))
}

/// The unit of `/proc` CPU times: Linux reports them in USER_HZ, 100 per second on every
/// architecture it runs on today, whatever the kernel's own tick rate.
const USER_HZ: u64 = 100;

/// Records on every partition of `topics` so far (the sum of their end offsets).
fn records(consumer: &BaseConsumer, topics: &[String], partitions: i32) -> anyhow::Result<i64> {
    let mut total = 0;
    for topic in topics {
        for partition in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .with_context(|| format!("cannot read the end of {topic}/{partition}"))?;
            total += high;
        }
    }
    Ok(total)
}

/// Runs the bench and prints its result.
pub(super) async fn idle_cost(kafka: &KafkaArgs, args: IdleArgs) -> anyhow::Result<()> {
    let prefix = super::installation(kafka, "idle", args.partitions).await?;
    let inputs: Vec<String> = ALL
        .iter()
        .filter(|t| t.decides)
        .map(|t: &Topic| t.full_name(&prefix))
        .collect();

    let dir = tempfile::tempdir()?;
    let exe = super::tessera_command()?;
    let mut running = Running(Vec::new());
    for (name, run_args) in processors(dir.path())? {
        let mut command = Command::new(&exe);
        super::on_cluster(&mut command, kafka, &prefix)
            .args([
                "run",
                "--metrics-addr",
                "off",
                "--instance",
                "bench-idle",
                "--state-dir",
            ])
            .arg(dir.path().join("state"))
            .args(&run_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(
                dir.path().join(format!("{name}.log")),
            )?);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start tessera run {name}"))?;
        running.0.push((name, child));
    }

    let baseline: BaseConsumer = kafka
        .client_config()?
        .set("group.id", format!("{prefix}idle-baseline"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .create()?;
    let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
    baseline.subscribe(&names)?;

    let bar = ProgressBar::new(args.warmup + args.seconds);
    bar.set_style(
        ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} s").expect("valid template"),
    );
    bar.set_message("warming up");
    let wait = |seconds: u64, bar: &ProgressBar| -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            // The baseline consumer is polled as any idle application polls.
            if let Some(Err(e)) = baseline.poll(Duration::from_millis(100)) {
                tracing::debug!("baseline consumer: {e}");
            }
            bar.set_position(bar.position().max(
                bar.length().unwrap_or(0)
                    - until.saturating_duration_since(Instant::now()).as_secs(),
            ));
        }
        Ok(())
    };
    wait(args.warmup, &bar)?;
    for (name, child) in &mut running.0 {
        if let Some(status) = child.try_wait()? {
            bail!(
                "tessera run {name} exited during the warm-up ({status}); its log: {}",
                std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default()
            );
        }
    }

    bar.set_message("measuring");
    let pids: Vec<(&str, String)> = running
        .0
        .iter()
        .map(|(name, child)| (*name, child.id().to_string()))
        .collect();
    let cpu_before: Vec<Duration> = pids
        .iter()
        .map(|(_, pid)| cpu_time(pid))
        .collect::<anyhow::Result<_>>()?;
    let own_before = cpu_time("self")?;
    let records_before = records(&baseline, &inputs, args.partitions)?;
    let started = Instant::now();
    wait(args.seconds, &bar)?;
    let window = started.elapsed();
    let own = cpu_time("self")? - own_before;
    let records_after = records(&baseline, &inputs, args.partitions)?;
    let cpu: Vec<Duration> = pids
        .iter()
        .zip(&cpu_before)
        .map(|((_, pid), before)| Ok(cpu_time(pid)? - *before))
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();
    for (name, child) in &mut running.0 {
        if let Some(status) = child.try_wait()? {
            bail!("tessera run {name} exited during the measurement ({status})");
        }
    }

    let share = |cpu: Duration| 100.0 * cpu.as_secs_f64() / window.as_secs_f64();
    let written = records_after - records_before;
    let input_partitions = inputs.len() as i64 * i64::from(args.partitions);
    println!(
        "idle for {:.0} s after a {} s warm-up: {} decision-input topics × {} partitions",
        window.as_secs_f64(),
        args.warmup,
        inputs.len(),
        args.partitions
    );
    println!(
        "records written to the decision inputs   {written} ({:.3} per partition per second)",
        written as f64 / input_partitions as f64 / window.as_secs_f64()
    );
    println!("                         CPU (% of one core)   × baseline");
    println!("baseline consumer        {:>19.2}", share(own));
    for ((name, _), cpu) in pids.iter().zip(&cpu) {
        println!(
            "{name:<24} {:>19.2} {:>11.1}",
            share(*cpu),
            cpu.as_secs_f64() / own.as_secs_f64().max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}
