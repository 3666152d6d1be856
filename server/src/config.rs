//! Settings from the command line and the environment (CONTRACT §0). Every
//! field has an environment variable and a default that makes `make run`
//! work with no setup. The start-up line prints them without the secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::channels::Limits;

/// The smallest outgoing byte cap: below it, a join's reply and the room's
/// presence state queued together could already count as a slow client.
const MIN_OUTBOUND_BYTES: u64 = 64 << 10;
/// The largest: the queue counts its bytes in 32 bits (`channels::mailbox`).
const MAX_OUTBOUND_BYTES: u64 = u32::MAX as u64;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "duet",
    version,
    about = "Live pair-programming rooms (Phoenix Channels + Yjs, in Rust)"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "DUET_ADDR", default_value = "127.0.0.1:4000")]
    pub addr: SocketAddr,

    /// Directory for the SQLite database (`duet.db`) and `secret.key`; created if missing.
    #[arg(long, env = "DUET_DATA_DIR", default_value = "./duet-data")]
    pub data_dir: PathBuf,

    /// Database URL overriding `<data dir>/duet.db`: SQLite
    /// (`sqlite:///var/lib/duet/duet.db`) or Postgres (`postgres://user:pass@host:5432/duet`).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<DatabaseUrl>,

    /// Makes this process a node of a cluster (CONTRACT §5): the Redis its
    /// nodes share as their bus (`redis://host:6379`). Needs a Postgres
    /// `DATABASE_URL`, the same on every node, and the same `DUET_SECRET`.
    #[arg(long, env = "DUET_REDIS_URL")]
    pub redis_url: Option<DatabaseUrl>,

    /// This node's name in a cluster (`/healthz`); unique per node. Default:
    /// `duet@<DUET_ADDR>`.
    #[arg(long, env = "DUET_NODE_NAME")]
    pub node_name: Option<String>,

    /// A node not heard from for this long is down: its members leave
    /// everyone's presence (a killed node is usually noticed sooner).
    #[arg(long, env = "DUET_PEER_DOWN_MS", default_value_t = 1500, value_parser = clap::value_parser!(u64).range(600..=60_000))]
    pub peer_down_ms: u64,

    /// Tests only: drop or repeat received bus frames, `drop=0.1,dup=0.1`.
    #[arg(long, env = "DUET_TEST_BUS_FAULTS", hide = true)]
    pub test_bus_faults: Option<String>,

    /// HMAC key for the JWTs; if unset, `<data dir>/secret.key` (generated on first run).
    #[arg(long, env = "DUET_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,

    /// Origins allowed to open sockets besides the server's own (comma separated).
    #[arg(long, env = "DUET_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = trimmed)]
    pub allowed_origins: Vec<String>,

    /// Lifetime of issued tokens, in hours.
    #[arg(long, env = "DUET_TOKEN_TTL_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub token_ttl_hours: u64,

    /// Largest WebSocket frame a client may send, in bytes (bigger: closed with 1009).
    #[arg(long, env = "DUET_MAX_FRAME_BYTES", default_value_t = Limits::DEFAULT.max_frame_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..))]
    pub max_frame_bytes: usize,

    /// Topics one socket may join at once.
    #[arg(long, env = "DUET_MAX_TOPICS", default_value_t = Limits::DEFAULT.max_topics, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_topics: usize,

    /// Sustained messages per second one socket may send.
    #[arg(long, env = "DUET_SOCKET_RATE", default_value_t = Limits::DEFAULT.rate_per_sec, value_parser = clap::value_parser!(u32).range(1..))]
    pub socket_rate: u32,

    /// Burst of messages one socket may send above the sustained rate.
    #[arg(long, env = "DUET_SOCKET_BURST", default_value_t = Limits::DEFAULT.rate_burst, value_parser = clap::value_parser!(u32).range(1..))]
    pub socket_burst: u32,

    /// Frames queued for one socket before it counts as too slow and is disconnected.
    #[arg(long, env = "DUET_OUTBOUND_QUEUE", default_value_t = Limits::DEFAULT.outbound_queue, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub outbound_queue: usize,

    /// Bytes queued for one socket before it counts as too slow and is
    /// disconnected (a frame alone on an empty queue goes out whatever its size).
    #[arg(long, env = "DUET_OUTBOUND_BYTES", default_value_t = Limits::DEFAULT.outbound_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(MIN_OUTBOUND_BYTES..=MAX_OUTBOUND_BYTES))]
    pub outbound_bytes: usize,

    /// Seconds a socket may stay silent (no heartbeat) before it is closed.
    #[arg(long, env = "DUET_IDLE_TIMEOUT_SECS", default_value_t = Limits::DEFAULT.idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// HTTP API requests per second per client address (sign-in, create...).
    #[arg(long, env = "DUET_API_RATE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate: u32,

    /// Burst of HTTP API requests per client address.
    #[arg(long, env = "DUET_API_BURST", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_burst: u32,

    /// Largest Yjs update a client may send, in bytes (bigger: "update too large").
    #[arg(long, env = "DUET_MAX_UPDATE_BYTES", default_value_t = 512 << 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..))]
    pub max_update_bytes: usize,

    /// Largest document of a room (its encoded Yjs state), in bytes; by
    /// default, and at most, the frame limit less a sixteenth (at least
    /// 512 bytes), so a joiner's sync of a full document fits in one frame.
    #[arg(long, env = "DUET_MAX_DOC_BYTES", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(256..))]
    pub max_doc_bytes: Option<usize>,

    /// Largest awareness state (one client's cursor, selection and name, as JSON), in bytes.
    #[arg(long, env = "DUET_MAX_AWARENESS_BYTES", default_value_t = 8 << 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(256..))]
    pub max_awareness_bytes: usize,

    /// Document updates between two snapshots of a room (compaction).
    #[arg(long, env = "DUET_SNAPSHOT_EVERY", default_value_t = 500)]
    pub snapshot_every: u32,

    /// Milliseconds a room stays loaded after its last member left.
    #[arg(long, env = "DUET_ROOM_GRACE_MS", default_value_t = 5000)]
    pub room_grace_ms: u64,

    /// What an acknowledged edit survives: `fsync` (a power cut; default) or
    /// `commit` (a server crash; faster on slow disks).
    #[arg(long, env = "DUET_DURABILITY", value_enum, default_value = "fsync")]
    pub durability: crate::store::Durability,

    /// Seconds a connection may take to send a complete request head: a new
    /// connection from its start, a kept-alive one from the first byte of its
    /// next request. Slower: the connection is closed.
    #[arg(long, env = "DUET_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub header_timeout_secs: u64,

    /// Seconds a kept-alive HTTP connection may wait, silent, for its next
    /// request before it is closed (upgraded WebSockets are not concerned).
    #[arg(long, env = "DUET_KEEPALIVE_SECS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub keepalive_secs: u64,

    /// Seconds a request body may take to arrive; slower: 408 and the
    /// connection is closed.
    #[arg(long, env = "DUET_BODY_TIMEOUT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub body_timeout_secs: u64,

    /// Open TCP connections (WebSockets included) one client address may
    /// hold; beyond, new ones are closed at once. Loopback addresses are
    /// exempt unless `--limit-loopback`.
    #[arg(long, env = "DUET_MAX_CONNECTIONS_PER_ADDR", default_value_t = 2000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections_per_addr: usize,

    /// Apply the per-address connection cap to loopback clients too (they
    /// are exempt by default: a reverse proxy on the same host is one
    /// address for all its clients); `1`/`true`.
    #[arg(long, env = "DUET_LIMIT_LOOPBACK", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub limit_loopback: bool,

    /// Wall time a Run may take, in seconds, once its runtime has loaded
    /// (CONTRACT §8); the runner stops the program then.
    #[arg(long, env = "DUET_RUN_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub run_timeout_secs: u64,

    /// Enable the `echo:*` test channel (protocol tests only); `1`/`true`.
    #[arg(long, env = "DUET_TEST_CHANNELS", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub test_channels: bool,
}

