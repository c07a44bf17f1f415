//! What the broker tests that generate load share: where the broker is, and a seeded generator so
//! a failing schedule can be rerun.

/// The broker's address: `TESSERA_BROKERS`, else the local one.
pub fn brokers() -> String {
    std::env::var("TESSERA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A tiny deterministic generator.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number below `bound`.
    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}
