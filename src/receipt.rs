//! `tessera receipt OFFER SUBSCRIBER`: the verdict on a subscriber's response, with the evidence
//! to check it: the response's partition, offset and receipt stamp, the offer's place, the rule
//! applied, and the verdict's link, checked against the log ([`tessera_producers::receipt`]).

use serde_json::{Value, json};
use tessera_contract::rules::format_stamp;
use tessera_contract::{Event, LogPosition, OfferTerms, links};
use tessera_producers::receipt::{Receipt, receipts};

use crate::kafka::KafkaArgs;
use crate::keys::{TimekeeperPin, timekeeper};

/// Options of `tessera receipt`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReceiptArgs {
    /// The offer's id.
    pub offer: String,
    /// The responding subscriber's id.
    pub subscriber: String,
    /// Print JSON (`{"offer_id", "subscriber_id", "receipts": [...]}`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Whose signature a verdict must carry.
    #[command(flatten)]
    pub pin: TimekeeperPin,
}

/// Prints the receipts; returns whether there is a verdict and every check of it holds.
pub async fn run(kafka: &KafkaArgs, args: ReceiptArgs) -> anyhow::Result<bool> {
    let config = kafka.client_config()?;
    let timekeeper = timekeeper(&config, &kafka.topic_prefix, &args.pin)
        .await?
        .signing;
    let found = receipts(
        &config,
        &kafka.topic_prefix,
        &timekeeper,
        &args.offer,
        &args.subscriber,
    )
    .await?;
    if args.json {
        let receipts: Vec<Value> = found.iter().map(to_json).collect();
        let report = json!({
            "offer_id": args.offer,
            "subscriber_id": args.subscriber,
            "receipts": receipts,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if found.is_empty() {
        println!(
            "no verdict on a response of {} to offer {} is on the log yet",
            args.subscriber, args.offer
        );
    } else {
        for (i, receipt) in found.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print!("{}", text(receipt));
        }
    }
    Ok(!found.is_empty() && found.iter().all(|r| r.checks.iter().all(|c| c.holds)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn place(position: &LogPosition) -> String {
    format!(
        "{}/{}@{}, received {}",
        position.topic,
        position.partition,
        position.offset,
        format_stamp(position.stamp)
    )
}

/// The verdict's parts a receipt shows, whichever verdict it is.
struct Parts<'a> {
    outcome: String,
    response: &'a LogPosition,
    offer: Option<&'a OfferTerms>,
}

fn parts(verdict: &Event) -> Option<Parts<'_>> {
    match verdict {
        Event::CredentialReleased(e) => Some(Parts {
            outcome: format!(
                "released: credential {} (request {})",
                e.credential_id, e.request_id
            ),
            response: &e.response,
            offer: Some(&e.offer),
        }),
        Event::ResponseRejected(e) => Some(Parts {
            outcome: format!(
                "rejected, {:?}: {} (request {})",
                e.reason, e.detail, e.request_id
            ),
            response: &e.response,
            offer: e.offer.as_ref(),
        }),
        _ => None,
    }
}

fn text(receipt: &Receipt) -> String {
    let mut out = format!(
        "verdict   {}/{}@{}\n",
        receipt.topic, receipt.partition, receipt.offset
    );
    if let Some(parts) = parts(&receipt.verdict) {
        out += &format!("outcome   {}\n", parts.outcome);
        out += &format!("response  {}\n", place(parts.response));
        match parts.offer {
            Some(offer) => {
                out += &format!("offer     {}\n", place(&offer.position));
                out += &format!("rule      {}\n", offer.time_rule.describe());
            }
            None => out += "offer     none on the log when the response was judged\n",
        }
    }
    if let Some(link) = links::link_of(&receipt.verdict) {
        out += &format!("source    {}\n", place(&link.source));
        out += &format!("input     {}\n", hex(&link.input));
        out += &format!(
            "previous  {}\n",
            if link.previous.is_empty() {
                "(none: first of its chain)".into()
            } else {
                hex(&link.previous)
            }
        );
        out += &format!("digest    {}\n", hex(&link.digest));
    }
    for check in &receipt.checks {
        let mark = if check.holds { "holds" } else { "FAILS" };
        out += &format!("check     {mark}: {}\n", check.what);
    }
    out
}

fn position_json(position: &LogPosition) -> Value {
    json!({
        "topic": position.topic,
        "partition": position.partition,
        "offset": position.offset,
        "stamp": position.stamp,
        "received": format_stamp(position.stamp),
    })
}

fn to_json(receipt: &Receipt) -> Value {
    let parts = parts(&receipt.verdict);
    let link = links::link_of(&receipt.verdict);
    json!({
        "verdict": {
            "topic": receipt.topic,
            "partition": receipt.partition,
            "offset": receipt.offset,
            "kind": receipt.verdict.kind().name(),
        },
        "outcome": parts.as_ref().map(|p| p.outcome.clone()),
        "response": parts.as_ref().map(|p| position_json(p.response)),
        "offer": parts.as_ref().and_then(|p| p.offer).map(|o| position_json(&o.position)),
        "rule": parts.as_ref().and_then(|p| p.offer).map(|o| o.time_rule.describe()),
        "link": link.map(|l| json!({
            "source": position_json(&l.source),
            "input": hex(&l.input),
            "previous": hex(&l.previous),
            "digest": hex(&l.digest),
        })),
        "checks": receipt.checks.iter().map(|c| json!({"what": c.what, "holds": c.holds})).collect::<Vec<_>>(),
    })
}
