//! `reconnect-storm`: start the server with `--server-cmd`, join N sockets
//! in rooms, stop the server with SIGTERM, start it again, and time how
//! long until every socket has reconnected (phoenix.js backoff) and
//! rejoined. The tool stops the server it started when done.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

use crate::api::Api;
use crate::cli::{ConnectionsArgs, Global, StormArgs};
use crate::client::{ClientStats, Event};
use crate::driver::{self, check_fd_budget};
use crate::harness::{Live, Target};
use crate::scenario;

/// How long the server may take to answer `/healthz` after a start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Serialize)]
struct StormReport {
    /// `reconnect-storm`, and the sizes, as in the other scenarios' reports.
    scenario: &'static str,
    params: serde_json::Value,
    sockets: usize,
    joined_before: usize,
    /// SIGTERM to the server's exit.
    shutdown_secs: f64,
    /// SIGTERM to the first and the last socket lost.
    first_lost_secs: Option<f64>,
    last_lost_secs: Option<f64>,
    /// Why sockets were lost (first loss of each), and how many.
    lost_reasons: std::collections::BTreeMap<String, u64>,
    /// Connect and join errors (the last of each client), and how many.
    errors: std::collections::BTreeMap<String, u64>,
    /// Clients joined at the end.
    joined_at_end: usize,
    /// Restart to the first ok `/healthz`.
    restart_secs: f64,
    /// SIGTERM to the last socket rejoined.
    kill_to_all_rejoined_secs: Option<f64>,
    /// First ok `/healthz` after the restart to the last socket rejoined.
    healthy_to_all_rejoined_secs: Option<f64>,
    rejoined: usize,
    rejoins_per_sec: f64,
    reconnects: u64,
    tool_cpu_secs: f64,
}

/// Starts `cmd` under `sh -c` in its own process group.
fn spawn_server(cmd: &str) -> Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))
}

/// SIGTERM (or SIGKILL) to the whole process group of a server we started.
fn signal_group(child: &Child, sig: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a negative pid signals that process group,
        // which is the group `spawn_server` created for this child alone.
        unsafe {
            libc::kill(-(pid as i32), sig);
        }
    }
}

async fn wait_healthy(api: &Api, child: &mut Child) -> Result<Instant> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if api.healthy().await {
            return Ok(Instant::now());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the server exited during start-up: {status}");
        }
        if Instant::now() > deadline {
            bail!("the server did not answer /healthz within {START_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_server(child: &mut Child) -> Result<()> {
    signal_group(child, libc::SIGTERM);
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        eprintln!("  the server ignored SIGTERM for {STOP_TIMEOUT:?}; SIGKILL");
        signal_group(child, libc::SIGKILL);
        child.wait().await?;
    }
    Ok(())
}

pub async fn run(global: &Global, a: &StormArgs, nofile: u64) -> Result<u8> {
    let [url] = global.url.as_slice() else {
        bail!("reconnect-storm starts and restarts one server: give one --url");
    };
    let target = Target::resolve(url).await?;
    let api = scenario::api_for(&target)?;
    if api.healthy().await {
        bail!("something already answers at {url}; the storm starts its own server there");
    }
    let mut server = spawn_server(&a.server_cmd)?;
    let result = storm(global, a, nofile, &target, &api, &mut server).await;
    // Whatever happened, stop the server we started.
    let _ = stop_server(&mut server).await;
    result
}

async fn storm(
    global: &Global,
    a: &StormArgs,
    nofile: u64,
    target: &Target,
    api: &Api,
    server: &mut Child,
) -> Result<u8> {
    let started = Instant::now();
    wait_healthy(api, server).await?;
    let conn = ConnectionsArgs {
        sockets: a.sockets,
        room_size: a.room_size,
        idle: Duration::ZERO,
    };
    let mut plan = scenario::connections(api, global, &conn, true).await?;
    check_fd_budget(plan.specs.len(), nofile)?;
    let mut live = Live::start(global, std::slice::from_ref(target), &mut plan);
    live.wait_ready(driver::ready_deadline(started, global, &plan))
        .await;
    let joined = live.ready_ok;
    eprintln!("  {joined} of {} joined; SIGTERM to the server", a.sockets);
    let restart = Restart::run(server, &a.server_cmd, api).await?;
    eprintln!(
        "  server back after {:.2} s; waiting for rejoins",
        (restart.healthy - restart.respawned).as_secs_f64()
    );
    let rejoins = Rejoins::wait(&mut live, joined, restart.healthy + a.rejoin_timeout).await;
    let (stats, _, _) = live.run(None, Duration::ZERO).await;
    let report = StormReport::new(a, joined, &restart, &rejoins, &stats);
    report.print(a.rejoin_timeout);
    if global.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    }
    Ok(if rejoins.all(joined) { 0 } else { 1 })
}

/// When the server went down and came back.
struct Restart {
    /// SIGTERM sent.
    killed: Instant,
    /// The server exited.
    down: Instant,
    /// The new server started.
    respawned: Instant,
    /// Its first ok `/healthz`.
    healthy: Instant,
}

impl Restart {
    /// Stops the server (SIGTERM) and starts it again.
    async fn run(server: &mut Child, cmd: &str, api: &Api) -> Result<Restart> {
        let killed = Instant::now();
        stop_server(server).await?;
        let down = Instant::now();
        *server = spawn_server(cmd)?;
        let respawned = Instant::now();
        let healthy = wait_healthy(api, server).await?;
        Ok(Restart {
            killed,
            down,
            respawned,
            healthy,
        })
    }
}

