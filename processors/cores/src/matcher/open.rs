//! The open offers that invite late (`invite_late`), indexed so that a new or changed
//! registration finds the ones its interests meet: the reverse of [`super::index`].
//!
//! Every task reads every offer, so every task keeps every open offer; it invites only the
//! subscribers of its own partition to them. An offer is kept from its arrival until its time rule
//! ends or its provider withdraws it, and what it costs in state goes with it.
//!
//! The index mirrors the interests' one. An interest is filed once, under its most selective
//! condition, and an offer looks up every condition it could satisfy; here an offer is filed under
//! every condition it could satisfy (its identifier, each feature, each name word, each parameter,
//! and "any"), and an interest looks up its one anchor. Every offer the interest meets is filed
//! under that anchor, so it is among the postings read; the full predicate decides.
//!
//! Keys:
//! - `open/<offer>` holds what an invitation to the offer carries and who may withdraw it
//!   ([`OpenOffer`]), and its posting keys, so closing it deletes exactly what it filed;
//! - `open-posting/<anchor><offer>`, empty, with the anchor and the offer id written as in the
//!   interests' postings (length-prefixed, so no anchor's keys reach into another's);
//! - `invited/<offer><subscriber>`, empty, for each subscriber of the task invited to the open
//!   offer, early or late, so a re-registration does not invite it again;
//! - the close timers ([`CLOSES`]), one per offer at the end of its rule.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_contract::signing::{Signed, VerifyingKey};
use tessera_contract::topics::OFFERS;
use tessera_contract::{Interest, OfferTerms, OfferWithdrawn, Recommendation};
use tessera_state::{State, Table};

use super::index::{Anchor, owner_of, push_field};
use super::predicate::{Need, OfferFacts, satisfies};
use crate::timers::Timers;

/// An open offer as the matcher keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOffer {
    /// The provider: only its withdrawal closes the offer.
    pub provider_id: String,
    /// The provider key the offer carried: the withdrawal must be signed with it, as the
    /// timekeeper demands.
    pub signing_key: Vec<u8>,
    /// Forwarded in each invitation.
    pub provider_contact: String,
    /// What is offered: matched against interests, and forwarded in each invitation.
    pub recommendation: Recommendation,
    /// Where the offer sat and its time rule, as its invitations cite them.
    pub terms: OfferTerms,
    /// How long after a release its acceptance still earns, forwarded in each invitation.
    pub decide_within: Option<i64>,
    /// The keys of its postings.
    postings: Vec<String>,
}

impl OpenOffer {
    /// An offer to keep open: its postings are filed when it is kept.
    pub fn new(
        provider_id: String,
        signing_key: Vec<u8>,
        provider_contact: String,
        recommendation: Recommendation,
        terms: OfferTerms,
        decide_within: Option<i64>,
    ) -> Self {
        OpenOffer {
            provider_id,
            signing_key,
            provider_contact,
            recommendation,
            terms,
            decide_within,
            postings: Vec::new(),
        }
    }
}

const OPEN: Table<OpenOffer> = Table::new("open/");
const POSTING: &str = "open-posting/";
const POSTINGS: Table<()> = Table::new(POSTING);
const INVITED: Table<()> = Table::new("invited/");
/// Each open offer's close, at the last stamp its rule counts: the first input after it closes
/// the offer here.
pub const CLOSES: Timers = Timers::new("open-close/", "open-next/");

/// `<offer><subscriber>`, each length-prefixed, for [`INVITED`].
fn invited_key(offer_id: &str, subscriber_id: &str) -> String {
    let mut key = String::new();
    push_field(&mut key, offer_id);
    push_field(&mut key, subscriber_id);
    key
}

/// Keeps `offer` open until `ends_at` (its rule's last stamp), filed under every anchor it could
/// satisfy.
pub fn keep(state: &mut dyn State, offer_id: &str, mut offer: OpenOffer, ends_at: i64) {
    let facts = OfferFacts::new(&offer.recommendation);
    let postings: BTreeSet<String> = Anchor::of_offer(&facts)
        .map(|anchor| {
            let mut key = anchor.prefix();
            push_field(&mut key, offer_id);
            key
        })
        .collect();
    for key in &postings {
        POSTINGS.put(state, key, &());
    }
    offer.postings = postings.into_iter().collect();
    OPEN.put(state, offer_id, &offer);
    CLOSES.schedule(state, ends_at, offer_id);
}

/// Notes that the subscriber was invited to the open offer.
pub fn invited(state: &mut dyn State, offer_id: &str, subscriber_id: &str) {
    INVITED.put(state, &invited_key(offer_id, subscriber_id), &());
}

/// Whether the subscriber was invited to the open offer.
pub fn was_invited(state: &dyn State, offer_id: &str, subscriber_id: &str) -> bool {
    INVITED
        .get(state, &invited_key(offer_id, subscriber_id))
        .is_some()
}

