//! Puts a task's input partitions into one order that depends only on their contents.
//!
//! Kafka Streams merges partitions by head-record timestamp and breaks ties by heap order, and with
//! `max.task.idle.ms = 0` it moves on without a partition whose data has not been fetched yet, so
//! a replay may order records differently from the live run. Here the next record is decided only
//! when every input partition of the task has a record buffered (ticks keep idle partitions
//! moving), and records are ordered by effective stamp, then topic rank, then offset. The result is
//! a pure function of the partitions' contents, whatever order the fetches complete in.

use std::collections::VecDeque;

use crate::core::Position;

/// A record with its place in the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    /// Where and when, with the effective stamp filled in.
    pub at: Position,
    /// The record.
    pub item: T,
}

/// Why a record cannot join the merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The task has no such input topic.
    #[error("input topic index {0} is out of range")]
    NoSuchTopic(usize),
    /// Records of one partition must arrive in offset order.
    #[error("offset {offset} on input {topic} arrived after offset {previous}")]
    OutOfOrder {
        /// The input.
        topic: usize,
        /// The record's offset.
        offset: i64,
        /// The offset that arrived before it.
        previous: i64,
    },
}

#[derive(Debug)]
struct Lane<T> {
    queue: VecDeque<Entry<T>>,
    /// Largest stamp pushed so far: the next pushed record's effective stamp is at least this.
    pushed_effective: i64,
    last_offset: Option<i64>,
    finished: bool,
}

/// The merge of one task's input partitions (one lane per input topic).
#[derive(Debug)]
pub struct Merge<T> {
    lanes: Vec<Lane<T>>,
}

impl<T> Merge<T> {
    /// A merge of `lanes` input partitions that starts from scratch.
    pub fn new(lanes: usize) -> Self {
        Self::resume(vec![i64::MIN; lanes])
    }

    /// A merge that resumes after records whose effective stamps per lane were `effective` (from
    /// a checkpoint), so the effective stamp stays the maximum over the whole partition.
    pub fn resume(effective: Vec<i64>) -> Self {
        let lanes = effective
            .into_iter()
            .map(|stamp| Lane {
                queue: VecDeque::new(),
                pushed_effective: stamp,
                last_offset: None,
                finished: false,
            })
            .collect();
        Merge { lanes }
    }

    /// Appends the next record of input `topic`.
    pub fn push(
        &mut self,
        topic: usize,
        partition: i32,
        offset: i64,
        stamp: i64,
        item: T,
    ) -> Result<(), MergeError> {
        let lane = self
            .lanes
            .get_mut(topic)
            .ok_or(MergeError::NoSuchTopic(topic))?;
        if let Some(previous) = lane.last_offset
            && offset <= previous
        {
            return Err(MergeError::OutOfOrder {
                topic,
                offset,
                previous,
            });
        }
        lane.last_offset = Some(offset);
        lane.pushed_effective = lane.pushed_effective.max(stamp);
        let at = Position {
            topic,
            partition,
            // A task reads its own partition number of every input that is not broadcast; the
            // runtime, which knows the task, sets it for broadcast lanes.
            task: partition,
            offset,
            stamp,
            effective: lane.pushed_effective,
        };
        lane.queue.push_back(Entry { at, item });
        Ok(())
    }

    /// Declares that input `topic` has no more records (the end of a finite log, in a replay),
    /// so the merge stops waiting for it.
    pub fn finish(&mut self, topic: usize) {
        if let Some(lane) = self.lanes.get_mut(topic) {
            lane.finished = true;
        }
    }

