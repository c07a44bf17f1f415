//! The ledger: credits a provider the offer's reward once per accepted credential, the source
//! document's "value-added data" (step S107), as RewardCredited on `tessera.ledger` with the
//! provider's balance after the credit.
//!
//! Outcomes are keyed by offer id but balances by provider, and a task sees only its own keys,
//! so the ledger is two cores in the Kafka Streams manner: [`Rewards`], keyed by offer id,
//! decides which outcomes earn a reward and writes each as RewardDue to the internal
//! repartition topic `tessera.ledger-credits`, keyed by provider id; [`Ledger`], keyed by
//! provider id, keeps the balances and credits each reward. Both run in exactly-once
//! transactions, so a reward is re-keyed once; the ledger still credits a credential at most once
//! whatever the repartition topic holds.

pub mod rewards;

use tessera_contract::{Link, RewardCredited, RewardDue};

use crate::prelude::*;
pub use rewards::Rewards;

shape! {
    /// The balances core's declaration.
    ///
    /// The one input: the credits the rewards core decided.
    pub const BALANCES_SHAPE: "ledger",
    inputs InputTopic { Credits = LEDGER_CREDITS },
    output LEDGER,
    state "each provider's balance per currency; the credentials credited";
}

/// `tessera run ledger`: the rewards core by offer, then the balances core by provider.
pub const PROCESSOR: Processor = Processor {
    name: "ledger",
    cores: &[&rewards::SHAPE, &BALANCES_SHAPE],
    metrics_port: 9467,
    publishes_key: true,
    audit_secret: None,
};

/// Balances in minor units by [`pair`] of provider id and currency.
const BALANCES: Table<i64> = Table::new("balance/");
/// The credited credentials by [`pair`] of offer id and credential id, with the event id of the
/// reward that credited them.
const CREDITED: Table<String> = Table::new("credited/");

/// The balances core. All it knows is in the task's state, and the key rewards are signed with.
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    /// The verifying key of [`Rewards`], which writes `tessera.ledger-credits`: a RewardDue
    /// signed by anyone else mints nothing (a dead letter, Unauthenticated).
    rewards: VerifyingKey,
}

impl Ledger {
    /// A ledger that believes rewards signed with `rewards`.
    pub fn new(rewards: VerifyingKey) -> Self {
        Ledger { rewards }
    }
}

impl Core for Ledger {
    type Record = RewardDue;

    crate::declared_by!(BALANCES_SHAPE);

    fn decode(&self, raw: Raw<'_>) -> Result<RewardDue, String> {
        let due = match raw.event::<InputTopic>()? {
            (InputTopic::Credits, Event::RewardDue(due)) => due,
            (input, other) => return Err(misplaced(&other, input)),
        };
        raw.keyed_by(&due.provider_id, "provider id")?;
        Ok(due)
    }

    fn apply(&mut self, state: &mut dyn State, input: Input<RewardDue>) -> Vec<Emitted> {
        let mut out = Outputs::new(BALANCES_SHAPE.name, input.at());
        if let Input::Record { value, signed, .. } = input {
            let input = (topics::LEDGER_CREDITS, value.provider_id.as_str(), &signed);
            if out.signed_by(&self.rewards, "ledger-rewards", input, || {
                value.clone().into()
            }) {
                credit(state, value, &mut out);
            }
        }
        out.into_list()
    }
}

fn credit(state: &mut dyn State, due: RewardDue, out: &mut Outputs) {
    let credential = pair(&due.offer_id, &due.credential_id);
    let account = pair(&due.provider_id, &due.currency);
    let balance = match creditable(state, &credential, &account, &due) {
        Ok(Some(balance)) => balance,
        Ok(None) => return,
        Err(reason) => {
            let key = due.provider_id.clone();
            return out.dead_letter(topics::LEDGER_CREDITS, &key, due.into(), reason);
        }
    };
    CREDITED.put(state, &credential, &due.event_id);
    BALANCES.put(state, &account, &balance);
    let key = due.provider_id.clone();
    out.emit(&key, |event_id| {
        RewardCredited {
            event_id,
            provider_id: due.provider_id,
            offer_id: due.offer_id,
            credential_id: due.credential_id,
            amount: due.amount,
            currency: due.currency,
            balance,
            // The runtime's step chains it (tessera_contract::links).
            link: Link::default(),
        }
        .into()
    });
}

/// The balance after crediting `due`; `None` when this very reward was credited already; an
/// error says why it cannot be credited.
fn creditable(
    state: &dyn State,
    credential: &str,
    account: &str,
    due: &RewardDue,
) -> Result<Option<i64>, String> {
    if let Some(credited_by) = CREDITED.get(state, credential) {
        if credited_by == due.event_id {
            return Ok(None);
        }
        return Err(format!(
            "credential {} of offer {} was credited already, by reward {credited_by}",
            due.credential_id, due.offer_id
        ));
    }
    if due.amount <= 0 {
        return Err(format!(
            "the reward {} {} is not positive",
            due.amount, due.currency
        ));
    }
    let balance = BALANCES.get(state, account).unwrap_or(0);
    balance.checked_add(due.amount).map(Some).ok_or_else(|| {
        format!(
            "crediting {} {} to a balance of {balance} would overflow",
            due.amount, due.currency
        )
    })
}

#[cfg(test)]
mod tests;
