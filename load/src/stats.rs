//! Measuring: latency histograms that many tasks record into without one
//! global lock, the per-client counters merged at the end, and what
//! `/proc` says about the server's and our own CPU and memory.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram tracks (larger values saturate), in micros.
const MAX_LATENCY_US: u64 = 600_000_000;
/// Local samples a client keeps before taking a shard's lock.
const BATCH: usize = 128;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// A histogram split over a few mutexes; client `i` records into shard
/// `i % n`, a batch at a time, so no single lock is hot.
pub struct ShardedHistogram {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl ShardedHistogram {
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
        }
    }

    fn record_all(&self, shard: usize, values: &[u64]) {
        let mut h = self.shards[shard % self.shards.len()]
            .lock()
            .expect("histogram lock poisoned");
        for &v in values {
            h.saturating_record(v.max(1));
        }
    }

    /// All shards added together.
    pub fn merged(&self) -> Histogram<u64> {
        let mut out = new_histogram();
        for s in &self.shards {
            out.add(&*s.lock().expect("histogram lock poisoned"))
                .expect("same bounds");
        }
        out
    }
}

/// A client's buffer in front of a `ShardedHistogram`.
pub struct Recorder<'a> {
    target: &'a ShardedHistogram,
    shard: usize,
    buf: Vec<u64>,
}

impl<'a> Recorder<'a> {
    pub fn new(target: &'a ShardedHistogram, shard: usize) -> Self {
        Self {
            target,
            shard,
            buf: Vec::new(),
        }
    }

    pub fn record(&mut self, value_us: u64) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(BATCH);
        }
        self.buf.push(value_us);
        if self.buf.len() >= BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.target.record_all(self.shard, &self.buf);
            self.buf.clear();
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Percentiles of one histogram, in milliseconds, as the report prints them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }

    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.count
        )
    }
}

/// A histogram as `[value, count]` pairs, so that reports of several
/// processes can be merged exactly.
pub fn histogram_to_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn histogram_from_pairs(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = new_histogram();
    for &(v, n) in pairs {
        h.saturating_record_n(v.max(1), n);
    }
    h
}

/// Delivery accounting: what was expected, what was seen once, what twice.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Deliveries {
    pub expected: u64,
    pub unique: u64,
    pub total: u64,
}

impl Deliveries {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.unique)
    }
    pub fn duplicates(&self) -> u64 {
        self.total.saturating_sub(self.unique)
    }
}

/// A rate: `count` over `secs`, 0 when there is no time.
pub fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// CPU seconds (user + system) and resident memory of one process.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` (`pid` "self" works).
pub fn sample_proc(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_secs: cpu_secs_from_stat(&stat, clock_ticks())?,
        rss_kib: rss_kib_from_status(&status)?,
        peak_rss_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime (fields 14 and 15) in seconds. The command name, field 2,
/// may hold spaces and parentheses, so fields are counted from the last ')'.
pub fn cpu_secs_from_stat(stat: &str, ticks_per_sec: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_sec)
}

pub fn rss_kib_from_status(status: &str) -> Option<u64> {
    status_kib(status, "VmRSS:")
}

/// A `kB` line of `/proc/<pid>/status`, e.g. "VmHWM:" (peak RSS).
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The pid of the process listening on TCP `port` (any local address),
/// found through `/proc/net/tcp{,6}` (the socket's inode) and
/// `/proc/*/fd` (who holds it). `None` if not found or not readable.
pub fn find_listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.to_string_lossy();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    if inodes.iter().any(|i| i == inode) {
                        return Some(pid);
                    }
                }
            }
        }
    }
    None
}

/// Inodes of sockets in LISTEN state (0A) on `port` in a /proc/net/tcp table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            (local.ends_with(&want) && *state == "0A").then(|| inode.to_string())
        })
        .collect()
}

/// `TcpExt: ListenOverflows` of /proc/net/netstat: connections dropped
/// because a listen queue was full (each costs the client a 1 s SYN
/// retransmit). Counted for the whole machine.
pub fn listen_overflows() -> Option<u64> {
    netstat_field(
        &std::fs::read_to_string("/proc/net/netstat").ok()?,
        "TcpExt:",
        "ListenOverflows",
    )
}

