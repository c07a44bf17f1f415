//! Every processor tessera runs, declared once.
//!
//! A processor is what `tessera run <name>` starts: one or more cores in one process, a default
//! metrics port, and what an audit of it needs. Each core declares its topics here, in its
//! [`Shape`], and implements [`Core::name`], [`Core::inputs`], [`Core::outputs`] and
//! [`Core::broadcast_inputs`] from it, so the runtime, the auditor, the ACL plan, `tessera topics
//! describe` and the docs all read the same declaration.
//!
//! # Adding a processor
//!
//! 1. A module under `processors/cores/src/` with the core (a [`Core`]), its `SHAPE` declared
//!    with `shape!` (its inputs in rank order as an enum its decoder matches, its output and
//!    what its state holds), its `PROCESSOR`, and its unit tests beside it (`tests.rs`).
//! 2. One line in [`ALL`].
//! 3. Its flags and start-up in `tessera run` (`src/run.rs`), its audit in `tessera audit`
//!    (`src/audit.rs`) and its part in `tessera demo` (`src/demo.rs`): each dispatches on the name
//!    and fails with a clear error for a registered processor it does not know yet.
//! 4. Its ACL role in `src/acl.rs` (the registry test there fails without one), then
//!    `tessera topics describe` to refresh the table in `docs/CONTRACTS.md` (a test compares it).

use tessera_contract::topics::Topic;

use crate::Core;
use crate::{delivery, ledger, matcher, timekeeper};

/// Every processor, in the order of the data: a match, a verdict, a delivery, a credit.
pub const ALL: &[&Processor] = &[
    &matcher::PROCESSOR,
    &timekeeper::PROCESSOR,
    &delivery::PROCESSOR,
    &ledger::PROCESSOR,
];

/// One processor as `tessera run` starts it.
#[derive(Debug, PartialEq, Eq)]
pub struct Processor {
    /// `tessera run <name>`; also its ACL role's name.
    pub name: &'static str,
    /// The cores it runs in one process, each with its own group, transactions and state.
    pub cores: &'static [&'static Shape],
    /// The port of its Prometheus endpoint on 127.0.0.1 unless `--metrics-addr` says otherwise,
    /// distinct per processor so one of each can run on a host.
    pub metrics_port: u16,
    /// Whether it publishes its public keys on `tessera.keys` at start.
    pub publishes_key: bool,
    /// The secret a full audit of it needs, if any: without it the audit checks what public keys
    /// can.
    pub audit_secret: Option<&'static str>,
}

/// One core's declaration: its name and topics, and what its state holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    /// The core's name: its consumer group, transactional ids, state directory and changelog
    /// topic derive from it.
    pub name: &'static str,
    /// Its inputs in rank order: on equal effective stamps, a record of an earlier input comes
    /// first.
    pub inputs: &'static [Topic],
    /// Indices into `inputs` that every task reads in full ([`Core::broadcast_inputs`]).
    pub broadcast: &'static [usize],
    /// What it writes. Beside it, every core writes `tessera.dead-letters`: its outputs are the
    /// two, in the order of [`OUTPUT`] and [`DEAD_LETTERS`].
    pub output: Topic,
    /// What its state holds, in a phrase.
    pub state: &'static str,
}

impl Shape {
    /// The inputs' names, without an installation's prefix.
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|t| t.name.to_string()).collect()
    }

    /// Its outputs: what it writes, then the dead letters.
    pub fn outputs(&self) -> [Topic; 2] {
        [self.output, tessera_contract::topics::DEAD_LETTERS]
    }

    /// The outputs' names, without an installation's prefix.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs().iter().map(|t| t.name.to_string()).collect()
    }
}

/// The index of a core's [`Shape::output`] among its outputs.
pub const OUTPUT: usize = 0;
/// The index of `tessera.dead-letters` among a core's outputs.
pub const DEAD_LETTERS: usize = 1;

/// A core's inputs, as the enum [`shape!`] declares: its order is their rank order, so an index
/// a [`crate::Position`] carries names one of them and [`Shape::inputs`] is their topics, and no
/// core numbers its inputs by hand.
pub(crate) trait Inputs: Copy + 'static {
    /// Every input, in rank order.
    const ALL: &'static [Self];
    /// Their topics, in rank order: the core's [`Shape::inputs`].
    const TOPICS: &'static [Topic];

    /// The input at `index` in rank order.
    fn of(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// The topic it reads.
    fn topic(self) -> Topic;
}

