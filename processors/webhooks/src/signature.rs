//! Signed posts: how a webhook receiver tells a post the delivery worker made from one anyone
//! else made, without trusting the network or the URL's secrecy.
//!
//! TLS proves the receiver to the worker, not the worker to the receiver, and a webhook URL is
//! known to whoever reads `tessera.subscribers`. So each post carries the delivery worker's
//! Ed25519 signature ([`tessera_contract::signing`]), made with the same key that signs its records
//! on `tessera.deliveries`:
//!
//! | header | value |
//! |---|---|
//! | `Idempotency-Key` | the credential id: a receiver deduplicates by it |
//! | `Tessera-Timestamp` | when this attempt was signed, in milliseconds since the Unix epoch |
//! | `Tessera-Signature` | `ed25519=` and 128 hexadecimal digits |
//! | `Tessera-Key-Fingerprint` | the verifying key's fingerprint, to pick it during a rotation |
//!
//! The signature is over the statement [`POST_TAG`] with three length-prefixed parts: the
//! credential id, the timestamp exactly as its header spells it, and the body's bytes as sent
//! ([`SigningKey::sign_statement`]). Nothing is canonicalised: a receiver checks the bytes it got.
//! The body names the subscriber, so a post replayed to another subscriber's webhook fails that
//! subscriber's own check of `subscriber_id`; the timestamp bounds how long a captured post can
//! be replayed to the same receiver, which deduplicates it by credential id anyway.
//!
//! A receiver gets the worker's verifying key from its operator (`tessera keys public --signing`
//! on the delivery's key file) and calls [`verify_post`] before it trusts anything in the body.

use std::time::Duration;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue, InvalidHeaderValue};
use tessera_contract::signing::{self, SIGNATURE_LEN, SignatureError, SigningKey, VerifyingKey};

/// The header with the credential id; a receiver deduplicates posts by it.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The header with the time the post was signed, in milliseconds since the Unix epoch.
pub const TIMESTAMP: HeaderName = HeaderName::from_static("tessera-timestamp");
/// The header with the signature: `ed25519=<128 hexadecimal digits>`.
pub const SIGNATURE: HeaderName = HeaderName::from_static("tessera-signature");
/// The header with the signing key's fingerprint ([`VerifyingKey::fingerprint`]).
pub const KEY_FINGERPRINT: HeaderName = HeaderName::from_static("tessera-key-fingerprint");
/// What a post's signature states, so it cannot pass for any other signed statement or record.
pub const POST_TAG: &str = "tessera/v1 webhook post";
/// How far a post's timestamp may be from a receiver's clock, either way, unless the receiver
/// chooses otherwise: retries are signed afresh, so only clock skew and transit count.
pub const TOLERANCE: Duration = Duration::from_secs(300);

const SCHEME: &str = "ed25519=";

/// Why a post is not the delivery worker's. Each names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum PostError {
    /// A header the signature needs is absent.
    #[error("the post has no {0} header")]
    Missing(HeaderName),
    /// A header is not what the scheme says it holds.
    #[error("the post's {header} header is malformed: {why}")]
    Malformed { header: HeaderName, why: String },
    /// The post names another signing key than the one the receiver checks with.
    #[error("the post is signed by the key with fingerprint {got}, not {expected}")]
    OtherKey { expected: String, got: String },
    /// The signature does not verify over this credential id, timestamp and body.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The post was signed too long before or after the receiver's clock says it is now.
    #[error(
        "the post was signed at {timestamp_ms} ms, {skew_ms} ms from the receiver's clock \
         (at most {tolerance_ms} ms accepted)"
    )]
    Stale {
        timestamp_ms: i64,
        skew_ms: u64,
        tolerance_ms: u64,
    },
}

/// What a post that verified says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPost {
    /// The credential id the signature covers: the key to deduplicate by.
    pub credential_id: String,
    /// When the post was signed, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// The headers that sign a post of `body` for `credential_id` at `timestamp_ms`; `Err` if the
