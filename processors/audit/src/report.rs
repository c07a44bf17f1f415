//! What an audit found, in the terms a person or a script acts on: each mismatch names the record
//! on the log (topic, partition, offset) and the input it came from, and the report says how much
//! was checked, so "no findings" is never mistaken for "nothing read".

use std::fmt;

use serde::Serialize;

/// A place in the log: `topic/partition@offset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct At {
    /// The topic, with its installation prefix.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

impl At {
    /// The record at `offset` of `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        At {
            topic: topic.into(),
            partition,
            offset,
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// One way the output topics disagree with the replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The processor consumed `input` (its group committed past it) but the record the replay
    /// derives from it is not on `topic`: left out, or deleted from a copy.
    Missing {
        /// The output topic it belongs on.
        topic: String,
        /// The record, as [`describe`] says it.
        event: String,
        /// The input that produces it.
        input: At,
    },
    /// A record no replayed input produces: written by another producer.
    Injected {
        /// Where it sits.
        record: At,
        /// What it claims to be.
        event: String,
    },
    /// A second record with the identity (event id) of one that matched: a copy written again.
    Duplicate {
        /// Where the copy sits.
        record: At,
        /// What it claims to be.
        event: String,
        /// Where the matched one sits.
        first: At,
    },
    /// The record with the derived identity differs from the derived record.
    Altered {
        /// Where it sits.
        record: At,
        /// What it is.
        event: String,
        /// The input that produces it.
        input: At,
        /// `field: on the log ≠ derived` for each field that differs.
        differences: Vec<String>,
    },
    /// The record sits before one that the same task derived before it: the processor writes a
    /// task's records to a partition in the order it derives them.
    Reordered {
        /// Where it sits.
        record: At,
        /// The record of the same task derived earlier, which sits after it.
        after: At,
        /// The input that produces it.
        input: At,
    },
    /// The chain of links on the log breaks at this record ([`super::chain`]).
    BrokenLink {
        /// Where it sits.
        record: At,
        /// How the chain breaks there.
        reason: String,
    },
}

impl Finding {
    /// Where the finding is: the record on the log, or for a missing one the input it comes
    /// from. Findings are reported in this order.
    pub fn place(&self) -> &At {
        match self {
            Finding::Missing { input, .. } => input,
            Finding::Injected { record, .. }
            | Finding::Duplicate { record, .. }
            | Finding::Altered { record, .. }
            | Finding::Reordered { record, .. }
            | Finding::BrokenLink { record, .. } => record,
        }
    }

    /// The finding's kind, as in the JSON report.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Missing { .. } => "missing",
            Finding::Injected { .. } => "injected",
            Finding::Duplicate { .. } => "duplicate",
            Finding::Altered { .. } => "altered",
            Finding::Reordered { .. } => "reordered",
            Finding::BrokenLink { .. } => "broken_link",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Missing {
                topic,
                event,
                input,
            } => write!(
                f,
                "missing: {event} on {topic}, derived from {input}, which the processor consumed"
            ),
            Finding::Injected { record, event } => {
                write!(f, "injected: {record} {event}: no input produces it")
            }
            Finding::Duplicate {
                record,
                event,
                first,
            } => write!(
                f,
                "duplicate: {record} {event} repeats the record at {first}"
            ),
            Finding::Altered {
                record,
                event,
                input,
                differences,
            } => write!(
                f,
                "altered: {record} {event} (derived from {input}): {}",
                differences.join("; ")
            ),
            Finding::Reordered {
                record,
                after,
                input,
            } => write!(
                f,
                "reordered: {record} (derived from {input}) sits before {after}, which was \
                 derived before it"
            ),
            Finding::BrokenLink { record, reason } => {
                write!(f, "broken link: {record}: {reason}")
            }
        }
    }
}

/// The audit of one processor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The processor (its core's name).
    pub processor: String,
    /// Input records read, each once (a broadcast record counts once however many tasks read it).
    pub inputs_read: u64,
    /// Inputs the tasks were stepped over (a broadcast record counts once per task).
    pub inputs_replayed: u64,
    /// Inputs read but not decided: the merge still waits for a record on another lane, as the
    /// live processor did.
    pub undecided: u64,
    /// Records read from the output topics (ticks and other processors' dead letters skipped).
    pub outputs_read: u64,
    /// Records the replay derived.
    pub derived: u64,
    /// Derived records found on the log with equal content (where they sit is checked apart).
    pub matched: u64,
    /// Derived records not on the log whose input the processor had not consumed yet when the
    /// audit read its offsets: not findings, the processor is behind.
    pub pending: u64,
    /// Every mismatch.
    pub findings: Vec<Finding>,
    /// What limits the audit, e.g. history deleted by retention before the first offset read.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether the log matched the replay everywhere.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// What a record claims to be, in one short phrase: `CredentialReleased 5f0c…` for an event, its
/// key and size otherwise.
pub fn describe(key: Option<&[u8]>, value: Option<&[u8]>) -> String {
    let key = key.map_or_else(
        || "no key".to_string(),
        |k| format!("key {:?}", String::from_utf8_lossy(k)),
    );
    let Some(value) = value else {
        return format!("tombstone ({key})");
    };
    match (
        tessera_contract::codec::peek_kind(value),
        tessera_contract::codec::peek_event_id(value),
    ) {
        (Ok(kind), Ok(id)) => format!("{} {id} ({key})", kind.name()),
        _ => format!("record of {} bytes ({key})", value.len()),
    }
}
