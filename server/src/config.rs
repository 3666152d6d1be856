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

    /// SQLite URL overriding `<data dir>/duet.db`, e.g. `sqlite:///var/lib/duet/duet.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// HMAC key for the JWTs; if unset, `<data dir>/secret.key` (generated on first run).
    #[arg(long, env = "DUET_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Origins allowed to open sockets besides the server's own (comma separated).
    #[arg(long, env = "DUET_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = trimmed)]
    pub allowed_origins: Vec<String>,

    /// Lifetime of issued tokens, in hours.
    #[arg(long, env = "DUET_TOKEN_TTL_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub token_ttl_hours: u64,

    /// Largest WebSocket frame a client may send, in bytes (bigger: closed with 1009).
    #[arg(long, env = "DUET_MAX_FRAME_BYTES", default_value_t = 1 << 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..))]
    pub max_frame_bytes: usize,

    /// Topics one socket may join at once.
    #[arg(long, env = "DUET_MAX_TOPICS", default_value_t = 100, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_topics: usize,

    /// Sustained messages per second one socket may send.
    #[arg(long, env = "DUET_SOCKET_RATE", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub socket_rate: u32,

    /// Burst of messages one socket may send above the sustained rate.
    #[arg(long, env = "DUET_SOCKET_BURST", default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..))]
    pub socket_burst: u32,

    /// Frames queued for one socket before it counts as too slow and is disconnected.
    #[arg(long, env = "DUET_OUTBOUND_QUEUE", default_value_t = 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub outbound_queue: usize,

    /// Bytes queued for one socket before it counts as too slow and is
    /// disconnected (a frame alone on an empty queue goes out whatever its size).
    #[arg(long, env = "DUET_OUTBOUND_BYTES", default_value_t = 8 << 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(MIN_OUTBOUND_BYTES..=MAX_OUTBOUND_BYTES))]
    pub outbound_bytes: usize,

    /// Seconds a socket may stay silent (no heartbeat) before it is closed.
    #[arg(long, env = "DUET_IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// HTTP API requests per second per client address (sign-in, create...).
    #[arg(long, env = "DUET_API_RATE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate: u32,

    /// Burst of HTTP API requests per client address.
    #[arg(long, env = "DUET_API_BURST", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_burst: u32,

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

    /// Enable the `echo:*` test channel (protocol tests only); `1`/`true`.
    #[arg(long, env = "DUET_TEST_CHANNELS", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub test_channels: bool,
}

impl Config {
    /// The SQLite URL: `DATABASE_URL` or the data dir's `duet.db`.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
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
            ..Limits::default()
        }
    }

    /// A one-line summary for the start-up log, without the secret.
    pub fn redacted(&self) -> String {
        format!(
            "addr={} data_dir={} database={} secret={} allowed_origins={:?} token_ttl_hours={} max_frame_bytes={} max_topics={} socket_rate={}/s burst={} outbound_queue={} outbound_bytes={} idle_timeout={}s snapshot_every={} room_grace={}ms durability={:?} test_channels={}",
            self.addr,
            self.data_dir.display(),
            without_password(&self.database_url()),
            if self.secret.as_deref().is_some_and(|s| !s.is_empty()) { "from DUET_SECRET" } else { "from secret.key" },
            self.allowed_origins,
            self.token_ttl_hours,
            self.max_frame_bytes,
            self.max_topics,
            self.socket_rate,
            self.socket_burst,
            self.outbound_queue,
            self.outbound_bytes,
            self.idle_timeout_secs,
            self.snapshot_every,
            self.room_grace_ms,
            self.durability,
            self.test_channels,
        )
    }

    /// A config for tests: everything default, data in `dir`, any free port.
    pub fn for_tests(dir: &std::path::Path) -> Self {
        let mut c = Config::parse_from(["duet"]);
        c.addr = "127.0.0.1:0".parse().expect("valid address");
        c.data_dir = dir.to_path_buf();
        c.database_url = None;
        c.secret = None;
        c.allowed_origins = Vec::new();
        c
    }
}

/// A URL with its user info (`user:password@`) masked, for the log.
fn without_password(url: &str) -> String {
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
