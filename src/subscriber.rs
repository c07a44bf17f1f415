//! `tessera subscriber`: register stored needs, leave, answer an invitation, listen for
//! invitations and verdicts. The work is in `tessera-producers`; this reads the command line and
//! prints what happened.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tessera_producers::client::Writer;
use tessera_producers::interest::{self, SYNTAX};
use tessera_producers::keys;
use tessera_producers::subscriber::{self, Heard, Listen, Policy, Registration};
use tessera_schemas::Interest;

use crate::kafka::KafkaArgs;

/// What a subscriber does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Subscriber {
    /// Register (or re-register, replacing the earlier registration) a subscriber's contact,
    /// HPKE public key and interests in the compacted `tessera.subscribers` table. The private
    /// key stays in the key file, created with mode 0600 if it does not exist, and is never
    /// printed.
    #[command(after_help = SYNTAX)]
    Register {
        /// The subscriber's id.
        #[arg(long)]
        id: String,
        /// How providers reach the subscriber once a credential is released (e.g. an e-mail).
        #[arg(long)]
        contact: String,
        /// A stored need in the interest syntax below; an offer matching any one interest
        /// invites the subscriber. Repeatable.
        #[arg(long = "interest", value_name = "INTEREST", required = true, value_parser = interest::parse)]
        interests: Vec<Interest>,
        /// The subscriber's private key file (default `.tessera/keys/<id>.key`); a new X25519
        /// key pair is created there if it does not exist.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// An HTTPS endpoint the delivery worker also posts released credentials to.
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
    },
    /// Leave: writes a SubscriberRemoved (no further invitations) and then a tombstone for the
    /// id, so log compaction drops the registration, contact and public key for good.
    Remove {
        /// The subscriber's id.
        #[arg(long)]
        id: String,
    },
    /// Answer the invitation to an offer: writes a ResponseSubmitted to `tessera.responses`.
    /// Its broker receipt stamp is what the offer's time rule judges.
    Respond {
        /// The offer's id.
        offer: String,
        /// The subscriber's id.
        #[arg(long)]
        id: String,
    },
    /// Show the invitations addressed to a subscriber and the verdicts on its responses as they
    /// arrive, answering invitations by a policy if asked. An invitation is never answered
    /// twice, not even one answered before this run.
    #[command(after_help = SYNTAX)]
    Listen {
        /// The subscriber's id.
        #[arg(long)]
        id: String,
        /// When to answer an invitation by itself: `never` (answer with `subscriber respond`),
        /// `always`, or a condition in the interest syntax below that the offer must meet,
        /// e.g. 'price<=10000'.
        #[arg(long, value_name = "POLICY", default_value = "never")]
        respond: Policy,
        /// Read invitations and verdicts from the beginning of the topics, not only new ones.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after SECS seconds with nothing for this subscriber (default: follow forever).
        #[arg(long, value_name = "SECS")]
        until_idle: Option<u64>,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a subscriber command.
pub async fn run(kafka: &KafkaArgs, command: Subscriber) -> anyhow::Result<()> {
    let config = kafka.client_config()?;
    let prefix = &kafka.topic_prefix;
    match command {
        Subscriber::Register {
            id,
            contact,
            interests,
            key_file,
            webhook,
        } => {
            let key_file = match key_file {
                Some(path) => path,
                None => keys::default_path(&id)?,
            };
            let lines: Vec<String> = interests.iter().map(interest::format).collect();
            let registration = Registration {
                subscriber_id: id.clone(),
                contact,
                interests,
                webhook,
                key_file: key_file.clone(),
            };
            let writer = Writer::new(&config)?;
            let registered = subscriber::register(&writer, prefix, registration)
                .await
                .with_context(|| format!("cannot register subscriber {id}"))?;
            println!("subscriber {id} registered [{}]", registered.written);
            let key_state = if registered.key_created {
                "created"
            } else {
                "existing"
            };
            println!(
                "  private key: {} ({key_state}, never sent)",
                key_file.display()
            );
            println!("  public key: {}", hex(&registered.public_key));
            for line in lines {
                println!("  interest: {line}");
            }
        }
        Subscriber::Remove { id } => {
            let writer = Writer::new(&config)?;
            let (removed, tombstone) = subscriber::remove(&writer, prefix, &id)
                .await
                .with_context(|| format!("cannot remove subscriber {id}"))?;
            println!("subscriber {id} removed [{removed}]");
            println!("  tombstone [{tombstone}]");
        }
        Subscriber::Respond { offer, id } => {
            let writer = Writer::new(&config)?;
            let written = subscriber::respond(&writer, prefix, &offer, &id)
                .await
                .with_context(|| format!("cannot respond to offer {offer}"))?;
            println!("{id} responded to offer {offer} [{written}]");
        }
        Subscriber::Listen {
            id,
            respond,
            from_beginning,
            until_idle,
        } => {
            let listen = Listen {
                subscriber_id: id,
                policy: respond,
                from_beginning,
                until_idle: until_idle.map(Duration::from_secs),
            };
            subscriber::listen(&config, prefix, listen, |heard| match heard {
                Heard::Unreadable(..) => eprintln!("warning: {heard}"),
                _ => println!("{heard}"),
            })
            .await?;
        }
    }
    Ok(())
}