/// Closes every offer whose rule ended before `now`, the stamp of the input at hand: the timer
/// fires strictly after its due stamp, and every bound of a rule is inclusive.
pub fn expire(state: &mut dyn State, now: i64) {
    while let Some((_, offer_id)) = CLOSES.pop_due(state, now) {
        close(state, &offer_id);
    }
}

/// Closes the offer if `withdrawal` is its provider's, signed with the key the offer carried. Any
/// other changes nothing here: the timekeeper refuses it, on the dead letters.
pub fn withdraw(state: &mut dyn State, withdrawal: &OfferWithdrawn, signed: &Signed) {
    let Some(offer) = OPEN.get(state, &withdrawal.offer_id) else {
        return;
    };
    let by_provider = offer.provider_id == withdrawal.provider_id
        && VerifyingKey::from_bytes(&offer.signing_key).is_ok_and(|key| {
            key.verify_record(OFFERS.name, signed, &offer.provider_id)
                .is_ok()
        });
    if by_provider {
        close(state, &withdrawal.offer_id);
    }
}

/// Forgets the offer, its postings and whom it invited. Its timer, if it is still set, finds
/// nothing when it fires.
fn close(state: &mut dyn State, offer_id: &str) {
    let Some(offer) = OPEN.get(state, offer_id) else {
        return;
    };
    for key in &offer.postings {
        POSTINGS.delete(state, key);
    }
    let mut invited = String::new();
    push_field(&mut invited, offer_id);
    for (key, ()) in INVITED.range(state, &invited) {
        INVITED.delete(state, &key);
    }
    OPEN.delete(state, offer_id);
}

/// The open offers an interest among `interests` meets, by id, reading only the postings of each
/// interest's anchor.
pub fn matching(state: &dyn State, interests: &[Interest]) -> BTreeMap<String, OpenOffer> {
    let mut matched = BTreeMap::new();
    for interest in interests {
        let need = Need::from(interest);
        let prefix = format!("{POSTING}{}", Anchor::of(&need).prefix());
        for (key, _) in state.scan(prefix.as_bytes()) {
            let Some(offer_id) = std::str::from_utf8(&key[POSTING.len()..])
                .ok()
                .and_then(owner_of)
            else {
                continue;
            };
            if matched.contains_key(offer_id) {
                continue;
            }
            if let Some(offer) = OPEN.get(state, offer_id)
                && satisfies(&need, &OfferFacts::new(&offer.recommendation))
            {
                matched.insert(offer_id.to_string(), offer);
            }
        }
    }
    matched
}

/// The same answer as [`matching`] by checking every open offer: the baseline that tests and the
/// benchmark hold the index against.
pub fn scan_matching(state: &dyn State, interests: &[Interest]) -> BTreeMap<String, OpenOffer> {
    let needs: Vec<Need> = interests.iter().map(Need::from).collect();
    OPEN.range(state, "")
        .into_iter()
        .filter(|(_, offer)| {
            let facts = OfferFacts::new(&offer.recommendation);
            needs.iter().any(|need| satisfies(need, &facts))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tessera_contract::{Deadline, LogPosition, TimeRule};
    use tessera_state::MemoryState;

    use super::super::index::tests::{any_interest, any_offer};
    use super::*;

    fn open(recommendation: Recommendation) -> OpenOffer {
        let terms = OfferTerms {
            position: LogPosition::default(),
            time_rule: TimeRule::Deadline(Deadline { at: 100 }),
        };
        OpenOffer::new(
            "A".into(),
            vec![],
            "a@example.org".into(),
            recommendation,
            terms,
            None,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever was kept open and closed, the index and the linear scan both find exactly the
        /// open offers an interest meets, and closing every offer leaves nothing behind.
        #[test]
        fn the_index_finds_what_a_linear_scan_finds(
            offers in prop::collection::vec((any_offer(), any::<bool>()), 1..20),
            interests in prop::collection::vec(any_interest(), 0..4),
        ) {
            let mut state = MemoryState::new();
            let mut expected = BTreeSet::new();
            for (n, (recommendation, stays_open)) in offers.iter().enumerate() {
                let offer_id = format!("o/{n}");
                keep(&mut state, &offer_id, open(recommendation.clone()), 100);
                invited(&mut state, &offer_id, "s");
                if *stays_open {
                    let facts = OfferFacts::new(recommendation);
                    if interests.iter().any(|i| satisfies(&Need::from(i), &facts)) {
                        expected.insert(offer_id);
                    }
                } else {
                    close(&mut state, &offer_id);
                }
            }
            let ids = |offers: BTreeMap<String, OpenOffer>| offers.into_keys().collect::<BTreeSet<_>>();
            prop_assert_eq!(&ids(scan_matching(&state, &interests)), &expected);
            prop_assert_eq!(ids(matching(&state, &interests)), expected);
            expire(&mut state, 101);
            prop_assert!(state.is_empty(), "{:?}", state);
        }
    }
}
