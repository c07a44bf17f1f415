//! `tessera-bench`: the measurement harness and the runtime's test workload, kept apart from the
//! `tessera` command users run. Every benchmark runs against a baseline in the same process on
//! the same data and reports the ratio; `docs/BENCHMARKS.md` holds the latest figures and the
//! commands that produced them.

use std::process::ExitCode;

use clap::Subcommand;
use tessera::audit::{AuditArgs, Audited};
use tessera::run::{CounterArgs, RunArgs};

mod bench;

/// What `tessera-bench --help` opens with.
const ABOUT: &str = "\
    tessera's benchmarks, each a ratio against a baseline run beside it, and the counter \
    workload the runtime's tests and benchmarks run";

type Cli = tessera::cli::Cli<Command>;

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "command-line arguments, parsed once"
)]
enum Command {
    #[command(flatten)]
    Bench(bench::Bench),
    /// Runs the counter on the exactly-once runtime until SIGTERM or Ctrl-C: a per-key count
    /// with an idle timer, the workload of the runtime's tests and benchmarks.
    Counter {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        counter: CounterArgs,
    },
    /// Opens an escrow offer's package in chunks with the timekeeper's key file: the opening
    /// side `tessera-bench packages` times, streaming as `tessera subscriber open` does.
    OpenPackage(bench::packages::OpenPackageArgs),
    /// Audits a counter run: replays the counter over its inputs and compares its output.
    AuditCounter {
        #[command(flatten)]
        audit: AuditArgs,
        #[command(flatten)]
        counter: CounterArgs,
    },
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bench(bench) => bench::run(&cli.kafka, bench).await?,
        Command::Counter { run, counter } => {
            tessera::run::run_counter(&cli.kafka, &run, &counter).await?
        }
        Command::OpenPackage(args) => bench::packages::open_package(&cli.kafka, args).await?,
        Command::AuditCounter { audit, counter } => {
            let audit = AuditArgs {
                processors: vec![Audited::Counter],
                counter: Some(counter),
                ..audit
            };
            if !tessera::audit::run(&cli.kafka, audit).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_as("tessera-bench", ABOUT);
    cli.log.init("info");
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
