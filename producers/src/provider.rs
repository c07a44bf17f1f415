//! The provider's side (the source document's first terminal): publishing an offer with its
//! sealed credential, and withdrawing it.
//!
//! An offer is built and checked here with the same contract rules the timekeeper applies, so a
//! provider learns at the prompt that its window ends before it starts, instead of from an
//! `OfferRejected` on the log later; nothing is written for an offer the check refuses. The
//! target data is sealed here too ([`tessera_contract::sealing`]); in co-sign custody the provider
//! half is kept on this device ([`Halves`]) before the offer is written, so no offer is ever
//! published whose half its provider lost.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hpke::rand_core::UnwrapErr;
use tessera_contract::identity;
use tessera_contract::rules::check_offer;
use tessera_contract::sealing::chunks::{ChunkSealer, Manifest};
use tessera_contract::sealing::{self, KeyHalf, OfferKey, PublicKey, SealError, SealedOffer};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::OFFERS;
use tessera_contract::{
    Custody, Deadline, OfferProblem, OfferPublished, OfferWithdrawn, Recommendation, Reward,
    TimeRule, Window, Within,
};

use crate::client::{ClientError, Writer, Written, event_id};
use crate::keys::{Halves, KeyError};
use crate::when::{Span, When, WhenError, Zone, parse_duration_ms};

/// Why an offer could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
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
    /// The target data could not be sealed (too large, or an unusable timekeeper key).
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Why a built offer could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The provider half could not be kept.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The offer could not be written.
    #[error(transparent)]
    Client(#[from] ClientError),
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
    /// How long after its release, in milliseconds, a recipient may accept its credential and
    /// still earn the reward; `None` for no limit.
    pub decide_within: Option<i64>,
    /// The provider's verifying key: the offer carries it, and it, its withdrawal and its
    /// co-signs must be signed with the matching signing key.
    pub signing_key: VerifyingKey,
    /// An endorsement of the provider id and `signing_key` (`tessera keys endorse --provider`),
    /// by the key pinned for the provider or by the trust anchor: to rotate the provider's key,
    /// replace a lost one, or vouch for a first offer where the installation requires it.
    pub endorsement: Option<Vec<u8>>,
}

/// What an offer's credential is made of.
#[derive(Debug, Clone, Copy)]
pub struct Sealing<'a> {
    /// The target data, handed over only to responders the timekeeper releases.
    pub target_data: &'a [u8],
    /// Who keeps the provider half.
    pub custody: Custody,
    /// The timekeeper's public key, which the platform half (and in escrow the provider half) is
    /// sealed to.
    pub timekeeper: &'a PublicKey,
}

/// A built offer and, in co-sign custody, the half its provider keeps.
#[derive(Debug)]
pub struct Built {
    /// The offer to publish.
    pub offer: OfferPublished,
    /// Co-sign custody: the provider half, for [`Halves::keep`].
    pub kept_half: Option<KeyHalf>,
}

/// Seals target data for offer `offer_id` under a fresh data key from the operating system's
/// generator.
pub fn seal(offer_id: &str, sealing: Sealing<'_>) -> Result<SealedOffer, SealError> {
    sealing::seal_offer(
        offer_id,
        sealing.target_data,
        sealing.custody,
        sealing.timekeeper,
        &mut UnwrapErr(getrandom::SysRng),
    )
}

/// Builds the offer with its target data sealed inline and checks it as the timekeeper would on
/// receipt at `now`. The offer invites late (`invite_late`): subscribers that register while it is
/// open are invited too; set [`Built::offer`]'s field to false before publishing to invite only
/// those registered when it arrives.
pub fn build(
    request: OfferRequest,
    sealing: Sealing<'_>,
    now: DateTime<Utc>,
) -> Result<Built, ProviderError> {
    let sealed = seal(&request.offer_id, sealing)?;
    build_sealed(request, sealed, now)
}

