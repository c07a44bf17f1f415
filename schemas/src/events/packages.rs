//! `tessera.packages`, keyed by offer id: the sealed chunks of a package too large to travel
//! inline in its offer (`tessera_contract::sealing::chunks`).

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// One sealed chunk of an offer's package, written by its provider before the offer, in order.
/// The offer's package is then a manifest naming the chunks; the provider's signature on the
/// manifest covers every chunk through its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct PackageChunk {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key, so an offer's chunks sit on one partition in order.
    pub offer_id: String,
    /// The chunk's place in the package, from 0.
    pub index: i64,
    /// The chunk of target data encrypted under the package's chunk key (ChaCha20-Poly1305, bound
    /// to the offer id, the index and whether it is the last chunk), tag included.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub sealed: Vec<u8>,
}
