//! The provider's side (the source document's first terminal): publishing an offer and
//! withdrawing it.
//!
//! An offer is built and checked here with the same contract rules the timekeeper applies, so a
//! provider learns at the prompt that its window ends before it starts, instead of from an
//! `OfferRejected` on the log later; nothing is written for an offer the check refuses.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tessera_schemas::rules::check_offer;
use tessera_schemas::topics::OFFERS;
use tessera_schemas::{
    Custody, Deadline, OfferProblem, OfferPublished, OfferWithdrawn, Recommendation, Reward,
    SealedBox, SealedCredential, TimeRule, Window, Within,
};

use crate::client::{ClientError, Writer, Written, event_id, random_bytes};
use crate::when::{Span, When, WhenError, Zone};

/// Why an offer could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// A time could not be placed.
    #[error(transparent)]
    When(#[from] WhenError),
    /// The same feature twice.
    #[error("feature `{0}` is given twice")]
    DuplicateFeature(String),
    /// The same parameter twice.
    #[error("parameter `{0}` is given twice")]
    DuplicateParameter(String),
    /// The offer breaks a contract rule; the timekeeper would reject it.
    #[error("invalid offer: {detail}")]
    Invalid {
        problem: OfferProblem,
        detail: String,
    },
}

/// The time rule as the provider typed it, before times are placed in a zone and a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSpec {
    /// Responses received at or before this time count.
    Deadline(When),
    /// Responses received within this span, both ends included, count.
    Window(Span),
    /// Responses received within this many milliseconds of the offer count.
    Within(i64),
}

impl RuleSpec {
    /// The rule in epoch milliseconds, times of day taken today in `zone`.
    pub fn resolve(&self, zone: Zone, now: DateTime<Utc>) -> Result<TimeRule, WhenError> {
        Ok(match self {
            RuleSpec::Deadline(at) => TimeRule::Deadline(Deadline {
                at: at.resolve(zone, now)?,
            }),
            RuleSpec::Window(span) => TimeRule::Window(Window {
                from: span.from.resolve(zone, now)?,
                to: span.to.resolve(zone, now)?,
            }),
            RuleSpec::Within(duration_ms) => TimeRule::Within(Within {
                duration_ms: *duration_ms,
            }),
        })
    }
}

/// Everything a provider says about a new offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRequest {
    /// The offer's id.
    pub offer_id: String,
    /// The provider publishing it.
    pub provider_id: String,
    /// How responders reach the provider.
    pub provider_contact: String,
    /// The target data's identifier.
    pub identifier: String,
    /// Its human-readable name.
    pub name: String,
    /// Feature information, in the order given.
    pub features: Vec<(String, String)>,
    /// Numeric parameters, in the order given.
    pub parameters: Vec<(String, i64)>,
    /// When responses count.
    pub rule: RuleSpec,
    /// The zone times of day are read in.
    pub zone: Zone,
    /// At most this many responders, first by receipt order.
    pub capacity: Option<i32>,
    /// Credited to the provider for each accepted credential.
    pub reward: Option<Reward>,
}

/// Builds the offer and checks it as the timekeeper would on receipt at `now`.
pub fn build(request: OfferRequest, now: DateTime<Utc>) -> Result<OfferPublished, ProviderError> {
    let mut features = BTreeMap::new();
    for (key, value) in request.features {
        if features.insert(key.clone(), value).is_some() {
            return Err(ProviderError::DuplicateFeature(key));
        }
    }
    let mut parameters = BTreeMap::new();
    for (key, value) in request.parameters {
        if parameters.insert(key.clone(), value).is_some() {
            return Err(ProviderError::DuplicateParameter(key));
        }
    }
    let offer = OfferPublished {
        event_id: event_id(),
        offer_id: request.offer_id,
        provider_id: request.provider_id,
        provider_contact: request.provider_contact,
        recommendation: Recommendation {
            identifier: request.identifier,
            name: request.name,
            features,
            parameters,
        },
        time_rule: request.rule.resolve(request.zone, now)?,
        capacity: request.capacity,
        reward: request.reward,
        credential: placeholder_credential(),
    };
    check_offer(&offer, now.timestamp_millis())
        .map_err(|(problem, detail)| ProviderError::Invalid { problem, detail })?;
    Ok(offer)
}

/// The credential an offer carries until the credentials issue seals real target data: co-sign
/// custody, an empty package, and a platform half of random bytes shaped like an HPKE sealed box
/// (32-byte encapsulated key, a 32-byte half plus its 16-byte tag) that nobody can open. It holds
/// no plaintext of anything, so publishing it leaks nothing.
pub fn placeholder_credential() -> SealedCredential {
    SealedCredential {
        custody: Custody::CoSign,
        package: Vec::new(),
        platform_half: SealedBox {
            enc: random_bytes(32),
            ciphertext: random_bytes(48),
        },
        escrow_half: None,
    }
}

/// Writes the offer to `tessera.offers`, keyed by its id.
pub async fn publish(
    writer: &Writer,
    prefix: &str,
    offer: OfferPublished,
) -> Result<Written, ClientError> {
    let key = offer.offer_id.clone();
    writer
        .write(&OFFERS.full_name(prefix), &key, &offer.into())
        .await
}

/// Writes an `OfferWithdrawn`: later responses to the offer are rejected as withdrawn.
pub async fn withdraw(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    provider_id: &str,
    reason: Option<String>,
) -> Result<Written, ClientError> {
    let withdrawn = OfferWithdrawn {
        event_id: event_id(),
        offer_id: offer_id.to_string(),
        provider_id: provider_id.to_string(),
        reason,
    };
    writer
        .write(&OFFERS.full_name(prefix), offer_id, &withdrawn.into())
        .await
}

