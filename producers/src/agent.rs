//! The provider's agent (`tessera provider agent`): the provider's device's part in co-sign
//! custody, the source document's "second key supplied by the device that provides the data".
//!
//! It follows `tessera.decisions` from the beginning and, for each CredentialReleased of an offer
//! whose half it keeps and that its provider published, seals that half to the released
//! responder and writes ProviderShareReleased to `tessera.cosigns`, signed with the provider's
//! key. In co-sign custody the platform alone must never be able to read the target data, so the
//! agent trusts nothing the platform says about keys, and nothing anyone says by name:
//!
//! - the release must be signed by the pinned timekeeper key, or it is refused (Unauthenticated);
//! - the offer must be the one its provider signed: the first offer under the id, carrying this
//!   provider's own verifying key;
//! - the response the release cites must be on `tessera.responses` where the release says, by the
//!   released subscriber, signed with the key that subscriber pinned (the agent folds
//!   `tessera.subscribers` itself, [`tessera_contract::identity`]), and its receipt stamp must
//!   meet the offer's rule;
//! - the half is sealed to the subscriber's pinned sealing key, never to a key the release names.
//!
//! The verdict stays the timekeeper's: the agent acts only on releases the timekeeper signed and
//! committed, and refuses one whose evidence does not hold.
//!
//! It co-signs each credential once: on start it reads what `tessera.cosigns` holds already,
//! counting only co-signs signed with its own key. A
//! crash between writing and remembering can repeat a co-signature; the repeat has the same event
//! id and, sealing being deterministic, the same bytes, so consumers deduplicate it.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;
use tessera_contract::identity::{self, Change, Pin, Pins};
use tessera_contract::rules::{Timing, format_stamp};
use tessera_contract::sealing::{self, Half, KeyHalf, PublicKey, Release};
use tessera_contract::signing::{Signed, SigningKey, VerifyingKey};
use tessera_contract::topics::{COSIGNS, DECISIONS, OFFERS, RESPONSES, SUBSCRIBERS};
use tessera_contract::{CredentialReleased, Event, ProviderShareReleased};
use tokio::time::Instant;

use crate::client::{
    ClientError, Writer, Written, assign_all, next_record, read_partition_of, read_to_end, reader,
};
use crate::keys::{Halves, KeyError};

/// What the agent runs as.
#[derive(Debug)]
pub struct Agent {
    /// The provider whose offers it co-signs.
    pub provider_id: String,
    /// Where the provider's halves are kept.
    pub halves: Halves,
    /// The provider's signing key: co-signs are signed with it, and only offers carrying its
    /// verifying key are the provider's.
    pub signer: SigningKey,
    /// The pinned timekeeper's verifying key: releases must be signed with it.
    pub timekeeper: VerifyingKey,
    /// The installation's trust anchor, if it vouches for parties (as the matcher is told).
    pub anchor: Option<VerifyingKey>,
    /// Stop after this long with no release of the provider's offers; `None` follows forever.
    pub until_idle: Option<Duration>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Kafka could not be reached or used.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A kept half could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What the agent did about one release of the provider's offers.
#[derive(Debug, Clone)]
pub enum Acted {
    /// It sealed its half to the responder; where the co-signature landed.
    Cosigned(CredentialReleased, Written),
    /// It had co-signed this credential before.
    AlreadyCosigned(CredentialReleased),
    /// It will not co-sign, and why.
    Refused(CredentialReleased, String),
}

impl fmt::Display for Acted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = |r: &CredentialReleased| {
            format!(
                "credential {} of offer {} to {}",
                r.credential_id, r.offer_id, r.subscriber_id
            )
        };
        match self {
            Acted::Cosigned(r, written) => write!(f, "co-signed {} [{written}]", what(r)),
            Acted::AlreadyCosigned(r) => write!(f, "co-signed {} before", what(r)),
            Acted::Refused(r, why) => write!(f, "refused to co-sign {}: {why}", what(r)),
        }
    }
}

/// Why one release is not co-signed.
enum Refusal {
    /// The release itself does not hold up; said in a sentence.
    Release(String),
    /// Kafka failed.
    Client(ClientError),
}

impl From<ClientError> for Refusal {
    fn from(error: ClientError) -> Self {
        Refusal::Client(error)
    }
}

