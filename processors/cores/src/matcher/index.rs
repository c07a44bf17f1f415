//! The index over stored interests that lets the matcher find an offer's subscribers without
//! checking every interest, kept in the task's [`State`] so that an aborted transaction rolls it
//! back and a restore from the changelog rebuilds it.
//!
//! Each interest is filed once, under its *anchor*: the most selective condition it states
//! (identifier, then a feature, then a name word, then a range's parameter, else "any offer").
//! An offer looks up every anchor it could satisfy (its identifier, each feature, each name word,
//! each parameter, and "any"), so every interest it meets is among the postings read; each
//! posting carries its interest, and the full predicate decides.
//!
//! Keys:
//! - `posting/<anchor><subscriber>/<n>` holds the subscriber's n-th interest, where `<anchor>` is
//!   a tag (`i` identifier, `f` feature, `w` word, `p` parameter, `*` any) followed by the
//!   anchor's strings and `<subscriber>` is the subscriber id, each string written as
//!   `<byte length>:<bytes>`. Length prefixes keep the layout unambiguous for any strings, and no
//!   anchor's prefix is a prefix of another anchor's keys.
//! - `subscriber/<id>` lists the subscriber's posting keys, so a re-registration or a removal
//!   deletes exactly the postings it made, whatever anchor rules a later release has.

use std::collections::BTreeSet;
use std::iter;

use serde::{Deserialize, Serialize};
use tessera_contract::Interest;
use tessera_state::{State, Table};

use super::predicate::{Need, OfferFacts, satisfies};

/// A subscriber's postings, to delete them when it re-registers or leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Registration {
    postings: Vec<String>,
}

const REGISTRATIONS: Table<Registration> = Table::new("subscriber/");
const POSTING: &str = "posting/";
const POSTINGS: Table<Need> = Table::new(POSTING);

