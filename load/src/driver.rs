//! Top-level runs in one process: plan (HTTP), connect and join, idle or
//! act, stop, report. Also `smoke` and the server watch (CPU and RSS of
//! `--server-pid` at each stage, peak sampled in the background).

use std::time::Duration;

use anyhow::{bail, Result};
use tokio::time::Instant;

use crate::cli::{Global, Scenario};
use crate::harness::{self, Live, PeakSampler, Plan, Target};
use crate::report::{server_sample, IdleReport, Kind, Report, ServerReport, Shape};
use crate::scenario;
use crate::stats::ProcSample;

/// Time kept aside at the end of `--max-duration` for stopping and
/// reporting.
const STOP_MARGIN: Duration = Duration::from_secs(3);

/// One node's process: its CPU and RSS at each stage of a run.
struct NodeWatch {
    /// Index of its `--url`.
    node: usize,
    pid: Option<u32>,
    before: Option<ProcSample>,
    setup_done: Option<ProcSample>,
    ready: Option<ProcSample>,
    end: Option<ProcSample>,
    /// After the idle phase, if there was one.
    idle: Option<ProcSample>,
    sampler: Option<PeakSampler>,
}

impl NodeWatch {
    fn report(&self, run_secs: f64) -> Option<ServerReport> {
        let (before, ready, end) = (self.before?, self.ready?, self.end?);
        let cpu_run = end.cpu_secs - ready.cpu_secs;
        Some(ServerReport {
            node: self.node,
            pid: self.pid?,
            rss_before_kib: before.rss_kib,
            rss_after_setup_kib: ready.rss_kib,
            rss_peak_kib: self
                .sampler
                .as_ref()
                .map(|s| s.peak_kib())
                .unwrap_or(0)
                .max(end.rss_kib),
            rss_end_kib: end.rss_kib,
            cpu_secs_setup: ready.cpu_secs - before.cpu_secs,
            cpu_secs_run: cpu_run,
            cores_run: if run_secs > 0.0 {
                cpu_run / run_secs
            } else {
                0.0
            },
        })
    }
}

/// The servers' CPU and RSS at each stage of a run: one process per node
/// (`--server-pid`, or the listener of each `--url` port), peaks sampled in
/// the background.
pub struct ServerWatch {
    nodes: Vec<NodeWatch>,
    ready_at: Instant,
    end_at: Instant,
    /// Length of the idle phase, if there was one.
    idle_for: Option<Duration>,
    /// ListenOverflows when sockets started and when the run ended.
    overflows: (Option<u64>, Option<u64>),
}

impl ServerWatch {
    /// `pids[i]` is node i's process, if known.
    pub fn new(pids: Vec<Option<u32>>) -> Self {
        let now = Instant::now();
        let nodes = pids
            .into_iter()
            .enumerate()
            .map(|(node, pid)| {
                let before = server_sample(pid);
                if pid.is_some() && before.is_none() {
                    eprintln!("warning: cannot read /proc for server pid {pid:?}; no numbers for node {node}");
                }
                NodeWatch {
                    node,
                    pid,
                    before,
                    setup_done: None,
                    ready: None,
                    end: None,
                    idle: None,
                    sampler: pid.filter(|_| before.is_some()).map(PeakSampler::start),
                }
            })
            .collect();
        Self {
            nodes,
            ready_at: now,
            end_at: now,
            idle_for: None,
            overflows: (None, None),
        }
    }

    /// After HTTP setup, before any socket.
    pub fn mark_setup(&mut self) {
        for n in &mut self.nodes {
            n.setup_done = server_sample(n.pid);
        }
        self.overflows.0 = crate::stats::listen_overflows();
    }

    /// Everyone joined.
    pub fn mark_ready(&mut self) {
        for n in &mut self.nodes {
            n.ready = server_sample(n.pid);
        }
        self.ready_at = Instant::now();
    }

