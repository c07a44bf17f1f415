//! Logging on stderr through `tracing`, with librdkafka's start-up chatter held back.
//!
//! A client that starts beside a broker that has just started warns that it is retrying while
//! the broker loads its coordinators ("Failed to acquire idempotence PID ... Coordinator load in
//! progress: retrying"). Those warnings say nothing is wrong yet, and on a demo's first screen
//! they read as errors. They are held back unless they persist: a kind of warning that keeps
//! coming for longer than [`PERSISTS`] is shown from then on. Every other warning and every
//! error is shown as it comes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// How long a transient kind of warning may keep coming before it is shown.
pub const PERSISTS: Duration = Duration::from_secs(30);

/// librdkafka warnings that a client retries through on its own while a broker starts.
const TRANSIENT: [&str; 2] = ["Coordinator load in progress", "Not coordinator"];

/// The logging option every tessera binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format on stderr: `text` for people, `json` for log pipelines. Levels come from
    /// `RUST_LOG` (default `info`).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl LogArgs {
    /// Starts logging to stderr as `text` or `json`, at the levels `RUST_LOG` names, else
    /// `default`.
    pub fn init(&self, default: &str) {
        init(&self.log_format, default);
    }
}

fn init(format: &str, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(HoldBack::default());
    if format == "json" {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
}

/// The layer that holds back transient librdkafka warnings.
#[derive(Default)]
struct HoldBack {
    episodes: Mutex<Episodes>,
}

impl<S: Subscriber> Layer<S> for HoldBack {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        // rdkafka logs through the `log` crate, so the event's own target is the bridge's; its
        // messages start with "librdkafka:" whichever way they come.
        if *event.metadata().level() != Level::WARN {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if !message.0.starts_with("librdkafka:") {
            return true;
        }
        let Some(kind) = TRANSIENT.iter().find(|kind| message.0.contains(*kind)) else {
            return true;
        };
        self.episodes
            .lock()
            .map_or(true, |mut episodes| episodes.shown(kind, Instant::now()))
    }
}

/// An event's message.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// When each kind of transient warning started coming, and when it last came.
#[derive(Debug, Default)]
struct Episodes {
    kinds: HashMap<&'static str, (Instant, Instant)>,
}

impl Episodes {
    /// Whether a warning of `kind` coming at `now` is shown: once the kind has kept coming for
    /// longer than [`PERSISTS`]. A pause of [`PERSISTS`] ends an episode.
    fn shown(&mut self, kind: &'static str, now: Instant) -> bool {
        let (started, last) = self.kinds.entry(kind).or_insert((now, now));
        if now.duration_since(*last) > PERSISTS {
            *started = now;
        }
        *last = now;
        now.duration_since(*started) > PERSISTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transient_warning_is_shown_only_once_it_persists() {
        let mut episodes = Episodes::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!episodes.shown("Not coordinator", at(0)));
        assert!(!episodes.shown("Not coordinator", at(20)));
        assert!(
            !episodes.shown("Not coordinator", at(30)),
            "30 s is not longer than PERSISTS"
        );
        assert!(episodes.shown("Not coordinator", at(31)), "it kept coming");
        assert!(episodes.shown("Not coordinator", at(50)));
        // Another kind has its own episode.
        assert!(!episodes.shown("Coordinator load in progress", at(50)));
        // After a quiet spell a new episode starts, held back again.
        assert!(!episodes.shown("Not coordinator", at(200)));
        assert!(!episodes.shown("Not coordinator", at(215)));
        assert!(episodes.shown("Not coordinator", at(231)));
    }
}