/// credential id cannot be a header value.
pub fn sign_post(
    signer: &SigningKey,
    credential_id: &str,
    timestamp_ms: i64,
    body: &[u8],
) -> Result<HeaderMap, InvalidHeaderValue> {
    let timestamp = timestamp_ms.to_string();
    let signature = signer.sign_statement(
        POST_TAG,
        &[credential_id.as_bytes(), timestamp.as_bytes(), body],
    );
    let mut headers = HeaderMap::new();
    headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(credential_id)?);
    headers.insert(TIMESTAMP, HeaderValue::from_str(&timestamp)?);
    headers.insert(
        SIGNATURE,
        HeaderValue::from_str(&format!("{SCHEME}{}", signing::hex(&signature)))?,
    );
    headers.insert(
        KEY_FINGERPRINT,
        HeaderValue::from_str(&signer.verifying_key().fingerprint())?,
    );
    Ok(headers)
}

/// What a receiver calls on each post, before it trusts the body: checks that the delivery
/// worker whose verifying key is `key` signed this credential id, timestamp and `body`, and that
/// the timestamp is within `tolerance` of `now_ms` (milliseconds since the Unix epoch; see
/// [`TOLERANCE`]).
pub fn verify_post(
    key: &VerifyingKey,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    tolerance: Duration,
) -> Result<VerifiedPost, PostError> {
    let credential_id = text(headers, &IDEMPOTENCY_KEY)?;
    let timestamp = text(headers, &TIMESTAMP)?;
    let signature = text(headers, &SIGNATURE)?;
    if let Some(got) = headers.get(&KEY_FINGERPRINT) {
        let expected = key.fingerprint();
        if got.as_bytes() != expected.as_bytes() {
            return Err(PostError::OtherKey {
                expected,
                got: String::from_utf8_lossy(got.as_bytes()).into_owned(),
            });
        }
    }
    let signature = signature
        .strip_prefix(SCHEME)
        .and_then(signing::unhex)
        .filter(|bytes| bytes.len() == SIGNATURE_LEN)
        .ok_or_else(|| PostError::Malformed {
            header: SIGNATURE,
            why: format!("not {SCHEME} and {} hexadecimal digits", 2 * SIGNATURE_LEN),
        })?;
    key.verify_statement(
        POST_TAG,
        &[credential_id.as_bytes(), timestamp.as_bytes(), body],
        &signature,
        "the delivery worker",
    )?;
    // Checked after the signature, so a forged timestamp is reported as a forgery.
    let timestamp_ms: i64 = timestamp.parse().map_err(|_| PostError::Malformed {
        header: TIMESTAMP,
        why: "not a whole number of milliseconds".into(),
    })?;
    let skew_ms = now_ms.abs_diff(timestamp_ms);
    let tolerance_ms = u64::try_from(tolerance.as_millis()).unwrap_or(u64::MAX);
    if skew_ms > tolerance_ms {
        return Err(PostError::Stale {
            timestamp_ms,
            skew_ms,
            tolerance_ms,
        });
    }
    Ok(VerifiedPost {
        credential_id: credential_id.to_string(),
        timestamp_ms,
    })
}

fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, PostError> {
    let value = headers
        .get(name)
        .ok_or_else(|| PostError::Missing(name.clone()))?;
    value.to_str().map_err(|_| PostError::Malformed {
        header: name.clone(),
        why: "not visible ASCII".into(),
    })
}

#[cfg(test)]
mod tests {
    use tessera_contract::sealing::PrivateKey;

    use super::*;

    const NOW: i64 = 1_764_061_200_000;
    const BODY: &[u8] = br#"{"credential_id":"cred-1","subscriber_id":"B1"}"#;

    fn key(seed: u8) -> SigningKey {
        SigningKey::derive(&PrivateKey::from_bytes(&[seed; 32]).unwrap())
    }

