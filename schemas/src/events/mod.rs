//! The events of DESIGN.md, one module per topic, and [`Event`], the sum of them all.
//!
//! Each struct mirrors one `.avsc` file under `schemas/avro/`; the `schema_files` test fails when
//! they disagree. Times are `i64` milliseconds since the Unix epoch (UTC), amounts are `i64` in minor
//! units, and maps are `BTreeMap`s so an event always encodes to the same bytes.

mod common;
mod cosigns;
mod dead_letters;
mod decisions;
mod deliveries;
mod keys;
mod ledger;
mod offers;
mod outcomes;
mod packages;
mod requests;
mod responses;
mod subscribers;
mod ticks;

pub use common::*;
pub use cosigns::*;
pub use dead_letters::*;
pub use decisions::*;
pub use deliveries::*;
pub use keys::*;
pub use ledger::*;
pub use offers::*;
pub use outcomes::*;
pub use packages::*;
pub use requests::*;
pub use responses::*;
pub use subscribers::*;
pub use ticks::*;

/// Declares [`Event`] and [`EventKind`] from one list, so that adding an event is one line here
/// plus its struct and its `.avsc` file.
macro_rules! events {
    ($($kind:ident => $file:literal),+ $(,)?) => {
        /// Any tessera event.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $(
                #[doc = concat!("See [`", stringify!($kind), "`].")]
                $kind($kind),
            )+
        }

        /// The type of an event, without its content.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $(
                #[doc = concat!("See [`", stringify!($kind), "`].")]
                $kind,
            )+
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind),+];

            /// The event's name, as in its Avro schema (without the `tessera.` namespace).
            pub fn name(self) -> &'static str {
                match self { $(EventKind::$kind => stringify!($kind)),+ }
            }

            /// The schema file's name under `schemas/avro/`.
            pub fn schema_file(self) -> &'static str {
                match self { $(EventKind::$kind => $file),+ }
            }

            /// The schema file's text, compiled in so a binary never reads it at run time.
            pub fn schema_text(self) -> &'static str {
                match self {
                    $(EventKind::$kind => include_str!(concat!("../../avro/", $file))),+
                }
            }

            /// The schema the Rust type derives; the schema file must equal it.
            pub fn derived_schema(self) -> apache_avro::Schema {
                use apache_avro::AvroSchema;
                match self { $(EventKind::$kind => <$kind>::get_schema()),+ }
            }
        }

        impl Event {
            /// The event's type.
            pub fn kind(&self) -> EventKind {
                match self { $(Event::$kind(_) => EventKind::$kind),+ }
            }
        }

        impl Event {
            /// Writes the event's Avro body (no header) with the writer built for its schema.
            pub(crate) fn write_body(
                &self,
                writer: &apache_avro::writer::datum::GenericDatumWriter<'_>,
                out: &mut Vec<u8>,
            ) -> apache_avro::AvroResult<usize> {
                match self { $(Event::$kind(e) => writer.write_ser(out, e)),+ }
            }

            /// Reads an Avro body written with exactly the reader's schema.
            pub(crate) fn read_body(
                kind: EventKind,
                reader: &apache_avro::reader::datum::GenericDatumReader<'_>,
                body: &mut &[u8],
            ) -> apache_avro::AvroResult<Event> {
                match kind { $(EventKind::$kind => reader.read_deser::<$kind>(body).map(Event::$kind)),+ }
            }

            /// Converts a value resolved to the current schema of `kind` into the event.
            pub(crate) fn from_value(
                kind: EventKind,
                value: &apache_avro::types::Value,
            ) -> apache_avro::AvroResult<Event> {
                match kind { $(EventKind::$kind => apache_avro::from_value::<$kind>(value).map(Event::$kind)),+ }
            }
        }

        $(
            impl From<$kind> for Event {
                fn from(event: $kind) -> Self {
                    Event::$kind(event)
                }
            }
        )+

    };
}

events! {
    SubscriberRegistered => "subscriber_registered.avsc",
    SubscriberRemoved => "subscriber_removed.avsc",
    OfferPublished => "offer_published.avsc",
    OfferWithdrawn => "offer_withdrawn.avsc",
    InteractionRequested => "interaction_requested.avsc",
    ResponseSubmitted => "response_submitted.avsc",
    CredentialReleased => "credential_released.avsc",
    ResponseRejected => "response_rejected.avsc",
    OfferRejected => "offer_rejected.avsc",
    OfferClosed => "offer_closed.avsc",
    ProviderShareReleased => "provider_share_released.avsc",
    PackageChunk => "package_chunk.avsc",
    CredentialDelivered => "credential_delivered.avsc",
    DeliveryFailed => "delivery_failed.avsc",
    Notice => "notice.avsc",
    CredentialAccepted => "credential_accepted.avsc",
    CredentialDeclined => "credential_declined.avsc",
    RewardCredited => "reward_credited.avsc",
    RewardDue => "reward_due.avsc",
    DeadLetter => "dead_letter.avsc",
    KeyPublished => "key_published.avsc",
    Tick => "tick.avsc",
}
