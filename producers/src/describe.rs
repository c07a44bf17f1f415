//! Events as one line a person reads: what `subscriber listen`, `provider watch` and `offer
//! status` print.
//!
//! The commands show the same events (requests, responses, verdicts), so they say them the same
//! way; byte fields (keys, sealed boxes) are never shown, only that they are there.

use std::fmt::Write;
use std::time::Duration;

use tessera_contract::rules::format_stamp;
use tessera_contract::{Event, Recommendation};

/// `topic/partition@offset, received STAMP`: where a record sits and when the broker took it.
pub fn position(topic: &str, partition: i32, offset: i64, stamp: Option<i64>) -> String {
    match stamp {
        Some(stamp) => format!(
            "{topic}/{partition}@{offset}, received {}",
            format_stamp(stamp)
        ),
        None => format!(
            "{topic}/{partition}@{offset}, no broker stamp (the topic is not LogAppendTime)"
        ),
    }
}

/// `doc-X "Quarterly report X" format=pdf price=9900`.
pub fn recommendation(recommendation: &Recommendation) -> String {
    let mut text = format!("{} {:?}", recommendation.identifier, recommendation.name);
    for (key, value) in &recommendation.features {
        let _ = write!(text, " {key}={value}");
    }
    for (key, value) in &recommendation.parameters {
        let _ = write!(text, " {key}={value}");
    }
    text
}

/// An offer's `decide_within`, in words: `decide within 1h 30m of the release`.
pub fn decide_within(ms: i64) -> String {
    format!("decide within {} of the release", duration(ms))
}

/// Milliseconds as humantime writes a duration, e.g. `1h 30m`; a negative one with a `-`.
pub fn duration(ms: i64) -> String {
    let magnitude = humantime::format_duration(Duration::from_millis(ms.unsigned_abs()));
    if ms < 0 {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    }
}

/// One line saying what an event is and what it decided.
pub fn event(event: &Event) -> String {
    match event {
        Event::OfferPublished(offer) => {
            let mut text = format!(
                "offer {} published by {} ({}): {}; {}",
                offer.offer_id,
                offer.provider_id,
                offer.provider_contact,
                recommendation(&offer.recommendation),
                offer.time_rule.describe()
            );
            if let Some(capacity) = offer.capacity {
                let _ = write!(text, "; capacity {capacity}");
            }
            if let Some(reward) = &offer.reward {
                let _ = write!(
                    text,
                    "; reward {} {} (minor units)",
                    reward.amount, reward.currency
                );
            }
            if let Some(within) = offer.decide_within {
                let _ = write!(text, "; {}", decide_within(within));
            }
            text
        }
        Event::OfferWithdrawn(withdrawn) => format!(
            "offer {} withdrawn by {}{}",
            withdrawn.offer_id,
            withdrawn.provider_id,
            withdrawn
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::InteractionRequested(request) => format!(
            "request {} to {} for offer {}: {}; {}, ends {}{}; provider {}",
            request.request_id,
            request.subscriber_id,
            request.offer_id,
            recommendation(&request.recommendation),
            request.offer.time_rule.describe(),
            format_stamp(
                request
                    .offer
                    .time_rule
                    .ends_at(request.offer.position.stamp)
            ),
            request
                .decide_within
                .map(|within| format!("; {}", decide_within(within)))
                .unwrap_or_default(),
            request.provider_contact
        ),
        Event::ResponseSubmitted(response) => format!(
            "response from {} to offer {} (request {})",
            response.subscriber_id, response.offer_id, response.request_id
        ),
        Event::CredentialReleased(released) => format!(
            "released credential {} to {} for offer {} (response received {})",
            released.credential_id,
            released.subscriber_id,
            released.offer_id,
            format_stamp(released.response.stamp)
        ),
        Event::ResponseRejected(rejected) => format!(
            "rejected {} for offer {}: {:?}: {}",
            rejected.subscriber_id, rejected.offer_id, rejected.reason, rejected.detail
        ),
        Event::OfferRejected(rejected) => format!(
            "offer {} rejected: {:?}: {}",
            rejected.offer_id, rejected.problem, rejected.detail
        ),
        Event::OfferClosed(closed) => format!(
            "offer {} closed at {}: requested {}, responded {}, released {}, rejected {}{}",
            closed.offer_id,
            format_stamp(closed.closed_at),
            closed.requested,
            closed.responded,
            closed.released,
            closed.rejected,
            if closed.withdrawn { ", withdrawn" } else { "" }
        ),
        Event::CredentialDelivered(delivered) => format!(
            "delivered credential {} of offer {} to {} (attempt {})",
            delivered.credential_id,
            delivered.offer_id,
            delivered.subscriber_id,
            delivered.attempts
        ),
        Event::DeliveryFailed(failed) => format!(
            "delivery of credential {} of offer {} to {} failed after {} attempts: {}",
            failed.credential_id,
            failed.offer_id,
            failed.subscriber_id,
            failed.attempts,
            failed.reason
        ),
        Event::CredentialAccepted(accepted) => format!(
            "{} accepted credential {} of offer {}",
            accepted.subscriber_id, accepted.credential_id, accepted.offer_id
        ),
        Event::CredentialDeclined(declined) => format!(
            "{} declined credential {} of offer {}{}",
            declined.subscriber_id,
            declined.credential_id,
            declined.offer_id,
            declined
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::RewardCredited(credit) => format!(
            "credited {} {} {} for credential {} of offer {}; balance {} {} (minor units)",
            credit.provider_id,
            credit.amount,
            credit.currency,
            credit.credential_id,
            credit.offer_id,
            credit.balance,
            credit.currency
        ),
        other => other.kind().name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use tessera_contract::examples;

    use super::*;

    #[test]
    fn verdicts_say_who_and_why() {
        let events = examples::all();
        let line = |kind: &str| {
            events
                .iter()
                .find(|e| e.kind().name() == kind)
                .map(event)
                .unwrap()
        };
        let rejected = line("ResponseRejected");
        assert_eq!(
            rejected,
            "rejected B2 for offer offer-1: TooLate: received 09:05:00.000Z, deadline 09:00:00.000Z"
        );
        let request = line("InteractionRequested");
        assert!(
            request.contains("doc-X \"Quarterly report X\" format=pdf lang=en"),
            "{request}"
        );
        assert!(request.contains(", ends 20"), "{request}");
        assert!(
            request.contains("; decide within 1day of the release; provider"),
            "{request}"
        );
        assert_eq!(duration(5_400_000), "1h 30m");
        assert_eq!(duration(-2_000), "-2s");
        let closed = line("OfferClosed");
        assert!(closed.contains(": requested 2, responded "), "{closed}");
    }

    #[test]
    fn deliveries_outcomes_and_credits_name_their_credential_and_offer() {
        for kind in [
            "CredentialDelivered",
            "DeliveryFailed",
            "CredentialAccepted",
            "CredentialDeclined",
            "RewardCredited",
        ] {
            let example = examples::all()
                .into_iter()
                .find(|e| e.kind().name() == kind)
                .unwrap();
            let line = event(&example);
            assert!(
                line.contains("credential ") && line.contains(" of offer "),
                "{kind}: {line}"
            );
        }
    }

    #[test]
    fn positions_quote_the_broker_stamp() {
        assert_eq!(
            position("tessera.requests", 1, 9, Some(1_764_061_200_000)),
            "tessera.requests/1@9, received 2025-11-25T09:00:00.000Z"
        );
        assert!(position("t", 0, 0, None).contains("no broker stamp"));
    }
}
