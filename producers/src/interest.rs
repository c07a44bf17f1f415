//! The interest syntax: how a subscriber writes a stored need on one command-line argument, and
//! how it reads back.
//!
//! An [`Interest`] has four kinds of condition (identifier, name terms, features, numeric ranges);
//! typing them as one `;`-separated string keeps a need readable and lets `--interest` repeat, one
//! need per flag. The same syntax states a subscriber's automatic response policy, so
//! [`satisfies`] judges a recommendation against it.

use std::collections::BTreeMap;

use tessera_contract::{Interest, ParameterRange, Recommendation};

/// The syntax, for `--help` texts.
pub const SYNTAX: &str = "\
Interest syntax: conditions separated by `;`, all of which must hold.
  id=ID           the offer's identifier is exactly ID
  terms=WORDS     every word appears in the offer's name (whole words, any case)
  KEY=VALUE       the offer has feature KEY with exactly VALUE
  NAME<=N         the offer's integer parameter NAME is at most N (inclusive)
  NAME>=N         ... at least N (inclusive)
  NAME=MIN..MAX   ... between MIN and MAX, inclusive; either end may be left out
Parameters are integers, money in minor units (9900 for 99.00). Examples:
  'id=doc-X'
  'terms=quarterly report; format=pdf; price<=10000; pages>=10'
  'lang=en; year=2020..2026'";

/// A part of an interest that could not be read; the message quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum InterestError {
    /// No condition at all: it would match every offer.
    #[error("an interest needs at least one condition, e.g. 'id=doc-X' or 'terms=report'")]
    Empty,
    /// A condition with no operator.
    #[error("`{0}` is not a condition: expected KEY=VALUE, NAME<=N, NAME>=N or NAME=MIN..MAX")]
    NoOperator(String),
    /// `<` or `>` alone: every bound is inclusive.
    #[error("`{0}`: bounds are inclusive, write <= or >=")]
    Strict(String),
    /// A condition with nothing before the operator.
    #[error("`{0}` names no key before its operator")]
    NoKey(String),
    /// A key with characters other than letters, digits, `_`, `-` and `.`.
    #[error("`{0}` is not a key: use letters, digits, `_`, `-` and `.`")]
    BadKey(String),
    /// A condition with nothing after the operator.
    #[error("`{0}` has no value after its operator")]
    NoValue(String),
    /// A bound that is not an integer.
    #[error("in `{clause}`: `{value}` is not an integer")]
    NotAnInteger { clause: String, value: String },
    /// A range whose smallest value is above its largest.
    #[error("`{name}` cannot be both >= {min} and <= {max}")]
    EmptyRange { name: String, min: i64, max: i64 },
    /// The same identifier or feature given twice with different values.
    #[error("`{key}` is given twice, as `{first}` and `{second}`")]
    Conflict {
        key: String,
        first: String,
        second: String,
    },
}

/// Reads one interest, e.g. `id=doc-X` or `terms=quarterly report; format=pdf; price<=100`.
pub fn parse(text: &str) -> Result<Interest, InterestError> {
    let mut interest = Interest {
        identifier: None,
        terms: Vec::new(),
        features: BTreeMap::new(),
        ranges: Vec::new(),
    };
    let mut bounds: BTreeMap<String, (Option<i64>, Option<i64>)> = BTreeMap::new();
    for clause in text.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        let (key, operator, value) = split_clause(clause)?;
        match operator {
            Operator::AtMost => tighten(&mut bounds, key, None, Some(integer(clause, value)?)),
            Operator::AtLeast => tighten(&mut bounds, key, Some(integer(clause, value)?), None),
            Operator::Equals => match key {
                "id" => match &interest.identifier {
                    Some(first) if first != value => {
                        return Err(InterestError::Conflict {
                            key: "id".into(),
                            first: first.clone(),
                            second: value.into(),
                        });
                    }
                    _ => interest.identifier = Some(value.to_string()),
                },
                "terms" => interest
                    .terms
                    .extend(value.split_whitespace().map(str::to_string)),
                _ => match range(value) {
                    Some((min, max)) => {
                        let min = min.map(|m| integer(clause, m)).transpose()?;
                        let max = max.map(|m| integer(clause, m)).transpose()?;
                        tighten(&mut bounds, key, min, max);
                    }
                    None => match interest.features.get(key) {
                        Some(first) if first != value => {
                            return Err(InterestError::Conflict {
                                key: key.into(),
                                first: first.clone(),
                                second: value.into(),
                            });
                        }
                        _ => {
                            interest.features.insert(key.into(), value.into());
                        }
                    },
                },
            },
        }
    }
    for (name, (min, max)) in bounds {
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(InterestError::EmptyRange { name, min, max });
        }
        interest.ranges.push(ParameterRange { name, min, max });
    }
    if interest.identifier.is_none()
        && interest.terms.is_empty()
        && interest.features.is_empty()
        && interest.ranges.is_empty()
    {
        return Err(InterestError::Empty);
    }
    Ok(interest)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    AtMost,
    AtLeast,
}

