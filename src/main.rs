//! `tessera`: offers matched to stored needs, credentials released by the broker's clock.

use std::process::ExitCode;

use clap::Subcommand;
use tessera::topics::{self, Created};
use tessera_contract::topics::DEFAULT_PARTITIONS;

/// What `tessera --help` opens with.
const ABOUT: &str = "\
    tessera puts a provider's offer in front of exactly the parties whose stored needs match \
    it, and releases the offer's sealed credential only to those who answer within the \
    provider's time rule, judged by the Kafka broker's receipt stamps";

type Cli = tessera::cli::Cli<Command>;

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "command-line arguments, parsed once"
)]
enum Command {
    /// Create tessera's topics on a cluster, or check a cluster against the topic catalogue.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Keys: make an HPKE X25519 key pair (the timekeeper's, a subscriber's), show a public key.
    #[command(subcommand)]
    Keys(tessera::keys::Keys),
    /// Providers: publish an offer, withdraw it, co-sign its releases, watch what happens to it.
    #[command(subcommand)]
    Provider(tessera::provider::Provider),
    /// Subscribers: register stored needs, leave, answer invitations, listen for them, open,
    /// accept or decline delivered credentials.
    #[command(subcommand)]
    Subscriber(tessera::subscriber::Subscriber),
    /// Offers: what happened to one, read from the log.
    #[command(subcommand)]
    Offer(tessera::offer::Offer),
    /// The ledger: a provider's balance, read from the log.
    #[command(subcommand)]
    Ledger(tessera::ledger::Ledger),
    /// The source document's worked example on the real broker: A offers document X with a
    /// deadline; B1 answers in time and is released, B2 answers late and is refused, B3 (other
    /// needs) is never asked, B4 registers while the offer is open and is invited late; B1 opens
    /// document X with both key halves and accepts it, B4 opens it and declines, and A is credited
    /// the reward once. Runs the processors in-process on fresh `demo-…` topics and exits
    /// non-zero if anything differs.
    Demo(tessera::demo::DemoArgs),
    /// Replay processors from the log and compare what they must have written with what their
    /// output topics hold: reports every record missing, injected, altered, duplicated or
    /// reordered, with its topic, partition and offset.
    Audit(tessera::audit::AuditArgs),
    /// The verdict on a subscriber's response to an offer, with the evidence a party checks
    /// without trusting the platform: the response's partition, offset and receipt stamp, the
    /// offer's place, the rule applied, and the verdict's link (previous and own digest), checked
    /// against the log. Exits non-zero when there is no verdict or a check fails.
    Receipt(tessera::receipt::ReceiptArgs),
    /// The broker's ACLs: one principal per role, each allowed only what it owns. `plan` prints
    /// the table, `apply` creates it on the cluster (as an admin principal).
    #[command(subcommand)]
    Acl(tessera::acl::Acl),
    /// Run a processor instance on the exactly-once runtime; start several with distinct
    /// `--instance` ids to share its partitions.
    Run {
        #[command(flatten)]
        args: tessera::run::RunArgs,
        #[command(subcommand)]
        processor: tessera::run::Processor,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create every tessera topic that is missing, with its configuration; existing topics are
    /// left as they are (run `check` to see how they differ).
    Create {
        /// Partitions per topic; topics that share a key must share this count.
        #[arg(long, default_value_t = DEFAULT_PARTITIONS)]
        partitions: i32,
        /// Replicas per partition (1 for a single local broker, 3 in production).
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
    },
    /// Compare the cluster's topics with the catalogue; print every difference and exit non-zero
    /// if there is one.
    Check {
        /// The partition count the topics must have.
        #[arg(long, default_value_t = DEFAULT_PARTITIONS)]
        partitions: i32,
    },
    /// Print the topic flow table (each topic's key, shape, events, and the roles that write and
    /// read it, as the processors and the ACL plan declare them) in Markdown; talks to no broker.
    Describe,
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Acl(command) => {
            tessera::acl::run(&cli.kafka, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(command) => {
            tessera::keys::run(command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Provider(command) => {
            tessera::provider::run(&cli.kafka, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Subscriber(command) => {
            tessera::subscriber::run(&cli.kafka, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Offer(command) => {
            tessera::offer::run(&cli.kafka, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(command) => {
            tessera::ledger::run(&cli.kafka, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            tessera::demo::run(&cli.kafka, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Receipt(args) => Ok(if tessera::receipt::run(&cli.kafka, args).await? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Audit(args) => Ok(if tessera::audit::run(&cli.kafka, args).await? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Run { args, processor } => {
            tessera::run::run(&cli.kafka, &args, processor).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics(TopicsCommand::Create {
            partitions,
            replication_factor,
        }) => {
            for created in topics::create(&cli.kafka, partitions, replication_factor).await? {
                match created {
                    Created::New(name) => println!("created  {name}"),
                    Created::Existing(name) => println!("exists   {name}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics(TopicsCommand::Describe) => {
            print!("{}", topics::describe());
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics(TopicsCommand::Check { partitions }) => {
            let differences = topics::check(&cli.kafka, partitions).await?;
            if differences.is_empty() {
                println!("ok: every tessera topic matches the catalogue");
                Ok(ExitCode::SUCCESS)
            } else {
                for difference in &differences {
                    println!("{difference}");
                }
                eprintln!(
                    "error: {} difference(s) from the topic catalogue",
                    differences.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_as("tessera", ABOUT);
    // The demo tells its story on stdout; the processors it runs inside log only trouble unless
    // RUST_LOG asks for more.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    cli.log.init(default_level);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
