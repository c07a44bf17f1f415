//! `tessera-bench releases`: how many responses the timekeeper's core judges per second on one
//! core, with no broker: every response released (each seals the offer's half to its responder),
//! against the same number refused as TooEarly (judged alike, nothing sealed) in the same process.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tessera_contract::EventKind;
use tessera_contract::codec::peek_kind;
use tessera_contract::sealing::PrivateKey;
use tessera_cores::Position;
use tessera_cores::merge::Entry;
use tessera_cores::replay::{self, Produced, RawRecord};
use tessera_cores::timekeeper::Timekeeper;
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
}

/// Runs both workloads on this thread and prints their rates.
pub(crate) fn release_rate(args: ReleasesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.offers > 0 && args.responses >= args.offers,
        "--offers must be positive and at most --responses"
    );
    let released = judge(&args, 100, EventKind::CredentialReleased)?;
    let refused = judge(&args, 0, EventKind::ResponseRejected)?;
    println!(
        "responses          {} to {} offers, one thread, in memory",
        args.offers * (args.responses / args.offers),
        args.offers
    );
    println!("released           {released:>9.0} /s");
    println!("refused TooEarly   {refused:>9.0} /s");
    println!(
        "ratio (released / refused)    {:.2}; a release costs {:.1} µs more than a refusal",
        released / refused,
        1e6 / released - 1e6 / refused
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
        for (key, value, signature) in records {
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
            produced.extend(replay::step(&mut core, &mut state, Entry { at, item }));
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