fn split_clause(clause: &str) -> Result<(&str, Operator, &str), InterestError> {
    // The first operator character splits the clause, so a feature's value may hold any of them.
    let at = clause
        .find(['=', '<', '>'])
        .ok_or_else(|| InterestError::NoOperator(clause.to_string()))?;
    let (key, rest) = clause.split_at(at);
    let (operator, value) = if let Some(value) = rest.strip_prefix("<=") {
        (Operator::AtMost, value)
    } else if let Some(value) = rest.strip_prefix(">=") {
        (Operator::AtLeast, value)
    } else if let Some(value) = rest.strip_prefix('=') {
        (Operator::Equals, value)
    } else {
        return Err(InterestError::Strict(clause.to_string()));
    };
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() {
        return Err(InterestError::NoKey(clause.to_string()));
    }
    if !key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(InterestError::BadKey(key.to_string()));
    }
    if value.is_empty() {
        return Err(InterestError::NoValue(clause.to_string()));
    }
    Ok((key, operator, value))
}

/// `MIN..MAX` with either end possibly empty; `None` when the value is not of that form.
fn range(value: &str) -> Option<(Option<&str>, Option<&str>)> {
    fn end(text: &str) -> Option<&str> {
        Some(text.trim()).filter(|t| !t.is_empty())
    }
    let (min, max) = value.split_once("..")?;
    Some((end(min), end(max)))
}

fn integer(clause: &str, value: &str) -> Result<i64, InterestError> {
    value
        .trim()
        .parse()
        .map_err(|_| InterestError::NotAnInteger {
            clause: clause.to_string(),
            value: value.trim().to_string(),
        })
}

