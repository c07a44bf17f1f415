//! `tessera audit`: replays processors from the log and compares what they must have written with
//! what their output topics hold ([`tessera_audit`]). Prints every mismatch with its
//! topic, partition and offset, can write the reports as JSON, and succeeds only when everything
//! matches.

use std::path::PathBuf;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::Message;
use serde::Serialize;
use tessera_audit::{Audit, AuditError, Outputs, Report};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics;
use tessera_cores::Core;
use tessera_cores::delivery::{Delivery, LoggedNotices};
use tessera_cores::ledger::{Ledger, Rewards};
use tessera_cores::matcher::Matcher;
use tessera_cores::registry;
use tessera_cores::timekeeper::{LoggedHalves, Timekeeper};
use tessera_producers::client::signature_of;

use crate::kafka::KafkaArgs;
use crate::run::CounterArgs;

/// A processor `tessera audit` can replay: a registered one, or the runtime's test workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    /// A processor of the registry, by name (`tessera audit matcher`).
    Processor(&'static registry::Processor),
    /// The runtime's test workload, as [`AuditArgs::counter`] describes it.
    Counter,
}

impl Audited {
    /// Every registered processor: what `tessera audit` replays when given none.
    pub fn all() -> Vec<Audited> {
        registry::ALL
            .iter()
            .map(|p| Audited::Processor(p))
            .collect()
    }

    /// The registered processor named `name`.
    pub fn named(name: &str) -> Option<Audited> {
        registry::find(name).map(Audited::Processor)
    }
}

fn parse_audited(text: &str) -> Result<Audited, String> {
    Audited::named(text).ok_or_else(|| {
        format!(
            "unknown processor `{text}`; one of {}",
            registry::names().join(", ")
        )
    })
}

/// The positional argument's help: the registered processors, and what a full audit of each
/// needs beyond public keys.
fn processors_help() -> String {
    let needs: Vec<String> = registry::ALL
        .iter()
        .filter_map(|p| {
            p.audit_secret
                .map(|secret| format!("{} needs {secret}", p.name))
        })
        .collect();
    format!(
        "The processors to audit: {} (all of them by default). Every audit needs only public keys, \
         except that a full audit of the {}",
        registry::names().join(", "),
        needs.join("; ")
    )
}

