//! The runtime on the real broker: every input is counted exactly once, in per-key order, across
//! a clean restart (local state resumes) and a restart without local state (rebuilt from the
//! changelog). Needs `compose/kafka up` (or `TESSERA_BROKERS`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera_cores::counter::Counter;
use tessera_runtime::{self as runtime, Config};

mod broker;
mod counts;
use broker::{client, committed_reader, create_topics};
use counts::{assert_counts, read_counts};

const PARTITIONS: i32 = 3;

struct Setup {
    prefix: String,
    state: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let prefix = format!("it-{}.", uuid::Uuid::new_v4().simple());
        let stamped = ["in.a", "in.b", "counts"].map(|name| (name, "LogAppendTime"));
        create_topics(&client(), &prefix, &stamped, PARTITIONS).await;
        // The dead-letter topic the runtime writes to.
        create_topics(
            &client(),
            &prefix,
            &[("tessera.dead-letters", "CreateTime")],
            1,
        )
        .await;
        Setup {
            prefix,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn core(&self) -> Counter {
        counts::counter()
    }

    fn config(&self) -> Config {
        self.instance_config("test-1")
    }

    fn instance_config(&self, instance: &str) -> Config {
        let mut config = Config::new(client(), instance, self.state.path().join(instance));
        config.topic_prefix = self.prefix.clone();
        config
    }

    async fn produce(&self, from: usize, to: usize) {
        counts::produce(&client(), &self.prefix, from, to).await;
        // One record the counter cannot decode: it must become a dead letter, not an output.
        let producer: FutureProducer = client().create().unwrap();
        producer
            .send(
                FutureRecord::<str, str>::to(&format!("{}in.a", self.prefix)).payload("no key"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    /// Runs the processor until `expected` counts are committed on the output topic, then stops
    /// it gracefully. Returns the committed outputs per key, in order.
    async fn run_until(&self, expected: usize) -> BTreeMap<String, Vec<String>> {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = tokio::spawn(runtime::run(self.core(), self.config(), stop.clone()));
        let outputs = self.read_outputs(expected).await;
        stop.store(true, Ordering::Relaxed);
        handle.await.unwrap().unwrap();
        outputs
    }

    async fn read_outputs(&self, expected: usize) -> BTreeMap<String, Vec<String>> {
        let consumer = committed_reader(
            &client(),
            &format!("{}reader", self.prefix),
            &format!("{}counts", self.prefix),
            PARTITIONS,
        );
        read_counts(&consumer, expected, Duration::from_secs(90), || true)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_exactly_once_across_resume_and_restore() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let setup = Setup::new().await;

    setup.produce(0, 300).await;
    let outputs = setup.run_until(300).await;
    assert_counts(&outputs, 300);

    // Restart with local state: resumes where it committed.
    setup.produce(300, 600).await;
    let outputs = setup.run_until(600).await;
    assert_counts(&outputs, 600);

    // Restart without local state: rebuilt from the changelog, counts go on.
    std::fs::remove_dir_all(setup.state.path().join("test-1").join("counter")).unwrap();
    setup.produce(600, 900).await;
    let outputs = setup.run_until(900).await;
    assert_counts(&outputs, 900);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_joining_mid_stream_takes_over_partitions_exactly_once() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let setup = Arc::new(Setup::new().await);
    let stop = Arc::new(AtomicBool::new(false));
    let first = tokio::spawn(runtime::run(
        setup.core(),
        setup.instance_config("one"),
        stop.clone(),
    ));
    // Inputs keep arriving while the group rebalances: the first instance has a transaction
    // open when its partitions are revoked.
    let feeder = {
        let setup = setup.clone();
        tokio::spawn(async move {
            for batch in 0..20 {
                setup.produce(batch * 100, batch * 100 + 100).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let second = tokio::spawn(runtime::run(
        setup.core(),
        setup.instance_config("two"),
        stop.clone(),
    ));
    feeder.await.unwrap();
    let outputs = setup.read_outputs(2000).await;
    stop.store(true, Ordering::Relaxed);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_counts(&outputs, 2000);
}

/// The counter with `in.b` read in full by every task, as the matcher reads offers.
struct BroadcastCounter(Counter);

impl tessera_cores::Core for BroadcastCounter {
    type Record = ();

    fn name(&self) -> &str {
        "broadcast-counter"
    }

    fn inputs(&self) -> Vec<String> {
        self.0.inputs()
    }

    fn outputs(&self) -> Vec<String> {
        self.0.outputs()
    }

    fn broadcast_inputs(&self) -> Vec<usize> {
        vec![1]
    }

    fn decode(&self, raw: tessera_cores::Raw<'_>) -> Result<(), String> {
        self.0.decode(raw)
    }

    fn next_due(&self, state: &dyn tessera_state::State) -> Option<i64> {
        self.0.next_due(state)
    }

    fn apply(
        &mut self,
        state: &mut dyn tessera_state::State,
        input: tessera_cores::Input<()>,
    ) -> Vec<tessera_cores::Emitted> {
        self.0.apply(state, input)
    }
}

/// Every task counts every record of the broadcast input once (so each count of a `b` key
/// appears once per partition) and its own partition of `a` once, across a resume and a restore.
#[tokio::test(flavor = "multi_thread")]
async fn broadcast_inputs_reach_every_task_exactly_once() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let setup = Setup::new().await;
    let run = |expected: usize| {
        let stop = Arc::new(AtomicBool::new(false));
        let core = BroadcastCounter(setup.core());
        let handle = tokio::spawn(runtime::run(core, setup.config(), stop.clone()));
        let setup = &setup;
        async move {
            let outputs = setup.read_outputs(expected).await;
            stop.store(true, Ordering::Relaxed);
            handle.await.unwrap().unwrap();
            outputs
        }
    };
    let expected = |total: usize| {
        let b = (0..total).filter(|i| i % 3 == 0).count();
        total - b + b * PARTITIONS as usize
    };
    // A key has records on both inputs: the task owning its `a` partition counts all of them,
    // every other task only those on `b`.
    let check = |outputs: &BTreeMap<String, Vec<String>>, total: usize| {
        let mut per_key: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for i in 0..total {
            let (on_a, on_b) = per_key.entry(format!("k{}", i % 17)).or_default();
            if i % 3 == 0 { *on_b += 1 } else { *on_a += 1 }
        }
        for (key, (on_a, on_b)) in per_key {
            let mut want: Vec<String> = (1..=on_a + on_b).map(|c| format!("{key}={c}")).collect();
            for _ in 1..PARTITIONS {
                want.extend((1..=on_b).map(|c| format!("{key}={c}")));
            }
            want.sort();
            let mut got = outputs.get(&key).cloned().unwrap_or_default();
            got.sort();
            assert_eq!(got, want, "counts of {key}");
        }
    };
    setup.produce(0, 300).await;
    let outputs = run(expected(300)).await;
    check(&outputs, 300);
    setup.produce(300, 600).await;
    let outputs = run(expected(600)).await;
    check(&outputs, 600);
    std::fs::remove_dir_all(setup.state.path().join("test-1").join("broadcast-counter")).unwrap();
    setup.produce(600, 900).await;
    let outputs = run(expected(900)).await;
    check(&outputs, 900);
}