fn tighten(
    bounds: &mut BTreeMap<String, (Option<i64>, Option<i64>)>,
    name: &str,
    min: Option<i64>,
    max: Option<i64>,
) {
    let (low, high) = bounds.entry(name.to_string()).or_default();
    *low = (*low).max(min);
    *high = match (*high, max) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

/// Writes an interest back in the syntax [`parse`] reads.
pub fn format(interest: &Interest) -> String {
    let mut clauses = Vec::new();
    if let Some(id) = &interest.identifier {
        clauses.push(format!("id={id}"));
    }
    if !interest.terms.is_empty() {
        clauses.push(format!("terms={}", interest.terms.join(" ")));
    }
    clauses.extend(interest.features.iter().map(|(k, v)| format!("{k}={v}")));
    for range in &interest.ranges {
        let clause = match (range.min, range.max) {
            (Some(min), Some(max)) => format!("{}={min}..{max}", range.name),
            (Some(min), None) => format!("{}>={min}", range.name),
            (None, Some(max)) => format!("{}<={max}", range.name),
            (None, None) => format!("{}=..", range.name),
        };
        clauses.push(clause);
    }
    clauses.join("; ")
}

/// Whether a recommendation meets every condition of an interest: the identifier exactly, each
/// term as a whole word of the name in any case, each feature exactly, each parameter within its
/// bounds (a missing parameter is outside them).
pub fn satisfies(interest: &Interest, recommendation: &Recommendation) -> bool {
    let identifier = interest
        .identifier
        .as_ref()
        .is_none_or(|id| *id == recommendation.identifier);
    let words: Vec<String> = recommendation
        .name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let terms = interest
        .terms
        .iter()
        .all(|term| words.contains(&term.to_lowercase()));
    let features = interest
        .features
        .iter()
        .all(|(key, value)| recommendation.features.get(key) == Some(value));
    let ranges = interest.ranges.iter().all(|range| {
        recommendation
            .parameters
            .get(&range.name)
            .is_some_and(|value| {
                range.min.is_none_or(|min| *value >= min)
                    && range.max.is_none_or(|max| *value <= max)
            })
    });
    identifier && terms && features && ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(name: &str, min: Option<i64>, max: Option<i64>) -> ParameterRange {
        ParameterRange {
            name: name.into(),
            min,
            max,
        }
    }

    fn report() -> Recommendation {
        Recommendation {
            identifier: "doc-X".into(),
            name: "Quarterly Report X (2026)".into(),
            features: BTreeMap::from([("format".into(), "pdf".into())]),
            parameters: BTreeMap::from([("price".into(), 90), ("pages".into(), 42)]),
        }
    }

    #[test]
    fn an_identifier_alone_is_an_interest() {
        let interest = parse("id=doc-X").unwrap();
        assert_eq!(interest.identifier.as_deref(), Some("doc-X"));
        assert!(interest.terms.is_empty() && interest.features.is_empty());
        assert!(interest.ranges.is_empty());
    }

    #[test]
    fn every_kind_of_condition_reads() {
        let interest =
            parse("terms=quarterly report; format=pdf; price<=100; pages>=10; year=2020..2026;")
                .unwrap();
        assert_eq!(interest.identifier, None);
        assert_eq!(interest.terms, vec!["quarterly", "report"]);
        assert_eq!(
            interest.features,
            BTreeMap::from([("format".to_string(), "pdf".to_string())])
        );
        assert_eq!(
            interest.ranges,
            vec![
                range("pages", Some(10), None),
                range("price", None, Some(100)),
                range("year", Some(2020), Some(2026)),
            ]
        );
    }

    #[test]
    fn the_help_texts_examples_read() {
        let examples: Vec<&str> = SYNTAX
            .lines()
            .filter_map(|line| line.trim().strip_prefix('\'')?.strip_suffix('\''))
            .collect();
        assert_eq!(examples.len(), 3, "{SYNTAX}");
        for example in examples {
            assert!(parse(example).is_ok(), "{example}");
        }
    }

    #[test]
    fn a_feature_value_may_hold_operator_characters() {
        let interest = parse("note=a<=b=c").unwrap();
        assert_eq!(interest.features["note"], "a<=b=c");
    }

    #[test]
    fn bounds_on_one_parameter_merge_into_one_range() {
        let interest = parse("price>=10; price<=100; price<=80; price=..90").unwrap();
        assert_eq!(interest.ranges, vec![range("price", Some(10), Some(80))]);
        assert_eq!(
            parse("pages=10..").unwrap().ranges,
            vec![range("pages", Some(10), None)]
        );
    }

    #[test]
    fn each_bad_part_is_named() {
        let cases = [
            ("", InterestError::Empty),
            (" ; ", InterestError::Empty),
            ("format pdf", InterestError::NoOperator("format pdf".into())),
            ("=pdf", InterestError::NoKey("=pdf".into())),
            ("price<100", InterestError::Strict("price<100".into())),
            ("for mat=pdf", InterestError::BadKey("for mat".into())),
            ("format=", InterestError::NoValue("format=".into())),
            (
                "id=doc-X; price<=cheap",
                InterestError::NotAnInteger {
                    clause: "price<=cheap".into(),
                    value: "cheap".into(),
                },
            ),
            (
                "price=1..x",
                InterestError::NotAnInteger {
                    clause: "price=1..x".into(),
                    value: "x".into(),
                },
            ),
            (
                "price>=100; price<=10",
                InterestError::EmptyRange {
                    name: "price".into(),
                    min: 100,
                    max: 10,
                },
            ),
            (
                "id=a; id=b",
                InterestError::Conflict {
                    key: "id".into(),
                    first: "a".into(),
                    second: "b".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Err(expected), "{text:?}");
        }
        assert_eq!(
            parse("id=doc-X; price<=cheap").unwrap_err().to_string(),
            "in `price<=cheap`: `cheap` is not an integer"
        );
    }

    #[test]
    fn offers_satisfy_interests_condition_by_condition() {
        let offer = report();
        for yes in [
            "id=doc-X",
            "terms=REPORT quarterly",
            "format=pdf; price<=100; pages=40..50",
            "terms=2026",
        ] {
            assert!(satisfies(&parse(yes).unwrap(), &offer), "{yes}");
        }
        for no in [
            "id=doc-Y",
            "terms=rep",
            "format=docx",
            "price<=89",
            "pages>=43",
            "weight<=100",
            "id=doc-X; format=docx",
        ] {
            assert!(!satisfies(&parse(no).unwrap(), &offer), "{no}");
        }
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_-]{0,8}"
    }

    proptest! {
        #[test]
        fn formatted_interests_read_back_the_same(
            identifier in proptest::option::of(word()),
            terms in proptest::collection::vec(word(), 0..3),
            features in proptest::collection::btree_map(word(), word(), 0..3),
            bounds in proptest::collection::btree_map(word(), (proptest::option::of(-1000i64..1000), proptest::option::of(1000i64..3000)), 0..3),
        ) {
            let ranges: Vec<ParameterRange> = bounds
                .into_iter()
                .filter(|(name, (min, max))| {
                    name != "id" && name != "terms" && !features.contains_key(name)
                        && (min.is_some() || max.is_some())
                })
                .map(|(name, (min, max))| range(&name, min, max))
                .collect();
            let features: BTreeMap<String, String> = features
                .into_iter()
                .filter(|(k, _)| k != "id" && k != "terms")
                .collect();
            let interest = Interest { identifier, terms, features, ranges };
            let text = format(&interest);
            match parse(&text) {
                Ok(read) => prop_assert_eq!(read, interest),
                Err(InterestError::Empty) => prop_assert_eq!(text, ""),
                Err(e) => prop_assert!(false, "{text:?}: {e}"),
            }
        }
    }
}