/// Options of `tessera audit`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Every audit replays from the beginning of the log. A task's state at an \
offset or a time in the middle is the fold of everything before it, which only a replay from the \
beginning rebuilds, so there is no --from-offset or --from-time. History deleted by retention, or \
compacted away on tessera.subscribers, cannot be replayed: the report notes the first and findings \
may follow from either.\n\nExit status: 0 when every derived record is on the log as derived and \
nothing else is, 1 when the audit finds a mismatch or cannot run."
)]
pub struct AuditArgs {
    /// The processors to audit; the help lists them.
    #[arg(value_name = "PROCESSOR", value_parser = parse_audited, help = processors_help())]
    pub processors: Vec<Audited>,
    /// Also write the reports as JSON to FILE (`{"clean": bool, "processors": [...]}`).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Read an output from another topic, NAME as the processor calls it (e.g.
    /// `tessera.decisions`), TOPIC in full: to audit a copy of a topic. Repeatable.
    #[arg(long = "output-topic", value_name = "NAME=TOPIC", value_parser = parse_override)]
    pub output_topics: Vec<(String, String)>,
    /// The timekeeper's private key file (as given to `tessera run timekeeper --key-file`), for
    /// the full check of its releases. Without it the timekeeper is audited from public data:
    /// every verdict is re-derived, and the sealed halves of releases and BadCredential
    /// rejections, which only the key decides, are taken from the log if the timekeeper signed
    /// them and checked for shape (give --timekeeper-verifying-key).
    #[arg(long, value_name = "FILE")]
    pub timekeeper_key: Option<PathBuf>,
    /// The matcher's verifying key (as given to `tessera run timekeeper --matcher-key`): the
    /// timekeeper believes only invitations signed with it, and so does its audit.
    #[arg(long, env = "TESSERA_MATCHER_KEY", value_name = "HEX")]
    pub matcher_key: Option<VerifyingKey>,
    /// The timekeeper's verifying key (as given to `tessera run delivery|ledger --timekeeper-key`):
    /// the delivery and the ledger believe only verdicts signed with it. Derived from `--timekeeper-key FILE` when
    /// that is given.
    #[arg(long, env = "TESSERA_TIMEKEEPER_VERIFYING_KEY", value_name = "HEX")]
    pub timekeeper_verifying_key: Option<VerifyingKey>,
    /// The delivery worker's private key file (as given to `tessera run delivery --key-file`),
    /// for the full check of its notices. Without it every notice is still derived (who is told
    /// what, under which event id), and its sealed bytes are taken from the log where the
    /// delivery signed them (give --delivery-verifying-key).
    #[arg(long, value_name = "FILE")]
    pub delivery_key: Option<PathBuf>,
    /// The delivery worker's verifying key (`tessera keys public --signing` on its key file):
    /// the notices an audit without its key takes from the log must be signed with it. Derived
    /// from `--delivery-key FILE` when that is given.
    #[arg(long, env = "TESSERA_DELIVERY_VERIFYING_KEY", value_name = "HEX")]
    pub delivery_verifying_key: Option<VerifyingKey>,
    /// The ledger's verifying key (`tessera keys public --signing` on its key file): its
    /// balances core believes only rewards signed with it.
    #[arg(long, env = "TESSERA_LEDGER_KEY", value_name = "HEX")]
    pub ledger_key: Option<VerifyingKey>,
    /// The trust anchor the matcher runs with (`tessera run matcher --trust-anchor`), if any.
    #[arg(long, env = "TESSERA_TRUST_ANCHOR", value_name = "HEX")]
    pub trust_anchor: Option<VerifyingKey>,
    /// The counter to audit as `counter`: set by `tessera-bench audit-counter`, which runs it.
    #[arg(skip)]
    pub counter: Option<CounterArgs>,
}

impl AuditArgs {
    /// Audits `processors` with every other option at its default.
    pub fn of(processors: Vec<Audited>) -> Self {
        AuditArgs {
            processors,
            json_out: None,
            output_topics: Vec::new(),
            timekeeper_key: None,
            matcher_key: None,
            timekeeper_verifying_key: None,
            delivery_key: None,
            delivery_verifying_key: None,
            ledger_key: None,
            trust_anchor: None,
            counter: None,
        }
    }
}

fn parse_override(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, topic)) if !name.is_empty() && !topic.is_empty() => {
            Ok((name.to_string(), topic.to_string()))
        }
        _ => Err(format!("expected NAME=TOPIC, got `{text}`")),
    }
}

/// What `--json` writes.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    clean: bool,
    processors: &'a [Report],
}

/// The key the timekeeper's verdicts are signed with, which the delivery and the ledger believe:
/// given, or derived from the timekeeper's key file.
fn timekeeper_verifying_key(args: &AuditArgs, auditing: &str) -> anyhow::Result<VerifyingKey> {
    match (args.timekeeper_verifying_key, &args.timekeeper_key) {
        (Some(key), _) => Ok(key),
        (None, Some(path)) => {
            Ok(SigningKey::derive(&tessera_producers::keys::load(path)?).verifying_key())
        }
        (None, None) => bail!(
            "auditing the {auditing} needs the timekeeper's verifying key: give \
             --timekeeper-verifying-key HEX (or --timekeeper-key FILE)"
        ),
    }
}

