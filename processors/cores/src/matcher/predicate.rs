//! Whether an offer meets a stored need: the one definition of a match, which both the index's
//! verification and the benchmark's linear scan call, so the index can only be faster than the
//! scan, never different from it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tessera_contract::{Interest, Recommendation};

/// A subscriber's interest as the matcher stores it: terms already split into lowercase words,
/// so verifying a candidate does no text work. Its own type rather than the Avro [`Interest`], so
/// the contract can evolve without breaking stored state.
///
/// Generic over its strings so that verification can read a stored need as slices of the stored
/// bytes (`Need<&str>`) instead of allocating every string of every candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need<S = String> {
    /// The offer's identifier must equal it exactly.
    pub identifier: Option<S>,
    /// Lowercase words that must all appear among the words of the offer's name; sorted, unique.
    pub words: Vec<S>,
    /// Features (key, value) the offer must carry with exactly these values; sorted by key,
    /// keys unique.
    pub features: Vec<(S, S)>,
    /// Numeric parameters the offer must carry within these inclusive bounds.
    pub ranges: Vec<Bound<S>>,
}

/// An inclusive bound on one numeric parameter; a missing end is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound<S = String> {
    /// The parameter's name.
    pub parameter: S,
    /// Smallest acceptable value.
    pub min: Option<i64>,
    /// Largest acceptable value.
    pub max: Option<i64>,
}

impl From<&Interest> for Need {
    fn from(interest: &Interest) -> Self {
        // A term is split like the name is, so "T-Shirt" asks for the words "t" and "shirt"
        // rather than for a word that tokenising the name can never produce.
        let words: BTreeSet<String> = interest.terms.iter().flat_map(|t| words(t)).collect();
        Need {
            identifier: interest.identifier.clone(),
            words: words.into_iter().collect(),
            features: interest
                .features
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ranges: interest
                .ranges
                .iter()
                .map(|r| Bound {
                    parameter: r.name.clone(),
                    min: r.min,
                    max: r.max,
                })
                .collect(),
        }
    }
}

/// The words of a text: maximal runs of alphanumeric characters, lowercased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// An offer's recommendation with its name split into words once, however many needs it is
/// checked against.
#[derive(Debug, Clone)]
pub struct OfferFacts<'a> {
    /// What the offer says about itself.
    pub recommendation: &'a Recommendation,
    /// The distinct words of its name.
    pub words: BTreeSet<String>,
}

impl<'a> OfferFacts<'a> {
    /// Splits the recommendation's name into words.
    pub fn new(recommendation: &'a Recommendation) -> Self {
        OfferFacts {
            recommendation,
            words: words(&recommendation.name).collect(),
        }
    }
}

