//! The broker's clock as a client last saw it, and when an answer to an invitation falls inside
//! the offer's rule by that clock: how `subscriber listen` answers a window that opens later.
//!
//! A response counts by its broker receipt stamp, so an answer sent by the client's own clock to
//! a window that opens later is TooEarly if that clock runs ahead of the broker's. The client has
//! no way to ask the broker the time, but every record it reads carries the broker's receipt
//! stamp, and a record is stamped before it arrives: `stamp - arrival` is at most the broker's
//! lead over the local clock. The largest such value seen is therefore a lower bound of the lead
//! that gets tighter with every record that arrives fresh. Waiting for that lower bound to pass
//! the window's opening never answers early; the margin covers what a lower bound cannot: a
//! responses partition led by another broker whose clock is a little behind, or a clock that
//! steps back.

use tessera_contract::OfferTerms;

/// What the records read so far say about the broker's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerClock {
    /// The largest `stamp - arrival` seen, in milliseconds; `None` before the first stamp.
    lead_ms: Option<i64>,
}

impl BrokerClock {
    /// A clock that has seen no stamp yet.
    pub fn new() -> Self {
        BrokerClock::default()
    }

    /// Learns from a record the broker stamped `stamp` that arrived here at `arrived_ms` (local
    /// epoch milliseconds). A stale record (read from history) says little, so only the largest
    /// lead counts.
    pub fn observe(&mut self, stamp: i64, arrived_ms: i64) {
        let lead = stamp.saturating_sub(arrived_ms);
        self.lead_ms = Some(self.lead_ms.map_or(lead, |known| known.max(lead)));
    }

    /// How far the broker's clock is estimated to run ahead of the local one (negative if
    /// behind); 0, the local clock itself, before any stamp was seen.
    pub fn lead_ms(&self) -> i64 {
        self.lead_ms.unwrap_or(0)
    }
}

/// When to answer an invitation to an offer with these terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The rule is open by the broker's estimated clock: answer at once.
    Now,
    /// The rule opens later: answer when the local clock reads `local_ms`, which is `broker_ms`
    /// on the broker's estimated clock (the opening plus the margin).
    At {
        /// Local epoch milliseconds to answer at.
        local_ms: i64,
        /// The same instant on the broker's estimated clock.
        broker_ms: i64,
    },
    /// The rule ended at `ended_ms` (broker time), before the broker's estimated clock: an
    /// answer could only be TooLate.
    Never {
        /// The rule's last in-time stamp.
        ended_ms: i64,
    },
}

/// When to answer, for an offer with `terms`, when the broker's clock leads the local one by
/// `lead_ms`, answers keep `margin_ms` after a window's opening, and the local clock reads
/// `local_now_ms`. A window shorter than the margin is answered in its middle, the instant
/// furthest from both ends.
pub fn plan(terms: &OfferTerms, lead_ms: i64, margin_ms: i64, local_now_ms: i64) -> Plan {
    let rule = &terms.time_rule;
    let offer_stamp = terms.position.stamp;
    let (opens, ends) = (rule.opens_at(offer_stamp), rule.ends_at(offer_stamp));
    let broker_now = local_now_ms.saturating_add(lead_ms);
    if broker_now > ends {
        return Plan::Never { ended_ms: ends };
    }
    let middle = opens.saturating_add(ends.saturating_sub(opens) / 2);
    let target = opens.saturating_add(margin_ms.max(0)).min(middle);
    if broker_now >= target {
        Plan::Now
    } else {
        Plan::At {
            local_ms: target.saturating_sub(lead_ms),
            broker_ms: target,
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_contract::{Deadline, LogPosition, TimeRule, Window, Within};

    use super::*;

    fn terms(rule: TimeRule) -> OfferTerms {
        OfferTerms {
            position: LogPosition {
                stamp: 1_000,
                ..LogPosition::default()
            },
            time_rule: rule,
        }
    }

    fn window(from: i64, to: i64) -> OfferTerms {
        terms(TimeRule::Window(Window { from, to }))
    }

    #[test]
    fn a_window_that_opens_later_is_answered_at_its_opening_plus_the_margin() {
        // The broker's clock is 300 ms ahead: 10_000 on the broker is 9_700 here.
        assert_eq!(
            plan(&window(10_000, 20_000), 300, 200, 5_000),
            Plan::At {
                local_ms: 9_900,
                broker_ms: 10_200
            }
        );
        // 300 ms behind: later here.
        assert_eq!(
            plan(&window(10_000, 20_000), -300, 200, 5_000),
            Plan::At {
                local_ms: 10_500,
                broker_ms: 10_200
            }
        );
    }

    #[test]
    fn an_open_rule_is_answered_now() {
        assert_eq!(plan(&window(10_000, 20_000), 0, 200, 10_200), Plan::Now);
        assert_eq!(plan(&window(10_000, 20_000), 5_000, 200, 6_000), Plan::Now);
        let deadline = terms(TimeRule::Deadline(Deadline { at: 20_000 }));
        assert_eq!(plan(&deadline, 0, 200, 19_999), Plan::Now);
        let within = terms(TimeRule::Within(Within { duration_ms: 500 }));
        assert_eq!(plan(&within, 0, 200, 1_500), Plan::Now);
    }

    #[test]
    fn an_ended_rule_is_never_answered() {
        assert_eq!(
            plan(&window(10_000, 20_000), 0, 200, 20_001),
            Plan::Never { ended_ms: 20_000 }
        );
        // Ended by the broker's clock though not by the local one.
        assert_eq!(
            plan(&window(10_000, 20_000), 1_000, 200, 19_500),
            Plan::Never { ended_ms: 20_000 }
        );
        let deadline = terms(TimeRule::Deadline(Deadline { at: 20_000 }));
        assert_eq!(
            plan(&deadline, 0, 200, 20_001),
            Plan::Never { ended_ms: 20_000 }
        );
        let within = terms(TimeRule::Within(Within { duration_ms: 500 }));
        assert_eq!(
            plan(&within, 0, 200, 1_501),
            Plan::Never { ended_ms: 1_500 }
        );
    }

    #[test]
    fn a_window_shorter_than_the_margin_is_answered_in_its_middle() {
        assert_eq!(
            plan(&window(10_000, 10_100), 0, 200, 5_000),
            Plan::At {
                local_ms: 10_050,
                broker_ms: 10_050
            }
        );
        assert_eq!(plan(&window(10_000, 10_100), 0, 200, 10_060), Plan::Now);
    }

    #[test]
    fn the_clock_keeps_the_freshest_stamp() {
        let mut clock = BrokerClock::new();
        assert_eq!(clock.lead_ms(), 0, "the local clock until a stamp is seen");
        // Read from history: stamped an hour before it arrived.
        clock.observe(1_000, 3_601_000);
        assert_eq!(clock.lead_ms(), -3_600_000);
        // Fresh: stamped 40 ms after the local clock read the same.
        clock.observe(5_000_040, 5_000_000);
        assert_eq!(clock.lead_ms(), 40);
        clock.observe(6_000_000, 6_000_500);
        assert_eq!(clock.lead_ms(), 40, "a record that took long says less");
    }
}
