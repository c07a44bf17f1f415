//! Schema evolution: every released version of each event's schema, and the rule that keeps them
//! readable by each other.
//!
//! `schemas/avro/<event>.avsc` is the current schema, generated from the Rust type. Each version
//! that was released (could have been written to a log) is kept, frozen, as
//! `schemas/avro/history/<event>/v<N>.avsc`, numbered from 1; the newest of them equals the current
//! file. The build script embeds every one of them, and the codec registers each by its
//! fingerprint: a record written with any released version decodes, resolved to the current
//! schema by Avro schema resolution (fields the writer did not have take their defaults, fields
//! the reader no longer has are skipped).
//!
//! That only works if every two versions of an event are compatible both ways, as Confluent's
//! `FULL` mode demands: a reader of the newer version reads records of the older one (backward),
//! and a reader of the older version reads records of the newer one (forward), so processors,
//! clients and auditors can be upgraded in any order. [`problems`] checks that for every pair of
//! versions, and that the current schema is released; the `schema_history` test runs it, so CI
//! fails a change that breaks it. In practice: add a field only with a default, remove only a
//! field that has one, and change no type except as Avro's promotions allow.

use std::collections::BTreeMap;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use crate::events::EventKind;

mod files;

/// Where the released versions live, relative to the crate.
pub const HISTORY_DIR: &str = "avro/history";

/// One released version of an event's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The event.
    pub kind: EventKind,
    /// Its number, from 1.
    pub version: u32,
    /// The file, relative to [`HISTORY_DIR`].
    pub path: &'static str,
    /// The schema's text, as released.
    pub text: &'static str,
}

/// The name of `kind`'s directory under [`HISTORY_DIR`]: its schema file's name without `.avsc`.
pub fn directory(kind: EventKind) -> &'static str {
    kind.schema_file().trim_end_matches(".avsc")
}

/// The released versions of `kind`, oldest first. Files not named `v<N>.avsc` are left out
/// ([`problems`] names them).
pub fn releases(kind: EventKind) -> Vec<Release> {
    files::FILES
        .iter()
        .filter(|(dir, _, _, _)| *dir == directory(kind))
        .map(|&(_, version, path, text)| Release {
            kind,
            version,
            path,
            text,
        })
        .collect()
}

/// Whether records written with `writer` can always be read with `reader`, and why not.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "only partly: some values (an enum symbol, a union branch) would not resolve".into(),
        ),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `earlier` and `later`, two versions of one event, are compatible both ways, as
/// Confluent's `FULL` mode demands: a reader of `later` reads what `earlier` wrote (backward), and
/// a reader of `earlier` reads what `later` wrote (forward).
pub fn full_compatibility(earlier: &Schema, later: &Schema) -> Result<(), String> {
    can_read(earlier, later)
        .map_err(|e| format!("the newer cannot read the older (backward): {e}"))?;
    can_read(later, earlier).map_err(|e| format!("the older cannot read the newer (forward): {e}"))
}

/// Everything wrong with the released versions of every event, each as a sentence that says
/// what to do: files that are not versions, gaps in the numbering, versions that do not parse,
/// are another event or do not lead with `event_id`, pairs of versions that are not FULL
/// compatible, and a current schema that is not the newest release.
pub fn problems() -> Vec<String> {
    let mut problems = Vec::new();
    let known: Vec<&str> = EventKind::ALL.iter().map(|&k| directory(k)).collect();
    for &(dir, _, path, _) in files::FILES {
        if !known.contains(&dir) {
            problems.push(format!(
                "{HISTORY_DIR}/{path}: {dir} is no event's directory (an event's is its schema \
                 file's name without .avsc)"
            ));
        }
    }
    for &kind in EventKind::ALL {
        problems.extend(problems_of(kind));
    }
    problems
}

/// What [`problems`] finds for `kind`.
pub fn problems_of(kind: EventKind) -> Vec<String> {
    let releases: Vec<(u32, &str)> = releases(kind)
        .iter()
        .map(|release| (release.version, release.text))
        .collect();
    check(kind, &releases, kind.schema_text())
}

