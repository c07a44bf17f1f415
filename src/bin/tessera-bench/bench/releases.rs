//! `tessera-bench releases`: how many responses the timekeeper's core judges per second, with no
//! broker: every response released (each seals the offer's half to its responder) on one thread
//! and on all of them, against the same number refused as TooEarly (judged alike, nothing sealed)
//! on one thread, in the same process. Records go through [`Core::prepare`] in batches, as the
//! runtime hands a task's decided records over.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tessera_contract::EventKind;
use tessera_contract::codec::peek_kind;
use tessera_contract::sealing::PrivateKey;
use tessera_cores::merge::Entry;
use tessera_cores::replay::{self, Produced, RawRecord};
use tessera_cores::timekeeper::Timekeeper;
use tessera_cores::{Core, Position};
use tessera_state::MemoryState;

use super::timekeeper::{Outgoing, Workload};

/// Options of `tessera-bench releases`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReleasesArgs {
    /// Responses judged in each run.
    #[arg(long, default_value_t = 20_000)]
    pub responses: usize,
    /// Offers they answer.
    #[arg(long, default_value_t = 100)]
    pub offers: usize,
    /// Records the core prepares for at once (the runtime takes all of a task's decided records);
    /// 0 steps each record alone, with nothing prepared.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Threads of the parallel run; 0 is one per core of the machine.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Runs the workloads and prints their rates.
pub(crate) fn release_rate(args: ReleasesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.offers > 0 && args.responses >= args.offers,
        "--offers must be positive and at most --responses"
    );
    let on = |threads: usize| -> anyhow::Result<rayon::ThreadPool> {
        Ok(rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?)
    };
    let parallel = on(args.threads)?;
    let threads = parallel.current_num_threads();
    let released = on(1)?.install(|| judge(&args, 100, EventKind::CredentialReleased))?;
    let refused = on(1)?.install(|| judge(&args, 0, EventKind::ResponseRejected))?;
    let spread = parallel.install(|| judge(&args, 100, EventKind::CredentialReleased))?;
    println!(
        "responses          {} to {} offers, in memory, prepared {} at a time",
        args.offers * (args.responses / args.offers),
        args.offers,
        args.batch
    );
    println!("released           {released:>9.0} /s   one thread: releases per core");
    println!("refused TooEarly   {refused:>9.0} /s   one thread");
    println!("released           {spread:>9.0} /s   {threads} threads");
    println!(
        "ratio (released / refused)    {:.2}; a release costs {:.1} µs more than a refusal",
        released / refused,
        1e6 / released - 1e6 / refused
    );
    println!(
        "ratio ({threads} threads / one)        {:.2}",
        spread / released
    );
    Ok(())
}

/// Responses per second the core judges, each verdict of `verdict`'s kind.
fn judge(args: &ReleasesArgs, released_percent: u8, verdict: EventKind) -> anyhow::Result<f64> {
    let workload = Workload::build(args.offers, args.responses / args.offers, released_percent)?;
    let key = PrivateKey::from_bytes(workload.timekeeper_key.to_bytes().as_ref())?;
    let mut core = Timekeeper::new(key, workload.matcher.verifying_key());
    let mut state = MemoryState::default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    // Inputs in the timekeeper's rank order: offers, invitations, responses.
    let mut offset = 0;
    let mut feed = |input: usize, records: &[Outgoing]| -> Vec<Produced> {
        let mut produced = Vec::new();
        for batch in records.chunks(args.batch.max(1)) {
            let entries: Vec<Entry<RawRecord>> = batch
                .iter()
                .map(|(key, value, signature)| {
                    offset += 1;
                    let at = Position {
                        topic: input,
                        partition: 0,
                        task: 0,
                        offset,
                        stamp: now + offset,
                        effective: now + offset,
                    };
                    let item = RawRecord {
                        key: Some(key.clone().into_bytes()),
                        value: Some(value.clone()),
                        signature: signature.map(|s| s.to_vec()),
                        refused: None,
                    };
                    Entry { at, item }
                })
                .collect();
            if args.batch > 0 {
                core.prepare(&state, &entries);
            }
            for entry in entries {
                produced.extend(replay::step(&mut core, &mut state, entry));
            }
        }
        produced
    };
    feed(0, &workload.offers);
    feed(1, &workload.invitations);
    let started = Instant::now();
    let produced = feed(2, &workload.responses);
    let rate = workload.responses.len() as f64 / started.elapsed().as_secs_f64();
    let verdicts = produced
        .iter()
        .filter(
            |p| matches!(p, Produced::Output(o) if peek_kind(&o.value).is_ok_and(|k| k == verdict)),
        )
        .count();
    anyhow::ensure!(
        verdicts == workload.responses.len(),
        "{verdicts} {} for {} responses",
        verdict.name(),
        workload.responses.len()
    );
    Ok(rate)
}
