//! `tessera ledger`: a provider's balance, read from the log by anyone, without asking the
//! ledger processor. Every credit carries the balance after it, so the provider's last credit in
//! each currency is its balance there.

use std::collections::BTreeMap;

use serde_json::json;
use tessera_producers::client::{Record, partition_count, partition_for, read_to_end, reader};
use tessera_schemas::Event;
use tessera_schemas::topics::LEDGER;

use crate::kafka::KafkaArgs;

/// Questions about the ledger.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Ledger {
    /// Print a provider's balance in each currency it was credited in, and how many credits made
    /// it. Reads the provider's partition of `tessera.ledger` up to its current end (committed
    /// records only).
    Balance {
        /// The provider's id.
        provider: String,
        /// Print JSON (`{"provider_id", "credits", "balances": {currency: amount}}`) instead of
        /// text.
        #[arg(long)]
        json: bool,
    },
}

/// A provider's balances as the log has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    /// How many RewardCredited the provider has.
    pub credits: usize,
    /// Balance in minor units by currency.
    pub by_currency: BTreeMap<String, i64>,
}

impl Balances {
    /// The balances of `provider_id` after `records` of `tessera.ledger`, read in offset order.
    pub fn of(provider_id: &str, records: &[Record]) -> Balances {
        let mut balances = Balances::default();
        for record in records {
            if let Some(Ok(Event::RewardCredited(credit))) = &record.event
                && credit.provider_id == provider_id
            {
                balances.credits += 1;
                balances
                    .by_currency
                    .insert(credit.currency.clone(), credit.balance);
            }
        }
        balances
    }
}

/// Runs a ledger command.
pub async fn run(kafka: &KafkaArgs, command: Ledger) -> anyhow::Result<()> {
    match command {
        Ledger::Balance { provider, json } => {
            let config = kafka.client_config()?;
            let topic = LEDGER.full_name(&kafka.topic_prefix);
            let partition = partition_for(
                &provider,
                partition_count(&reader(&config, false)?, &topic)?,
            );
            let records = read_to_end(&config, &topic, Some(&[partition])).await?;
            let balances = Balances::of(&provider, &records);
            if json {
                let document = json!({
                    "provider_id": provider,
                    "credits": balances.credits,
                    "balances": balances.by_currency,
                });
                println!("{document}");
            } else if balances.credits == 0 {
                println!("{provider}: no rewards credited yet");
            } else {
                for (currency, amount) in &balances.by_currency {
                    println!("{provider}: {amount} {currency}");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tessera_schemas::RewardCredited;

    use super::*;

    fn credit(offset: i64, provider_id: &str, currency: &str, balance: i64) -> Record {
        Record {
            topic: "tessera.ledger".into(),
            partition: 0,
            offset,
            stamp: Some(1),
            key: Some(provider_id.into()),
            event: Some(Ok(RewardCredited {
                event_id: format!("e{offset}"),
                provider_id: provider_id.into(),
                offer_id: "o".into(),
                credential_id: format!("c{offset}"),
                amount: 1,
                currency: currency.into(),
                balance,
                link: Default::default(),
            }
            .into())),
            signed: tessera_schemas::signing::Signed::of(None, None, None),
        }
    }

    #[test]
    fn the_last_credit_in_each_currency_is_the_balance() {
        let records = [
            credit(0, "A", "EUR", 250),
            credit(1, "B", "EUR", 9),
            credit(2, "A", "points", 3),
            credit(3, "A", "EUR", 500),
        ];
        let balances = Balances::of("A", &records);
        assert_eq!(balances.credits, 3);
        assert_eq!(
            balances.by_currency,
            BTreeMap::from([("EUR".into(), 500), ("points".into(), 3)])
        );
        assert_eq!(Balances::of("C", &records), Balances::default());
    }
}