impl Config {
    /// The SQLite URL: `DATABASE_URL` or the data dir's `duet.db`.
    pub fn database_url(&self) -> String {
        self.database_url
            .as_ref()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("duet.db").display()))
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_topics: self.max_topics,
            rate_per_sec: self.socket_rate,
            rate_burst: self.socket_burst,
            outbound_queue: self.outbound_queue.max(1),
            outbound_bytes: self.outbound_bytes.max(MIN_OUTBOUND_BYTES as usize),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            ..Limits::DEFAULT
        }
    }

    /// The size limits of a room.
    pub fn caps(&self) -> crate::challenges::room::Caps {
        crate::challenges::room::Caps {
            max_update_bytes: self.max_update_bytes,
            max_doc_bytes: self.max_doc_bytes.unwrap_or_else(|| self.largest_doc()),
            max_awareness_bytes: self.max_awareness_bytes,
            max_frame_bytes: self.max_frame_bytes,
        }
    }

    /// The largest document whose sync fits in one frame.
    fn largest_doc(&self) -> usize {
        let headroom = (self.max_frame_bytes / 16).max(DOC_FRAME_HEADROOM_MIN);
        self.max_frame_bytes.saturating_sub(headroom).max(1)
    }

    /// Settings that clap checks one by one but that do not fit together.
    pub fn check(&self) -> Result<(), String> {
        let url = self.database_url();
        if self.cluster().is_some()
            && !(url.starts_with("postgres:") || url.starts_with("postgresql:"))
        {
            return Err("DUET_REDIS_URL makes this process a node of a cluster, whose nodes share one Postgres database: set DATABASE_URL=postgres://... (SQLite is one node's own file), or unset DUET_REDIS_URL".into());
        }
        if let Some(spec) = &self.test_bus_faults {
            crate::cluster::Faults::parse(spec)
                .map_err(|e| format!("DUET_TEST_BUS_FAULTS: {e}"))?;
        }
        match self.max_doc_bytes {
            Some(doc) if doc > self.largest_doc() => Err(format!(
                "DUET_MAX_DOC_BYTES ({doc}) must be at most {} with DUET_MAX_FRAME_BYTES {}, so a joiner's sync of a full document fits in one frame",
                self.largest_doc(),
                self.max_frame_bytes
            )),
            _ => Ok(()),
        }
    }

    /// What the HTTP server enforces on every connection.
    pub fn conn_limits(&self) -> crate::conn::ConnLimits {
        crate::conn::ConnLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            keepalive: Duration::from_secs(self.keepalive_secs.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            max_per_addr: self.max_connections_per_addr.max(1),
            limit_loopback: self.limit_loopback,
        }
    }

    /// The start-up log's view of the settings: every field, the secret
    /// and the database password masked (see [`Secret`], [`DatabaseUrl`]).
    pub fn redacted(&self) -> String {
        format!("{self:?}")
    }

    /// The cluster settings, when this process is a node of one.
    pub fn cluster(&self) -> Option<crate::cluster::ClusterConfig> {
        // An empty DUET_REDIS_URL is no URL (a script's way to say "none").
        let url = self.redis_url.as_ref().filter(|u| !u.0.trim().is_empty())?;
        Some(crate::cluster::ClusterConfig {
            redis_url: url.0.clone(),
            name: self
                .node_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| format!("duet@{}", self.addr)),
            peer_down: Duration::from_millis(self.peer_down_ms),
            faults: self
                .test_bus_faults
                .as_deref()
                .and_then(|s| crate::cluster::Faults::parse(s).ok())
                .unwrap_or_default(),
        })
    }

    /// A config for tests: everything default, data in `dir`, any free port.
    pub fn for_tests(dir: &std::path::Path) -> Self {
        let mut c = Config::parse_from(["duet"]);
        c.addr = "127.0.0.1:0".parse().expect("valid address");
        c.data_dir = dir.to_path_buf();
        c.database_url = None;
        c.redis_url = None;
        c.node_name = None;
        c.test_bus_faults = None;
        c.secret = None;
        c.allowed_origins = Vec::new();
        c
    }
}

