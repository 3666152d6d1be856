//! `--processes N`: one process holds at most ~19 900 sockets (20 000 open
//! files, a hard limit here), so bigger runs spawn N children of this
//! binary, each with `--child --shard i/N`, and step them in lockstep over
//! stdin/stdout:
//!
//! ```text
//! child  -> "STAGE planned"          users signed in, rooms created
//! parent -> "NEXT"                   (parent reads the server's RSS)
//! child  -> "STAGE ready"            sockets connected and joined
//! parent -> "NEXT"                   (parent idles / reads RSS first)
//! child  -> "REPORT <Partial JSON>"  after its run phase and grace
//! ```
//!
//! The parent merges the `Partial`s (histograms included) into one report.
//! A child whose stdin closes stops at once.

use std::process::Stdio;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::cli::{Global, Scenario};
use crate::driver::{self, ServerWatch};
use crate::harness::{self, Live, Target};
use crate::report::{Partial, Report, Shape};
use crate::scenario;

const STAGE_PLANNED: &str = "STAGE planned";
const STAGE_READY: &str = "STAGE ready";
const NEXT: &str = "NEXT";
const REPORT: &str = "REPORT ";

/// Waits for the parent's next line; false when stdin closed.
async fn await_next(lines: &mut Lines<BufReader<tokio::io::Stdin>>) -> bool {
    matches!(lines.next_line().await, Ok(Some(l)) if l.trim() == NEXT)
}

/// The child side: one shard, stepped by the parent.
pub async fn child(global: &Global, scenario: &Scenario, nofile: u64) -> Result<u8> {
    let started = Instant::now();
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let targets = Target::resolve_all(&global.url).await?;
    let api = scenario::api_for(&targets[0])?;
    let mut plan = scenario::plan(&api, global, scenario).await?;
    driver::check_fd_budget(plan.specs.len(), nofile)?;
    println!("{STAGE_PLANNED}");
    if !await_next(&mut stdin).await {
        return Ok(1);
    }
    let mut live = Live::start(global, &targets, &mut plan);
    live.wait_ready(driver::ready_deadline(started, global, &plan))
        .await;
    println!("{STAGE_READY}");
    if !await_next(&mut stdin).await {
        live.stop().await;
        return Ok(1);
    }
    let times = (live.first_connect_us, live.last_ready_us);
    let (stats, run_secs, ctx) = live.run(plan.run, global.grace).await;
    let partial = harness::partial(&stats, &ctx, plan.offered, run_secs, times);
    println!(
        "{REPORT}{}",
        serde_json::to_string(&partial).context("encoding the partial report")?
    );
    Ok(0)
}

struct Kid {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Kid {
    /// Reads lines until one starts with `prefix`; other lines are echoed.
    async fn expect(&mut self, i: usize, prefix: &str) -> Result<String> {
        while let Some(line) = self.lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_string());
            }
            println!("[child {i}] {line}");
        }
        bail!("child {i} exited before {prefix:?}")
    }

    async fn next(&mut self) -> Result<()> {
        self.stdin.write_all(format!("{NEXT}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }
}

/// The parent side: spawn, step, merge, report.
pub async fn parent(global: &Global, scenario: &Scenario, processes: usize) -> Result<u8> {
    if global.shard.is_some() {
        bail!("--processes and --shard do not mix: --processes assigns the shards itself");
    }
    if matches!(scenario, Scenario::Bigroom(_)) {
        bail!("bigroom is one room and runs in one process");
    }
    let started = Instant::now();
    let targets = Target::resolve_all(&global.url).await?;
    let mut server = ServerWatch::new(driver::server_pids(global, &targets)?);
    let mut kids = spawn_kids(processes)?;
    eprintln!("  {processes} child processes started");
    expect_all(&mut kids, STAGE_PLANNED).await?;
    server.mark_setup();
    next_all(&mut kids).await?;
    expect_all(&mut kids, STAGE_READY).await?;
    server.mark_ready();
    match scenario {
        Scenario::Connections(a) => server.idle(a.idle).await,
        _ => tokio::time::sleep(global.settle).await,
    }
    next_all(&mut kids).await?;
    let mut total = merged_reports(&mut kids).await?;
    server.mark_end();
    total.listen_overflows = server.listen_overflows();
    for k in &mut kids {
        let _ = k.child.wait().await;
    }
    if let Some(me) = crate::stats::sample_proc("self") {
        total.tool_cpu_secs += me.cpu_secs;
    }
    // The plan's shape (name, offered load) without any HTTP.
    let wall_secs = started.elapsed().as_secs_f64();
    let mut report = Report::build(
        describe(scenario),
        processes,
        &total,
        wall_secs,
        driver::cores(),
    );
    server.fill(&mut report, &total.joined_per_node);
    driver::print(&report, global.json);
    Ok(0)
}

/// Starts `processes` children of this binary with this command line,
/// each with its shard.
fn spawn_kids(processes: usize) -> Result<Vec<Kid>> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut kids = Vec::with_capacity(processes);
    for i in 0..processes {
        let mut child = Command::new(&exe)
            .args(&args)
            .arg("--child")
            .arg("--shard")
            .arg(format!("{i}/{processes}"))
            .env_remove("DUET_LOAD_SHARD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning a child process")?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = child.stdout.take().context("child stdout")?;
        kids.push(Kid {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        });
    }
    Ok(kids)
}

/// Waits until every child has said `prefix`.
async fn expect_all(kids: &mut [Kid], prefix: &str) -> Result<()> {
    for (i, k) in kids.iter_mut().enumerate() {
        k.expect(i, prefix).await?;
    }
    Ok(())
}

/// Tells every child to go on.
async fn next_all(kids: &mut [Kid]) -> Result<()> {
    for k in kids {
        k.next().await?;
    }
    Ok(())
}

/// Every child's `Partial`, merged.
async fn merged_reports(kids: &mut [Kid]) -> Result<Partial> {
    let mut total = Partial::default();
    for (i, k) in kids.iter_mut().enumerate() {
        let json = k.expect(i, REPORT).await?;
        let p: Partial =
            serde_json::from_str(&json).with_context(|| format!("child {i} report"))?;
        total.merge(&p);
    }
    Ok(total)
}

/// Name, parameters, kind and deliveries per action of a scenario.
fn describe(s: &Scenario) -> Shape {
    use crate::report::Kind;
    use serde_json::json;
    let (name, params, kind, per_action_deliveries) = match s {
        Scenario::Connections(a) => (
            "connections",
            json!({ "sockets": a.sockets, "room_size": a.room_size, "idle_secs": a.idle.as_secs_f64() }),
            Kind::Idle,
            0.0,
        ),
        Scenario::Fanout(a) => (
            "fanout",
            json!({
                "rooms": a.rooms, "room_size": a.room_size, "rate": a.edits.rate(),
                "duration_secs": a.edits.duration.as_secs_f64(), "yjs": a.edits.yjs, "text_bytes": a.edits.text_bytes,
            }),
            Kind::Edits,
            a.room_size.saturating_sub(1) as f64,
        ),
        Scenario::Churn(a) => (
            "churn",
            json!({
                "rooms": a.rooms, "rate": a.rate, "duration_secs": a.duration.as_secs_f64(),
                "watchers": a.watchers, "churners": a.churners,
            }),
            Kind::Churn,
            a.watchers as f64,
        ),
        Scenario::Bigroom(_) | Scenario::ReconnectStorm(_) | Scenario::Smoke => {
            ("other", json!({}), Kind::Idle, 0.0)
        }
    };
    Shape {
        name,
        params,
        kind,
        per_action_deliveries,
    }
}
