//! A core's topics as an installation names them: inputs, outputs, changelog, consumer group,
//! and each task's lanes. Pure naming, shared by the runtime that reads and writes them and the
//! auditor that replays them, so both build a task's lanes the same way.

use tessera_contract::topics::DEAD_LETTERS;

use crate::Core;
use crate::registry::Shape;

/// Names the processor's topics on this installation. Public so that an auditor builds each
/// task's lanes exactly as the runtime does.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Input topic names, prefixed, in [`Core::inputs`] order.
    pub inputs: Vec<String>,
    /// Per input: whether every task reads all its partitions ([`Core::broadcast_inputs`]).
    pub broadcast: Vec<bool>,
    /// Output topic names, prefixed, in [`Core::outputs`] order.
    pub outputs: Vec<String>,
    /// The same without the prefix: what a record's signature names.
    pub output_names: Vec<String>,
    /// The task states' compacted changelog.
    pub changelog: String,
    /// Where records that cannot be decoded go.
    pub dead_letters: String,
}

impl Topics {
    /// The topics of `core` on the installation whose topic names start with `prefix`.
    pub fn of<C: Core>(core: &C, prefix: &str) -> Self {
        Self::named(
            core.name(),
            core.inputs(),
            &core.broadcast_inputs(),
            core.outputs(),
            prefix,
        )
    }

    /// The topics a registered core declares, as [`Topics::of`] names them for the core itself.
    pub fn declared(shape: &Shape, prefix: &str) -> Self {
        Self::named(
            shape.name,
            shape.input_names(),
            shape.broadcast,
            shape.output_names(),
            prefix,
        )
    }

    fn named(
        name: &str,
        inputs: Vec<String>,
        broadcast: &[usize],
        outputs: Vec<String>,
        prefix: &str,
    ) -> Self {
        Topics {
            broadcast: (0..inputs.len()).map(|i| broadcast.contains(&i)).collect(),
            inputs: inputs.iter().map(|t| format!("{prefix}{t}")).collect(),
            outputs: outputs.iter().map(|t| format!("{prefix}{t}")).collect(),
            output_names: outputs,
            changelog: format!("{prefix}tessera.{name}.changelog"),
            dead_letters: DEAD_LETTERS.full_name(prefix),
        }
    }

    /// The consumer group of the processor: its committed offsets say which inputs it consumed.
    pub fn group<C: Core>(core: &C, prefix: &str) -> String {
        Self::group_named(core.name(), prefix)
    }

    /// The consumer group of the core named `name`.
    pub fn group_named(name: &str, prefix: &str) -> String {
        format!("{prefix}tessera.{name}")
    }

    /// The inputs the consumer group assigns by partition number.
    pub fn partitioned(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .zip(&self.broadcast)
            .filter(|(_, broadcast)| !**broadcast)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// Whether `topic` is an input every task reads in full.
    pub fn is_broadcast(&self, topic: &str) -> bool {
        self.inputs
            .iter()
            .zip(&self.broadcast)
            .any(|(t, broadcast)| *broadcast && t == topic)
    }

    /// The input partitions task `partition` merges, in merge rank order: its own partition of
    /// each input, or every partition of a broadcast input.
    pub fn lanes(&self, partition: i32, partitions: i32) -> Vec<Lane> {
        let mut lanes = Vec::new();
        for (input, topic) in self.inputs.iter().enumerate() {
            let owned: Vec<i32> = if self.broadcast[input] {
                (0..partitions).collect()
            } else {
                vec![partition]
            };
            for partition in owned {
                lanes.push(Lane {
                    input,
                    topic: topic.clone(),
                    partition,
                    broadcast: self.broadcast[input],
                });
            }
        }
        lanes
    }
}

/// One input partition of a task: a lane of its merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// Index of the topic in [`Core::inputs`].
    pub input: usize,
    /// The topic's name, prefixed.
    pub topic: String,
    /// The partition read.
    pub partition: i32,
    /// Read by the task's own consumer rather than assigned by the group.
    pub broadcast: bool,
}
