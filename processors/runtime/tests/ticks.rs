//! Ticks on demand, on the real broker: a record that waits for an idle input partition is
//! decided as soon as a tick asked for on that partition comes back stamped; a timer fires on an
//! installation with no traffic at all; and an installation with nothing to decide writes no
//! ticks. Needs `compose/kafka up` (or `TESSERA_BROKERS`).

use std::time::{Duration, Instant};

mod broker;
mod counting;
use counting::Setup;

#[tokio::test(flavor = "multi_thread")]
async fn a_record_waiting_on_an_idle_partition_is_decided_by_a_tick_asked_for_it() {
    // The counter's timers are far off: only the record itself can ask for ticks.
    let setup = Setup::start(i64::MAX / 4).await;
    // `in.b` stays empty: the merge cannot order this record until `in.b` shows a stamp at or
    // past it.
    setup.send("in.a", "k").await;
    let counted = setup.next_count(Duration::from_secs(60));
    setup.stop().await;
    assert_eq!(
        counted.as_deref(),
        Some("k=1"),
        "the record was not decided within a minute, so no tick was asked for on the idle input"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_fires_without_traffic_and_an_idle_installation_writes_no_ticks() {
    let setup = Setup::start(2_000).await;
    // Nothing to decide yet: no record, no timer, so no tick either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        setup.input_records(),
        0,
        "ticks were written while nothing waited for time"
    );

    setup.send("in.a", "k").await;
    assert_eq!(
        setup.next_count(Duration::from_secs(60)).as_deref(),
        Some("k=1")
    );
    // No record comes after this one: the key's idle timer (2 s of stream time) fires only
    // because the runtime asks for ticks once the broker's clock passes it.
    let started = Instant::now();
    let expired = setup.next_count(Duration::from_secs(60));
    assert_eq!(
        expired.as_deref(),
        Some("k expired after 1"),
        "the idle timer did not fire without traffic"
    );
    let waited = started.elapsed();

    // The timer has fired and nothing waits: the inputs stay as they are.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = setup.input_records();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = setup.input_records();
    setup.stop().await;
    assert_eq!(later, settled, "an idle installation kept writing ticks");
    assert!(
        settled <= 12,
        "{settled} records on the inputs for one record and one timer ({waited:?} to the expiry)"
    );
}