/// Builds an offer whose target data goes in chunks (`crate::packages`), and checks it as
/// [`build`] does, before a chunk is written: the offer, its package still a placeholder
/// manifest, and the sealer of its chunks. Once they are written, the manifest
/// [`crate::packages::write_chunks`] returns replaces the placeholder
/// ([`Built::with_manifest`]).
pub fn build_chunked(
    request: OfferRequest,
    custody: Custody,
    timekeeper: &PublicKey,
    now: DateTime<Utc>,
) -> Result<(Built, ChunkSealer), ProviderError> {
    let key = OfferKey::new(
        &request.offer_id,
        custody,
        timekeeper,
        &mut UnwrapErr(getrandom::SysRng),
    )?;
    let sealer = ChunkSealer::new(&key.data_key, &request.offer_id);
    let placeholder = Manifest {
        chunks: 1,
        bytes: 0,
        partition: 0,
        first_offset: 0,
        digest: [0; 32],
    };
    let sealed = key.with_package(placeholder.to_package());
    Ok((build_sealed(request, sealed, now)?, sealer))
}

impl Built {
    /// The offer with `manifest` as its package, its chunks written.
    pub fn with_manifest(mut self, manifest: &Manifest) -> Built {
        self.offer.credential.package = manifest.to_package();
        self
    }
}

fn build_sealed(
    request: OfferRequest,
    sealed: SealedOffer,
    now: DateTime<Utc>,
) -> Result<Built, ProviderError> {
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
        signing_key: request.signing_key.to_bytes(),
        package_signature: Vec::new(),
        provider_endorsement: request.endorsement,
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
        decide_within: request.decide_within,
        credential: sealed.credential,
        invite_late: true,
    };
    check_offer(&offer, now.timestamp_millis())
        .map_err(|(problem, detail)| ProviderError::Invalid { problem, detail })?;
    Ok(Built {
        offer,
        kept_half: sealed.kept_half,
    })
}

/// Keeps the provider half in `halves` (co-sign custody), then writes the offer to
/// `tessera.offers`, keyed by its id, its package and the record signed by `signer`. If the write fails, the half of the
/// unpublished offer is forgotten again.
pub async fn publish(
    writer: &Writer,
    prefix: &str,
    built: Built,
    halves: &Halves,
    signer: &SigningKey,
) -> Result<Written, PublishError> {
    let key = built.offer.offer_id.clone();
    // The package carries the provider's own signature to every recipient.
    let offer = identity::with_package_signed(built.offer, signer);
    if let Some(half) = &built.kept_half {
        halves.keep(&key, half)?;
    }
    let written = writer
        .write_as(signer, prefix, OFFERS, &key, &offer.into())
        .await;
    if written.is_err() && built.kept_half.is_some() {
        halves.forget(&key)?;
    }
    Ok(written?)
}

