//! Receipts: the verdict on a subscriber's response to an offer, with the evidence a party checks
//! without trusting the platform's word. A refused responder can show when it was refused and why.
//!
//! The verdict itself cites the response (partition, offset, receipt stamp), the offer (its place
//! and stamp) and the rule applied. The receipt first checks that the timekeeper signed it: a link
//! is an unkeyed digest, so anyone can write a verdict whose link is consistent, and only the
//! signature tells the timekeeper's verdict from such a forgery. Its link
//! ([`tessera_contract::links`]) then ties it to the record it judged and to the verdict before it,
//! and the receipt checks both from the log: that the verdict's digest matches its content, that
//! the record at its source is the one whose digest the link carries, and that it follows the
//! timekeeper's verdict written before it on the same partition.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tessera_contract::signing::VerifyingKey;
use tessera_contract::topics::DECISIONS;
use tessera_contract::{Event, links};

use crate::client::{
    ClientError, Record, kafka, partition_count, partition_for, read_to_end, reader,
};

/// How long reading the record a verdict judged may take.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);

/// One check a party makes of a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked, in words.
    pub what: String,
    /// Whether it holds.
    pub holds: bool,
}

/// A verdict on one response, where it sits, and what checking it found.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The decisions topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The verdict: a CredentialReleased or a ResponseRejected.
    pub verdict: Event,
    /// The checks of its link.
    pub checks: Vec<Check>,
}

/// The verdicts on `subscriber_id`'s responses to `offer_id`, in log order, each checked against
/// `timekeeper`, the timekeeper's verifying key as the party pinned it.
pub async fn receipts(
    config: &ClientConfig,
    prefix: &str,
    timekeeper: &VerifyingKey,
    offer_id: &str,
    subscriber_id: &str,
) -> Result<Vec<Receipt>, ClientError> {
    let topic = DECISIONS.full_name(prefix);
    let partition = partition_for(offer_id, partition_count(&reader(config, false)?, &topic)?);
    let records = read_to_end(config, &topic, Some(&[partition])).await?;
    let mut receipts = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let Some(Ok(event)) = &record.event else {
            continue;
        };
        let (offer, subscriber) = match event {
            Event::CredentialReleased(e) => (&e.offer_id, &e.subscriber_id),
            Event::ResponseRejected(e) => (&e.offer_id, &e.subscriber_id),
            _ => continue,
        };
        if offer != offer_id || subscriber != subscriber_id {
            continue;
        }
        let mut checks = vec![signed_by(timekeeper, record)];
        checks.extend(check(config, prefix, timekeeper, event, &records[..i]).await);
        receipts.push(Receipt {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            verdict: event.clone(),
            checks,
        });
    }
    Ok(receipts)
}

/// Whether the timekeeper signed `record`.
fn signed_by(timekeeper: &VerifyingKey, record: &Record) -> Check {
    let verified = timekeeper.verify_record(DECISIONS.name, &record.signed, "the timekeeper");
    Check {
        what: match &verified {
            Ok(()) => format!(
                "it is signed by the timekeeper (key fingerprint {})",
                timekeeper.fingerprint()
            ),
            Err(e) => format!("it is signed by the timekeeper: {e}"),
        },
        holds: verified.is_ok(),
    }
}

/// The checks of `verdict`'s link, given the records before it on its partition.
async fn check(
    config: &ClientConfig,
    prefix: &str,
    timekeeper: &VerifyingKey,
    verdict: &Event,
    before: &[Record],
) -> Vec<Check> {
    let Some(link) = links::link_of(verdict) else {
        return Vec::new();
    };
    let mut checks = vec![Check {
        what: "its digest matches its content".into(),
        holds: links::verify(verdict, None).is_ok(),
    }];
    let source = &link.source;
    let at = format!(
        "{prefix}{}/{}@{}",
        source.topic, source.partition, source.offset
    );
    let input = match read_at(
        config,
        &format!("{prefix}{}", source.topic),
        source.partition,
        source.offset,
    )
    .await
    {
        Ok(Some((key, value))) => Check {
            what: format!("the record at {at} is the one it judged (input digest)"),
            holds: links::verify(verdict, Some((key.as_deref(), value.as_deref()))).is_ok(),
        },
        Ok(None) => Check {
            what: format!("the record at {at} it judged is on the log"),
            holds: false,
        },
        Err(e) => Check {
            what: format!("the record at {at} it judged can be read ({e})"),
            holds: false,
        },
    };
    checks.push(input);
    // Only the timekeeper's own verdicts make its chain; a record someone else wrote in
    // between is no link of it.
    let previous = before.iter().rev().find_map(|record| match &record.event {
        Some(Ok(event)) if signed_by(timekeeper, record).holds => {
            links::link_of(event).map(|l| (record, l.digest.clone()))
        }
        _ => None,
    });
    checks.push(match previous {
        Some((record, digest)) => Check {
            what: format!(
                "it follows the verdict before it on its partition, at {}/{}@{}",
                record.topic, record.partition, record.offset
            ),
            holds: digest == link.previous,
        },
        None => Check {
            what: "it is the first verdict on its partition (no previous digest)".into(),
            holds: link.previous.is_empty(),
        },
    });
    checks
}

/// The key and value of the committed record at `offset` of `topic`/`partition`; `None` when no
/// committed record sits there.
async fn read_at(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Option<(Option<Vec<u8>>, Option<Vec<u8>>)>, ClientError> {
    let config = config.clone();
    let topic = topic.to_string();
    let read = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .clone()
            .set(
                "group.id",
                format!("tessera-receipt-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .map_err(kafka("cannot create a Kafka consumer"))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, partition, Offset::Offset(offset))
            .map_err(kafka(format!("cannot assign {topic}/{partition}")))?;
        consumer
            .assign(&assignment)
            .map_err(kafka(format!("cannot assign {topic}/{partition}")))?;
        let deadline = std::time::Instant::now() + SOURCE_TIMEOUT;
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) if message.offset() == offset => {
                    return Ok(Some((
                        message.key().map(<[u8]>::to_vec),
                        message.payload().map(<[u8]>::to_vec),
                    )));
                }
                // The first committed record after it: nothing committed sits there.
                Some(Ok(_)) => return Ok(None),
                Some(Err(e)) => return Err(kafka(format!("cannot read {topic}/{partition}"))(e)),
                None => {}
            }
        }
        Err(ClientError::Timeout(topic))
    });
    match read.await {
        Ok(read) => read,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