/// Least room left in a frame around a full document (the y-protocols and
/// Phoenix headers: a topic alone may take 255 bytes).
const DOC_FRAME_HEADROOM_MIN: usize = 512;

/// The JWT key from `DUET_SECRET`: its `Debug` (the start-up log) never
/// shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The key's bytes (empty when `DUET_SECRET` is set but empty).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.0.is_empty() { "empty" } else { "set" };
        write!(f, "Secret({what}, not shown)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// `DATABASE_URL`: its `Debug` masks a password in it.
#[derive(Clone)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", without_password(&self.0))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(s.to_owned()))
    }
}

/// A URL with its user info (`user:password@`) masked, for the log.
pub fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest
            .split_once('/')
            .map_or(rest, |(host, _)| host)
            .rfind('@')
        {
            Some(at) => format!("{scheme}://***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// One entry of a comma list, without the spaces around it
/// (`"a, b"` is `a` and `b`).
fn trimmed(s: &str) -> Result<String, std::convert::Infallible> {
    Ok(s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_are_the_channel_layers_limits() {
        let config = Config::try_parse_from(["duet"]).unwrap();
        let (limits, default) = (config.limits(), Limits::DEFAULT);
        assert_eq!(limits.max_frame_bytes, default.max_frame_bytes);
        assert_eq!(limits.max_topics, default.max_topics);
        assert_eq!(limits.rate_per_sec, default.rate_per_sec);
        assert_eq!(limits.rate_burst, default.rate_burst);
        assert_eq!(limits.outbound_queue, default.outbound_queue);
        assert_eq!(limits.outbound_bytes, default.outbound_bytes);
        assert_eq!(limits.idle_timeout, default.idle_timeout);
        assert_eq!(limits.longpoll_window, default.longpoll_window);
    }

    #[test]
    fn limits_that_would_make_the_server_unusable_are_refused() {
        for (flag, value) in [
            ("--max-frame-bytes", "0"),
            ("--max-frame-bytes", "100"),
            ("--max-topics", "0"),
            ("--socket-rate", "0"),
            ("--socket-burst", "0"),
            ("--outbound-queue", "0"),
            ("--outbound-bytes", "0"),
            ("--outbound-bytes", "65535"),
            ("--outbound-bytes", "4294967296"),
            ("--idle-timeout-secs", "0"),
            ("--api-rate", "0"),
            ("--api-burst", "0"),
            ("--token-ttl-hours", "0"),
            ("--header-timeout-secs", "0"),
            ("--keepalive-secs", "0"),
            ("--body-timeout-secs", "0"),
            ("--max-connections-per-addr", "0"),
            ("--token-ttl-hours", "3000000000000000"),
        ] {
            let parsed = Config::try_parse_from(["duet", flag, value]);
            assert!(parsed.is_err(), "{flag} {value} accepted");
        }
        let ok = Config::try_parse_from(["duet", "--max-topics", "1", "--max-frame-bytes", "4096"]);
        assert!(ok.is_ok());
    }

    #[test]
    fn database_urls_are_logged_without_passwords() {
        assert_eq!(
            without_password("postgres://u:p@host/db"),
            "postgres://***@host/db"
        );
        assert_eq!(
            without_password("sqlite:///data/duet.db"),
            "sqlite:///data/duet.db"
        );
        assert_eq!(
            without_password("sqlite://a@b/duet.db"),
            "sqlite://***@b/duet.db"
        );
        assert_eq!(without_password("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn allowed_origins_are_trimmed() {
        let c = Config::parse_from([
            "duet",
            "--allowed-origins",
            "http://a.example, https://b.example:8443 ,http://c.example",
        ]);
        assert_eq!(
            c.allowed_origins,
            [
                "http://a.example",
                "https://b.example:8443",
                "http://c.example"
            ]
        );
    }
}
