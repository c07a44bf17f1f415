//! `tessera keys`: make a key pair, show a key file's public keys in the text form every
//! `--…-key` flag accepts (64 hexadecimal digits), endorse a party's keys with a trust anchor, and
//! the timekeeper's keys as a client pins them.

use std::path::PathBuf;

use anyhow::Context;
use rdkafka::ClientConfig;
use tessera_contract::identity;
use tessera_contract::sealing::PublicKey;
use tessera_contract::signing::{SigningKey, VerifyingKey, hex, unhex};
use tessera_producers::keys::{self, Pinning, PlatformKeys, Role};

/// What to do with keys.
#[derive(Debug, Clone, clap::Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "command-line arguments, parsed once"
)]
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
        /// Print the verifying key of the signing key derived from it (what `--matcher-key`
        /// and `--trust-anchor` take) instead of the X25519 key.
        #[arg(long, conflicts_with = "fingerprint")]
        signing: bool,
        /// Print the fingerprint of its signing key (what `--timekeeper-fingerprint` takes).
        #[arg(long)]
        fingerprint: bool,
    },
    /// Endorse a party's keys with the trust anchor's key file, for installations whose matcher
    /// runs with `--trust-anchor`: prints the endorsement (hex) for `subscriber register
    /// --endorsement` or, with --provider, `provider publish --endorsement`. Also how a party
    /// that lost its key is given a new one, and, signed with a provider's current key file, how
    /// a provider rotates its key.
    Endorse {
        /// The endorsing key file: the trust anchor's, or to rotate a provider's key, the
        /// provider's current `provider.key`.
        #[arg(long, value_name = "FILE")]
        anchor: PathBuf,
        /// The subscriber's (or with --provider, the provider's) id.
        #[arg(long)]
        id: String,
        /// Endorse a provider's signing key (no sealing key) rather than a subscriber's keys.
        #[arg(long, conflicts_with = "sealing_key")]
        provider: bool,
        /// The subscriber's X25519 public key (64 hex digits: `tessera keys public FILE`).
        #[arg(long, value_name = "HEX", required_unless_present = "provider")]
        sealing_key: Option<PublicKey>,
        /// The party's verifying key (64 hex digits: `tessera keys public --signing FILE`).
        #[arg(long, value_name = "HEX")]
        signing_key: VerifyingKey,
    },
}

/// Runs a keys command.
pub fn run(command: Keys) -> anyhow::Result<()> {
    match command {
        Keys::Generate { out } => {
            let key = keys::generate(&out).context("cannot generate a key pair")?;
            println!("private key: {} (mode 0600, never printed)", out.display());
            println!("public key: {}", key.public_key());
            let verifying = SigningKey::derive(&key).verifying_key();
            println!(
                "signing key: {verifying} (fingerprint {})",
                verifying.fingerprint()
            );
        }
        Keys::Public {
            file,
            signing,
            fingerprint,
        } => {
            let key = keys::load(&file)?;
            let verifying = SigningKey::derive(&key).verifying_key();
            match (signing, fingerprint) {
                (true, _) => println!("{verifying}"),
                (_, true) => println!("{}", verifying.fingerprint()),
                _ => println!("{}", key.public_key()),
            }
        }
        Keys::Endorse {
            anchor,
            id,
            provider,
            sealing_key,
            signing_key,
        } => {
            let anchor = SigningKey::derive(&keys::load(&anchor)?);
            let signing = signing_key.to_bytes();
            let endorsement = match sealing_key {
                Some(sealing_key) if !provider => {
                    let sealing = sealing_key.to_bytes();
                    let parts = identity::endorsement_parts(&id, &sealing, &signing);
                    anchor.sign_statement(identity::ENDORSEMENT_TAG, &parts)
                }
                _ => {
                    let parts = identity::provider::endorsement_parts(&id, &signing);
                    anchor.sign_statement(identity::provider::ENDORSEMENT_TAG, &parts)
                }
            };
            println!("{}", hex(&endorsement));
        }
    }
    Ok(())
}

/// Reads bytes written as hexadecimal digits (an endorsement on the command line).
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    unhex(text.trim()).ok_or_else(|| "expected pairs of hexadecimal digits".into())
}

/// How a client pins the timekeeper's signing key.
#[derive(Debug, Clone, clap::Args)]
pub struct TimekeeperPin {
    /// The fingerprint of the timekeeper's signing key, as the operator gives it (`tessera keys
    /// public --fingerprint FILE` on the timekeeper's key file). Without it the key first seen on
    /// `tessera.keys` is trusted and pinned in `.tessera/keys/timekeeper.pin`, with a warning.
    #[arg(long, env = "TESSERA_TIMEKEEPER_FINGERPRINT", value_name = "HEX")]
    pub timekeeper_fingerprint: Option<String>,
}

/// How a subscriber pins the delivery worker's signing key.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryPin {
    /// The fingerprint of the delivery worker's signing key, as the operator gives it (`tessera
    /// keys public --fingerprint FILE` on its key file). Only deliveries signed with it are
    /// opened. Without it the key first seen on `tessera.keys` is trusted and pinned in
    /// `.tessera/keys/delivery.pin`, with a warning.
    #[arg(long, env = "TESSERA_DELIVERY_FINGERPRINT", value_name = "HEX")]
    pub delivery_fingerprint: Option<String>,
}

/// The timekeeper's keys as published on `tessera.keys`, checked against the pin.
pub async fn timekeeper(
    config: &ClientConfig,
    prefix: &str,
    pin: &TimekeeperPin,
) -> anyhow::Result<PlatformKeys> {
    platform(
        config,
        prefix,
        Role::Timekeeper,
        pin.timekeeper_fingerprint.clone(),
    )
    .await
}

/// The delivery worker's keys as published on `tessera.keys`, checked against the pin.
pub async fn delivery(
    config: &ClientConfig,
    prefix: &str,
    pin: &DeliveryPin,
) -> anyhow::Result<PlatformKeys> {
    platform(
        config,
        prefix,
        Role::Delivery,
        pin.delivery_fingerprint.clone(),
    )
    .await
}

/// How a client pins the ledger's signing key.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerPin {
    /// The fingerprint of the ledger's signing key, as the operator gives it (`tessera keys
    /// public --fingerprint FILE` on its key file). Only credits signed with it count. Without it
    /// the key first seen on `tessera.keys` is trusted and pinned in `.tessera/keys/ledger.pin`,
    /// with a warning.
    #[arg(long, env = "TESSERA_LEDGER_FINGERPRINT", value_name = "HEX")]
    pub ledger_fingerprint: Option<String>,
}

/// `role`'s keys as published on `tessera.keys`, checked against the pin (the fingerprint
/// given, else first use).
pub async fn platform(
    config: &ClientConfig,
    prefix: &str,
    role: Role,
    fingerprint: Option<String>,
) -> anyhow::Result<PlatformKeys> {
    let pinning = Pinning::new(role, fingerprint);
    let fetched = keys::fetch(config, prefix, role, &pinning).await?;
    if let Some(warning) = fetched.first_use {
        eprintln!("warning: {warning}");
    }
    Ok(fetched.keys)
}

/// The key the platform half is sealed to: the one given on the command line, else the one the
/// timekeeper published on `tessera.keys`, checked against the pin.
pub async fn timekeeper_key(
    config: &ClientConfig,
    prefix: &str,
    given: Option<PublicKey>,
    pin: &TimekeeperPin,
) -> anyhow::Result<PublicKey> {
    match given {
        Some(key) => Ok(key),
        None => Ok(timekeeper(config, prefix, pin).await?.sealing),
    }
}
