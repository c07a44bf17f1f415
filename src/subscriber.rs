//! `tessera subscriber`: register stored needs, leave, answer an invitation, listen for
//! invitations and verdicts, open a delivered credential, accept or decline it. The work is in
//! `tessera-producers`; this reads the command line and prints what happened.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use tessera_contract::sealing::PrivateKey;
use tessera_contract::sealing::chunks::Manifest;
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::{CredentialDelivered, Event, Interest};
use tessera_producers::client::Writer;
use tessera_producers::describe;
use tessera_producers::inbox::{Inbox, Mail};
use tessera_producers::interest::{self, SYNTAX};
use tessera_producers::keys;
use tessera_producers::subscriber::{
    self, Choice, Decision, Heard, Listen, Policy, Registration, Responder,
};

use crate::kafka::KafkaArgs;
use crate::keys::{DeliveryPin, delivery};

/// What a subscriber does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Subscriber {
    /// Register (or re-register, replacing the earlier registration) a subscriber's contact,
    /// public keys and interests in the compacted `tessera.subscribers` table, signed with the
    /// key file's signing key. The first registration of an id pins its keys; a later one counts
    /// only if signed with the pinned key, so no one else can register under the id. The private
    /// key stays in the key file, created with mode 0600 if it does not exist, and is never
    /// printed. The contact and webhook are sealed to the delivery worker's key (from
    /// `tessera.keys`, pinned), since every provider may read the table: only the platform reads
    /// them.
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
        /// An `https://` (or `http://`) endpoint the delivery worker also posts delivered
        /// credentials to, with `Idempotency-Key: <credential id>` and the delivery's signature
        /// (`Tessera-Signature`, `Tessera-Timestamp`, `Tessera-Key-Fingerprint`). Hosts on
        /// loopback, private or link-local addresses are refused unless the delivery runs with
        /// `--webhook-allow-private`.
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
        /// The trust anchor's endorsement of this id and its keys (hex, from `tessera keys
        /// endorse`), for installations whose matcher runs with `--trust-anchor`.
        #[arg(long, value_name = "HEX", value_parser = crate::keys::parse_hex)]
        endorsement: Option<Vec<u8>>,
        /// Write the contact and webhook in the clear, readable by every provider, instead of
        /// sealed to the delivery worker: for an installation whose delivery worker has not
        /// published its key yet.
        #[arg(long)]
        contact_in_clear: bool,
        /// Whose key to seal the contact and webhook to.
        #[command(flatten)]
        pin: DeliveryPin,
    },
    /// Leave: writes a SubscriberRemoved signed with the subscriber's key (no further
    /// invitations; the id stays pinned to the key) and then a tombstone for the id, so log
    /// compaction drops the registration, contact and public key for good.
    Remove {
        /// The subscriber's id.
        #[arg(long)]
        id: String,
        /// The subscriber's private key file (default `.tessera/keys/<id>.key`).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Answer the invitation to an offer: writes a ResponseSubmitted to `tessera.responses`.
    /// Its broker receipt stamp is what the offer's time rule judges.
    /// The response is signed with the subscriber's key; one not signed with the key pinned for
    /// the subscriber is rejected as Forged.
    Respond {
        /// The offer's id.
        offer: String,
        /// The subscriber's id.
        #[arg(long)]
        id: String,
        /// How the subscriber proves its id.
        #[command(flatten)]
        proof: ProofArgs,
    },
    /// Show the invitations addressed to a subscriber, the verdicts on its responses and the
    /// close of each offer it was invited to (`offer X closed at T: requested.., withdrawn` when
    /// its provider withdrew it) as they arrive, answering invitations by a policy if asked. All
    /// of it comes from the subscriber's inbox, its one partition of `tessera.deliveries`: notices
    /// the pinned delivery worker signed and sealed to the subscriber's key, each shown where the
    /// event it tells of sits on the log. An offer is not answered twice: not one answered in
    /// this run, nor one whose verdict is in the inbox. Closes count for every invitation in the
    /// inbox, not only those seen in this run: the inbox is read to its end at start; each
    /// offer's close is shown once.
    ///
    /// An invitation whose window opens later is answered when it opens, by the broker's clock
    /// (`answering offer X at T (window opens W, margin M; ...)`), never before: the broker's
    /// lead over this host's clock is estimated from the receipt stamps of the records read
    /// (each was stamped before it arrived, so the freshest one bounds it), and the answer waits
    /// until that estimate is past the opening plus --margin. Until a record arrives fresh (the
    /// invitation itself usually does), the estimate may lag and the answer come later than it
    /// could. An invitation whose rule has ended by that clock is not answered.
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
        /// Stop after this long with nothing for this subscriber, e.g. `30s` (default: follow
        /// forever); answers waiting for their window keep it running until they are sent.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        until_idle: Option<Duration>,
        /// How long after a window opens, by the broker's estimated clock, a waiting answer is
        /// sent: room for a responses partition led by a broker whose clock is a little behind
        /// (a window shorter than twice the margin is answered in its middle).
        #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = humantime::parse_duration)]
        margin: Duration,
        /// The subscriber's private key file (default `.tessera/keys/<id>.key`): its notices are
        /// opened, and its responses signed, with it.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Whose notices to believe.
        #[command(flatten)]
        pin: DeliveryPin,
    },
    /// Open a credential delivered to the subscriber's inbox (`tessera.deliveries`): check that
    /// the pinned delivery worker signed the delivery and the offer's provider the package (a
    /// copy that fails either is skipped, with the reason), open both halves with the private
    /// key, decrypt and check the package, decompress it, write the target data to a file and
    /// print its first line. It also says whether the credential was accepted or declined
    /// already, and by when to decide if the offer set a decision deadline. It writes nothing to
    /// Kafka: accept or decline with `subscriber accept` or `subscriber decline`.
    Open {
        /// Which credential, and whose deliveries to believe.
        #[command(flatten)]
        which: Which,
        /// Where to write the target data (created with mode 0600, replaced if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Accept a credential delivered to the subscriber: writes CredentialAccepted to
    /// `tessera.outcomes`, signed with the subscriber's key, which earns the provider the offer's
    /// reward if it is received by the offer's decision deadline (its release's receipt stamp
    /// plus the offer's `--decide-within`, judged by the ledger on the broker's stamps). The
    /// delivery is checked as `subscriber open` checks it; opening first is not required. A
    /// credential gets one outcome: if the inbox tells of one already, it is printed and nothing
    /// is written (exit status 1). The inbox tells of an outcome once the delivery worker has
    /// read it, usually within a second; should two be written meanwhile, the ledger counts the
    /// first.
    Accept {
        /// Which credential, and whose deliveries to believe.
        #[command(flatten)]
        which: Which,
    },
    /// Decline a credential delivered to the subscriber, opened or not: writes CredentialDeclined
    /// to `tessera.outcomes`, signed with the subscriber's key; no reward is due. The delivery is
    /// checked as `subscriber open` checks it. A credential gets one outcome: if the inbox tells
    /// of one already, it is printed and nothing is written (exit status 1); the ledger counts
    /// only the first.
    Decline {
        /// Which credential, and whose deliveries to believe.
        #[command(flatten)]
        which: Which,
        /// Why, for the provider to read on `tessera.outcomes`.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// Which delivered credential `open`, `accept` and `decline` act on, and how they check it.
#[derive(Debug, Clone, clap::Args)]
pub struct Which {
    /// The subscriber's id.
    #[arg(long)]
    id: String,
    /// The credential's id (default: the only one delivered to the subscriber).
    #[arg(long, value_name = "ID", conflicts_with = "offer")]
    credential: Option<String>,
    /// The offer whose credential it is (a subscriber gets at most one per offer).
    #[arg(long, value_name = "ID")]
    offer: Option<String>,
    /// The subscriber's private key file (default `.tessera/keys/<id>.key`): it opens the
    /// credential, and outcomes are signed with the signing key derived from it.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Whose deliveries to believe.
    #[command(flatten)]
    pin: DeliveryPin,
}

/// What proves a response comes from the subscriber: its signature.
#[derive(Debug, Clone, clap::Args)]
pub struct ProofArgs {
    /// The subscriber's private key file (default `.tessera/keys/<id>.key`); responses are
    /// signed with the signing key derived from it.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

fn key_path(id: &str, key_file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match key_file {
        Some(path) => path,
        None => keys::default_path(id)?,
    })
}

/// The subscriber `id` as it answers: its private key.
fn responder(id: &str, proof: ProofArgs) -> anyhow::Result<Responder> {
    let key = keys::load(&key_path(id, proof.key_file)?)
        .with_context(|| format!("subscriber {id} signs its responses with its private key"))?;
    Ok(Responder::new(id, key))
}

/// Writes the target data to `path`, private to its owner.
fn write_out(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The first 4 KiB of a file: enough for its first line.
fn head(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_end(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(head)
}

/// The first line of the target data, for the person at the prompt: at most 200 characters, or
/// a note if it is not text.
fn first_line(data: &[u8]) -> String {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    match std::str::from_utf8(line) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\t' && c != '\r') =>
        {
            text.trim_end_matches('\r').chars().take(200).collect()
        }
        _ => format!("({} bytes of binary data)", data.len()),
    }
}

/// The delivered credential a [`Which`] picks, checked, as `open`, `accept` and `decline` print
/// it, with the rest of the inbox.
struct Found {
    delivered: CredentialDelivered,
    /// `credential C of offer O`.
    what: String,
    /// The subscriber's inbox as read: the credential's outcome and deadline are told there.
    mail: Vec<Mail>,
    /// The subscriber's private key.
    key: PrivateKey,
}

impl Found {
    /// Reads the subscriber's inbox for the credential and says where it was delivered and who
    /// signed its package.
    async fn read(config: &ClientConfig, prefix: &str, which: &Which) -> anyhow::Result<Found> {
        let choice = match (&which.credential, &which.offer) {
            (Some(credential), _) => Choice::Credential(credential.clone()),
            (None, Some(offer)) => Choice::Offer(offer.clone()),
            (None, None) => Choice::Only,
        };
        let delivery = delivery(config, prefix, &which.pin).await?.signing;
        let id = &which.id;
        let key = keys::load(&key_path(id, which.key_file.clone())?)
            .with_context(|| format!("subscriber {id} opens its inbox with its private key"))?;
        let inbox = Inbox {
            subscriber_id: id,
            key: Some(&key),
            delivery: &delivery,
        };
        let mail = inbox.read(config, prefix).await?;
        let (record, delivered) = subscriber::choose(&mail, id, &choice)?;
        let what = format!(
            "credential {} of offer {}",
            delivered.credential_id, delivered.offer_id
        );
        let at = describe::position(&record.topic, record.partition, record.offset, record.stamp);
        println!("{what} delivered [{at}]");
        let provider = VerifyingKey::from_bytes(&delivered.provider_signing_key)?;
        println!(
            "package signed by provider {} (key fingerprint {})",
            delivered.provider_id,
            provider.fingerprint()
        );
        Ok(Found {
            delivered,
            what,
            mail,
            key,
        })
    }

    /// `credential C of offer O was accepted [where]` if the inbox told of an outcome on
    /// `tessera.outcomes`.
    fn outcome(&self, prefix: &str) -> Option<String> {
        let (at, event) = subscriber::outcome(&self.mail, &self.delivered)?;
        let verb = match event {
            Event::CredentialDeclined(_) => "declined",
            _ => "accepted",
        };
        let topic = format!("{prefix}{}", at.topic);
        let at = describe::position(&topic, at.partition, at.offset, Some(at.stamp));
        Some(format!("{} was {verb} [{at}]", self.what))
    }

    /// Refuses a credential that has an outcome already, printing it: one outcome per credential.
    fn undecided(&self, prefix: &str) -> anyhow::Result<()> {
        match self.outcome(prefix) {
            Some(outcome) => {
                println!("{outcome}");
                anyhow::bail!(
                    "{} has its outcome already; a credential is accepted or declined once",
                    self.what
                )
            }
            None => Ok(()),
        }
    }

    fn deadline(&self) -> Option<subscriber::DecisionDeadline> {
        subscriber::decision_deadline(&self.mail, &self.delivered)
    }

    /// Writes the subscriber's decision, signed with its key.
    async fn decide(
        &self,
        config: &ClientConfig,
        prefix: &str,
        decision: Decision,
    ) -> anyhow::Result<tessera_producers::client::Written> {
        let writer = Writer::new(config)?;
        let signer = SigningKey::derive(&self.key);
        Ok(subscriber::decide(&writer, prefix, &self.delivered, decision, &signer).await?)
    }
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
            endorsement,
            contact_in_clear,
            pin,
        } => {
            let key_file = match key_file {
                Some(path) => path,
                None => keys::default_path(&id)?,
            };
            let lines: Vec<String> = interests.iter().map(interest::format).collect();
            let platform = match contact_in_clear {
                true => None,
                false => Some(delivery(&config, prefix, &pin).await.context(
                    "the contact and webhook are sealed to the delivery worker's key, which \
                     `tessera run delivery` publishes when it starts; start it first, or give \
                     --contact-in-clear",
                )?),
            };
            let registration = Registration {
                subscriber_id: id.clone(),
                contact,
                interests,
                webhook,
                key_file: key_file.clone(),
                endorsement,
                platform: platform.as_ref().map(|keys| keys.sealing.clone()),
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
            println!("  public key: {}", registered.public_key);
            match platform {
                Some(keys) => println!(
                    "  contact and webhook: sealed to the delivery worker (signing key fingerprint \
                     {})",
                    keys.signing.fingerprint()
                ),
                None => println!("  contact and webhook: in the clear"),
            }
            for line in lines {
                println!("  interest: {line}");
            }
        }
        Subscriber::Remove { id, key_file } => {
            let key = keys::load(&key_path(&id, key_file)?).with_context(|| {
                format!("subscriber {id} signs its removal with its private key")
            })?;
            let writer = Writer::new(&config)?;
            let (removed, tombstone) = subscriber::remove(&writer, prefix, &id, &key)
                .await
                .with_context(|| format!("cannot remove subscriber {id}"))?;
            println!("subscriber {id} removed [{removed}]");
            println!("  tombstone [{tombstone}]");
        }
        Subscriber::Respond { offer, id, proof } => {
            let responder = responder(&id, proof)?;
            let writer = Writer::new(&config)?;
            let written = subscriber::respond(&writer, prefix, &offer, &responder)
                .await
                .with_context(|| format!("cannot respond to offer {offer}"))?;
            println!("{id} responded to offer {offer} [{written}]");
        }
        Subscriber::Listen {
            id,
            respond,
            from_beginning,
            until_idle,
            margin,
            key_file,
            pin,
        } => {
            let key = keys::load(&key_path(&id, key_file)?).with_context(|| {
                format!("subscriber {id} opens its notices with its private key")
            })?;
            let listen = Listen {
                responder: Responder::new(id, key),
                delivery: delivery(&config, prefix, &pin).await?.signing,
                policy: respond,
                from_beginning,
                until_idle,
                margin,
            };
            let listened = subscriber::listen(&config, prefix, listen, |heard| match heard {
                Heard::Refused(..) => eprintln!("warning: {heard}"),
                _ => println!("{heard}"),
            })
            .await?;
            println!("{listened}");
        }
        Subscriber::Open { which, out } => {
            let found = Found::read(&config, prefix, &which).await?;
            let key = &found.key;
            let what = &found.what;
            match Manifest::of_package(&found.delivered.package) {
                None => {
                    let data = subscriber::open(&found.delivered, key)
                        .with_context(|| format!("cannot open {what}"))?;
                    write_out(&out, &data)?;
                    println!("opened: {} bytes written to {}", data.len(), out.display());
                    println!("first line: {}", first_line(&data));
                }
                Some(manifest) => {
                    let manifest = manifest.with_context(|| format!("cannot open {what}"))?;
                    let chunks = manifest.chunks;
                    let bar = crate::progress::bytes(manifest.bytes, "reading and opening chunks");
                    let delivered = &found.delivered;
                    let progress = |written| bar.set_position(written);
                    let written = subscriber::open_chunks(
                        &config, prefix, delivered, manifest, key, &out, progress,
                    )
                    .await
                    .with_context(|| format!("cannot open {what}"))?;
                    bar.finish_and_clear();
                    println!(
                        "opened: {written} bytes from {chunks} chunks written to {}",
                        out.display()
                    );
                    println!("first line: {}", first_line(&head(&out)?));
                }
            }
            match found.outcome(prefix) {
                Some(outcome) => println!("{outcome}"),
                None => {
                    println!(
                        "no outcome yet: accept or decline it with `tessera subscriber accept` \
                         or `tessera subscriber decline`"
                    );
                    if let Some(deadline) = found.deadline() {
                        println!("{deadline}");
                    }
                }
            }
        }
        Subscriber::Accept { which } => {
            let found = Found::read(&config, prefix, &which).await?;
            found.undecided(prefix)?;
            if let Some(deadline) = found.deadline() {
                println!("{deadline}");
            }
            let written = found.decide(&config, prefix, Decision::Accept).await?;
            println!("accepted [{written}]");
        }
        Subscriber::Decline { which, reason } => {
            let found = Found::read(&config, prefix, &which).await?;
            found.undecided(prefix)?;
            let decision = Decision::Decline(reason);
            let written = found.decide(&config, prefix, decision).await?;
            println!("declined [{written}]");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_shown_only_as_text() {
        assert_eq!(
            first_line(b"Quarterly report X\r\nbody"),
            "Quarterly report X"
        );
        assert_eq!(first_line(b"no newline"), "no newline");
        assert_eq!(first_line(b""), "");
        assert_eq!(first_line(&[0xff, 0xfe, b'\n']), "(3 bytes of binary data)");
        assert_eq!(first_line(b"\x1b[31mred\n"), "(9 bytes of binary data)");
        assert_eq!(first_line("é".repeat(300).as_bytes()).chars().count(), 200);
    }
}
