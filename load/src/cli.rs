//! The command line: global options shared by every scenario, then one
//! subcommand per scenario. Every option has an environment variable too.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::stats::parse_duration;

/// Load generator for Duet. Speaks only the public contract (HTTP API +
/// Phoenix Channels V2 + y-protocols), like a real client, to a server on a
/// loopback address.
#[derive(Debug, Parser)]
#[command(name = "duet-load", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Base URL of the server (loopback only); for a cluster, one URL per
    /// node (comma separated or repeated): the members of each room are
    /// spread over the nodes (member i of room r on node (r + i) mod n), and
    /// sign-ins and room creation go to the first.
    #[arg(
        long,
        global = true,
        env = "DUET_LOAD_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:4000"
    )]
    pub url: Vec<String>,
    /// Loopback source addresses to spread sockets over (127.0.0.1 ..
    /// 127.0.0.N); one address runs out of ephemeral ports near 28k sockets.
    #[arg(long, global = true, env = "DUET_LOAD_SOURCES", default_value_t = 8)]
    pub sources: u8,
    /// Hard cap on the whole run; the tool exits by itself after it.
    #[arg(long, global = true, env = "DUET_LOAD_MAX_DURATION", default_value = "120s", value_parser = parse_duration)]
    pub max_duration: Duration,
    /// Also print the report as one JSON line.
    #[arg(long, global = true, env = "DUET_LOAD_JSON")]
    pub json: bool,
    /// Pid of the server, to report its CPU time and RSS (default: the
    /// process listening on the --url port, if /proc shows it); for a
    /// cluster, one pid per --url, in the same order (comma separated).
    #[arg(
        long,
        global = true,
        env = "DUET_LOAD_SERVER_PID",
        value_delimiter = ','
    )]
    pub server_pid: Vec<u32>,
    /// At most this many distinct users are signed in (tokens are reused
    /// across rooms; the members of one room are always distinct users).
    #[arg(long, global = true, env = "DUET_LOAD_USERS", default_value_t = 1000)]
    pub users: usize,
    /// HTTP requests in flight while signing in and creating rooms.
    #[arg(
        long,
        global = true,
        env = "DUET_LOAD_HTTP_CONCURRENCY",
        default_value_t = 64
    )]
    pub http_concurrency: usize,
    /// WebSocket connects + upgrades in flight.
    #[arg(
        long,
        global = true,
        env = "DUET_LOAD_CONNECT_CONCURRENCY",
        default_value_t = 256
    )]
    pub connect_concurrency: usize,
    /// After the last edit, how long to keep listening for deliveries
    /// before counting the missing ones as lost.
    #[arg(long, global = true, env = "DUET_LOAD_GRACE", default_value = "3s", value_parser = parse_duration)]
    pub grace: Duration,
    /// After everyone joined and before the run phase starts, wait this
    /// long so that join traffic (presence_state, presence_diff) has
    /// drained and the run measures the steady state.
    #[arg(long, global = true, env = "DUET_LOAD_SETTLE", default_value = "2s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Run only shard i of n (`i/n`, 0-based): this process takes the
    /// rooms whose index is i modulo n. Start n processes to go past the
    /// ~19 900 sockets one process can hold, or use `--processes`.
    #[arg(long, global = true, env = "DUET_LOAD_SHARD", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Split the run over this many child processes of this binary and
    /// merge their reports (0 = as many as the socket count needs).
    #[arg(long, global = true, env = "DUET_LOAD_PROCESSES", default_value_t = 0)]
    pub processes: usize,
    /// Internal: run as a child of `--processes` (line protocol on stdio).
    #[arg(long, global = true, hide = true)]
    pub child: bool,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long, global = true, env = "DUET_LOAD_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// N sockets joined in rooms; joins/s, then idle and the server's RSS
    /// per socket.
    Connections(ConnectionsArgs),
    /// Many small rooms with edits; delivery latency, loss, duplicates.
    Fanout(FanoutArgs),
    /// One room with many members and edits.
    Bigroom(BigroomArgs),
    /// Join/leave cycles while watchers time `presence_diff`.
    Churn(ChurnArgs),
    /// Start the server, join N sockets, restart it, time the rejoin.
    ReconnectStorm(StormArgs),
    /// A tiny sanity run (JSON then Yjs edits); exit 0 only if sane.
    Smoke,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    #[arg(long, default_value_t = 4)]
    pub room_size: usize,
    /// How long to hold the sockets idle before reading the server's RSS.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub idle: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 1000)]
    pub rooms: usize,
    #[arg(long, default_value_t = 4)]
    pub room_size: usize,
    #[command(flatten)]
    pub edits: EditArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BigroomArgs {
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    #[command(flatten)]
    pub edits: EditArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EditArgs {
    /// Edits per second per room, from rotating members (default: 5 for
    /// fanout, 10 for bigroom).
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Edit through binary `yjs` sync updates instead of `response:update`.
    #[arg(long)]
    pub yjs: bool,
    /// Bytes of text per edit.
    #[arg(long, default_value_t = 256)]
    pub text_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[arg(long, default_value_t = 200)]
    pub rooms: usize,
    /// Join+leave cycles per second per room.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Steady members per room that watch `presence_diff`.
    #[arg(long, default_value_t = 2)]
    pub watchers: usize,
    /// Extra clients per room that join and leave in turn.
    #[arg(long, default_value_t = 2)]
    pub churners: usize,
}

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    #[arg(long, default_value_t = 4)]
    pub room_size: usize,
    /// Shell command that starts the server at `--url`. It must keep its
    /// data (DUET_DATA_DIR or DUET_SECRET + DATABASE_URL) across restarts
    /// so tokens and rooms survive.
    #[arg(long)]
    pub server_cmd: String,
    /// Give up waiting for the rejoin after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub rejoin_timeout: Duration,
}

