//! The broker the runtime's integration tests talk to: `TESSERA_BROKERS`, or the one
//! `compose/kafka up` starts on loopback.

use rdkafka::ClientConfig;

/// Client settings that reach the test broker.
pub(crate) fn client() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set(
        "bootstrap.servers",
        std::env::var("TESSERA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    );
    config
}