/// Declares a core's [`Shape`] and its inputs: the enum of its inputs in rank order, each with
/// the topic it reads (implementing [`Inputs`]; a variant's `as usize` is its index), and the
/// `Shape` const taking their topics.
///
/// ```text
/// shape! {
///     /// What the core is, and why its inputs rank as they do.
///     pub const SHAPE: "name",
///     inputs Input { A = TOPIC_A, B = TOPIC_B },
///     broadcast [B],
///     output TOPIC_C,
///     state "what its state holds";
/// }
/// ```
/// Topics are named as in [`tessera_contract::topics`], the catalogue. `broadcast [...]`, the
/// inputs every task reads in full, is left out by a core that has none.
macro_rules! shape {
    (
        $(#[$meta:meta])*
        pub const $shape:ident: $name:literal,
        inputs $inputs:ident { $($variant:ident = $topic:ident),+ $(,)? },
        $(broadcast [$($broadcast:ident),*],)?
        output $output:ident,
        state $state:literal;
    ) => {
        /// The inputs in rank order, as the core's [`Shape`] declares them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $inputs {
            $(#[doc = concat!("`tessera_contract::topics::", stringify!($topic), "`.")] $variant),+
        }

        impl $crate::registry::Inputs for $inputs {
            const ALL: &'static [Self] = &[$($inputs::$variant),+];
            const TOPICS: &'static [tessera_contract::topics::Topic] =
                &[$(tessera_contract::topics::$topic),+];

            fn topic(self) -> tessera_contract::topics::Topic {
                Self::TOPICS[self as usize]
            }
        }

        $(#[$meta])*
        pub const $shape: $crate::registry::Shape = $crate::registry::Shape {
            name: $name,
            inputs: <$inputs as $crate::registry::Inputs>::TOPICS,
            broadcast: &[$($($inputs::$broadcast as usize),*)?],
            output: tessera_contract::topics::$output,
            state: $state,
        };
    };
}
pub(crate) use shape;

/// Implements [`Core::name`], [`Core::inputs`], [`Core::outputs`] and [`Core::broadcast_inputs`]
/// inside an `impl Core` from the core's registered [`Shape`], so a core states its topics once.
#[macro_export]
macro_rules! declared_by {
    ($shape:expr) => {
        fn name(&self) -> &str {
            $shape.name
        }

        fn inputs(&self) -> Vec<String> {
            $shape.input_names()
        }

        fn outputs(&self) -> Vec<String> {
            $shape.output_names()
        }

        fn broadcast_inputs(&self) -> Vec<usize> {
            $shape.broadcast.to_vec()
        }
    };
}

/// The registered processor named `name`.
pub fn find(name: &str) -> Option<&'static Processor> {
    ALL.iter().copied().find(|p| p.name == name)
}

/// The registered names, for help texts and errors.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|p| p.name).collect()
}

/// Whether `core` is what `shape` declares: the runtime builds its topics from the core, the
/// registry's readers from the shape.
pub fn declares<C: Core>(shape: &Shape, core: &C) -> bool {
    core.name() == shape.name
        && core.inputs() == shape.input_names()
        && core.outputs() == shape.output_names()
        && core.broadcast_inputs() == shape.broadcast
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tessera_contract::sealing::PrivateKey;
    use tessera_contract::signing::SigningKey;

    use super::*;

    #[test]
    fn every_core_is_what_its_processor_declares() {
        let key = SigningKey::derive(&PrivateKey::from_bytes(&[7; 32]).unwrap()).verifying_key();
        let timekeeper =
            timekeeper::Timekeeper::new(PrivateKey::from_bytes(&[9; 32]).unwrap(), key);
        assert!(declares(&matcher::SHAPE, &matcher::Matcher::default()));
        assert!(declares(&timekeeper::SHAPE, &timekeeper));
        let delivery = delivery::Delivery::new(PrivateKey::from_bytes(&[8; 32]).unwrap(), key, key);
        assert!(declares(&delivery::SHAPE, &delivery));
        assert!(declares(
            &ledger::rewards::SHAPE,
            &ledger::Rewards::new(key)
        ));
        assert!(declares(&ledger::BALANCES_SHAPE, &ledger::Ledger::new(key)));
    }

    #[test]
    fn names_cores_and_ports_are_unique_and_broadcasts_are_inputs() {
        let names: HashSet<_> = ALL.iter().map(|p| p.name).collect();
        let ports: HashSet<_> = ALL.iter().map(|p| p.metrics_port).collect();
        let cores: Vec<_> = ALL.iter().flat_map(|p| p.cores.iter()).collect();
        let core_names: HashSet<_> = cores.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(ports.len(), ALL.len());
        assert_eq!(core_names.len(), cores.len());
        for core in cores {
            assert_ne!(core.output, tessera_contract::topics::DEAD_LETTERS);
            assert!(core.broadcast.iter().all(|&i| i < core.inputs.len()));
        }
    }
}
