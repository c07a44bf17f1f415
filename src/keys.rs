//! `tessera keys`: make an HPKE X25519 key pair, or show a key file's public key, in the text form
//! every `--…-key` flag accepts (64 hexadecimal digits).

use std::path::PathBuf;

use anyhow::Context;
use rdkafka::ClientConfig;
use tessera_producers::keys;
use tessera_schemas::sealing::PublicKey;

/// What to do with keys.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Keys {
    /// Write a new key pair's private key to a new file, readable by its owner only (mode 0600),
    /// and print its public key. Never overwrites a file.
    Generate {
        /// The private key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key of a private key file.
    Public {
        /// The private key file.
        file: PathBuf,
    },
}

/// Runs a keys command.
pub fn run(command: Keys) -> anyhow::Result<()> {
    match command {
        Keys::Generate { out } => {
            let key = keys::generate(&out).context("cannot generate a key pair")?;
            println!("private key: {} (mode 0600, never printed)", out.display());
            println!("public key: {}", key.public_key());
        }
        Keys::Public { file } => println!("{}", keys::load(&file)?.public_key()),
    }
    Ok(())
}

/// The timekeeper's public key: the one given on the command line, else the one the timekeeper
/// published on `tessera.keys`.
pub async fn timekeeper_key(
    config: &ClientConfig,
    prefix: &str,
    given: Option<PublicKey>,
) -> anyhow::Result<PublicKey> {
    match given {
        Some(key) => Ok(key),
        None => Ok(keys::fetch_timekeeper(config, prefix).await?),
    }
}