    pub fn mark_end(&mut self) {
        for n in &mut self.nodes {
            n.end = server_sample(n.pid);
        }
        self.end_at = Instant::now();
        self.overflows.1 = crate::stats::listen_overflows();
    }

    /// Listen-queue overflows between the first socket and the end.
    pub fn listen_overflows(&self) -> u64 {
        match self.overflows {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }

    /// Idles for `d`, then reads each node's RSS (compared with the one
    /// before sockets by `fill`).
    pub async fn idle(&mut self, d: Duration) {
        tokio::time::sleep(d).await;
        self.idle_for = Some(d);
        for n in &mut self.nodes {
            n.idle = server_sample(n.pid);
        }
    }

    /// RSS growth over the idle phase per joined socket: each node's over
    /// its own sockets, and every node's (each process counted once) over
    /// all of them.
    fn idle_reports(&self, joined_per_node: &[u64]) -> (Option<IdleReport>, Vec<IdleReport>) {
        let Some(d) = self.idle_for else {
            return (None, Vec::new());
        };
        let per_socket = |grown_kib: f64, sockets: u64| {
            if sockets > 0 {
                grown_kib * 1024.0 / sockets as f64
            } else {
                0.0
            }
        };
        let mut per = Vec::new();
        let mut total = IdleReport {
            idle_secs: d.as_secs_f64(),
            ..Default::default()
        };
        let mut counted = Vec::new();
        for n in &self.nodes {
            let (Some(before), Some(after)) = (n.setup_done, n.idle) else {
                continue;
            };
            let sockets = joined_per_node.get(n.node).copied().unwrap_or(0);
            per.push(IdleReport {
                node: n.node,
                idle_secs: d.as_secs_f64(),
                sockets,
                rss_before_kib: before.rss_kib,
                rss_after_kib: after.rss_kib,
                rss_per_socket_bytes: per_socket(
                    after.rss_kib as f64 - before.rss_kib as f64,
                    sockets,
                ),
            });
            total.sockets += sockets;
            if !counted.contains(&n.pid) {
                counted.push(n.pid);
                total.rss_before_kib += before.rss_kib;
                total.rss_after_kib += after.rss_kib;
            }
        }
        if per.is_empty() {
            return (None, per);
        }
        total.rss_per_socket_bytes = per_socket(
            total.rss_after_kib as f64 - total.rss_before_kib as f64,
            total.sockets,
        );
        (Some(total), per)
    }

    /// Puts the servers' numbers into a report: `server` (the first node),
    /// `idle`, and with several nodes `servers` and `idle_per_node`.
    pub fn fill(&self, report: &mut Report, joined_per_node: &[u64]) {
        let run_secs = (self.end_at - self.ready_at).as_secs_f64();
        let servers: Vec<ServerReport> = self
            .nodes
            .iter()
            .filter_map(|n| n.report(run_secs))
            .collect();
        let (idle, idle_per_node) = self.idle_reports(joined_per_node);
        report.server = servers.first().filter(|s| s.node == 0).cloned();
        report.idle = idle;
        if self.nodes.len() > 1 {
            report.servers = servers;
            report.idle_per_node = idle_per_node;
        }
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Refuses a plan that would need more descriptors than the process has.
pub fn check_fd_budget(clients: usize, nofile: u64) -> Result<()> {
    if clients as u64 + 200 > nofile {
        bail!(
            "{clients} sockets need more than the {nofile} open files one process may hold; \
             split the run with --processes N (or run --shard i/N in N processes)"
        );
    }
    Ok(())
}

/// How long joining may take so that the run still fits in the cap.
pub fn ready_deadline(started: Instant, global: &Global, plan: &Plan) -> Instant {
    let after = plan.run.unwrap_or_default()
        + plan.idle.unwrap_or_default()
        + global.grace
        + global.settle
        + STOP_MARGIN;
    let budget = global
        .max_duration
        .saturating_sub(after)
        .max(Duration::from_secs(5));
    started + budget
}

pub fn print(report: &Report, json: bool) {
    print!("{}", report.text());
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("report serializes")
        );
    }
}

/// `--server-pid` (one per node), or else the pid listening on each
/// target's port (when /proc shows it: same machine, same or higher
/// privileges).
pub fn server_pids(global: &Global, targets: &[Target]) -> Result<Vec<Option<u32>>> {
    if !global.server_pid.is_empty() {
        if global.server_pid.len() != targets.len() {
            bail!(
                "--server-pid lists {} pids for {} --url nodes: give one per node, in the same order",
                global.server_pid.len(),
                targets.len()
            );
        }
        return Ok(global.server_pid.iter().map(|&p| Some(p)).collect());
    }
    Ok(targets
        .iter()
        .map(|t| {
            let pid = crate::stats::find_listener_pid(t.addr.port());
            if let Some(p) = pid {
                eprintln!("  server pid {p} (listening on port {})", t.addr.port());
            }
            pid
        })
        .collect())
}

/// One scenario in this process (the whole run, or one `--shard`).
pub async fn single(global: &Global, scenario: &Scenario, nofile: u64) -> Result<u8> {
    let started = Instant::now();
    let targets = Target::resolve_all(&global.url).await?;
    let api = scenario::api_for(&targets[0])?;
    let cpu0 = tool_cpu();
    let mut server = ServerWatch::new(server_pids(global, &targets)?);
    let mut plan = scenario::plan(&api, global, scenario).await?;
    check_fd_budget(plan.specs.len(), nofile)?;
    let report = execute(global, &targets, &mut plan, &mut server, (started, cpu0)).await;
    print(&report, global.json);
    Ok(0)
}

/// This process's CPU seconds so far.
pub fn tool_cpu() -> f64 {
    crate::stats::sample_proc("self")
        .map(|p| p.cpu_secs)
        .unwrap_or(0.0)
}

/// Connects, runs and reports a plan; the server watch is marked on the
/// way. `since` is when (and at what CPU time of ours) the run began.
pub async fn execute(
    global: &Global,
    targets: &[Target],
    plan: &mut Plan,
    server: &mut ServerWatch,
    since: (Instant, f64),
) -> Report {
    let (started, cpu0) = since;
    server.mark_setup();
    let mut live = Live::start(global, targets, plan);
    let n = live.clients();
    eprintln!("  connecting {n} clients");
    if !live.wait_ready(ready_deadline(started, global, plan)).await {
        eprintln!(
            "  not every client was ready in time: {} ok, {} failed, {} pending",
            live.ready_ok,
            live.ready_failed,
            n - live.ready_ok - live.ready_failed
        );
    }
    server.mark_ready();
    if let Some(d) = plan.idle {
        eprintln!(
            "  {} joined; idling {:.0} s",
            live.ready_ok,
            d.as_secs_f64()
        );
        server.idle(d).await;
    }
    if let Some(d) = plan.run {
        eprintln!(
            "  {} joined; running {:.1} s (+{:.1} s grace)",
            live.ready_ok,
            d.as_secs_f64(),
            global.grace.as_secs_f64()
        );
    }
    let times = (live.first_connect_us, live.last_ready_us);
    if plan.run.is_some() && !global.settle.is_zero() {
        tokio::time::sleep(global.settle).await;
    }
    let (stats, run_secs, ctx) = live.run(plan.run, global.grace).await;
    server.mark_end();
    let mut partial = harness::partial(&stats, &ctx, plan.offered, run_secs, times);
    partial.tool_cpu_secs -= cpu0;
    partial.listen_overflows = server.listen_overflows();
    let shape = Shape {
        name: plan.name,
        params: plan.params.clone(),
        kind: plan.kind,
        per_action_deliveries: plan.per_action_deliveries,
    };
    let mut report = Report::build(shape, 1, &partial, started.elapsed().as_secs_f64(), cores());
    server.fill(&mut report, &partial.joined_per_node);
    report
}

/// `smoke`: a JSON pass and a Yjs pass of 2 rooms x 4 sockets for 2 s.
/// Exit 0 only if every expected delivery arrived once and latencies exist.
pub async fn smoke(global: &Global) -> Result<u8> {
    let targets = Target::resolve_all(&global.url).await?;
    let api = scenario::api_for(&targets[0])?;
    let pids = server_pids(global, &targets)?;
    let mut failures = Vec::new();
    for yjs in [false, true] {
        let since = (Instant::now(), tool_cpu());
        let mut server = ServerWatch::new(pids.clone());
        let mut plan = scenario::smoke(&api, global, yjs).await?;
        let report = execute(global, &targets, &mut plan, &mut server, since).await;
        print(&report, global.json);
        let mode = if yjs { "yjs" } else { "json" };
        failures.extend(
            smoke_failures(&report)
                .into_iter()
                .map(|f| format!("{mode}: {f}")),
        );
    }
    if failures.is_empty() {
        println!("smoke: ok");
        Ok(0)
    } else {
        for f in &failures {
            println!("smoke: FAIL {f}");
        }
        Ok(1)
    }
}

/// What makes a smoke report not sane.
pub fn smoke_failures(r: &Report) -> Vec<String> {
    let mut f = Vec::new();
    if r.joined != r.clients || r.failed > 0 {
        f.push(format!("{} of {} clients joined", r.joined, r.clients));
    }
    if r.edits_sent == 0 {
        f.push("no edit was sent".into());
    }
    if r.edits_ok != r.edits_sent {
        f.push(format!(
            "{} of {} edits acknowledged ok",
            r.edits_ok, r.edits_sent
        ));
    }
    if r.deliveries_expected == 0 || r.lost > 0 {
        f.push(format!(
            "{} of {} expected deliveries seen",
            r.deliveries_unique, r.deliveries_expected
        ));
    }
    if r.duplicates > 0 {
        f.push(format!("{} duplicate deliveries", r.duplicates));
    }
    if r.latency.p99_ms <= 0.0 {
        f.push("delivery p99 is 0".into());
    }
    if r.ack_latency.p99_ms <= 0.0 {
        f.push("ack p99 is 0".into());
    }
    if r.sockets_lost > 0 || r.channel_errors > 0 {
        f.push(format!(
            "{} sockets lost, {} channel errors",
            r.sockets_lost, r.channel_errors
        ));
    }
    if r.kind != Kind::Edits {
        f.push("not an edit run".into());
    }
    if r.nodes > 1 && r.latency_cross_node.as_ref().map_or(0, |p| p.count) == 0 {
        f.push("no delivery crossed nodes".into());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Partial;

    #[test]
    fn fd_budget() {
        assert!(check_fd_budget(19_000, 20_000).is_ok());
        assert!(check_fd_budget(19_900, 20_000).is_err());
    }

    fn smoke_shape() -> Shape {
        Shape {
            name: "smoke",
            params: serde_json::json!({}),
            kind: Kind::Edits,
            per_action_deliveries: 3.0,
        }
    }

    #[test]
    fn smoke_judges_numbers() {
        let good = Partial {
            clients: 8,
            connected: 8,
            joined: 8,
            run_secs: 2.0,
            offered: 16.0,
            edits_sent: 16,
            edits_ok: 16,
            deliveries: crate::stats::Deliveries {
                expected: 48,
                unique: 48,
                total: 48,
            },
            delivery_hist: vec![(1500, 48)],
            ack_hist: vec![(900, 16)],
            ..Default::default()
        };
        let r = Report::build(smoke_shape(), 1, &good, 3.0, 2);
        assert!(smoke_failures(&r).is_empty(), "{:?}", smoke_failures(&r));
        let mut bad = good.clone();
        bad.deliveries.total = 49;
        bad.deliveries.unique = 47;
        let r = Report::build(smoke_shape(), 1, &bad, 3.0, 2);
        let f = smoke_failures(&r);
        assert_eq!(f.len(), 2, "{f:?}");
    }
}