/// The check of [`problems_of`] on given texts: `releases` (version, text), oldest first, and the
/// `current` schema of `kind`.
pub fn check(kind: EventKind, releases: &[(u32, &str)], current: &str) -> Vec<String> {
    let current_file = format!("schemas/avro/{}", kind.schema_file());
    let dir = format!("schemas/{HISTORY_DIR}/{}", directory(kind));
    let mut problems = Vec::new();
    let Some(&(newest, newest_text)) = releases.last() else {
        return vec![format!(
            "{current_file} has no released version: copy it to {dir}/v1.avsc"
        )];
    };
    let mut parsed = BTreeMap::new();
    for (expected, &(version, text)) in (1..).zip(releases) {
        if version != expected {
            problems.push(format!(
                "{dir}: v{expected}.avsc expected, found v{version}.avsc; versions are numbered \
                 1, 2, 3… without gaps"
            ));
            return problems;
        }
        match parse(kind, text) {
            Ok(schema) => {
                parsed.insert(version, schema);
            }
            Err(e) => problems.push(format!("{dir}/v{version}.avsc {e}")),
        }
    }
    for (&later_version, later) in &parsed {
        for (&earlier_version, earlier) in parsed.range(..later_version) {
            if let Err(e) = full_compatibility(earlier, later) {
                problems.push(format!(
                    "{dir}: v{later_version} is not FULL compatible with v{earlier_version}: {e}"
                ));
            }
        }
    }
    let current_schema = match parse(kind, current) {
        Ok(schema) => schema,
        Err(e) => {
            problems.push(format!("{current_file} {e}"));
            return problems;
        }
    };
    if same_json(current, newest_text) {
        return problems;
    }
    let breaks: Vec<String> = parsed
        .iter()
        .filter_map(|(version, earlier)| {
            full_compatibility(earlier, &current_schema)
                .err()
                .map(|e| format!("v{version}: {e}"))
        })
        .collect();
    if breaks.is_empty() {
        problems.push(format!(
            "{current_file} changed since its newest release, v{newest}: if the change is meant, \
             release it by copying it to {dir}/v{}.avsc (and never edit a released version)",
            newest + 1
        ));
    } else {
        problems.push(format!(
            "{current_file} changed since its newest release, v{newest}, in a way that breaks \
             FULL compatibility, so records written with an earlier version could no longer be \
             read, or readers of one could not read the new records ({}). Give an added field a \
             default, remove only fields that have one, keep types: see docs/SCHEMAS.md",
            breaks.join("; ")
        ));
    }
    problems
}

/// Parses one version of `kind`'s schema and holds it to what the codec relies on: a record of
/// the event's name whose first field is `event_id` ([`crate::codec::peek_event_id`]).
fn parse(kind: EventKind, text: &str) -> Result<Schema, String> {
    let schema = Schema::parse_str(text).map_err(|e| format!("does not parse: {e}"))?;
    let Schema::Record(record) = &schema else {
        return Err("is not a record".into());
    };
    if record.name.name() != kind.name() {
        return Err(format!(
            "is the schema of {}, not {}",
            record.name.name(),
            kind.name()
        ));
    }
    if record.fields.first().map(|f| f.name.as_str()) != Some("event_id") {
        return Err("does not lead with event_id, which every version must".into());
    }
    Ok(schema)
}

fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_the_history_directory() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(HISTORY_DIR);
        let mut on_disk = Vec::new();
        for event in std::fs::read_dir(&root).unwrap() {
            let event = event.unwrap().path();
            if !event.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&event).unwrap() {
                let file = file.unwrap().path();
                let relative = file.strip_prefix(&root).unwrap().display().to_string();
                on_disk.push(relative);
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = files::FILES.iter().map(|f| f.2.to_string()).collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "every file under {HISTORY_DIR}/ is a v<N>.avsc listed in schemas/src/evolution/files.rs"
        );
    }

    /// A version of a record `R` with the given fields after its `event_id`.
    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type": "record", "name": "R", "fields": [
                {{"name": "event_id", "type": "string"}}{fields}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn adding_or_removing_a_field_with_a_default_is_full_compatible() {
        let v1 = record("");
        let v2 = record(r#", {"name": "note", "type": ["null", "string"], "default": null}"#);
        assert_eq!(full_compatibility(&v1, &v2), Ok(()));
        // Removing it again: readers of v2 fill it from its default.
        assert_eq!(full_compatibility(&v2, &v1), Ok(()));
    }

    #[test]
    fn a_field_added_without_a_default_is_refused() {
        let v1 = record("");
        let v2 = record(r#", {"name": "note", "type": "string"}"#);
        let refused = full_compatibility(&v1, &v2).unwrap_err();
        assert!(refused.contains("backward"), "{refused}");
        // And removed without one: a reader of the old version lacks it in new records.
        let refused = full_compatibility(&v2, &v1).unwrap_err();
        assert!(refused.contains("forward"), "{refused}");
    }

    #[test]
    fn a_changed_type_is_refused_even_one_avro_promotes() {
        let v1 = record(r#", {"name": "n", "type": "int", "default": 0}"#);
        let v2 = record(r#", {"name": "n", "type": "string", "default": ""}"#);
        assert!(full_compatibility(&v1, &v2).is_err());
        // int → long is a promotion: backward compatible, but a reader of the old version
        // cannot read a long, so not FULL.
        let v3 = record(r#", {"name": "n", "type": "long", "default": 0}"#);
        let refused = full_compatibility(&v1, &v3).unwrap_err();
        assert!(refused.contains("forward"), "{refused}");
    }

    /// The current schema of OfferWithdrawn with one field more.
    fn with_field(field: serde_json::Value) -> String {
        let mut schema: serde_json::Value =
            serde_json::from_str(EventKind::OfferWithdrawn.schema_text()).unwrap();
        schema["fields"].as_array_mut().unwrap().push(field);
        schema.to_string()
    }

    #[test]
    fn the_check_asks_to_release_a_compatible_change() {
        let kind = EventKind::OfferWithdrawn;
        let released = [(1, kind.schema_text())];
        assert_eq!(
            check(kind, &released, kind.schema_text()),
            Vec::<String>::new()
        );
        let added = with_field(serde_json::json!(
            {"name": "note", "type": ["null", "string"], "default": null, "doc": "A note."}
        ));
        let problems = check(kind, &released, &added);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("copying it to schemas/avro/history/offer_withdrawn/v2.avsc"),
            "{problems:?}"
        );
        // Once released, it passes.
        assert_eq!(
            check(kind, &[(1, kind.schema_text()), (2, &added)], &added),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_check_refuses_a_breaking_change_released_or_not() {
        let kind = EventKind::OfferWithdrawn;
        let released = [(1, kind.schema_text())];
        let breaking = with_field(serde_json::json!(
            {"name": "note", "type": "string", "doc": "A note, without a default."}
        ));
        let problems = check(kind, &released, &breaking);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("breaks FULL compatibility"),
            "{problems:?}"
        );
        assert!(
            problems[0].contains("v1: the newer cannot read the older"),
            "{problems:?}"
        );
        // Released anyway, the history itself fails.
        let problems = check(kind, &[(1, kind.schema_text()), (2, &breaking)], &breaking);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("v2 is not FULL compatible with v1"),
            "{problems:?}"
        );
        // A type changed: the same.
        let mut retyped: serde_json::Value = serde_json::from_str(kind.schema_text()).unwrap();
        retyped["fields"][2]["type"] = serde_json::json!("long");
        let problems = check(kind, &released, &retyped.to_string());
        assert!(
            problems[0].contains("breaks FULL compatibility"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_check_wants_versions_without_gaps_of_the_right_event() {
        let kind = EventKind::OfferWithdrawn;
        let text = kind.schema_text();
        let problems = check(kind, &[(1, text), (3, text)], text);
        assert!(
            problems[0].contains("v2.avsc expected, found v3.avsc"),
            "{problems:?}"
        );
        let problems = check(kind, &[(1, EventKind::Tick.schema_text())], text);
        assert!(
            problems[0].contains("is the schema of Tick"),
            "{problems:?}"
        );
        assert!(
            check(kind, &[], text)[0]
                .contains("copy it to schemas/avro/history/offer_withdrawn/v1.avsc")
        );
    }

    #[test]
    fn every_event_has_its_current_schema_released() {
        for &kind in EventKind::ALL {
            let newest = releases(kind).last().copied();
            assert!(newest.is_some(), "{kind:?} has no release");
        }
    }
}