/// The clients' losses and rejoins around the restart.
#[derive(Default)]
struct Rejoins {
    rejoined: usize,
    /// The last rejoin.
    last: Option<Instant>,
    first_lost: Option<Instant>,
    last_lost: Option<Instant>,
}

impl Rejoins {
    /// Counts rejoins until all `joined` clients are back or `deadline`.
    async fn wait(live: &mut Live, joined: usize, deadline: Instant) -> Rejoins {
        let mut rejoins = Rejoins::default();
        // Events of the restart so far (fast clients may already be back).
        while let Ok(ev) = live.events.try_recv() {
            rejoins.note(ev);
        }
        while rejoins.rejoined < joined {
            match tokio::time::timeout_at(deadline, live.events.recv()).await {
                Ok(Some(ev)) => rejoins.note(ev),
                Ok(None) | Err(_) => break,
            }
        }
        rejoins
    }

    fn note(&mut self, ev: Event) {
        match ev {
            Event::Lost { at } => {
                self.first_lost = Some(self.first_lost.map_or(at, |f| f.min(at)));
                self.last_lost = Some(self.last_lost.map_or(at, |l| l.max(at)));
            }
            Event::Rejoined { at } => {
                self.rejoined += 1;
                self.last = Some(self.last.map_or(at, |l| l.max(at)));
            }
            Event::Ready { .. } => {}
        }
    }

    /// Every client that had joined is back.
    fn all(&self, joined: usize) -> bool {
        self.rejoined == joined && joined > 0
    }
}

impl StormReport {
    fn new(
        a: &StormArgs,
        joined: usize,
        restart: &Restart,
        rejoins: &Rejoins,
        stats: &[ClientStats],
    ) -> StormReport {
        let all = rejoins.all(joined);
        let killed = restart.killed;
        let since_kill = |t: Instant| t.saturating_duration_since(killed).as_secs_f64();
        let span = rejoins.last.map(|l| (l - restart.healthy).as_secs_f64());
        let mut lost_reasons = std::collections::BTreeMap::new();
        let mut errors = std::collections::BTreeMap::new();
        for s in stats {
            if let Some(why) = &s.lost_socket {
                *lost_reasons.entry(why.clone()).or_insert(0u64) += 1;
            }
            for e in [&s.connect_error, &s.join_error].into_iter().flatten() {
                *errors.entry(e.clone()).or_insert(0u64) += 1;
            }
        }
        StormReport {
            scenario: "reconnect-storm",
            params: serde_json::json!({ "sockets": a.sockets, "room_size": a.room_size }),
            sockets: a.sockets,
            joined_before: joined,
            shutdown_secs: (restart.down - killed).as_secs_f64(),
            first_lost_secs: rejoins.first_lost.map(since_kill),
            last_lost_secs: rejoins.last_lost.map(since_kill),
            lost_reasons,
            errors,
            joined_at_end: stats.iter().filter(|s| s.joined).count(),
            restart_secs: (restart.healthy - restart.respawned).as_secs_f64(),
            kill_to_all_rejoined_secs: rejoins
                .last
                .filter(|_| all)
                .map(|l| (l - killed).as_secs_f64()),
            healthy_to_all_rejoined_secs: span.filter(|_| all),
            rejoined: rejoins.rejoined,
            rejoins_per_sec: span
                .filter(|s| *s > 0.0)
                .map(|s| rejoins.rejoined as f64 / s)
                .unwrap_or(0.0),
            reconnects: stats.iter().map(|s| s.reconnects).sum(),
            tool_cpu_secs: crate::stats::sample_proc("self")
                .map(|p| p.cpu_secs)
                .unwrap_or(0.0),
        }
    }

    /// The human-readable report.
    fn print(&self, rejoin_timeout: Duration) {
        println!("== duet-load {} {}", self.scenario, self.params);
        println!(
            "joined before    {} of {}",
            self.joined_before, self.sockets
        );
        println!(
            "server           stopped {:.2} s after SIGTERM, healthy {:.2} s after restart",
            self.shutdown_secs, self.restart_secs
        );
        if let (Some(f), Some(l)) = (self.first_lost_secs, self.last_lost_secs) {
            println!("sockets lost     {f:.2} s .. {l:.2} s after SIGTERM");
        }
        for (why, n) in &self.lost_reasons {
            println!("  x{n}: {why}");
        }
        match (self.kill_to_all_rejoined_secs, self.healthy_to_all_rejoined_secs) {
            (Some(k), Some(h)) => println!(
                "rejoin           all {} rejoined {:.2} s after SIGTERM, {:.2} s after healthy ({:.0} rejoins/s)",
                self.rejoined, k, h, self.rejoins_per_sec
            ),
            _ => println!(
                "rejoin           only {} of {} rejoined within {:?} of the restart",
                self.rejoined, self.joined_before, rejoin_timeout
            ),
        }
        println!(
            "reconnects       {} socket reconnects; {} clients joined at the end",
            self.reconnects, self.joined_at_end
        );
        for (e, n) in &self.errors {
            println!("  error x{n}: {e}");
        }
    }
}