/// Edits per second of a room when `--rate` is not given.
const FANOUT_RATE: f64 = 5.0;
const BIGROOM_RATE: f64 = 10.0;

impl EditArgs {
    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(FANOUT_RATE)
    }
}

impl Scenario {
    /// Fills in the defaults that differ between scenarios.
    pub fn resolve_defaults(&mut self) {
        if let Scenario::Bigroom(a) = self {
            a.edits.rate.get_or_insert(BIGROOM_RATE);
        }
    }
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s.split_once('/').ok_or("expected i/n, e.g. 0/2")?;
    let i: usize = i.trim().parse().map_err(|_| "bad shard index")?;
    let n: usize = n.trim().parse().map_err(|_| "bad shard count")?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= i < n"));
    }
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shards() {
        assert_eq!(parse_shard("0/2"), Ok((0, 2)));
        assert_eq!(parse_shard("3/4"), Ok((3, 4)));
        assert!(parse_shard("2/2").is_err());
        assert!(parse_shard("1").is_err());
        assert!(parse_shard("0/0").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "duet-load",
            "fanout",
            "--rooms",
            "10",
            "--yjs",
            "--json",
            "--duration",
            "5s",
        ])
        .unwrap();
        assert!(c.global.json);
        match c.scenario {
            Scenario::Fanout(f) => {
                assert_eq!(f.rooms, 10);
                assert!(f.edits.yjs);
                assert_eq!(f.edits.rate, None);
                assert_eq!(f.edits.duration, Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.global.url, vec!["http://127.0.0.1:4000"]);
        assert!(c.global.server_pid.is_empty());
    }

    #[test]
    fn urls_and_pids_come_as_lists() {
        let c = Cli::try_parse_from([
            "duet-load",
            "--url",
            "http://127.0.0.1:4001,http://127.0.0.1:4002",
            "--url",
            "http://127.0.0.1:4003",
            "--server-pid",
            "11,12,13",
            "smoke",
        ])
        .unwrap();
        assert_eq!(
            c.global.url,
            vec![
                "http://127.0.0.1:4001",
                "http://127.0.0.1:4002",
                "http://127.0.0.1:4003"
            ]
        );
        assert_eq!(c.global.server_pid, vec![11, 12, 13]);
    }
}
