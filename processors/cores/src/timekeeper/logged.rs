//! What an auditor without the timekeeper's key takes from the log: the sealed halves of each
//! release, and which offers' halves did not open.
//!
//! Every verdict is a function of public, signed data (offers, invitations, responses, their
//! receipt stamps), so an auditor re-derives it without a secret. Two things are not: the sealed
//! bytes of a release (sealing opens the provider's half first) and the finding that an offer's
//! halves do not open (BadCredential). For those the auditor takes the log's word, and only the
//! timekeeper's signed word: a record on `tessera.decisions` counts here only if its signature
//! verifies with the timekeeper's verifying key, and a sealed half only if it has a sealed half's
//! shape. The replay then writes those bytes into its releases, so each release it derives
//! matches the log only if everything else in it (verdict, ids, keys, positions, the chain of
//! links) matches too. What the key alone can show, that a logged half really holds the offer's
//! half sealed to the responder, an audit with the key checks.

use std::collections::HashMap;

use tessera_contract::sealing::{self, Half};
use tessera_contract::signing::{Signed, VerifyingKey};
use tessera_contract::topics;
use tessera_contract::{Event, OfferProblem, SealedBox};

/// The timekeeper's signed word on what only its key decides, gathered from `tessera.decisions`.
#[derive(Debug)]
pub struct LoggedHalves {
    timekeeper: VerifyingKey,
    /// The halves of each release, by credential id; the first signed release of an id counts.
    releases: HashMap<String, (SealedBox, Option<SealedBox>)>,
    /// The detail of each BadCredential rejection, by offer id.
    bad_credentials: HashMap<String, String>,
    /// Records under the timekeeper's name whose signature did not verify.
    unsigned: u64,
}

impl LoggedHalves {
    /// Nothing learned yet; only records signed with `timekeeper` will count.
    pub fn new(timekeeper: VerifyingKey) -> Self {
        LoggedHalves {
            timekeeper,
            releases: HashMap::new(),
            bad_credentials: HashMap::new(),
            unsigned: 0,
        }
    }

    /// Learns from one record of `tessera.decisions`, as read: its key, value and signature
    /// header.
    pub fn learn(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, signature: Option<&[u8]>) {
        let Some(Ok(event)) = value.map(tessera_contract::decode) else {
            return;
        };
        if !matches!(
            event,
            Event::CredentialReleased(_) | Event::OfferRejected(_)
        ) {
            return;
        }
        let signed = Signed::of(key, value, signature);
        if self
            .timekeeper
            .verify_record(topics::DECISIONS.name, &signed, "the timekeeper")
            .is_err()
        {
            self.unsigned += 1;
            return;
        }
        match event {
            Event::CredentialReleased(release) => {
                self.releases
                    .entry(release.credential_id)
                    .or_insert((release.platform_half, release.provider_half));
            }
            Event::OfferRejected(rejected) if rejected.problem == OfferProblem::BadCredential => {
                self.bad_credentials
                    .entry(rejected.offer_id)
                    .or_insert(rejected.detail);
            }
            _ => {}
        }
    }

    /// Offers the log says the timekeeper could not open: the audit without the key takes these
    /// on the timekeeper's signature.
    pub fn bad_credentials(&self) -> usize {
        self.bad_credentials.len()
    }

    /// Verdict records on the decisions that the timekeeper's key did not sign: not taken.
    pub fn unsigned(&self) -> u64 {
        self.unsigned
    }

    /// Why offer `offer_id`'s halves did not open, if the timekeeper said so.
    pub(super) fn bad_credential(&self, offer_id: &str) -> Option<&str> {
        self.bad_credentials.get(offer_id).map(String::as_str)
    }

    /// The halves the timekeeper released as `credential_id`, checked for shape: the platform
    /// half, and the provider half if and only if the offer is in escrow.
    pub(super) fn released(
        &mut self,
        credential_id: &str,
        escrow: bool,
    ) -> Result<(SealedBox, Option<SealedBox>), String> {
        let (platform, provider) = self.releases.remove(credential_id).ok_or_else(|| {
            format!(
                "no release of credential {credential_id} signed by the timekeeper is on the log"
            )
        })?;
        let shape = |e: sealing::SealError| e.to_string();
        sealing::check_sealed_half(&platform, Half::Platform).map_err(shape)?;
        match (&provider, escrow) {
            (Some(provider), true) => {
                sealing::check_sealed_half(provider, Half::Provider).map_err(shape)?
            }
            (None, false) => {}
            (Some(_), false) => {
                return Err(format!(
                    "the logged release of credential {credential_id} carries a provider half, \
                     but its offer keeps that half with the provider"
                ));
            }
            (None, true) => {
                return Err(format!(
                    "the logged release of credential {credential_id} lacks the provider half \
                     its escrow offer must release"
                ));
            }
        }
        Ok((platform, provider))
    }
}
