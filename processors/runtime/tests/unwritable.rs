//! A record whose outputs can never be written cannot hold a processor: on the real broker, a
//! record keyed so that the counter's output for it is larger than any record the producer may
//! send fails its transaction, is retried with a growing pause, and after the last attempt is
//! skipped into the dead letters with the error; the record after it is counted as usual. Needs
//! `compose/kafka up` (or `TESSERA_BROKERS`).

use std::time::{Duration, Instant};

use rdkafka::message::Message;
use tessera_contract::{DeadLetter, Event, decode};

mod broker;
mod counting;
use broker::{client, committed_reader};
use counting::Setup;

/// The first dead letter on the setup's topics, waiting up to a minute.
fn first_letter(setup: &Setup) -> Option<DeadLetter> {
    let letters = committed_reader(
        &client(),
        &format!("{}letters", setup.prefix),
        &format!("{}tessera.dead-letters", setup.prefix),
        1,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(message) = letters.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            if let Ok(Event::DeadLetter(letter)) = decode(message.payload().unwrap_or_default()) {
                return Some(letter);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_whose_output_cannot_be_written_is_skipped_after_retries() {
    let setup = Setup::start(i64::MAX / 4).await;
    // The counter writes `key=1` under the key: with a 600 000-byte key that is 1.2 MB, more
    // than the producer's 1 000 000-byte `message.max.bytes`, on every attempt.
    let huge = "k".repeat(600_000);
    setup.send("in.a", &huge).await;
    setup.send("in.a", "after").await;
    setup.send("in.b", "b").await;
    let started = Instant::now();
    let mut counted = Vec::new();
    while counted.len() < 2 && started.elapsed() < Duration::from_secs(90) {
        if let Some(count) = setup.next_count(Duration::from_secs(5)) {
            counted.push(count);
        }
    }
    let letter = first_letter(&setup);
    let prefix = setup.prefix.clone();
    setup.stop().await;
    assert_eq!(
        counted,
        ["after=1", "b=1"],
        "the records after the unwritable one"
    );
    let letter = letter.expect("a dead letter for the skipped record");
    assert_eq!(
        (letter.source_topic, letter.source_offset),
        (format!("{prefix}in.a"), 0)
    );
    assert!(
        letter.reason.contains("could not be written in 5 attempts")
            && letter.reason.contains("too large"),
        "{}",
        letter.reason
    );
    assert!(
        letter
            .key
            .is_some_and(|k| k.len() <= tessera_contract::QUOTED_KEY)
    );
}