/// Audits the processors `args` names, one after the other (blocking: call it off the async
/// executor). Each report lists its findings; an error means an audit could not run.
pub fn audit(kafka: &KafkaArgs, args: &AuditArgs) -> anyhow::Result<Vec<Report>> {
    let client = kafka.client_config()?;
    let mut processors = args.processors.clone();
    if processors.is_empty() {
        processors = Audited::all();
    }
    let progress = ProgressBar::new(0);
    progress.set_style(
        ProgressStyle::with_template("{msg:32} {wide_bar} {pos}/{len} records {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut used = vec![false; args.output_topics.len()];
    let mut reports = Vec::new();
    let auditor = Auditor {
        kafka,
        client: &client,
        overrides: &args.output_topics,
        progress: &progress,
    };
    for processor in processors {
        let name = match processor {
            Audited::Processor(processor) => processor.name,
            Audited::Counter => "counter",
        };
        match name {
            "matcher" => reports.push(auditor.audit(Matcher::new(args.trust_anchor), &mut used)?),
            "timekeeper" => {
                let matcher = matcher_key(args, "timekeeper")?;
                let report = match &args.timekeeper_key {
                    Some(path) => {
                        let key = tessera_producers::keys::load(path)?;
                        auditor.audit(Timekeeper::new(key, matcher), &mut used)?
                    }
                    None => {
                        let timekeeper = timekeeper_verifying_key(args, "timekeeper")?;
                        let core = Timekeeper::without_key(LoggedHalves::new(timekeeper), matcher);
                        auditor.audit_prepared(core, &mut used, without_key)?
                    }
                };
                reports.push(report);
            }
            "delivery" => {
                let timekeeper = timekeeper_verifying_key(args, "delivery")?;
                let matcher = matcher_key(args, "delivery")?;
                let report = match (&args.delivery_key, args.delivery_verifying_key) {
                    (Some(path), _) => {
                        let key = tessera_producers::keys::load(path)?;
                        auditor.audit(Delivery::new(key, timekeeper, matcher), &mut used)?
                    }
                    (None, Some(delivery)) => {
                        let logged = LoggedNotices::new(delivery);
                        let core = Delivery::without_key(logged, timekeeper, matcher);
                        auditor.audit_prepared(core, &mut used, delivery_without_key)?
                    }
                    (None, None) => bail!(
                        "auditing the delivery needs its verifying key, to take the notices it \
                         sealed from the log: give --delivery-verifying-key HEX (or \
                         --delivery-key FILE)"
                    ),
                };
                reports.push(report);
            }
            "ledger" => {
                let timekeeper = timekeeper_verifying_key(args, "ledger")?;
                let Some(ledger) = args.ledger_key else {
                    bail!(
                        "auditing the ledger needs its verifying key: give --ledger-key HEX \
                         (`tessera keys public --signing` on its key file)"
                    );
                };
                reports.push(auditor.audit(Rewards::new(timekeeper), &mut used)?);
                reports.push(auditor.audit(Ledger::new(ledger), &mut used)?);
            }
            "counter" => {
                let Some(counter) = &args.counter else {
                    bail!(
                        "auditing the counter needs its arguments: run tessera-bench audit-counter"
                    );
                };
                reports.push(auditor.audit(counter.core(), &mut used)?);
            }
            other => bail!("tessera audit cannot replay the processor {other} yet"),
        }
    }
    progress.finish_and_clear();
    if let Some(i) = used.iter().position(|used| !used) {
        let name = &args.output_topics[i].0;
        bail!("--output-topic {name}: no audited processor writes {name}");
    }
    Ok(reports)
}

/// The matcher's verifying key, which the timekeeper and the delivery believe invitations signed
/// with.
fn matcher_key(args: &AuditArgs, auditing: &str) -> anyhow::Result<VerifyingKey> {
    args.matcher_key.with_context(|| {
        format!(
            "auditing the {auditing} needs the matcher's verifying key: give --matcher-key HEX, \
             as the {auditing} was given it"
        )
    })
}

/// Gathers the notices the delivery's audit without its key takes from the inbox; notes for the
/// report say what was taken.
fn delivery_without_key(
    core: &mut Delivery,
    outputs: &Outputs<'_>,
) -> Result<Vec<String>, AuditError> {
    let Some(logged) = core.logged_mut() else {
        return Ok(Vec::new());
    };
    outputs.read(topics::DELIVERIES.name, &mut |message| {
        logged.learn(message.key(), message.payload(), signature_of(message));
    })?;
    let mut notes = vec![format!(
        "audited without the delivery's key: every notice derived; the sealed boxes of {} \
         notice(s) taken from the log where the delivery signed them, not opened \
         (--delivery-key adds that check)",
        logged.taken()
    )];
    if logged.unsigned() > 0 {
        notes.push(format!(
            "{} notice(s) on the inbox not signed by the delivery's key: not taken",
            logged.unsigned()
        ));
    }
    Ok(notes)
}

/// Gathers what the timekeeper's audit without its key takes from the decisions; notes for the
/// report say what was taken.
fn without_key(core: &mut Timekeeper, outputs: &Outputs<'_>) -> Result<Vec<String>, AuditError> {
    let Some(logged) = core.logged_mut() else {
        return Ok(Vec::new());
    };
    outputs.read(topics::DECISIONS.name, &mut |message| {
        logged.learn(message.key(), message.payload(), signature_of(message));
    })?;
    let mut notes = vec![
        "audited without the timekeeper's key: every verdict re-derived; the sealed halves of \
         releases taken from the log where the timekeeper signed them, checked for shape, not \
         opened (--timekeeper-key adds that check)"
            .to_string(),
    ];
    if logged.bad_credentials() > 0 {
        notes.push(format!(
            "{} BadCredential rejection(s) taken on the timekeeper's signature: only its key \
             shows the halves did not open (--timekeeper-key)",
            logged.bad_credentials()
        ));
    }
    if logged.unsigned() > 0 {
        notes.push(format!(
            "{} release(s) or offer rejection(s) on the decisions not signed by the timekeeper's \
             key: not taken",
            logged.unsigned()
        ));
    }
    Ok(notes)
}

/// What every core's audit shares.
struct Auditor<'a> {
    kafka: &'a KafkaArgs,
    client: &'a rdkafka::ClientConfig,
    overrides: &'a [(String, String)],
    progress: &'a ProgressBar,
}

impl Auditor<'_> {
    /// Audits `core`, marking in `used` the output overrides it took.
    fn audit<C: Core + Send>(&self, core: C, used: &mut [bool]) -> anyhow::Result<Report> {
        self.audit_prepared(core, used, |_, _| Ok(Vec::new()))
    }

    /// Audits `core` as [`Auditor::audit`] does, after `prepare` read what it needs from the
    /// outputs ([`Audit::run_prepared`]).
    fn audit_prepared<C: Core + Send>(
        &self,
        core: C,
        used: &mut [bool],
        prepare: impl FnOnce(&mut C, &Outputs<'_>) -> Result<Vec<String>, AuditError>,
    ) -> anyhow::Result<Report> {
        let mut audit = Audit::new(core, &self.kafka.topic_prefix);
        for ((name, topic), used) in self.overrides.iter().zip(used.iter_mut()) {
            *used |= audit.read_output_from(name, topic);
        }
        let processor = audit.processor().to_string();
        audit
            .run_prepared(self.client, self.progress, prepare)
            .with_context(|| format!("cannot audit the {processor}"))
    }
}

/// Runs `tessera audit`: prints each processor's summary and findings; returns whether all
/// matched.
pub async fn run(kafka: &KafkaArgs, args: AuditArgs) -> anyhow::Result<bool> {
    let reports = {
        let kafka = kafka.clone();
        let args = args.clone();
        tokio::task::spawn_blocking(move || audit(&kafka, &args))
            .await
            .context("the audit panicked")??
    };
    let mut findings = 0;
    for report in &reports {
        print(report);
        findings += report.findings.len();
    }
    let clean = findings == 0;
    if let Some(path) = &args.json_out {
        let json = serde_json::to_string_pretty(&JsonReport {
            clean,
            processors: &reports,
        })?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    if clean {
        println!("audit: every derived record is on the log as derived, and nothing else is");
    } else {
        println!("audit: {findings} mismatch(es)");
    }
    Ok(clean)
}

fn print(report: &Report) {
    println!(
        "{}: {} inputs read, {} replayed ({} undecided), {} records derived, {} matched, {} \
         pending, {} outputs read, {} finding(s)",
        report.processor,
        report.inputs_read,
        report.inputs_replayed,
        report.undecided,
        report.derived,
        report.matched,
        report.pending,
        report.outputs_read,
        report.findings.len()
    );
    for note in &report.notes {
        println!("  note: {note}");
    }
    for finding in &report.findings {
        println!("  {finding}");
    }
}
