//! Logging setup (tracing with `EnvFilter`) and the `/metrics` text in
//! Prometheus format, built from the counters the other layers keep.
//!
//! Why not the prometheus-client crate: it writes OpenMetrics only (its
//! own content type, `# EOF`, `_total` names added to counters), and
//! `/metrics` answers Prometheus's `text/plain; version=0.0.4` (CONTRACT
//! §1), which its scrapers and our clients read. What this file keeps is
//! small: gauges and counters read from atomics, and one histogram type.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

use crate::channels::Metrics;

/// The filter when `RUST_LOG` is unset, empty or invalid.
const DEFAULT_FILTER: &str = "duet=info,tower_http=info";

/// Logs to stderr; `RUST_LOG` overrides the default filter. An invalid
/// `RUST_LOG` is said, not silently replaced by the default.
pub fn init_tracing() {
    let (filter, refused) = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if let Some(cause) = refused {
        tracing::warn!(%cause, default = DEFAULT_FILTER, "RUST_LOG is not a valid filter; using the default");
    }
}

/// The filter for a `RUST_LOG` value, and why it was refused if it was.
fn filter_from(rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => (EnvFilter::new(DEFAULT_FILTER), None),
        Some(value) => match EnvFilter::try_new(value) {
            Ok(filter) => (filter, None),
            Err(err) => (EnvFilter::new(DEFAULT_FILTER), Some(err.to_string())),
        },
    }
}

/// A fixed-bucket histogram of seconds, lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Buckets for persistence latency: 100 µs to 2.5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, secs: f64) {
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// One counter or gauge, with its help and type lines.
pub fn write_value(out: &mut String, name: &str, help: &str, kind: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
    );
}

/// Renders every metric in Prometheus text format.
pub fn render(
    channels: &Metrics,
    rooms_loaded: usize,
    longpoll_sessions: usize,
    persist: &Histogram,
    edits: &Histogram,
) -> String {
    let mut out = String::with_capacity(2048);
    let mut gauge =
        |name: &str, help: &str, kind: &str, v: u64| write_value(&mut out, name, help, kind, v);
    gauge(
        "duet_sockets",
        "Connected sockets (WebSocket and long-poll).",
        "gauge",
        Metrics::get(&channels.sockets),
    );
    gauge(
        "duet_channels",
        "Joined channels.",
        "gauge",
        Metrics::get(&channels.channels),
    );
    gauge(
        "duet_rooms_loaded",
        "Challenge rooms loaded in memory.",
        "gauge",
        rooms_loaded as u64,
    );
    gauge(
        "duet_longpoll_sessions",
        "Live long-poll sessions.",
        "gauge",
        longpoll_sessions as u64,
    );
    gauge(
        "duet_messages_in_total",
        "Messages received from clients.",
        "counter",
        Metrics::get(&channels.messages_in),
    );
    gauge(
        "duet_messages_out_total",
        "Frames queued to clients.",
        "counter",
        Metrics::get(&channels.messages_out),
    );
    gauge(
        "duet_slow_disconnects_total",
        "Clients disconnected for not keeping up.",
        "counter",
        Metrics::get(&channels.slow_disconnects),
    );
    persist.render(
        &mut out,
        "duet_persist_seconds",
        "Time to commit one batch of document updates.",
    );
    edits.render(
        &mut out,
        "duet_edit_seconds",
        "Time from an edit reaching its room's channel to its ack (committed).",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_is_used_when_valid_and_refused_with_its_cause_when_not() {
        let (filter, refused) = filter_from(Some("duet=debug"));
        assert_eq!(filter.to_string(), "duet=debug");
        assert!(refused.is_none());
        for unset in [None, Some(""), Some("  ")] {
            let (filter, refused) = filter_from(unset);
            assert_eq!(
                filter.to_string(),
                EnvFilter::new(DEFAULT_FILTER).to_string()
            );
            assert!(refused.is_none());
        }
        let (filter, refused) = filter_from(Some("duet=loudest"));
        assert_eq!(
            filter.to_string(),
            EnvFilter::new(DEFAULT_FILTER).to_string()
        );
        assert!(refused.is_some_and(|cause| !cause.is_empty()));
    }

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(0.0005);
        h.observe(0.005);
        h.observe(5.0);
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"0.001\"} 1"));
        assert!(s.contains("x_bucket{le=\"0.01\"} 2"));
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3"));
        assert!(s.contains("x_count 3"));
    }
}