/// Whether the offer meets every condition the need states. A need with no condition is met by
/// every offer.
pub fn satisfies<S: AsRef<str>>(need: &Need<S>, offer: &OfferFacts<'_>) -> bool {
    let recommendation = offer.recommendation;
    need.identifier
        .as_ref()
        .is_none_or(|id| id.as_ref() == recommendation.identifier)
        && need.words.iter().all(|w| offer.words.contains(w.as_ref()))
        && need.features.iter().all(|(key, value)| {
            recommendation
                .features
                .get(key.as_ref())
                .is_some_and(|v| v == value.as_ref())
        })
        && need.ranges.iter().all(|bound| {
            recommendation
                .parameters
                .get(bound.parameter.as_ref())
                .is_some_and(|&v| {
                    bound.min.is_none_or(|min| min <= v) && bound.max.is_none_or(|max| v <= max)
                })
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use tessera_contract::ParameterRange;

    fn offer() -> Recommendation {
        Recommendation {
            identifier: "sku-42".into(),
            name: "Red running SHOES, size-44 (Men's)".into(),
            features: BTreeMap::from([
                ("colour".into(), "red".into()),
                ("brand".into(), "Acme".into()),
            ]),
            parameters: BTreeMap::from([("price".into(), 100), ("size".into(), 44)]),
        }
    }

    fn met(interest: Interest) -> bool {
        let recommendation = offer();
        satisfies(&Need::from(&interest), &OfferFacts::new(&recommendation))
    }

    fn nothing() -> Interest {
        Interest {
            identifier: None,
            terms: vec![],
            features: BTreeMap::new(),
            ranges: vec![],
        }
    }

    fn range(name: &str, min: Option<i64>, max: Option<i64>) -> Interest {
        Interest {
            ranges: vec![ParameterRange {
                name: name.into(),
                min,
                max,
            }],
            ..nothing()
        }
    }

    fn terms(terms: &[&str]) -> Interest {
        Interest {
            terms: terms.iter().map(|t| t.to_string()).collect(),
            ..nothing()
        }
    }

    #[test]
    fn an_interest_without_conditions_matches_every_offer() {
        assert!(met(nothing()));
    }

    #[test]
    fn the_identifier_must_be_equal_exactly() {
        let id = |id: &str| Interest {
            identifier: Some(id.into()),
            ..nothing()
        };
        assert!(met(id("sku-42")));
        assert!(!met(id("SKU-42")));
        assert!(!met(id("sku-4")));
        assert!(!met(id("sku-42 ")));
    }

    #[test]
    fn terms_are_whole_words_in_any_case() {
        assert!(met(terms(&["shoes"])));
        assert!(met(terms(&["RED", "Running"])));
        assert!(met(terms(&["men"])), "an apostrophe splits words");
        assert!(met(terms(&["44"])));
        assert!(!met(terms(&["shoe"])), "a part of a word is not the word");
        assert!(!met(terms(&["run"])));
        assert!(!met(terms(&["red", "boots"])), "every term must appear");
    }

    #[test]
    fn a_term_is_split_into_words_like_the_name() {
        assert!(met(terms(&["Size-44"])));
        assert!(met(terms(&["running shoes"])));
        assert!(!met(terms(&["size-45"])));
        assert_eq!(Need::from(&terms(&["B-b", "a", "b"])).words, ["a", "b"]);
    }

    #[test]
    fn features_must_be_present_with_exactly_that_value() {
        let features = |pairs: &[(&str, &str)]| Interest {
            features: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..nothing()
        };
        assert!(met(features(&[("colour", "red")])));
        assert!(met(features(&[("colour", "red"), ("brand", "Acme")])));
        assert!(!met(features(&[("colour", "Red")])));
        assert!(!met(features(&[("colour", "red"), ("brand", "Other")])));
        assert!(!met(features(&[("material", "leather")])));
    }

    #[test]
    fn ranges_are_inclusive_and_open_where_an_end_is_missing() {
        assert!(met(range("price", Some(100), Some(100))));
        assert!(met(range("price", None, Some(100))));
        assert!(met(range("price", Some(100), None)));
        assert!(met(range("price", None, None)));
        assert!(!met(range("price", None, Some(99))));
        assert!(!met(range("price", Some(101), None)));
        assert!(
            !met(range("weight", None, None)),
            "the parameter must be present"
        );
        assert!(
            !met(range("price", Some(200), Some(50))),
            "an empty range matches nothing"
        );
    }

    #[test]
    fn every_condition_of_an_interest_must_hold() {
        let all = Interest {
            identifier: Some("sku-42".into()),
            terms: vec!["shoes".into()],
            features: BTreeMap::from([("colour".into(), "red".into())]),
            ranges: vec![ParameterRange {
                name: "size".into(),
                min: Some(40),
                max: Some(46),
            }],
        };
        assert!(met(all.clone()));
        let mut other_size = all.clone();
        other_size.ranges[0].max = Some(43);
        assert!(!met(other_size));
        let mut other_term = all;
        other_term.terms.push("boots".into());
        assert!(!met(other_term));
    }
}