/// The condition an interest is filed under and an offer is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor<'a> {
    /// An exact identifier.
    Identifier(&'a str),
    /// A feature key with its value.
    Feature(&'a str, &'a str),
    /// A lowercase word of the name.
    Word(&'a str),
    /// A parameter's name, whatever its value: a range alone says little about which offers
    /// fit, so such interests share one posting list per parameter.
    Parameter(&'a str),
    /// Interests with no condition: every offer meets them.
    Any,
}

impl<'a> Anchor<'a> {
    /// The most selective condition of a need. Among features the first key is taken; among
    /// words the longest (then the first in order), as longer words tend to be rarer.
    pub fn of(need: &'a Need) -> Self {
        if let Some(identifier) = &need.identifier {
            return Anchor::Identifier(identifier);
        }
        if let Some((key, value)) = need.features.first() {
            return Anchor::Feature(key, value);
        }
        if let Some(word) = need
            .words
            .iter()
            .max_by(|a, b| a.len().cmp(&b.len()).then_with(|| b.cmp(a)))
        {
            return Anchor::Word(word);
        }
        if let Some(bound) = need.ranges.first() {
            return Anchor::Parameter(&bound.parameter);
        }
        Anchor::Any
    }

    /// Every anchor an interest the offer meets can be filed under.
    pub fn of_offer(offer: &'a OfferFacts<'a>) -> impl Iterator<Item = Anchor<'a>> + 'a {
        let recommendation = offer.recommendation;
        iter::once(Anchor::Identifier(&recommendation.identifier))
            .chain(
                recommendation
                    .features
                    .iter()
                    .map(|(k, v)| Anchor::Feature(k, v)),
            )
            .chain(offer.words.iter().map(|w| Anchor::Word(w)))
            .chain(
                recommendation
                    .parameters
                    .keys()
                    .map(|p| Anchor::Parameter(p)),
            )
            .chain(iter::once(Anchor::Any))
    }

    /// The key prefix of the postings filed under this anchor: of interests here, of open offers
    /// in [`super::open`].
    pub(super) fn prefix(&self) -> String {
        let mut key = String::new();
        match self {
            Anchor::Identifier(identifier) => {
                key.push('i');
                push_field(&mut key, identifier);
            }
            Anchor::Feature(name, value) => {
                key.push('f');
                push_field(&mut key, name);
                push_field(&mut key, value);
            }
            Anchor::Word(word) => {
                key.push('w');
                push_field(&mut key, word);
            }
            Anchor::Parameter(parameter) => {
                key.push('p');
                push_field(&mut key, parameter);
            }
            Anchor::Any => key.push('*'),
        }
        key
    }
}

/// Appends `<byte length>:<bytes>`.
pub(super) fn push_field(key: &mut String, field: &str) {
    key.push_str(&field.len().to_string());
    key.push(':');
    key.push_str(field);
}

/// Splits `<byte length>:<bytes><rest>` into the field and the rest.
fn split_field(key: &str) -> Option<(&str, &str)> {
    let (len, rest) = key.split_once(':')?;
    let len: usize = len.parse().ok()?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// The id a posting key files under its anchor: the subscriber of an interest's posting, the
/// offer of an open offer's.
pub(super) fn owner_of(key: &str) -> Option<&str> {
    let fields = match key.as_bytes().first()? {
        b'i' | b'w' | b'p' => 1,
        b'f' => 2,
        b'*' => 0,
        _ => return None,
    };
    let mut rest = &key[1..];
    for _ in 0..fields {
        rest = split_field(rest)?.1;
    }
    Some(split_field(rest)?.0)
}

/// Files the subscriber's interests, replacing whatever it had registered before.
pub fn register(state: &mut dyn State, subscriber: &str, interests: &[Interest]) {
    remove(state, subscriber);
    let postings = interests
        .iter()
        .enumerate()
        .map(|(n, interest)| {
            let need = Need::from(interest);
            let mut key = Anchor::of(&need).prefix();
            push_field(&mut key, subscriber);
            key.push('/');
            key.push_str(&n.to_string());
            POSTINGS.put(state, &key, &need);
            key
        })
        .collect();
    REGISTRATIONS.put(state, subscriber, &Registration { postings });
}

/// Forgets the subscriber and its interests; a subscriber never registered is no error.
pub fn remove(state: &mut dyn State, subscriber: &str) {
    let Some(registration) = REGISTRATIONS.get(state, subscriber) else {
        return;
    };
    for key in &registration.postings {
        POSTINGS.delete(state, key);
    }
    REGISTRATIONS.delete(state, subscriber);
}

/// The subscribers with an interest the offer meets, in id order, reading only the postings of
/// the offer's anchors.
pub fn matching(state: &dyn State, offer: &OfferFacts<'_>) -> BTreeSet<String> {
    let mut matched = BTreeSet::new();
    for anchor in Anchor::of_offer(offer) {
        let prefix = format!("{POSTING}{}", anchor.prefix());
        verify(state.scan(prefix.as_bytes()), offer, &mut matched);
    }
    matched
}

/// The same answer as [`matching`] by checking every stored interest: the baseline that tests
/// and the benchmark hold the index against.
pub fn scan_matching(state: &dyn State, offer: &OfferFacts<'_>) -> BTreeSet<String> {
    let mut matched = BTreeSet::new();
    verify(state.scan(POSTING.as_bytes()), offer, &mut matched);
    matched
}

/// Adds the owners of the postings whose interest the offer meets. Works on the raw entries and
/// decodes an interest only when its subscriber is not matched yet: verification is most of the
/// work per posting.
fn verify(
    postings: Vec<(Vec<u8>, Vec<u8>)>,
    offer: &OfferFacts<'_>,
    matched: &mut BTreeSet<String>,
) {
    for (key, value) in postings {
        let Some(subscriber) = std::str::from_utf8(&key[POSTING.len()..])
            .ok()
            .and_then(owner_of)
        else {
            continue;
        };
        if !matched.contains(subscriber)
            && postcard::from_bytes::<Need<&str>>(&value).is_ok_and(|need| satisfies(&need, offer))
        {
            matched.insert(subscriber.to_string());
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use tessera_contract::{ParameterRange, Recommendation};
    use tessera_state::MemoryState;

    use super::*;

    /// State that counts what scans read, to show which postings a lookup touched.
    #[derive(Default)]
    struct Counting {
        inner: MemoryState,
        read: Cell<usize>,
    }

    impl State for Counting {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.inner.get(key)
        }
        fn put(&mut self, key: &[u8], value: &[u8]) {
            self.inner.put(key, value);
        }
        fn delete(&mut self, key: &[u8]) {
            self.inner.delete(key);
        }
        fn scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
            let entries = self.inner.scan(prefix);
            self.read.set(self.read.get() + entries.len());
            entries
        }
        fn first(&self, prefix: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
            self.inner.first(prefix)
        }
    }

    fn interest() -> Interest {
        Interest {
            identifier: None,
            terms: vec![],
            features: BTreeMap::new(),
            ranges: vec![],
        }
    }

    fn identifier(id: &str) -> Interest {
        Interest {
            identifier: Some(id.into()),
            ..interest()
        }
    }

    fn feature(key: &str, value: &str) -> Interest {
        Interest {
            features: BTreeMap::from([(key.into(), value.into())]),
            ..interest()
        }
    }

    fn recommendation(id: &str, name: &str, features: &[(&str, &str)]) -> Recommendation {
        Recommendation {
            identifier: id.into(),
            name: name.into(),
            features: features
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            parameters: BTreeMap::from([("price".into(), 50)]),
        }
    }

    #[test]
    fn interests_are_anchored_on_their_most_selective_condition() {
        let all = Interest {
            identifier: Some("id".into()),
            terms: vec!["ab abc xyz".into()],
            features: BTreeMap::from([("k".into(), "v".into()), ("a".into(), "b".into())]),
            ranges: vec![ParameterRange {
                name: "price".into(),
                min: None,
                max: Some(5),
            }],
        };
        let mut interest = all.clone();
        assert_eq!(Anchor::of(&Need::from(&interest)), Anchor::Identifier("id"));
        interest.identifier = None;
        assert_eq!(
            Anchor::of(&Need::from(&interest)),
            Anchor::Feature("a", "b")
        );
        interest.features.clear();
        assert_eq!(Anchor::of(&Need::from(&interest)), Anchor::Word("abc"));
        interest.terms.clear();
        assert_eq!(
            Anchor::of(&Need::from(&interest)),
            Anchor::Parameter("price")
        );
        interest.ranges.clear();
        assert_eq!(Anchor::of(&Need::from(&interest)), Anchor::Any);
    }

    #[test]
    fn no_anchor_prefix_reaches_into_another_anchors_keys() {
        let anchors = [
            Anchor::Identifier("ab"),
            Anchor::Identifier("abc"),
            Anchor::Identifier("a"),
            Anchor::Identifier("1:a"),
            Anchor::Feature("a", "bc"),
            Anchor::Feature("ab", "c"),
            Anchor::Feature("a", "1:b"),
            Anchor::Word("ab"),
            Anchor::Parameter("ab"),
            Anchor::Any,
        ];
        for a in &anchors {
            for b in &anchors {
                if a != b {
                    assert!(
                        !b.prefix().starts_with(&a.prefix()),
                        "{a:?} reaches into {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn posting_keys_name_their_subscriber_whatever_the_strings() {
        let mut state = MemoryState::new();
        for subscriber in ["1:a", "a/0", "", "ü:/", "12", "2:ab/1"] {
            let interests = [
                identifier(subscriber),
                feature(subscriber, "1:x"),
                interest(),
            ];
            register(&mut state, subscriber, &interests);
            let registration = REGISTRATIONS.get(&state, subscriber).expect("registered");
            assert_eq!(registration.postings.len(), 3);
            for key in &registration.postings {
                assert_eq!(owner_of(key), Some(subscriber), "{key}");
            }
        }
    }

    #[test]
    fn a_selective_offer_reads_only_its_candidates() {
        let mut state = Counting::default();
        for n in 0..1000 {
            register(
                &mut state,
                &format!("s{n}"),
                &[identifier(&format!("id-{n}"))],
            );
        }
        for n in 0..100 {
            register(
                &mut state,
                &format!("f{n}"),
                &[feature("brand", &format!("b{}", n % 10))],
            );
        }
        register(&mut state, "all", &[interest()]);
        let offer = recommendation("id-7", "Some thing", &[("brand", "b3")]);
        state.read.set(0);
        let matched = matching(&state, &OfferFacts::new(&offer));
        assert_eq!(
            state.read.get(),
            1 + 10 + 1,
            "its identifier, its brand, and the wildcard"
        );
        let expected: BTreeSet<String> = ["s7", "all"]
            .into_iter()
            .map(String::from)
            .chain((0..10).map(|n| format!("f{}", n * 10 + 3)))
            .collect();
        assert_eq!(matched, expected);
        state.read.set(0);
        assert_eq!(scan_matching(&state, &OfferFacts::new(&offer)), expected);
        assert_eq!(state.read.get(), 1101, "the scan reads every interest");
    }

    #[test]
    fn re_registering_replaces_every_posting() {
        let mut state = MemoryState::new();
        register(&mut state, "s", &[identifier("old"), feature("k", "v")]);
        register(&mut state, "s", &[identifier("new")]);
        let mut fresh = MemoryState::new();
        register(&mut fresh, "s", &[identifier("new")]);
        assert_eq!(state, fresh);
    }

    #[test]
    fn removing_leaves_nothing_behind() {
        let mut state = MemoryState::new();
        register(&mut state, "s", &[identifier("a"), interest(), interest()]);
        remove(&mut state, "s");
        remove(&mut state, "never-registered");
        assert!(state.is_empty());
    }

    fn words() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["red", "Red shoe", "shoe-box", "box", "", "x y"])
            .prop_map(String::from)
    }

    fn small() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from)
    }

    fn bound() -> impl Strategy<Value = Option<i64>> {
        prop::option::of(-3i64..3)
    }

    /// Interests over a small vocabulary, so that random offers meet some of them.
    pub(in crate::matcher) fn any_interest() -> impl Strategy<Value = Interest> {
        (
            prop::option::of(small()),
            prop::collection::vec(words(), 0..3),
            prop::collection::btree_map(small(), small(), 0..3),
            prop::collection::vec((small(), bound(), bound()), 0..3),
        )
            .prop_map(|(identifier, terms, features, ranges)| Interest {
                identifier,
                terms,
                features,
                ranges: ranges
                    .into_iter()
                    .map(|(name, min, max)| ParameterRange { name, min, max })
                    .collect(),
            })
    }

    /// Recommendations over the vocabulary of [`any_interest`].
    pub(in crate::matcher) fn any_offer() -> impl Strategy<Value = Recommendation> {
        (
            small(),
            prop::collection::vec(words(), 0..4),
            prop::collection::btree_map(small(), small(), 0..3),
            prop::collection::btree_map(small(), -4i64..4, 0..3),
        )
            .prop_map(|(identifier, name, features, parameters)| Recommendation {
                identifier,
                name: name.join(" "),
                features,
                parameters,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever was registered, replaced and removed, the index and the linear scan both find
        /// exactly the subscribers whose latest registration has an interest the offer meets.
        #[test]
        fn the_index_finds_what_a_linear_scan_finds(
            changes in prop::collection::vec(
                (0u8..6, prop::option::of(prop::collection::vec(any_interest(), 0..4))),
                1..30,
            ),
            offers in prop::collection::vec(any_offer(), 1..10),
        ) {
            let mut state = MemoryState::new();
            let mut latest = BTreeMap::new();
            for (subscriber, interests) in &changes {
                let subscriber = format!("s{subscriber}");
                match interests {
                    Some(interests) => {
                        register(&mut state, &subscriber, interests);
                        latest.insert(subscriber, interests.clone());
                    }
                    None => {
                        remove(&mut state, &subscriber);
                        latest.remove(&subscriber);
                    }
                }
            }
            for offer in &offers {
                let facts = OfferFacts::new(offer);
                let expected: BTreeSet<String> = latest
                    .iter()
                    .filter(|(_, interests)| interests.iter().any(|i| satisfies(&Need::from(i), &facts)))
                    .map(|(subscriber, _)| subscriber.clone())
                    .collect();
                prop_assert_eq!(&scan_matching(&state, &facts), &expected);
                prop_assert_eq!(matching(&state, &facts), expected);
            }
        }
    }
}
