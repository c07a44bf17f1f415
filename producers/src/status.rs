//! An offer's history as the log holds it: the offer, its invitations, the responses and the
//! verdicts, in broker receipt order.
//!
//! Any party can check what happened to an offer without asking the platform: every event of an
//! offer is keyed by its id, so it sits on one partition of each co-partitioned topic, found with
//! the same murmur2 hash the producers used.

use std::fmt;

use rdkafka::ClientConfig;
use serde_json::{Map, Value, json};
use tessera_contract::rules::format_stamp;
use tessera_contract::topics::{DECISIONS, OFFERS, REQUESTS, RESPONSES, Topic};
use tessera_contract::{Event, OfferPublished};

use crate::client::{ClientError, Record, partition_count, partition_for, read_to_end, reader};
use crate::describe;

/// The topics an offer's history is read from, in the order its events happen.
pub const TOPICS: [Topic; 4] = [OFFERS, REQUESTS, RESPONSES, DECISIONS];

/// Every record of one offer, in receipt order.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The offer.
    pub offer_id: String,
    /// Its records, ordered by broker stamp, then data-flow order of their topics, then offset.
    pub records: Vec<Record>,
}

impl Timeline {
    /// Keeps the records keyed by `offer_id` and orders them. `records` come from the topics of
    /// [`TOPICS`] (with any prefix).
    pub fn new(offer_id: &str, mut records: Vec<Record>) -> Timeline {
        records.retain(|r| r.key.as_deref() == Some(offer_id));
        let flow = |topic: &str| TOPICS.iter().position(|t| topic.ends_with(t.name));
        records.sort_by_key(|r| (r.stamp, flow(&r.topic), r.offset));
        Timeline {
            offer_id: offer_id.to_string(),
            records,
        }
    }

    /// The offer as published, if it is on the log.
    pub fn offer(&self) -> Option<&OfferPublished> {
        self.records.iter().find_map(|r| match &r.event {
            Some(Ok(Event::OfferPublished(offer))) => Some(offer),
            _ => None,
        })
    }

    /// The timeline for machines: the offer id and each record's position, stamp, event type and
    /// content.
    pub fn to_json(&self) -> Value {
        let entries: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                let (kind, content) = match &r.event {
                    Some(Ok(event)) => (event.kind().name().to_string(), content(event)),
                    Some(Err(error)) => ("Unreadable".to_string(), json!(error)),
                    None => ("Tombstone".to_string(), Value::Null),
                };
                let mut entry = place(r);
                entry.insert("kind".into(), json!(kind));
                entry.insert("event".into(), content);
                Value::Object(entry)
            })
            .collect();
        json!({ "offer_id": self.offer_id, "records": entries })
    }
}

/// Where a record sits, as JSON: its topic, partition, offset, stamp and the stamp as RFC 3339.
pub(crate) fn place(r: &Record) -> Map<String, Value> {
    Map::from_iter([
        ("topic".to_string(), json!(r.topic)),
        ("partition".to_string(), json!(r.partition)),
        ("offset".to_string(), json!(r.offset)),
        ("stamp".to_string(), json!(r.stamp)),
        ("received".to_string(), json!(r.stamp.map(format_stamp))),
    ])
}

/// The event's fields as JSON, for the events an offer's topics carry and those `provider watch`
/// follows to the ledger.
pub(crate) fn content(event: &Event) -> Value {
    let value = match event {
        Event::OfferPublished(e) => serde_json::to_value(e),
        Event::OfferWithdrawn(e) => serde_json::to_value(e),
        Event::InteractionRequested(e) => serde_json::to_value(e),
        Event::ResponseSubmitted(e) => serde_json::to_value(e),
        Event::CredentialReleased(e) => serde_json::to_value(e),
        Event::ResponseRejected(e) => serde_json::to_value(e),
        Event::OfferRejected(e) => serde_json::to_value(e),
        Event::OfferClosed(e) => serde_json::to_value(e),
        Event::CredentialDelivered(e) => serde_json::to_value(e),
        Event::DeliveryFailed(e) => serde_json::to_value(e),
        Event::CredentialAccepted(e) => serde_json::to_value(e),
        Event::CredentialDeclined(e) => serde_json::to_value(e),
        Event::RewardCredited(e) => serde_json::to_value(e),
        // The catalogue puts no other event on these topics.
        _ => Ok(Value::Null),
    };
    value.unwrap_or(Value::Null)
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offer() {
            Some(offer) => {
                writeln!(
                    f,
                    "offer {} by {} ({})",
                    offer.offer_id, offer.provider_id, offer.provider_contact
                )?;
                writeln!(f, "  {}", describe::recommendation(&offer.recommendation))?;
                write!(f, "  rule: {}", offer.time_rule.describe())?;
                if let Some(capacity) = offer.capacity {
                    write!(f, "; capacity {capacity}")?;
                }
                if let Some(reward) = &offer.reward {
                    write!(
                        f,
                        "; reward {} {} (minor units)",
                        reward.amount, reward.currency
                    )?;
                }
                if let Some(within) = offer.decide_within {
                    write!(f, "; {}", describe::decide_within(within))?;
                }
                writeln!(f)?;
            }
            None => writeln!(f, "offer {}: no OfferPublished on the log", self.offer_id)?,
        }
        for record in &self.records {
            let what = match &record.event {
                Some(Ok(event)) => describe::event(event),
                Some(Err(error)) => format!("unreadable: {error}"),
                None => "tombstone".to_string(),
            };
            let stamp = record.stamp.map_or_else(|| "-".repeat(24), format_stamp);
            writeln!(
                f,
                "{stamp}  {}/{}@{}  {what}",
                record.topic, record.partition, record.offset
            )?;
        }
        Ok(())
    }
}

