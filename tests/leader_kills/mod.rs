//! The broker failures of `chaos_three_brokers`, on the cluster of `compose/kafka up --nodes 3`.
//!
//! Mid-run, the broker leading the `__transaction_state` partition that coordinates an instance's
//! transactions is SIGKILLed, stays down while the run goes on, and is started again; then the
//! same befalls the broker leading an input partition (whichever node leads it by then). One node
//! at a time: replication factor 3 with min ISR 2 is meant to survive exactly one node down, while
//! two would also take the controller quorum (two of three voters) with them.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// `compose/kafka --nodes`: the cluster the script starts, reports and kills nodes of.
const NODES: &str = "3";
/// Kafka's topic of transaction coordinator state; a transactional id's coordinator is the
/// leader of its partition of it.
const TRANSACTION_STATE: &str = "__transaction_state";
/// A killed node stays down until the cluster has fenced it (no longer lists it as a live broker,
/// some `broker.session.timeout.ms`, 9 s, after its last heartbeat) and so moved its leaderships
/// and coordinators to the others, then this much longer, and until outputs have come out in
/// that time: the run must go on without it, not merely finish what was in flight when it died.
const DOWN_AFTER_FENCE: Duration = Duration::from_secs(15);
/// A node comes back after this long whatever happened (the run then fails if nothing came out).
const MAX_DOWN: Duration = Duration::from_secs(90);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/kafka")
}

/// `compose/kafka ARGS --nodes 3`, its output captured.
fn kafka(args: &[&str]) -> Output {
    Command::new(script())
        .args(args)
        .args(["--nodes", NODES])
        .output()
        .expect("compose/kafka runs")
}

fn client(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap()
}

