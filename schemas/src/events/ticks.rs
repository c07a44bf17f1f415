//! Tick records: written by the runtime's ticker to every partition of every input topic of a
//! decision, so the broker stamps them and stream time moves on idle partitions in a way a replay
//! repeats. Consumers that are not processors skip them.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// A heartbeat whose only content that matters is its broker receipt stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Tick {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The ticker that wrote it (its instance id), for operators.
    pub ticker: String,
    /// The ticker's sequence number, for operators.
    pub seq: i64,
}
