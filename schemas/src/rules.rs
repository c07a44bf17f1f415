//! What DESIGN.md's time rules and offer rules mean, as code every party shares: the provider's
//! CLI refuses what the timekeeper would reject, the matcher invites no one to an offer the
//! timekeeper will reject, and an auditor judges a stamp exactly as the timekeeper did.

use crate::events::{OfferProblem, OfferPublished, TimeRule};

/// How a receipt stamp stands against a time rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Before a window opened.
    TooEarly,
    /// Within the rule: every bound is inclusive.
    InTime,
    /// After the deadline, the window or the duration.
    TooLate,
}

impl TimeRule {
    /// Judges a response received at `stamp` against this rule, for an offer received at
    /// `offer_stamp` (the start of a `Within` rule). Every bound is inclusive.
    pub fn judge(&self, offer_stamp: i64, stamp: i64) -> Timing {
        if stamp < self.opens_at(offer_stamp) {
            Timing::TooEarly
        } else if stamp > self.ends_at(offer_stamp) {
            Timing::TooLate
        } else {
            Timing::InTime
        }
    }

    /// The first stamp that can be in time (`i64::MIN` when the rule has no start).
    pub fn opens_at(&self, _offer_stamp: i64) -> i64 {
        match self {
            TimeRule::Window(window) => window.from,
            TimeRule::Deadline(_) | TimeRule::Within(_) => i64::MIN,
        }
    }

    /// The last stamp that is in time: once stream time is past it, no response can be released.
    pub fn ends_at(&self, offer_stamp: i64) -> i64 {
        match self {
            TimeRule::Deadline(deadline) => deadline.at,
            TimeRule::Window(window) => window.to,
            TimeRule::Within(within) => offer_stamp.saturating_add(within.duration_ms),
        }
    }

    /// Says the rule in words, for a verdict's `detail` and the CLI.
    pub fn describe(&self) -> String {
        match self {
            TimeRule::Deadline(d) => format!("deadline {}", format_stamp(d.at)),
            TimeRule::Window(w) => {
                format!("window {} .. {}", format_stamp(w.from), format_stamp(w.to))
            }
            TimeRule::Within(w) => format!("within {} ms of the offer", w.duration_ms),
        }
    }
}

/// Checks an offer received (or about to be sent) at `stamp`. The first problem found wins, in
/// the order of [`OfferProblem`], so every party names the same one. The credential is checked for
/// its shape only ([`crate::sealing::check_credential`]): whether its halves open, only the
/// timekeeper's key can tell.
pub fn check_offer(offer: &OfferPublished, stamp: i64) -> Result<(), (OfferProblem, String)> {
    if offer.recommendation.identifier.trim().is_empty() {
        return Err((
            OfferProblem::EmptyIdentifier,
            "the recommendation's identifier is empty".into(),
        ));
    }
    match offer.time_rule {
        TimeRule::Window(w) if w.to < w.from => {
            return Err((
                OfferProblem::WindowEndsBeforeStart,
                format!(
                    "the window ends at {} before it starts at {}",
                    format_stamp(w.to),
                    format_stamp(w.from)
                ),
            ));
        }
        TimeRule::Within(w) if w.duration_ms <= 0 => {
            return Err((
                OfferProblem::NonPositiveDuration,
                format!("the duration {} ms is not positive", w.duration_ms),
            ));
        }
        _ => {}
    }
    let ends = offer.time_rule.ends_at(stamp);
    if ends < stamp {
        return Err((
            OfferProblem::AlreadyEnded,
            format!(
                "the {} had ended when the offer was received at {}",
                offer.time_rule.describe(),
                format_stamp(stamp)
            ),
        ));
    }
    if let Some(capacity) = offer.capacity
        && capacity <= 0
    {
        return Err((
            OfferProblem::NonPositiveCapacity,
            format!("the capacity {capacity} is not positive"),
        ));
    }
    if let Some(reward) = &offer.reward
        && reward.amount <= 0
    {
        return Err((
            OfferProblem::NonPositiveReward,
            format!(
                "the reward {} {} is not positive",
                reward.amount, reward.currency
            ),
        ));
    }
    crate::sealing::check_credential(&offer.credential)
        .map_err(|detail| (OfferProblem::BadCredential, detail))
}