/// The bootstrap servers of the three-node cluster, which must be up: this test starts no broker.
pub(crate) fn three_nodes() -> String {
    let status = kafka(&["status"]);
    assert!(
        status.status.success(),
        "chaos_three_brokers needs all three nodes of the cluster up, but `compose/kafka status \
         --nodes 3` says:\n{}{}\nStart it with `compose/kafka up --nodes 3` (with the same \
         TESSERA_HOME as this test, if you set it) and run again",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    let bootstrap = kafka(&["bootstrap"]);
    assert!(
        bootstrap.status.success(),
        "compose/kafka bootstrap --nodes 3 failed"
    );
    let brokers = String::from_utf8(bootstrap.stdout)
        .unwrap()
        .trim()
        .to_string();
    let metadata = client(&brokers)
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the cluster answers metadata requests");
    assert_eq!(
        metadata.brokers().len(),
        3,
        "brokers in the metadata of {brokers}"
    );
    brokers
}

/// Java's `String.hashCode`, which Kafka hashes a transactional id with.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__transaction_state` partition of `transactional_id` (Kafka's
/// `TransactionStateManager.partitionFor`: `Utils.abs(id.hashCode()) % partitions`, where
/// `Utils.abs(Integer.MIN_VALUE)` is 0).
fn coordinator_partition(transactional_id: &str, partitions: i32) -> i32 {
    let hash = java_hash(transactional_id);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// What a kill aims at: the broker leading which partition.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The `__transaction_state` partition of instance `i0`'s transactional id: that broker is
    /// the instance's transaction coordinator.
    Coordinator,
    /// Partition 0 of the input `in.a`.
    Input,
}

enum Phase {
    /// Until the next target's share of the outputs is out.
    Waiting,
    /// `node`, the leader of `target`, was killed at `since`, when `seen` outputs were out; the
    /// cluster fenced it at `fenced.0`, when `fenced.1` were, as the metadata last `checked`
    /// said.
    Down {
        node: i32,
        target: Target,
        since: Instant,
        seen: usize,
        fenced: Option<(Instant, usize)>,
        checked: Instant,
    },
    /// `compose/kafka start-node` is bringing `node` back.
    Starting {
        node: i32,
        since: Instant,
        start: JoinHandle<ExitStatus>,
    },
}

/// The broker kills of one run; [`LeaderKills::step`] advances them as the outputs come in.
pub(crate) struct LeaderKills {
    /// For the metadata: who leads what, and which brokers the cluster counts as live.
    client: BaseConsumer,
    prefix: String,
    /// The kills still to come, each with the share of outputs it waits for.
    targets: Vec<(Target, f64)>,
    phase: Phase,
    /// Outputs that came out while each killed node was down and fenced.
    progress_while_fenced: Vec<usize>,
    /// What happened, for the run's summary.
    pub report: Vec<String>,
}

impl LeaderKills {
    pub(crate) fn new(brokers: &str, prefix: &str) -> Self {
        LeaderKills {
            client: client(brokers),
            prefix: prefix.into(),
            targets: vec![(Target::Coordinator, 0.15), (Target::Input, 0.45)],
            phase: Phase::Waiting,
            progress_while_fenced: Vec::new(),
            report: Vec::new(),
        }
    }

    /// Kills, restarts or waits, now that `seen` of `counted` outputs are out. Never blocks for
    /// long: a restart runs on a thread of its own while the run goes on.
    pub(crate) fn step(&mut self, seen: usize, counted: usize) {
        self.phase = match std::mem::replace(&mut self.phase, Phase::Waiting) {
            Phase::Waiting => match self.targets.first() {
                Some(&(target, share)) if seen as f64 >= share * counted as f64 => {
                    let (node, what) = self.leader(target, None);
                    kill(node);
                    self.report.push(format!(
                        "SIGKILLed node {node}, leader of {what}, at {seen} of {counted} outputs"
                    ));
                    Phase::Down {
                        node,
                        target,
                        since: Instant::now(),
                        seen,
                        fenced: None,
                        checked: Instant::now(),
                    }
                }
                _ => Phase::Waiting,
            },
            Phase::Down {
                node,
                target,
                since,
                seen: then,
                mut fenced,
                mut checked,
            } => {
                if fenced.is_none() && checked.elapsed() >= Duration::from_secs(1) {
                    checked = Instant::now();
                    if !self.is_live(node) {
                        fenced = Some((Instant::now(), seen));
                        let (leader, what) = self.leader(target, Some(node));
                        self.report.push(format!(
                            "node {node} fenced {:.1?} after the kill, {} outputs later; {what} \
                             now led by node {leader}",
                            since.elapsed(),
                            seen - then
                        ));
                    }
                }
                let done = fenced
                    .is_some_and(|(at, before)| at.elapsed() >= DOWN_AFTER_FENCE && seen > before);
                if done || since.elapsed() >= MAX_DOWN {
                    let fenced = fenced.map(|(_, before)| seen - before);
                    self.back_up(node, since.elapsed(), seen - then, fenced)
                } else {
                    Phase::Down {
                        node,
                        target,
                        since,
                        seen: then,
                        fenced,
                        checked,
                    }
                }
            }
            Phase::Starting { node, since, start } if start.is_finished() => {
                self.started(node, since, start);
                Phase::Waiting
            }
            starting @ Phase::Starting { .. } => starting,
        };
    }

    /// Starts a node killed `down` ago, in the background; `progress` outputs came out since the
    /// kill, `fenced` of them after the cluster fenced it (`None`: it never did).
    fn back_up(
        &mut self,
        node: i32,
        down: Duration,
        progress: usize,
        fenced: Option<usize>,
    ) -> Phase {
        self.progress_while_fenced.push(fenced.unwrap_or(0));
        let fenced = match fenced {
            Some(n) => format!("{n} of them after it was fenced"),
            None => "and it was never fenced".into(),
        };
        self.report.push(format!(
            "node {node} down for {down:.1?}, {progress} outputs meanwhile, {fenced}; starting \
             it again"
        ));
        let id = node.to_string();
        let start = std::thread::spawn(move || {
            Command::new(script())
                .args(["start-node", &id, "--nodes", NODES])
                .status()
                .expect("compose/kafka runs")
        });
        Phase::Starting {
            node,
            since: Instant::now(),
            start,
        }
    }

    fn started(&mut self, node: i32, since: Instant, start: JoinHandle<ExitStatus>) {
        let status = start.join().unwrap();
        assert!(status.success(), "compose/kafka start-node {node} failed");
        self.report.push(format!(
            "node {node} answered again after {:.1?}",
            since.elapsed()
        ));
        self.targets.remove(0);
    }

    /// After the last output (`seen` in all): every kill must have happened while outputs were
    /// still due, and a node still down is started again (and waited for) before the checks read
    /// the cluster.
    pub(crate) fn finish(&mut self, seen: usize) {
        match std::mem::replace(&mut self.phase, Phase::Waiting) {
            Phase::Waiting => {}
            // The last output came out while the node was down: the run got on without it.
            Phase::Down {
                node,
                since,
                seen: then,
                fenced,
                ..
            } => {
                let fenced = fenced.map_or(seen - then, |(_, before)| seen - before);
                let phase = self.back_up(node, since.elapsed(), seen - then, Some(fenced));
                if let Phase::Starting { node, since, start } = phase {
                    while !start.is_finished() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    self.started(node, since, start);
                }
            }
            Phase::Starting { node, since, start } => self.started(node, since, start),
        }
        assert!(
            self.targets.is_empty(),
            "the run ended before the broker kill(s) {:?}",
            self.targets
        );
        // Min ISR 2 of 3 replicas: the run must go on with any one node down, not wait for it.
        assert!(
            self.progress_while_fenced.iter().all(|&n| n > 0),
            "no output while a node was down and fenced (within {MAX_DOWN:?} of its kill):\n{}",
            self.report.join("\n")
        );
    }

    /// Whether the cluster counts `node` as a live broker (a fenced one is left out of the
    /// metadata); when the metadata cannot be had, it may be.
    fn is_live(&self, node: i32) -> bool {
        match self
            .client
            .fetch_metadata(Some(TRANSACTION_STATE), Duration::from_secs(5))
        {
            Ok(metadata) => metadata.brokers().iter().any(|b| b.id() == node),
            Err(_) => true,
        }
    }

    /// The broker leading `target`'s partition, other than `not`, and what that partition is.
    fn leader(&self, target: Target, not: Option<i32>) -> (i32, String) {
        let consumer = &self.client;
        let (topic, partition, what) = match target {
            Target::Coordinator => {
                let id = format!("{}tessera.counter.i0", self.prefix);
                let partitions = consumer
                    .fetch_metadata(Some(TRANSACTION_STATE), Duration::from_secs(10))
                    .unwrap()
                    .topics()[0]
                    .partitions()
                    .len();
                assert!(partitions > 0, "{TRANSACTION_STATE} has no partitions yet");
                let partition = coordinator_partition(&id, partitions as i32);
                let what = format!(
                    "{TRANSACTION_STATE}-{partition} (the transaction coordinator of {id})"
                );
                (TRANSACTION_STATE.to_string(), partition, what)
            }
            Target::Input => {
                let topic = format!("{}in.a", self.prefix);
                let what = format!("{topic}-0 (an input of the counter)");
                (topic, 0, what)
            }
        };
        // Right after a node's return or fencing a partition may be without a leader for a while.
        for _ in 0..60 {
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .unwrap();
            let leader = metadata.topics()[0]
                .partitions()
                .iter()
                .find(|p| p.id() == partition)
                .map(|p| p.leader());
            if let Some(leader) = leader.filter(|&l| l >= 0 && Some(l) != not) {
                return (leader, what);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{what} has no leader");
    }
}

/// Node `node` restarts if the test ends (or panics) while it is down, so a failed run leaves
/// the cluster whole for the next.
impl Drop for LeaderKills {
    fn drop(&mut self) {
        let node = match std::mem::replace(&mut self.phase, Phase::Waiting) {
            Phase::Waiting => return,
            Phase::Down { node, .. } => node,
            Phase::Starting { start, .. } => {
                let _ = start.join();
                return;
            }
        };
        let _ = Command::new(script())
            .args(["start-node", &node.to_string(), "--nodes", NODES])
            .status();
    }
}

/// SIGKILLs node `node` through `compose/kafka kill-node`.
fn kill(node: i32) {
    let out = kafka(&["kill-node", &node.to_string()]);
    assert!(
        out.status.success(),
        "compose/kafka kill-node {node} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn java_string_hash_and_partition() {
    // Values of Java's "...".hashCode().
    assert_eq!(java_hash(""), 0);
    assert_eq!(java_hash("a"), 97);
    assert_eq!(java_hash("hello"), 99_162_322);
    assert_eq!(java_hash("polygenelubricants"), i32::MIN);
    assert_eq!(coordinator_partition("polygenelubricants", 10), 0);
    assert_eq!(coordinator_partition("hello", 50), 99_162_322 % 50);
}
