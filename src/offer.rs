//! `tessera offer`: what happened to one offer, read from the log by anyone, without asking
//! a processor.

use anyhow::bail;
use tessera_producers::status;

use crate::kafka::KafkaArgs;

/// Questions about an offer.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Offer {
    /// Print the offer, its rule, and every invitation, response and verdict so far, ordered by
    /// broker receipt stamp. Reads the offer's partition of `tessera.offers`, `tessera.requests`,
    /// `tessera.responses` and `tessera.decisions` up to their current end (committed records
    /// only).
    Status {
        /// The offer's id.
        offer: String,
        /// Print JSON (`{"offer_id", "records": [{topic, partition, offset, stamp, received,
        /// kind, event}]}`) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an offer command.
pub async fn run(kafka: &KafkaArgs, command: Offer) -> anyhow::Result<()> {
    match command {
        Offer::Status { offer, json } => {
            let config = kafka.client_config()?;
            let timeline = status::read(&config, &kafka.topic_prefix, &offer).await?;
            if timeline.records.is_empty() {
                bail!("nothing on the log for offer {offer}");
            }
            if json {
                println!("{}", timeline.to_json());
            } else {
                print!("{timeline}");
            }
        }
    }
    Ok(())
}