/// The id of the invitation of `subscriber_id` to `offer_id`: derived, not drawn, so the matcher
/// writes the same id on a replay and a subscriber can name the invitation it answers.
pub fn request_id(offer_id: &str, subscriber_id: &str) -> String {
    // Length-prefixed, so ("a/b", "c") and ("a", "b/c") name different invitations.
    let name = format!("request/{}/{offer_id}/{subscriber_id}", offer_id.len());
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// A stamp as RFC 3339 UTC with milliseconds, e.g. `2026-11-26T09:00:00.000Z`.
pub fn format_stamp(stamp: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(stamp) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("{stamp} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Deadline, Window, Within};
    use crate::examples;

    #[test]
    fn every_bound_is_inclusive() {
        let deadline = TimeRule::Deadline(Deadline { at: 100 });
        assert_eq!(deadline.judge(0, 99), Timing::InTime);
        assert_eq!(deadline.judge(0, 100), Timing::InTime);
        assert_eq!(deadline.judge(0, 101), Timing::TooLate);

        let window = TimeRule::Window(Window { from: 10, to: 20 });
        assert_eq!(window.judge(0, 9), Timing::TooEarly);
        assert_eq!(window.judge(0, 10), Timing::InTime);
        assert_eq!(window.judge(0, 20), Timing::InTime);
        assert_eq!(window.judge(0, 21), Timing::TooLate);

        let within = TimeRule::Within(Within { duration_ms: 50 });
        assert_eq!(within.judge(1000, 1050), Timing::InTime);
        assert_eq!(within.judge(1000, 1051), Timing::TooLate);
        assert_eq!(within.ends_at(i64::MAX - 1), i64::MAX);
    }

    #[test]
    fn request_ids_are_stable_and_unambiguous() {
        assert_eq!(request_id("o", "s"), request_id("o", "s"));
        assert_ne!(request_id("a/b", "c"), request_id("a", "b/c"));
    }

    #[test]
    fn offers_are_checked_in_a_fixed_order() {
        let mut offer = examples::all()
            .into_iter()
            .find_map(|e| match e {
                crate::Event::OfferPublished(o) => Some(o),
                _ => None,
            })
            .expect("an example offer");
        offer.time_rule = TimeRule::Deadline(Deadline { at: 1000 });
        assert_eq!(check_offer(&offer, 1000), Ok(()));
        offer.credential.escrow_half = None;
        assert_eq!(
            check_offer(&offer, 1000).unwrap_err().0,
            OfferProblem::BadCredential
        );
        offer
            .reward
            .as_mut()
            .expect("the example has a reward")
            .amount = 0;
        assert_eq!(
            check_offer(&offer, 1000).unwrap_err().0,
            OfferProblem::NonPositiveReward
        );
        assert_eq!(
            check_offer(&offer, 1001).unwrap_err().0,
            OfferProblem::AlreadyEnded
        );
        offer.capacity = Some(0);
        assert_eq!(
            check_offer(&offer, 0).unwrap_err().0,
            OfferProblem::NonPositiveCapacity
        );
        offer.time_rule = TimeRule::Within(Within { duration_ms: 0 });
        assert_eq!(
            check_offer(&offer, 0).unwrap_err().0,
            OfferProblem::NonPositiveDuration
        );
        offer.time_rule = TimeRule::Window(Window { from: 5, to: 4 });
        assert_eq!(
            check_offer(&offer, 0).unwrap_err().0,
            OfferProblem::WindowEndsBeforeStart
        );
        offer.recommendation.identifier = " ".into();
        assert_eq!(
            check_offer(&offer, 0).unwrap_err().0,
            OfferProblem::EmptyIdentifier
        );
    }
}
