//! Every task of a processor, rebuilt in memory: the same lanes as the runtime's
//! ([`Topics::lanes`]), the same merge, the same [`step`], on a fresh state.
//!
//! Records go in as they are read, in offset order per partition, and each task steps its core
//! over every record its merge can decide. The merge is never told a lane is finished: a record
//! the live processor could not order yet, for want of a later record on another lane, stays
//! undecided here too, so the replay derives exactly what the processor could have.

use tessera_cores::Core;
use tessera_cores::core::Position;
use tessera_cores::layout::{Lane, Topics};
use tessera_cores::merge::{Merge, MergeError};
use tessera_cores::replay::{Produced, RawRecord, step};
use tessera_state::MemoryState;

/// One input a task was stepped over, and what it produced.
#[derive(Debug)]
pub struct Step<'a> {
    /// The task (its partition number).
    pub task: i32,
    /// The lane the input was read from.
    pub lane: &'a Lane,
    /// Its index among the task's lanes.
    pub lane_index: usize,
    /// Where and when, with `topic` the index in [`Core::inputs`] as the core saw it.
    pub at: Position,
    /// What the core produced.
    pub produced: Vec<Produced>,
}

struct Task {
    partition: i32,
    lanes: Vec<Lane>,
    merge: Merge<RawRecord>,
    state: MemoryState,
    steps: u64,
}

/// The tasks of one processor, replayed.
pub struct Replay<C: Core> {
    core: C,
    tasks: Vec<Task>,
    /// Per input (its index in [`Core::inputs`]), per partition: the (task, lane) pairs that
    /// read it. A partition of a broadcast input feeds every task.
    routes: Vec<Vec<Vec<(usize, usize)>>>,
}

impl<C: Core> Replay<C> {
    /// Fresh tasks `0..partitions` of `core` on `topics`.
    pub fn new(core: C, topics: &Topics, partitions: i32) -> Self {
        let mut routes = vec![vec![Vec::new(); partitions.max(0) as usize]; topics.inputs.len()];
        let tasks = (0..partitions)
            .map(|partition| {
                let lanes = topics.lanes(partition, partitions);
                for (lane_index, lane) in lanes.iter().enumerate() {
                    if let Some(route) = routes[lane.input].get_mut(lane.partition as usize) {
                        route.push((partition as usize, lane_index));
                    }
                }
                Task {
                    partition,
                    merge: Merge::new(lanes.len()),
                    lanes,
                    state: MemoryState::new(),
                    steps: 0,
                }
            })
            .collect();
        Replay {
            core,
            tasks,
            routes,
        }
    }

    /// Appends the next record of partition `partition` of input `input` (its index in
    /// [`Core::inputs`]) to every task that reads it, steps each over what its merge can now
    /// decide, and hands every step to `on_step`. A record of a partition no task reads is
    /// ignored.
    pub fn push(
        &mut self,
        input: usize,
        partition: i32,
        offset: i64,
        stamp: i64,
        record: RawRecord,
        on_step: &mut dyn FnMut(Step<'_>),
    ) -> Result<(), MergeError> {
        let Replay {
            core,
            tasks,
            routes,
        } = self;
        let Some((&(last_task, last_lane), others)) = routes
            .get(input)
            .and_then(|by_partition| by_partition.get(usize::try_from(partition).ok()?))
            .and_then(|route| route.split_last())
        else {
            return Ok(());
        };
        let at = (partition, offset, stamp);
        for &(task, lane) in others {
            feed(core, &mut tasks[task], lane, at, record.clone(), on_step)?;
        }
        feed(core, &mut tasks[last_task], last_lane, at, record, on_step)
    }

    /// Inputs stepped over, summed over tasks.
    pub fn stepped(&self) -> u64 {
        self.tasks.iter().map(|t| t.steps).sum()
    }

    /// Records read but still waiting in a merge.
    pub fn undecided(&self) -> u64 {
        self.tasks.iter().map(|t| t.merge.buffered() as u64).sum()
    }
}

/// Appends a record at `(partition, offset, stamp)` to `lane` of `task` and steps the task over
/// everything its merge decides.
fn feed<C: Core>(
    core: &mut C,
    task: &mut Task,
    lane: usize,
    (partition, offset, stamp): (i32, i64, i64),
    record: RawRecord,
    on_step: &mut dyn FnMut(Step<'_>),
) -> Result<(), MergeError> {
    task.merge.push(lane, partition, offset, stamp, record)?;
    while let Some(mut entry) = task.merge.pop() {
        // The merge ranks lanes; the core knows its inputs (as the runtime maps them).
        let lane_index = entry.at.topic;
        let lane = &task.lanes[lane_index];
        entry.at.topic = lane.input;
        entry.at.task = task.partition;
        let at = entry.at;
        let produced = step(core, &mut task.state, entry);
        on_step(Step {
            task: task.partition,
            lane,
            lane_index,
            at,
            produced,
        });
        task.steps += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tessera_cores::counter::Counter;

    use super::*;

    fn record(key: &str) -> RawRecord {
        RawRecord {
            key: Some(key.as_bytes().to_vec()),
            value: Some(b"x".to_vec()),
            signature: None,
            refused: None,
        }
    }

    /// Replays `pushes` (input, partition, offset, stamp, key) and returns, per step, the task,
    /// the input index and offset, and the outputs' values.
    fn replay(
        core: Counter,
        partitions: i32,
        pushes: &[(usize, i32, i64, i64, &str)],
    ) -> Vec<(i32, usize, i64, Vec<String>)> {
        let topics = Topics::of(&core, "p.");
        let mut replay = Replay::new(core, &topics, partitions);
        let mut steps = Vec::new();
        for &(input, partition, offset, stamp, key) in pushes {
            replay
                .push(
                    input,
                    partition,
                    offset,
                    stamp,
                    record(key),
                    &mut |s: Step<'_>| {
                        let values = s
                            .produced
                            .iter()
                            .map(|p| match p {
                                Produced::Output(o) => {
                                    String::from_utf8_lossy(&o.value).into_owned()
                                }
                                Produced::DeadLetter { reason, .. } => reason.clone(),
                            })
                            .collect();
                        steps.push((s.task, s.at.topic, s.at.offset, values));
                    },
                )
                .unwrap();
        }
        steps
    }

    #[test]
    fn each_task_merges_its_own_partition_of_every_input_and_waits_for_all() {
        let core = Counter::new("counter", vec!["a".into(), "b".into()], "out", i64::MAX / 4);
        let steps = replay(
            core,
            2,
            &[
                (0, 0, 0, 10, "k"),
                (0, 1, 0, 10, "m"),
                (1, 1, 0, 20, "m"),
                (1, 0, 0, 5, "k"),
                (2, 0, 0, 1, "ignored"),
            ],
        );
        assert_eq!(
            steps,
            vec![
                // Task 1 decides a/1@0 once b/1 has a record; b/1@0 waits for a later a/1.
                (1, 0, 0, vec!["m=1".to_string()]),
                // Task 0: b/0@0 (stamp 5) comes before a/0@0 (stamp 10); a/0@0 then waits for b.
                (0, 1, 0, vec!["k=1".to_string()]),
            ]
        );
    }
}