/// A field of /proc/net/netstat, which pairs a header line of names with a
/// line of values, both starting with `prefix`.
fn netstat_field(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Raises the soft open-files limit to the hard one; returns the new soft
/// limit. One socket is one descriptor, and the default soft limit is low.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Parses "20s", "500ms", "2m", "1.5s" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s or m)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_values() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap(); // 1..1000 ms
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_ms - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max_ms - 1000.0).abs() < 1.0, "{p:?}");
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }

    #[test]
    fn sharded_recorders_merge_everything() {
        let sh = ShardedHistogram::new(4);
        for shard in 0..10 {
            let mut r = Recorder::new(&sh, shard);
            for v in 0..300 {
                r.record(v + 1);
            }
        } // dropped: flushed
        assert_eq!(sh.merged().len(), 3000);
    }

    #[test]
    fn pairs_round_trip() {
        let mut h = new_histogram();
        for v in [5u64, 5, 70, 9000, 1_000_000] {
            h.record(v).unwrap();
        }
        let back = histogram_from_pairs(&histogram_to_pairs(&h));
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn delivery_math() {
        let d = Deliveries {
            expected: 100,
            unique: 97,
            total: 99,
        };
        assert_eq!(d.lost(), 3);
        assert_eq!(d.duplicates(), 2);
        let over = Deliveries {
            expected: 1,
            unique: 2,
            total: 2,
        };
        assert_eq!(over.lost(), 0);
        assert_eq!(per_sec(10, 2.0), 5.0);
        assert_eq!(per_sec(10, 0.0), 0.0);
    }

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (duet (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100 1000 200";
        assert_eq!(cpu_secs_from_stat(stat, 100.0), Some(3.0));
        let status = "Name:\tduet\nVmPeak:\t  9000 kB\nVmRSS:\t   4321 kB\nThreads:\t4\n";
        assert_eq!(rss_kib_from_status(status), Some(4321));
        let me = sample_proc("self").unwrap();
        assert!(me.rss_kib > 0);
    }

    #[test]
    fn finds_listening_sockets_in_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 100 0 0 10 0
   1: 0100007F:0FA0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0 100 0 0 10 0
";
        assert_eq!(listening_inodes(table, 4000), vec!["12345"]);
        assert_eq!(listening_inodes(table, 8080), vec!["999"]);
        assert!(listening_inodes(table, 4001).is_empty());
    }

    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // We skip our own pid on purpose (the tool never measures itself).
        assert_eq!(find_listener_pid(port), None);
    }

    #[test]
    fn reads_netstat_fields() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 36 36\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(netstat_field(text, "TcpExt:", "ListenOverflows"), Some(36));
        assert_eq!(netstat_field(text, "IpExt:", "InNoRoutes"), Some(0));
        assert_eq!(netstat_field(text, "TcpExt:", "Nope"), None);
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }
}

/// With `DUET_LOAD_TIMELINE` set, the worst delivery and ack latency per
/// 100 ms of send time, printed to stderr after the run: to tell steady
/// queueing from stalls (and when they happen).
pub mod timeline {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    const SLOT_US: u64 = 100_000;
    const SLOTS: usize = 6_000;

    /// Slots of deliveries, then slots of acks.
    fn slots() -> Option<&'static [AtomicU64]> {
        static SLOTS_MAX: OnceLock<Option<Vec<AtomicU64>>> = OnceLock::new();
        SLOTS_MAX
            .get_or_init(|| {
                std::env::var_os("DUET_LOAD_TIMELINE")
                    .map(|_| (0..2 * SLOTS).map(|_| AtomicU64::new(0)).collect())
            })
            .as_deref()
    }

    fn record(base: usize, sent_us: u64, latency_us: u64) {
        if let Some(s) = slots() {
            let i = (sent_us / SLOT_US) as usize;
            if i < SLOTS {
                s[base + i].fetch_max(latency_us, Ordering::Relaxed);
            }
        }
    }

    pub fn delivery(sent_us: u64, latency_us: u64) {
        record(0, sent_us, latency_us)
    }

    pub fn ack(sent_us: u64, latency_us: u64) {
        record(SLOTS, sent_us, latency_us)
    }

    /// One line per second: the worst latency of each of its ten 100 ms.
    pub fn print() {
        let Some(s) = slots() else { return };
        for (name, part) in [("delivery", &s[..SLOTS]), ("ack", &s[SLOTS..])] {
            let used = |v: &AtomicU64| v.load(Ordering::Relaxed) > 0;
            let (Some(first), Some(last)) =
                (part.iter().position(used), part.iter().rposition(used))
            else {
                continue;
            };
            eprintln!("timeline: worst {name} latency (ms) per 100 ms of send time");
            for sec in (first / 10)..=(last / 10) {
                let row: Vec<String> = (0..10)
                    .map(|i| format!("{:5}", part[sec * 10 + i].load(Ordering::Relaxed) / 1000))
                    .collect();
                eprintln!("  {:4} s {}", sec, row.join(""));
            }
        }
    }
}