/// Reads the offer's partition of each of [`TOPICS`] up to its current end, the topics side by
/// side.
pub async fn read(
    config: &ClientConfig,
    prefix: &str,
    offer_id: &str,
) -> Result<Timeline, ClientError> {
    let consumer = reader(config, false)?;
    let mut places = Vec::new();
    for topic in TOPICS {
        let name = topic.full_name(prefix);
        let partition = partition_for(offer_id, partition_count(&consumer, &name)?);
        places.push((name, partition));
    }
    let read = |i: usize| {
        read_to_end(
            config,
            &places[i].0,
            Some(std::slice::from_ref(&places[i].1)),
        )
    };
    let (offers, requests, responses, decisions) =
        tokio::try_join!(read(0), read(1), read(2), read(3))?;
    let records = [offers, requests, responses, decisions]
        .into_iter()
        .flatten()
        .collect();
    Ok(Timeline::new(offer_id, records))
}

#[cfg(test)]
mod tests {
    use tessera_contract::examples;

    use super::*;

    fn record(topic: &str, offset: i64, stamp: i64, event: &Event, key: &str) -> Record {
        Record {
            topic: format!("p.{topic}"),
            partition: 0,
            offset,
            stamp: Some(stamp),
            key: Some(key.to_string()),
            event: Some(Ok(event.clone())),
            signed: tessera_contract::signing::Signed::of(Some(key.as_bytes()), None, None),
        }
    }

    fn example(kind: &str) -> Event {
        examples::all()
            .into_iter()
            .find(|e| e.kind().name() == kind)
            .unwrap()
    }

    #[test]
    fn the_timeline_keeps_the_offers_records_in_receipt_order() {
        let offer = example("OfferPublished");
        let request = example("InteractionRequested");
        let response = example("ResponseSubmitted");
        let rejected = example("ResponseRejected");
        let records = vec![
            record("tessera.decisions", 0, 30, &rejected, "offer-1"),
            record("tessera.responses", 0, 20, &response, "offer-1"),
            // Same stamp as the offer: data-flow order puts the offer first.
            record("tessera.requests", 0, 10, &request, "offer-1"),
            record("tessera.offers", 0, 10, &offer, "offer-1"),
            record("tessera.offers", 1, 15, &offer, "offer-2"),
        ];
        let timeline = Timeline::new("offer-1", records);
        let kinds: Vec<&str> = timeline
            .records
            .iter()
            .map(|r| r.event.as_ref().unwrap().as_ref().unwrap().kind().name())
            .collect();
        assert_eq!(
            kinds,
            [
                "OfferPublished",
                "InteractionRequested",
                "ResponseSubmitted",
                "ResponseRejected"
            ]
        );
        assert!(timeline.offer().is_some());
        let text = timeline.to_string();
        assert!(text.starts_with("offer offer-1 by "), "{text}");
        assert!(text.contains("  rule: "), "{text}");
        assert!(
            text.contains("(minor units); decide within 1day of the release\n"),
            "{text}"
        );
        let json = timeline.to_json();
        assert_eq!(json["records"].as_array().unwrap().len(), 4);
        assert_eq!(json["records"][3]["kind"], "ResponseRejected");
        assert_eq!(json["records"][3]["event"]["reason"], "TooLate");
    }

    #[test]
    fn a_timeline_without_its_offer_says_so() {
        let response = example("ResponseSubmitted");
        let timeline = Timeline::new(
            "offer-1",
            vec![record("tessera.responses", 0, 5, &response, "offer-1")],
        );
        assert!(
            timeline
                .to_string()
                .starts_with("offer offer-1: no OfferPublished on the log")
        );
    }
}
