//! What every core's module uses: the [`Core`] trait with its inputs and outputs, its
//! declaration, its state's tables and the signatures it checks. A core imports this and then
//! only what is its own.

pub(crate) use tessera_contract::signing::{Signed, VerifyingKey};
pub(crate) use tessera_contract::{Event, topics};
pub(crate) use tessera_state::{State, Table};

pub(crate) use crate::core::{Core, Emitted, Input, Raw, misplaced};
pub(crate) use crate::outputs::{Outputs, pair};
pub(crate) use crate::registry::{Processor, shape};