/// The event id of the co-signature of `credential_id`: derived, so a repeat is recognisable.
fn cosign_id(credential_id: &str) -> String {
    let name = format!("cosign/{credential_id}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// The keys `subscriber_id` pinned, as the agent folds its records on `tessera.subscribers`;
/// `None` if it never registered or has left.
async fn pinned_keys(
    config: &ClientConfig,
    prefix: &str,
    anchor: Option<&VerifyingKey>,
    subscriber_id: &str,
) -> Result<Option<Pin>, ClientError> {
    let records = read_partition_of(config, &SUBSCRIBERS.full_name(prefix), subscriber_id).await?;
    let mut pins = Pins::new(anchor.copied());
    for record in records {
        if record.key.as_deref() != Some(subscriber_id) {
            continue;
        }
        // A refused record changes nothing, here as in the matcher.
        let _ = match &record.event {
            Some(Ok(Event::SubscriberRegistered(registered))) => {
                pins.apply(Change::Registered(registered), &record.signed)
            }
            Some(Ok(Event::SubscriberRemoved(removed))) => {
                pins.apply(Change::Removed(&removed.subscriber_id), &record.signed)
            }
            _ => Ok(()),
        };
    }
    Ok(pins.get(subscriber_id).filter(|pin| !pin.removed).cloned())
}

/// Whether offer `offer_id` is this provider's: the first offer published under the id (the one
/// the timekeeper judges by) carries the provider's verifying key and is signed with it.
async fn own_offer(
    config: &ClientConfig,
    prefix: &str,
    agent: &Agent,
    offer_id: &str,
) -> Result<bool, ClientError> {
    let records = read_partition_of(config, &OFFERS.full_name(prefix), offer_id).await?;
    let own = agent.signer.verifying_key();
    Ok(records
        .into_iter()
        .find_map(|record| match &record.event {
            Some(Ok(Event::OfferPublished(offer))) if offer.offer_id == offer_id => {
                let genuine = identity::offer_signed(offer, &record.signed).is_ok();
                Some(genuine && offer.signing_key == own.to_bytes())
            }
            _ => None,
        })
        .unwrap_or(false))
}

/// Checks the response a release cites: on `tessera.responses` where the release says, by the
/// released subscriber to this offer, signed with `pin`'s key, at the effective stamp the release
/// judged (the largest stamp on its partition up to it).
async fn cited_response(
    config: &ClientConfig,
    prefix: &str,
    released: &CredentialReleased,
    pin: &Pin,
) -> Result<(), Refusal> {
    let cited = &released.response;
    let records =
        read_partition_of(config, &RESPONSES.full_name(prefix), &released.offer_id).await?;
    let refuse = |why: String| Err(Refusal::Release(why));
    if records
        .first()
        .is_some_and(|r| r.partition != cited.partition)
    {
        return refuse(format!(
            "the response it cites is on partition {}, where offer {} has no responses",
            cited.partition, released.offer_id
        ));
    }
    let mut effective = i64::MIN;
    for record in records {
        effective = effective.max(record.stamp.unwrap_or(i64::MIN));
        if record.offset != cited.offset {
            continue;
        }
        let Some(Ok(Event::ResponseSubmitted(response))) = &record.event else {
            return refuse(format!(
                "the record it cites at offset {} is not a response",
                cited.offset
            ));
        };
        if response.subscriber_id != released.subscriber_id
            || response.offer_id != released.offer_id
            || response.request_id != released.request_id
        {
            return refuse(format!(
                "the response it cites is {}'s to {} under request {}, not this release's",
                response.subscriber_id, response.offer_id, response.request_id
            ));
        }
        let key = pin
            .verifying_key()
            .map_err(|e| Refusal::Release(e.to_string()))?;
        if let Err(e) = key.verify_record(RESPONSES.name, &record.signed, &response.subscriber_id) {
            return refuse(format!(
                "Forged: the response it cites is not signed by {}'s pinned key: {e}",
                response.subscriber_id
            ));
        }
        if effective != cited.stamp {
            return refuse(format!(
                "the response it cites was received by {}, not {}",
                format_stamp(effective),
                format_stamp(cited.stamp)
            ));
        }
        return Ok(());
    }
    refuse(format!(
        "there is no response at partition {} offset {} of {}",
        cited.partition,
        cited.offset,
        RESPONSES.full_name(prefix)
    ))
}

async fn cosign(
    config: &ClientConfig,
    prefix: &str,
    agent: &Agent,
    writer: &Writer,
    released: &CredentialReleased,
    signed: &Signed,
    half: &KeyHalf,
) -> Result<Written, Refusal> {
    let offer_id = &released.offer_id;
    if let Err(e) = agent
        .timekeeper
        .verify_record(DECISIONS.name, signed, "the timekeeper")
    {
        return Err(Refusal::Release(format!(
            "Unauthenticated: the release is not the pinned timekeeper's: {e}"
        )));
    }
    if !own_offer(config, prefix, agent, offer_id).await? {
        return Err(Refusal::Release(format!(
            "NotOwner: offer {offer_id} was not published and signed by provider {}",
            agent.provider_id
        )));
    }
    let terms = &released.offer;
    if terms
        .time_rule
        .judge(terms.position.stamp, released.response.stamp)
        != Timing::InTime
    {
        return Err(Refusal::Release(format!(
            "its evidence does not meet the offer's rule: response received {}, {}",
            format_stamp(released.response.stamp),
            terms.time_rule.describe()
        )));
    }
    let subscriber_id = &released.subscriber_id;
    let Some(pin) = pinned_keys(config, prefix, agent.anchor.as_ref(), subscriber_id).await? else {
        return Err(Refusal::Release(format!(
            "subscriber {subscriber_id} has no registration on {}",
            SUBSCRIBERS.full_name(prefix)
        )));
    };
    cited_response(config, prefix, released, &pin).await?;
    let refuse = |e: &dyn fmt::Display| Refusal::Release(e.to_string());
    let responder = PublicKey::from_bytes(&pin.sealing_key).map_err(|e| refuse(&e))?;
    let release = Release {
        offer_id: &released.offer_id,
        subscriber_id,
        credential_id: &released.credential_id,
    };
    let provider_half = sealing::seal_to_responder(half, Half::Provider, &release, &responder)
        .map_err(|e| refuse(&e))?;
    let event = ProviderShareReleased {
        event_id: cosign_id(&released.credential_id),
        offer_id: released.offer_id.clone(),
        credential_id: released.credential_id.clone(),
        subscriber_id: subscriber_id.clone(),
        provider_half,
    };
    Ok(writer
        .write_as(
            &agent.signer,
            prefix,
            COSIGNS,
            &released.offer_id,
            &event.into(),
        )
        .await?)
}

/// Follows `tessera.decisions` and co-signs every release of the provider's offers, reporting
/// each to `acted`.
pub async fn run(
    config: &ClientConfig,
    prefix: &str,
    agent: &Agent,
    mut acted: impl FnMut(Acted),
) -> Result<(), AgentError> {
    let writer = Writer::new(config)?;
    // Only its own co-signs count: anyone may write a ProviderShareReleased, and one that is
    // not signed with the provider's key must not stop the real half from being sent.
    let own = agent.signer.verifying_key();
    let mut cosigned: HashSet<String> = read_to_end(config, &COSIGNS.full_name(prefix), None)
        .await?
        .into_iter()
        .filter_map(|record| match record.event {
            Some(Ok(Event::ProviderShareReleased(share)))
                if own
                    .verify_record(COSIGNS.name, &record.signed, &agent.provider_id)
                    .is_ok() =>
            {
                Some(share.credential_id)
            }
            _ => None,
        })
        .collect();
    let decisions = DECISIONS.full_name(prefix);
    let consumer = reader(config, false)?;
    assign_all(&consumer, &[&decisions], true)?;
    let mut last_acted = Instant::now();
    loop {
        let deadline = agent.until_idle.map(|idle| last_acted + idle);
        let Some(record) = next_record(&consumer, deadline, &decisions).await? else {
            return Ok(());
        };
        let signed = record.signed;
        let Some(Ok(Event::CredentialReleased(released))) = record.event else {
            continue;
        };
        // In escrow custody the timekeeper released the provider half itself.
        if released.provider_half.is_some() {
            continue;
        }
        let half = match agent.halves.get(&released.offer_id) {
            Ok(Some(half)) => half,
            // No half kept: another provider's offer. An id that names no file cannot be ours.
            Ok(None) | Err(KeyError::UnnamableId { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        last_acted = Instant::now();
        if cosigned.contains(&released.credential_id) {
            acted(Acted::AlreadyCosigned(released));
            continue;
        }
        match cosign(config, prefix, agent, &writer, &released, &signed, &half).await {
            Ok(written) => {
                cosigned.insert(released.credential_id.clone());
                acted(Acted::Cosigned(released, written));
            }
            Err(Refusal::Release(why)) => acted(Acted::Refused(released, why)),
            Err(Refusal::Client(e)) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_cosignature_has_the_same_event_id() {
        assert_eq!(cosign_id("cred-1"), cosign_id("cred-1"));
        assert_ne!(cosign_id("cred-1"), cosign_id("cred-2"));
        assert!(uuid::Uuid::parse_str(&cosign_id("cred-1")).is_ok());
    }
}