    /// The next record in merge order, once it is decided: every input that is not finished must
    /// have a record buffered, because any of them could hold an earlier one.
    pub fn pop(&mut self) -> Option<Entry<T>> {
        if self
            .lanes
            .iter()
            .any(|lane| lane.queue.is_empty() && !lane.finished)
        {
            return None;
        }
        let next = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, lane)| lane.queue.front().map(|e| (e.at.effective, i, e.at.offset)))
            .min()?;
        self.lanes[next.1].queue.pop_front()
    }

    /// Inputs the merge is waiting for: no record buffered and not finished.
    pub fn waiting_on(&self) -> Vec<usize> {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, lane)| lane.queue.is_empty() && !lane.finished)
            .map(|(i, _)| i)
            .collect()
    }

    /// Records buffered and not yet popped.
    pub fn buffered(&self) -> usize {
        self.lanes.iter().map(|lane| lane.queue.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain<T>(merge: &mut Merge<T>) -> Vec<Entry<T>> {
        std::iter::from_fn(|| merge.pop()).collect()
    }

    #[test]
    fn waits_for_every_input_before_deciding() {
        let mut merge = Merge::new(2);
        merge.push(1, 0, 0, 100, "response").unwrap();
        assert_eq!(
            merge.pop(),
            None,
            "input 0 may still hold an earlier record"
        );
        assert_eq!(merge.waiting_on(), vec![0]);
        merge.push(0, 0, 0, 150, "tick").unwrap();
        assert_eq!(merge.pop().unwrap().item, "response");
        assert_eq!(merge.pop(), None);
    }

    #[test]
    fn equal_stamps_go_by_topic_rank_then_offset() {
        let mut merge = Merge::new(2);
        merge.push(1, 0, 7, 100, "b7").unwrap();
        merge.push(1, 0, 8, 100, "b8").unwrap();
        merge.push(0, 0, 3, 100, "a3").unwrap();
        merge.finish(0);
        merge.finish(1);
        let order: Vec<_> = drain(&mut merge).into_iter().map(|e| e.item).collect();
        assert_eq!(order, ["a3", "b7", "b8"]);
    }

    #[test]
    fn a_clock_that_steps_back_cannot_reorder_a_partition() {
        let mut merge = Merge::new(2);
        merge.push(0, 0, 0, 200, "late-clock").unwrap();
        merge.push(0, 0, 1, 150, "stepped-back").unwrap();
        merge.push(1, 0, 0, 180, "other").unwrap();
        merge.finish(0);
        merge.finish(1);
        let entries = drain(&mut merge);
        let order: Vec<_> = entries.iter().map(|e| (e.item, e.at.effective)).collect();
        assert_eq!(
            order,
            [("other", 180), ("late-clock", 200), ("stepped-back", 200)]
        );
        assert_eq!(
            entries[2].at.stamp, 150,
            "the stamp as read is kept for evidence"
        );
    }

    #[test]
    fn resuming_keeps_the_effective_stamp_of_the_partition() {
        let mut merge = Merge::resume(vec![500, i64::MIN]);
        merge.push(0, 0, 10, 400, ()).unwrap();
        merge.finish(1);
        assert_eq!(merge.pop().unwrap().at.effective, 500);
    }

    #[test]
    fn offsets_must_increase() {
        let mut merge = Merge::new(1);
        merge.push(0, 0, 5, 1, ()).unwrap();
        assert_eq!(
            merge.push(0, 0, 5, 1, ()),
            Err(MergeError::OutOfOrder {
                topic: 0,
                offset: 5,
                previous: 5
            })
        );
        assert_eq!(merge.push(3, 0, 0, 1, ()), Err(MergeError::NoSuchTopic(3)));
    }

    /// Per input, a sequence of (offset gap, stamp) records.
    fn lanes() -> impl Strategy<Value = Vec<Vec<(i64, i64)>>> {
        proptest::collection::vec(proptest::collection::vec((1i64..3, 0i64..50), 0..30), 1..4)
    }

    proptest! {
        /// Whatever order records arrive in across inputs, and whenever pops are attempted, the
        /// popped sequence is the same: all records sorted by (effective stamp, rank, offset).
        #[test]
        fn order_is_independent_of_arrival(lanes in lanes(), schedule in proptest::collection::vec(0usize..8, 0..200)) {
            let records: Vec<Vec<(i64, i64)>> = lanes
                .iter()
                .map(|lane| {
                    let mut offset = -1;
                    lane.iter().map(|&(gap, stamp)| { offset += gap; (offset, stamp) }).collect()
                })
                .collect();

            let mut reference = Merge::new(records.len());
            for (topic, lane) in records.iter().enumerate() {
                for &(offset, stamp) in lane {
                    reference.push(topic, 0, offset, stamp, (topic, offset)).unwrap();
                }
                reference.finish(topic);
            }
            let expected: Vec<_> = drain(&mut reference).into_iter().map(|e| e.at).collect();
            let mut sorted = expected.clone();
            sorted.sort_by_key(|at| (at.effective, at.topic, at.offset));
            prop_assert_eq!(&expected, &sorted);

            let mut merge = Merge::new(records.len());
            let mut next = vec![0usize; records.len()];
            let mut popped = Vec::new();
            let mut steps = schedule.into_iter();
            loop {
                let open: Vec<usize> = (0..records.len()).filter(|&t| next[t] < records[t].len()).collect();
                if open.is_empty() {
                    break;
                }
                let choice = steps.next().unwrap_or(0);
                if choice >= 6 {
                    popped.extend(std::iter::from_fn(|| merge.pop()).map(|e| e.at));
                    continue;
                }
                let topic = open[choice % open.len()];
                let (offset, stamp) = records[topic][next[topic]];
                merge.push(topic, 0, offset, stamp, (topic, offset)).unwrap();
                next[topic] += 1;
                if next[topic] == records[topic].len() {
                    merge.finish(topic);
                }
            }
            for topic in 0..records.len() {
                merge.finish(topic);
            }
            popped.extend(std::iter::from_fn(|| merge.pop()).map(|e| e.at));
            prop_assert_eq!(popped, expected);
        }
    }
}