/// Reads `AMOUNT:CURRENCY`, the amount in minor units, e.g. `250:EUR` for 2.50 EUR.
pub fn parse_reward(text: &str) -> Result<Reward, String> {
    let (amount, currency) = text.split_once(':').ok_or_else(|| {
        format!("`{text}` is not a reward: expected AMOUNT:CURRENCY, e.g. 250:EUR")
    })?;
    let amount = amount
        .trim()
        .parse()
        .map_err(|_| format!("`{amount}` is not an integer amount in minor units"))?;
    let currency = currency.trim();
    if currency.is_empty() {
        return Err(format!(
            "`{text}` names no currency: expected AMOUNT:CURRENCY, e.g. 250:EUR"
        ));
    }
    Ok(Reward {
        amount,
        currency: currency.to_string(),
    })
}

/// Reads a feature `KEY=VALUE`.
pub fn parse_feature(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!(
            "`{text}` is not a feature: expected KEY=VALUE, e.g. format=pdf"
        )),
    }
}

/// Reads a parameter `NAME=INTEGER`.
pub fn parse_parameter(text: &str) -> Result<(String, i64), String> {
    let (name, value) = parse_feature(text).map_err(|_| {
        format!("`{text}` is not a parameter: expected NAME=INTEGER, e.g. price=9900")
    })?;
    let value = value.parse().map_err(|_| {
        format!("`{value}` is not an integer (parameters are integers, money in minor units)")
    })?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T08:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn request(rule: RuleSpec) -> OfferRequest {
        OfferRequest {
            offer_id: "O1".into(),
            provider_id: "A".into(),
            provider_contact: "a@example.org".into(),
            identifier: "doc-X".into(),
            name: "Quarterly report X".into(),
            features: vec![("format".into(), "pdf".into())],
            parameters: vec![("price".into(), 9_900)],
            rule,
            zone: Zone::Utc,
            capacity: Some(2),
            reward: Some(Reward {
                amount: 250,
                currency: "EUR".into(),
            }),
        }
    }

    fn deadline(text: &str) -> RuleSpec {
        RuleSpec::Deadline(text.parse().unwrap())
    }

    #[test]
    fn a_valid_offer_carries_what_the_provider_said() {
        let offer = build(request(deadline("09:00")), now()).unwrap();
        assert_eq!(offer.offer_id, "O1");
        assert_eq!(offer.recommendation.features["format"], "pdf");
        assert_eq!(offer.recommendation.parameters["price"], 9_900);
        let nine = DateTime::parse_from_rfc3339("2026-11-26T09:00:00Z").unwrap();
        assert_eq!(
            offer.time_rule,
            TimeRule::Deadline(Deadline {
                at: nine.timestamp_millis()
            })
        );
        assert_eq!(offer.capacity, Some(2));
        assert!(uuid::Uuid::parse_str(&offer.event_id).is_ok());
    }

    #[test]
    fn the_placeholder_credential_is_random_and_carries_no_package() {
        let (a, b) = (placeholder_credential(), placeholder_credential());
        assert_eq!(a.custody, Custody::CoSign);
        assert!(a.package.is_empty() && a.escrow_half.is_none());
        assert_eq!(
            (a.platform_half.enc.len(), a.platform_half.ciphertext.len()),
            (32, 48)
        );
        assert_ne!(a.platform_half, b.platform_half);
    }

    #[test]
    fn offers_the_timekeeper_would_reject_are_refused() {
        let cases = [
            (deadline("07:59"), OfferProblem::AlreadyEnded),
            (
                RuleSpec::Window("10:00..09:00".parse().unwrap()),
                OfferProblem::WindowEndsBeforeStart,
            ),
            (RuleSpec::Within(0), OfferProblem::NonPositiveDuration),
            (
                RuleSpec::Within(-300_000),
                OfferProblem::NonPositiveDuration,
            ),
        ];
        for (rule, expected) in cases {
            match build(request(rule), now()) {
                Err(ProviderError::Invalid { problem, .. }) => assert_eq!(problem, expected),
                other => panic!("{rule:?}: {other:?}"),
            }
        }
        let mut empty = request(deadline("09:00"));
        empty.identifier = "  ".into();
        let err = build(empty, now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid offer: the recommendation's identifier is empty"
        );
    }

    #[test]
    fn a_feature_or_parameter_given_twice_is_refused() {
        let mut twice = request(deadline("09:00"));
        twice.features.push(("format".into(), "docx".into()));
        assert_eq!(
            build(twice, now()),
            Err(ProviderError::DuplicateFeature("format".into()))
        );
        let mut twice = request(deadline("09:00"));
        twice.parameters.push(("price".into(), 1));
        assert_eq!(
            build(twice, now()),
            Err(ProviderError::DuplicateParameter("price".into()))
        );
    }

    #[test]
    fn rewards_features_and_parameters_read_from_the_command_line() {
        assert_eq!(
            parse_reward("250:EUR"),
            Ok(Reward {
                amount: 250,
                currency: "EUR".into()
            })
        );
        assert!(parse_reward("250").unwrap_err().contains("AMOUNT:CURRENCY"));
        assert!(
            parse_reward("2.50:EUR")
                .unwrap_err()
                .contains("minor units")
        );
        assert!(
            parse_reward("250:")
                .unwrap_err()
                .contains("names no currency")
        );
        assert_eq!(
            parse_feature("format = pdf"),
            Ok(("format".into(), "pdf".into()))
        );
        assert!(parse_feature("=pdf").is_err());
        assert_eq!(parse_parameter("price=9900"), Ok(("price".into(), 9_900)));
        assert!(
            parse_parameter("price=cheap")
                .unwrap_err()
                .contains("not an integer")
        );
    }
}
