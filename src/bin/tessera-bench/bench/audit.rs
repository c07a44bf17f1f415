//! `tessera-bench audit`: how fast an auditor replays a processor from the log, in input records
//! per second, beside a plain read_committed consume of the same topics (inputs and outputs) with
//! the same reader in the same run. The processor is the counter, run first on the exactly-once
//! runtime so the audit has committed outputs to match.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tessera_audit::{Audit, log};
use tessera_cores::counter::Counter;
use tessera_runtime::{self as runtime, Config};

use super::{bar, committed, fresh_topics, produce};
use tessera::kafka::KafkaArgs;

/// Options of `tessera-bench audit`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReplayArgs {
    /// Input records.
    #[arg(long, default_value_t = 500_000)]
    pub events: usize,
    /// Distinct keys among them.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Rounds of consume-then-audit; the best of each side is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

fn counter() -> Counter {
    Counter::new("counter", vec!["in".into()], "out", i64::MAX / 4)
}

/// Runs the benchmark and prints its result.
pub(super) async fn replay_rate(kafka: &KafkaArgs, args: ReplayArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.keys == 0 || args.partitions < 1 || args.rounds == 0 {
        bail!("--events, --keys, --partitions and --rounds must be positive");
    }
    let outputs = ["out", "tessera.dead-letters"];
    let (client, prefix) = fresh_topics(kafka, &outputs, args.partitions).await?;
    let input = format!("{prefix}in");
    let ends = produce(&client, &input, args.events, args.keys)?;

    let state = tempfile::tempdir()?;
    let mut config = Config::new(client.clone(), "bench", PathBuf::from(state.path()));
    config.topic_prefix = prefix.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = tokio::spawn(runtime::run(counter(), config, stop.clone()));
    let progress = bar(args.events as u64, "counter on the runtime");
    let group = format!("{prefix}tessera.counter");
    committed(&client, &group, &input, &ends, &progress).await??;
    progress.finish();
    stop.store(true, Ordering::Relaxed);
    handle.await??;

    let mut topics = Vec::new();
    for topic in ["in", "out", "tessera.dead-letters"] {
        for partition in 0..args.partitions {
            topics.push((format!("{prefix}{topic}"), partition));
        }
    }
    let mut consumed = Duration::MAX;
    let mut audited = Duration::MAX;
    let mut inputs = 0;
    for round in 1..=args.rounds {
        let (client_, topics_) = (client.clone(), topics.clone());
        let progress = bar(0, &format!("plain consume, round {round}"));
        let shown = progress.clone();
        let elapsed = tokio::task::spawn_blocking(move || -> anyhow::Result<Duration> {
            let started = Instant::now();
            log::read(&client_, &topics_, &shown, &mut |_, _| Ok(()))?;
            Ok(started.elapsed())
        })
        .await??;
        progress.finish_and_clear();
        consumed = consumed.min(elapsed);

        let (client_, prefix_) = (client.clone(), prefix.clone());
        let progress = bar(0, &format!("audit, round {round}"));
        let shown = progress.clone();
        let (report, elapsed) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let report = Audit::new(counter(), &prefix_).run(&client_, &shown);
            (report, started.elapsed())
        })
        .await?;
        progress.finish_and_clear();
        let report = report?;
        if !report.clean() {
            bail!("the audit found mismatches: {:#?}", report.findings);
        }
        inputs = report.inputs_read;
        audited = audited.min(elapsed);
    }
    let rate = |elapsed: Duration| inputs as f64 / elapsed.as_secs_f64();
    println!(
        "topics             {prefix}in, {prefix}out (kept for reruns of tessera-bench audit-counter)"
    );
    println!(
        "inputs             {inputs} records ({} keys, {} partitions), outputs matched",
        args.keys, args.partitions
    );
    println!(
        "plain consume      {:>10.0} input records/s ({consumed:.2?}, best of {})",
        rate(consumed),
        args.rounds
    );
    println!(
        "audit replay       {:>10.0} input records/s ({audited:.2?}, best of {})",
        rate(audited),
        args.rounds
    );
    println!(
        "ratio              {:>10.2}",
        rate(audited) / rate(consumed)
    );
    Ok(())
}
