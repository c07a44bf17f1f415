//! The `tessera` command: the one entry point users start from. Each subcommand is a thin shell
//! over the workspace crates (`tessera-contract`, `tessera-state`, `tessera-task-store`,
//! `tessera-cores`, `tessera-runtime`, `tessera-producers`); this crate only parses arguments,
//! connects, and reports.

pub mod acl;
pub mod audit;
pub mod cli;
pub mod demo;
pub mod kafka;
pub mod keys;
pub mod ledger;
pub mod logging;
pub mod offer;
pub mod progress;
pub mod provider;
pub mod receipt;
pub mod run;
pub mod subscriber;
pub mod topics;
