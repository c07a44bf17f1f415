//! A broker on which a test can leave a transaction hanging, and the means to do it.
//!
//! The brokers users run check, before appending a transactional record, that its partition was
//! added to the transaction (`transaction.partition.verification.enable`, KIP-890), so a client
//! cannot leave records its coordinator does not know of. A broker restarting mid-transaction
//! still did. To build that state on demand the test runs its own broker with the check off
//! (`compose/kafka` under its own home and ports) and writes the records by hand ([`wire`]).

pub(crate) mod wire;

use std::path::PathBuf;
use std::process::Command;

use rdkafka::ClientConfig;

const PORT: u16 = 19092;
const CONTROLLER_PORT: u16 = 19093;

/// A single-node broker without transaction verification, stopped when dropped.
pub(crate) struct LenientBroker;

impl LenientBroker {
    pub(crate) fn up() -> Self {
        compose("up");
        LenientBroker
    }

    /// Stops and starts the broker: its coordinators reload their state from their logs.
    pub(crate) fn restart(&self) {
        compose("restart");
    }

    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{PORT}")
    }

    pub(crate) fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.address());
        config
    }
}

impl Drop for LenientBroker {
    fn drop(&mut self) {
        compose("down");
    }
}

fn compose(command: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compose/kafka");
    let status = Command::new(script)
        .arg(command)
        .env(
            "TESSERA_HOME",
            std::env::temp_dir().join("tessera-lenient-broker"),
        )
        .env("TESSERA_KAFKA_PORT", PORT.to_string())
        .env("TESSERA_KAFKA_CONTROLLER_PORT", CONTROLLER_PORT.to_string())
        .env(
            "TESSERA_KAFKA_PROPERTIES",
            "transaction.partition.verification.enable=false",
        )
        .env("KAFKA_HEAP_OPTS", "-Xmx512M -Xms512M")
        .status()
        .expect("run compose/kafka");
    assert!(
        status.success(),
        "compose/kafka {command} failed for the lenient broker"
    );
}
