//! Logging setup (tracing with `EnvFilter`) and `/metrics`: a
//! prometheus-client `Registry` (no globals: the app builds one) holding
//! the two latency histograms, plus the values other layers keep in their
//! own atomics, read at each scrape ([`Sampled`]).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
pub use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

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

/// Buckets for persistence latency: 100 µs to 2.5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram of seconds over [`LATENCY_BUCKETS`] (a cheap `Clone`
/// handle: every clone observes into the same one).
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// Values kept elsewhere (the channels layer's atomics, the rooms, the
/// bus), read when `/metrics` is scraped.
#[derive(Default)]
pub struct Sampled {
    rows: Vec<Row>,
}

struct Row {
    name: &'static str,
    help: &'static str,
    counter: bool,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Sampled {
    /// A value that goes up and down.
    pub fn gauge(self, name: &'static str, help: &'static str, read: impl Reading) -> Self {
        self.row(name, help, false, read)
    }

    /// A value that only goes up: its sample is `<name>_total`.
    pub fn counter(self, name: &'static str, help: &'static str, read: impl Reading) -> Self {
        self.row(name, help, true, read)
    }

    fn row(
        mut self,
        name: &'static str,
        help: &'static str,
        counter: bool,
        read: impl Reading,
    ) -> Self {
        self.rows.push(Row {
            name,
            help,
            counter,
            read: Box::new(read),
        });
        self
    }
}

/// How a sampled value is read, at each scrape.
pub trait Reading: Fn() -> u64 + Send + Sync + 'static {}
impl<F: Fn() -> u64 + Send + Sync + 'static> Reading for F {}

/// Reads `f` of (a clone of) `handle` at each scrape.
pub fn reading<T: Clone + Send + Sync + 'static>(handle: &T, f: fn(&T) -> u64) -> impl Reading {
    let handle = handle.clone();
    move || f(&handle)
}

impl std::fmt::Debug for Sampled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.rows.iter().map(|r| r.name))
            .finish()
    }
}

impl Collector for Sampled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for row in &self.rows {
            let value = (row.read)();
            if row.counter {
                let counter = ConstCounter::new(value);
                counter.encode(encoder.encode_descriptor(
                    row.name,
                    row.help,
                    None,
                    counter.metric_type(),
                )?)?;
            } else {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    row.name,
                    row.help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

/// The registry's text (OpenMetrics 1.0, which Prometheus's plain-text
/// parser reads too: `# EOF` and the counters' family names are comments
/// and metadata to it; every sample is named as before).
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
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
    fn the_registry_renders_histograms_gauges_and_counters() {
        let mut registry = Registry::default();
        let h = latency_histogram();
        registry.register("x_seconds", "Help", h.clone());
        h.observe(0.0005);
        h.observe(0.005);
        h.observe(5.0);
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(7));
        let read = hits.clone();
        registry.register_collector(Box::new(
            Sampled::default()
                .gauge("x_open", "Open now.", || 3)
                .counter("x_hits", "Hits.", move || {
                    read.load(std::sync::atomic::Ordering::Relaxed)
                }),
        ));
        hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = render(&registry);
        for line in [
            "x_seconds_bucket{le=\"0.001\"} 1",
            "x_seconds_bucket{le=\"0.01\"} 2",
            "x_seconds_bucket{le=\"+Inf\"} 3",
            "x_seconds_count 3",
            "# HELP x_seconds Help.",
            "# TYPE x_open gauge",
            "x_open 3",
            "# HELP x_hits Hits.",
            "# TYPE x_hits counter",
            "x_hits_total 8",
        ] {
            assert!(s.lines().any(|l| l == line), "no {line:?} in:\n{s}");
        }
    }
}