/// Writes an `OfferWithdrawn`, signed by `signer`: later responses to the offer are rejected as
/// withdrawn. The timekeeper believes it only if `signer` is the key the offer carries.
pub async fn withdraw(
    writer: &Writer,
    prefix: &str,
    offer_id: &str,
    provider_id: &str,
    reason: Option<String>,
    signer: &SigningKey,
) -> Result<Written, ClientError> {
    let withdrawn = OfferWithdrawn {
        event_id: event_id(),
        offer_id: offer_id.to_string(),
        provider_id: provider_id.to_string(),
        reason,
    };
    writer
        .write_as(signer, prefix, OFFERS, offer_id, &withdrawn.into())
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

/// Reads the time a recipient has to accept its credential, e.g. `24h`, in milliseconds. No
/// contract rule bounds it (the timekeeper does not judge decisions), so the provider is stopped
/// here from setting one no acceptance could meet.
pub fn parse_decide_within(text: &str) -> Result<i64, String> {
    match parse_duration_ms(text) {
        Ok(ms) if ms > 0 => Ok(ms),
        Ok(_) => Err(format!(
            "`{text}` leaves no time to decide: give a positive duration, e.g. 24h"
        )),
        Err(e) => Err(e.to_string()),
    }
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
            decide_within: Some(86_400_000),
            signing_key: signer().verifying_key(),
            endorsement: None,
        }
    }

    fn signer() -> SigningKey {
        SigningKey::derive(&sealing::PrivateKey::from_bytes(&[5; 32]).unwrap())
    }

    fn deadline(text: &str) -> RuleSpec {
        RuleSpec::Deadline(text.parse().unwrap())
    }

    const DOCUMENT: &[u8] = b"Quarterly report X\n";

    fn timekeeper() -> tessera_contract::sealing::PrivateKey {
        tessera_contract::sealing::PrivateKey::from_bytes(&[3; 32]).unwrap()
    }

    fn sealed_as(custody: Custody, timekeeper: &PublicKey) -> Sealing<'_> {
        Sealing {
            target_data: DOCUMENT,
            custody,
            timekeeper,
        }
    }

    fn built(request: OfferRequest) -> Result<Built, ProviderError> {
        let timekeeper = timekeeper().public_key();
        build(request, sealed_as(Custody::CoSign, &timekeeper), now())
    }

    #[test]
    fn a_valid_offer_carries_what_the_provider_said() {
        let offer = built(request(deadline("09:00"))).unwrap().offer;
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
        assert_eq!(offer.decide_within, Some(86_400_000));
        assert!(uuid::Uuid::parse_str(&offer.event_id).is_ok());
    }

    #[test]
    fn the_credential_is_sealed_to_the_timekeeper_in_the_custody_asked() {
        let key = timekeeper();
        let public = key.public_key();
        let cosign = build(
            request(deadline("09:00")),
            sealed_as(Custody::CoSign, &public),
            now(),
        )
        .unwrap();
        let credential = &cosign.offer.credential;
        assert_eq!(credential.custody, Custody::CoSign);
        assert!(cosign.kept_half.is_some() && credential.escrow_half.is_none());
        let platform = sealing::open_from_provider(
            &credential.platform_half,
            sealing::Half::Platform,
            "O1",
            &key,
        )
        .unwrap();
        let opened = sealing::open_package(
            &credential.package,
            "O1",
            &platform,
            cosign.kept_half.as_ref().unwrap(),
        )
        .unwrap();
        assert_eq!(opened.as_slice(), DOCUMENT);

        let escrow = build(
            request(deadline("09:00")),
            sealed_as(Custody::Escrow, &public),
            now(),
        )
        .unwrap();
        assert!(escrow.kept_half.is_none() && escrow.offer.credential.escrow_half.is_some());
        let again = built(request(deadline("09:00"))).unwrap();
        assert_ne!(
            again.offer.credential.package, credential.package,
            "a fresh data key every time"
        );
    }

    #[test]
    fn target_data_too_large_to_carry_is_refused() {
        let timekeeper = timekeeper().public_key();
        // xorshift64: bytes no compressor shrinks.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..sealing::MAX_PACKAGE_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let too_big = Sealing {
            target_data: &noise,
            ..sealed_as(Custody::CoSign, &timekeeper)
        };
        let err = build(request(deadline("09:00")), too_big, now()).unwrap_err();
        assert!(
            matches!(err, ProviderError::Seal(SealError::PackageTooLarge { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_cosigned_half_is_kept_before_the_offer_is_written_and_forgotten_if_it_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let halves = Halves::new(dir.path());
        let mut config = rdkafka::ClientConfig::new();
        // Nothing listens there: the write fails after its timeout.
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "200");
        let writer = Writer::new(&config).unwrap();
        let offer = built(request(deadline("09:00"))).unwrap();
        let err = publish(&writer, "", offer, &halves, &signer())
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Client(_)), "{err}");
        assert!(halves.get("O1").unwrap().is_none());
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
            match built(request(rule)) {
                Err(ProviderError::Invalid { problem, .. }) => assert_eq!(problem, expected),
                other => panic!("{rule:?}: {other:?}"),
            }
        }
        let mut empty = request(deadline("09:00"));
        empty.identifier = "  ".into();
        let err = built(empty).unwrap_err();
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
            built(twice).unwrap_err(),
            ProviderError::DuplicateFeature("format".into())
        );
        let mut twice = request(deadline("09:00"));
        twice.parameters.push(("price".into(), 1));
        assert_eq!(
            built(twice).unwrap_err(),
            ProviderError::DuplicateParameter("price".into())
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
        assert_eq!(parse_decide_within("90s"), Ok(90_000));
        assert!(
            parse_decide_within("0s")
                .unwrap_err()
                .contains("no time to decide")
        );
        assert!(parse_decide_within("soon").is_err());
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