    fn check(
        key: &SigningKey,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedPost, PostError> {
        verify_post(&key.verifying_key(), headers, body, NOW, TOLERANCE)
    }

    #[test]
    fn a_post_verifies_with_the_workers_key() {
        let worker = key(1);
        let headers = sign_post(&worker, "cred-1", NOW - 2_000, BODY).unwrap();
        assert_eq!(
            check(&worker, &headers, BODY),
            Ok(VerifiedPost {
                credential_id: "cred-1".into(),
                timestamp_ms: NOW - 2_000
            })
        );
        assert_eq!(headers[&IDEMPOTENCY_KEY], "cred-1");
        assert_eq!(headers[&TIMESTAMP], (NOW - 2_000).to_string().as_str());
        assert!(
            headers[&SIGNATURE]
                .to_str()
                .unwrap()
                .starts_with("ed25519=")
        );
        assert_eq!(
            headers[&KEY_FINGERPRINT],
            worker.verifying_key().fingerprint().as_str()
        );
    }

    #[test]
    fn a_tampered_body_fails() {
        let worker = key(1);
        let headers = sign_post(&worker, "cred-1", NOW, BODY).unwrap();
        let tampered = BODY
            .to_vec()
            .into_iter()
            .map(|b| if b == b'1' { b'2' } else { b })
            .collect::<Vec<_>>();
        assert_eq!(
            check(&worker, &headers, &tampered),
            Err(PostError::Signature(SignatureError::Invalid(
                "the delivery worker".into()
            )))
        );
        assert!(check(&worker, &headers, b"").is_err());
    }

    #[test]
    fn another_key_fails_whether_or_not_the_post_names_it() {
        let (worker, forger) = (key(1), key(2));
        let mut forged = sign_post(&forger, "cred-1", NOW, BODY).unwrap();
        assert!(matches!(
            check(&worker, &forged, BODY),
            Err(PostError::OtherKey { expected, got })
                if expected == worker.verifying_key().fingerprint()
                    && got == forger.verifying_key().fingerprint()
        ));
        // Claiming the worker's fingerprint does not make the forger's signature the worker's.
        forged.insert(
            KEY_FINGERPRINT,
            HeaderValue::from_str(&worker.verifying_key().fingerprint()).unwrap(),
        );
        assert_eq!(
            check(&worker, &forged, BODY),
            Err(PostError::Signature(SignatureError::Invalid(
                "the delivery worker".into()
            )))
        );
        forged.remove(KEY_FINGERPRINT);
        assert!(matches!(
            check(&worker, &forged, BODY),
            Err(PostError::Signature(_))
        ));
    }

    #[test]
    fn another_credential_id_or_timestamp_fails() {
        let worker = key(1);
        let mut headers = sign_post(&worker, "cred-1", NOW, BODY).unwrap();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("cred-2"));
        assert!(matches!(
            check(&worker, &headers, BODY),
            Err(PostError::Signature(_))
        ));
        let mut headers = sign_post(&worker, "cred-1", NOW, BODY).unwrap();
        headers.insert(
            TIMESTAMP,
            HeaderValue::from_str(&(NOW + 1).to_string()).unwrap(),
        );
        assert!(matches!(
            check(&worker, &headers, BODY),
            Err(PostError::Signature(_))
        ));
    }

    #[test]
    fn an_old_or_future_post_is_stale_even_when_genuine() {
        let worker = key(1);
        let tolerance = TOLERANCE.as_millis() as i64;
        for at in [NOW - tolerance - 1, NOW + tolerance + 1] {
            let headers = sign_post(&worker, "cred-1", at, BODY).unwrap();
            assert!(
                matches!(check(&worker, &headers, BODY), Err(PostError::Stale { .. })),
                "{at}"
            );
        }
        let edge = sign_post(&worker, "cred-1", NOW - tolerance, BODY).unwrap();
        assert!(check(&worker, &edge, BODY).is_ok());
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let worker = key(1);
        for name in [IDEMPOTENCY_KEY, TIMESTAMP, SIGNATURE] {
            let mut headers = sign_post(&worker, "cred-1", NOW, BODY).unwrap();
            headers.remove(&name);
            assert_eq!(
                check(&worker, &headers, BODY),
                Err(PostError::Missing(name))
            );
        }
        let mut headers = sign_post(&worker, "cred-1", NOW, BODY).unwrap();
        headers.insert(SIGNATURE, HeaderValue::from_static("hmac-sha256=00"));
        let error = check(&worker, &headers, BODY).unwrap_err();
        assert!(matches!(error, PostError::Malformed { ref header, .. } if header == SIGNATURE));
        assert_eq!(
            error.to_string(),
            "the post's tessera-signature header is malformed: \
             not ed25519= and 128 hexadecimal digits"
        );
    }
}
