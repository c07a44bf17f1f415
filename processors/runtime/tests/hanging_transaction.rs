//! An instance starts where an earlier incarnation of it left a transaction hanging: records of its
//! producer on output, changelog and `__consumer_offsets` partitions that its transaction
//! coordinator does not know of, as a broker restarting mid-transaction left them. The runtime's
//! start-up sweep must abort them: otherwise the group's offsets stay unstable (the instance never
//! takes up its partitions) and its next commit on the other partitions commits them.
//!
//! Starts its own broker (see `hanging/mod.rs`) on ports 19092-19093.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tessera_cores::counter::Counter;
use tessera_runtime::{self as runtime, Config};

mod broker;
mod counts;
mod hanging;
use broker::committed_reader;
use counts::{assert_counts, read_counts};
use hanging::LenientBroker;
use hanging::wire::{self, Wire};

const PARTITIONS: i32 = 3;
const INSTANCE: &str = "one";
const LEFTOVER_KEY: &[u8] = b"left-hanging";

struct Setup {
    broker: LenientBroker,
    prefix: String,
    state: tempfile::TempDir,
}

impl Setup {
    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn group(&self) -> String {
        self.topic("tessera.counter")
    }

    fn core(&self) -> Counter {
        counts::counter()
    }

    fn config(&self) -> Config {
        let mut config = Config::new(
            self.broker.client(),
            INSTANCE,
            self.state.path().to_path_buf(),
        );
        config.topic_prefix = self.prefix.clone();
        config
    }

    async fn produce(&self, from: usize, to: usize) {
        counts::produce(&self.broker.client(), &self.prefix, from, to).await;
    }

    /// Runs the instance until `expected` counts are committed, then stops it gracefully.
    async fn run_until(&self, expected: usize) -> BTreeMap<String, Vec<String>> {
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let handle = tokio::spawn(runtime::run(self.core(), self.config(), stop.0.clone()));
        let outputs = tokio::task::block_in_place(|| self.read_outputs(expected, &handle));
        drop(stop);
        handle.await.unwrap().unwrap();
        outputs
    }

    /// The committed outputs per key; fails on more than `expected`, or if the instance dies.
    fn read_outputs(
        &self,
        expected: usize,
        instance: &tokio::task::JoinHandle<anyhow::Result<()>>,
    ) -> BTreeMap<String, Vec<String>> {
        let consumer = committed_reader(
            &self.broker.client(),
            &self.topic("reader"),
            &self.topic("counts"),
            PARTITIONS,
        );
        read_counts(&consumer, expected, Duration::from_secs(120), || {
            !instance.is_finished()
        })
    }

    /// A consumer of group `name` that never joins it: `committed` reads with `read_committed`.
    fn reader(&self, name: &str, committed: bool) -> BaseConsumer {
        let isolation = if committed {
            "read_committed"
        } else {
            "read_uncommitted"
        };
        self.broker
            .client()
            .set("group.id", self.topic(name))
            .set("isolation.level", isolation)
            .create()
            .unwrap()
    }

    /// Per changelog partition: whether a transaction holds its last stable offset short of its
    /// end (a `read_committed` consumer's watermark is the last stable offset).
    fn changelog_held_back(&self) -> Vec<bool> {
        let committed = self.reader("watermarks", true);
        let uncommitted = self.reader("watermarks", false);
        let timeout = Duration::from_secs(10);
        (0..PARTITIONS)
            .map(|partition| {
                let (_, stable) = committed
                    .fetch_watermarks(&self.changelog(), partition, timeout)
                    .unwrap();
                let (_, end) = uncommitted
                    .fetch_watermarks(&self.changelog(), partition, timeout)
                    .unwrap();
                stable < end
            })
            .collect()
    }

    fn changelog(&self) -> String {
        self.topic("tessera.counter.changelog")
    }
}

/// Stops the instance however the test ends: a failed assertion must not leave the runtime's
/// thread running, or the test's runtime waits for it forever.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_incarnations_hanging_transaction_is_aborted_at_start() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let broker = LenientBroker::up();
    let setup = Setup {
        broker,
        prefix: format!("it-{}.", uuid::Uuid::new_v4().simple()),
        state: tempfile::tempdir().unwrap(),
    };
    let client = setup.broker.client();
    let stamped = ["in.a", "in.b", "counts"].map(|name| (name, "LogAppendTime"));
    broker::create_topics(&client, &setup.prefix, &stamped, PARTITIONS).await;
    let dead_letters = [("tessera.dead-letters", "CreateTime")];
    broker::create_topics(&client, &setup.prefix, &dead_letters, 1).await;

    setup.produce(0, 300).await;
    assert_counts(&setup.run_until(300).await, 300);

    // The stopped instance's producer, at a new epoch, leaves records nobody will end: an output
    // a reader must never see, a changelog record a restore must never apply, and an offset
    // commit that keeps the group's offsets unstable once the coordinator reloads it.
    let transactional_id = format!("{}.{INSTANCE}", setup.group());
    let mut wire = Wire::connect(&setup.broker.address());
    let producer = wire.init_producer_id(&transactional_id);
    let changelog = setup.changelog();
    for partition in 0..PARTITIONS {
        let output = (b"k0".to_vec(), b"k0=999".to_vec());
        wire.produce_transactional(
            &transactional_id,
            producer,
            &setup.topic("counts"),
            partition,
            &[output],
        );
        let record = (LEFTOVER_KEY.to_vec(), b"999".to_vec());
        wire.produce_transactional(
            &transactional_id,
            producer,
            &changelog,
            partition,
            &[record],
        );
    }
    let offsets = wire::offset_commit(&setup.group(), &setup.topic("in.a"), 0, 0);
    let partition = wire::offsets_partition(&setup.group(), 10);
    wire.produce_transactional(
        &transactional_id,
        producer,
        "__consumer_offsets",
        partition,
        &[offsets],
    );
    drop(wire);
    setup.broker.restart();

    // The test holds only if the leftovers are really there: they hold the changelog back, and
    // the group's offsets are unstable. librdkafka retries fetching unstable offsets until its
    // timeout, so a `read_committed` fetch fails where a `read_uncommitted` one (which does not
    // ask for stable offsets) succeeds.
    assert_eq!(setup.changelog_held_back(), vec![true; PARTITIONS as usize]);
    let mut asked = TopicPartitionList::new();
    asked.add_partition(&setup.topic("in.a"), 0);
    let fetch = |committed: bool| {
        let consumer = setup.reader("tessera.counter", committed);
        tokio::task::block_in_place(|| {
            consumer.committed_offsets(asked.clone(), Duration::from_secs(10))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = fetch(false) {
        assert!(
            Instant::now() < deadline,
            "the group coordinator never came back: {e}"
        );
    }
    let stable = fetch(true);
    assert!(
        stable.is_err(),
        "the leftover offset commit left the offsets stable: {stable:?}"
    );

    setup.produce(300, 600).await;
    assert_counts(&setup.run_until(600).await, 600);

    // Nothing holds the changelog back any more, and the leftover was never committed.
    assert_eq!(
        setup.changelog_held_back(),
        vec![false; PARTITIONS as usize]
    );
    let changelog = setup.changelog();
    let changelog_reader = committed_reader(
        setup.broker.client().set("enable.partition.eof", "true"),
        &setup.topic("changelog-reader"),
        &changelog,
        PARTITIONS,
    );
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "changelog partitions read to their end: {at_end:?}"
        );
        match changelog_reader.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => assert_ne!(
                message.key(),
                Some(LEFTOVER_KEY),
                "a leftover was committed"
            ),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(e)) => panic!("{e}"),
            None => {}
        }
    }
}
