//! `tessera ledger`: a provider's balance, read from the log by anyone, without asking the
//! ledger processor. Every credit carries the balance after it, so the provider's last credit in
//! each currency is its balance there. Only credits the ledger signed count: its key is published
//! on `tessera.keys` and pinned like the timekeeper's, so a credit someone else wrote on the topic
//! changes no balance.

use std::collections::BTreeMap;

use serde_json::json;
use tessera_contract::Event;
use tessera_contract::signing::VerifyingKey;
use tessera_contract::topics::LEDGER;
use tessera_producers::client::{Record, partition_count, partition_for, read_to_end, reader};
use tessera_producers::keys::Role;

use crate::kafka::KafkaArgs;
use crate::keys::{LedgerPin, platform};

/// Questions about the ledger.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Ledger {
    /// Print a provider's balance in each currency it was credited in, and how many credits made
    /// it. Reads the provider's partition of `tessera.ledger` up to its current end (committed
    /// records only).
    Balance {
        /// The provider's id.
        provider: String,
        /// Print JSON (`{"provider_id", "credits", "refused", "balances": {currency: amount}}`)
        /// instead of text.
        #[arg(long)]
        json: bool,
        /// Whose credits to believe.
        #[command(flatten)]
        pin: LedgerPin,
    },
}

/// A provider's balances as the log has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    /// How many RewardCredited the provider has, signed by the ledger.
    pub credits: usize,
    /// How many credits for the provider the ledger's key did not sign: not counted.
    pub refused: usize,
    /// Balance in minor units by currency.
    pub by_currency: BTreeMap<String, i64>,
}

impl Balances {
    /// The balances of `provider_id` after `records` of `tessera.ledger`, read in offset order,
    /// counting the credits signed with `ledger`.
    pub fn of(provider_id: &str, ledger: &VerifyingKey, records: &[Record]) -> Balances {
        let mut balances = Balances::default();
        for record in records {
            if let Some(Ok(Event::RewardCredited(credit))) = &record.event
                && credit.provider_id == provider_id
            {
                if ledger
                    .verify_record(LEDGER.name, &record.signed, "the ledger")
                    .is_err()
                {
                    balances.refused += 1;
                    continue;
                }
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
        Ledger::Balance {
            provider,
            json,
            pin,
        } => {
            let config = kafka.client_config()?;
            let ledger = platform(
                &config,
                &kafka.topic_prefix,
                Role::Ledger,
                pin.ledger_fingerprint,
            )
            .await?
            .signing;
            let topic = LEDGER.full_name(&kafka.topic_prefix);
            let partition = partition_for(
                &provider,
                partition_count(&reader(&config, false)?, &topic)?,
            );
            let records = read_to_end(&config, &topic, Some(&[partition])).await?;
            let balances = Balances::of(&provider, &ledger, &records);
            if balances.refused > 0 {
                eprintln!(
                    "warning: {} credit(s) for {provider} on {topic} are not signed by the pinned \
                     ledger (key fingerprint {}): not counted",
                    balances.refused,
                    ledger.fingerprint()
                );
            }
            if json {
                let document = json!({
                    "provider_id": provider,
                    "credits": balances.credits,
                    "refused": balances.refused,
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
    use tessera_contract::RewardCredited;
    use tessera_contract::sealing::PrivateKey;
    use tessera_contract::signing::SigningKey;

    use super::*;

    fn ledger() -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[7; 32]).unwrap())
    }

    /// A credit as the ledger writes it, signed by `signer`.
    fn credit_by(
        signer: &SigningKey,
        offset: i64,
        provider_id: &str,
        currency: &str,
        balance: i64,
    ) -> Record {
        let mut record = credit(offset, provider_id, currency, balance);
        let Some(Ok(event)) = &record.event else {
            unreachable!()
        };
        let value = tessera_contract::encode(event).unwrap();
        record.signed = signer.signed(LEDGER.name, provider_id.as_bytes(), &value);
        record
    }

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
            signed: tessera_contract::signing::Signed::of(None, None, None),
        }
    }

    #[test]
    fn the_last_credit_in_each_currency_is_the_balance() {
        let ledger = ledger();
        let records = [
            credit_by(&ledger, 0, "A", "EUR", 250),
            credit_by(&ledger, 1, "B", "EUR", 9),
            credit_by(&ledger, 2, "A", "points", 3),
            credit_by(&ledger, 3, "A", "EUR", 500),
        ];
        let key = ledger.verifying_key();
        let balances = Balances::of("A", &key, &records);
        assert_eq!(balances.credits, 3);
        assert_eq!(
            balances.by_currency,
            BTreeMap::from([("EUR".into(), 500), ("points".into(), 3)])
        );
        assert_eq!(Balances::of("C", &key, &records), Balances::default());
    }

    #[test]
    fn a_credit_the_ledger_did_not_sign_changes_no_balance() {
        let ledger = ledger();
        let forger = SigningKey::derive(&PrivateKey::from_bytes(&[8; 32]).unwrap());
        let records = [
            credit_by(&ledger, 0, "A", "EUR", 250),
            credit_by(&forger, 1, "A", "EUR", 1_000_000),
            credit(2, "A", "EUR", 2_000_000),
        ];
        let balances = Balances::of("A", &ledger.verifying_key(), &records);
        assert_eq!(balances.credits, 1);
        assert_eq!(balances.refused, 2);
        assert_eq!(balances.by_currency, BTreeMap::from([("EUR".into(), 250)]));
    }
}
