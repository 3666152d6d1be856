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

/// The server's CPU and RSS at each stage of a run.
pub struct ServerWatch {
    pid: Option<u32>,
    before: Option<ProcSample>,
    pub setup_done: Option<ProcSample>,
    ready: Option<ProcSample>,
    ready_at: Instant,
    end: Option<ProcSample>,
    end_at: Instant,
    sampler: Option<PeakSampler>,
    /// ListenOverflows when sockets started and when the run ended.
    overflows: (Option<u64>, Option<u64>),
}

impl ServerWatch {
    pub fn new(pid: Option<u32>) -> Self {
        let now = Instant::now();
        let before = server_sample(pid);
        if pid.is_some() && before.is_none() {
            eprintln!("warning: cannot read /proc for --server-pid {pid:?}; no server numbers");
        }
        Self {
            pid,
            before,
            setup_done: None,
            ready: None,
            ready_at: now,
            end: None,
            end_at: now,
            sampler: pid.filter(|_| before.is_some()).map(PeakSampler::start),
            overflows: (None, None),
        }
    }

    /// After HTTP setup, before any socket.
    pub fn mark_setup(&mut self) {
        self.setup_done = server_sample(self.pid);
        self.overflows.0 = crate::stats::listen_overflows();
    }

    /// Everyone joined.
    pub fn mark_ready(&mut self) {
        self.ready = server_sample(self.pid);
        self.ready_at = Instant::now();
    }

    pub fn mark_end(&mut self) {
        self.end = server_sample(self.pid);
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

    pub fn report(&self) -> Option<ServerReport> {
        let (before, ready, end) = (self.before?, self.ready?, self.end?);
        let run_secs = (self.end_at - self.ready_at).as_secs_f64();
        let cpu_run = end.cpu_secs - ready.cpu_secs;
        Some(ServerReport {
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

    /// Idles for `d`, then compares the RSS with the one before sockets.
    pub async fn idle(&self, d: Duration, sockets: u64) -> Option<IdleReport> {
        tokio::time::sleep(d).await;
        let before = self.setup_done?;
        let after = server_sample(self.pid)?;
        let grown = after.rss_kib as f64 - before.rss_kib as f64;
        Some(IdleReport {
            idle_secs: d.as_secs_f64(),
            rss_before_kib: before.rss_kib,
            rss_after_kib: after.rss_kib,
            rss_per_socket_bytes: if sockets > 0 {
                grown * 1024.0 / sockets as f64
            } else {
                0.0
            },
        })
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

/// `--server-pid`, or else the pid listening on the target's port (when
/// /proc shows it: same machine, same or higher privileges).
pub fn server_pid(global: &Global, target: &Target) -> Option<u32> {
    global.server_pid.or_else(|| {
        let pid = crate::stats::find_listener_pid(target.addr.port());
        if let Some(p) = pid {
            eprintln!(
                "  server pid {p} (listening on port {})",
                target.addr.port()
            );
        }
        pid
    })
}

/// One scenario in this process (the whole run, or one `--shard`).
pub async fn single(global: &Global, scenario: &Scenario, nofile: u64) -> Result<u8> {
    let started = Instant::now();
    let target = Target::resolve(&global.url).await?;
    let api = scenario::api_for(&target)?;
    let cpu0 = tool_cpu();
    let mut server = ServerWatch::new(server_pid(global, &target));
    let mut plan = scenario::plan(&api, global, scenario).await?;
    check_fd_budget(plan.specs.len(), nofile)?;
    let report = execute(global, &target, &mut plan, &mut server, (started, cpu0)).await;
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
    target: &Target,
    plan: &mut Plan,
    server: &mut ServerWatch,
    since: (Instant, f64),
) -> Report {
    let (started, cpu0) = since;
    server.mark_setup();
    let mut live = Live::start(global, target, plan);
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
    let idle = match plan.idle {
        Some(d) => {
            eprintln!(
                "  {} joined; idling {:.0} s",
                live.ready_ok,
                d.as_secs_f64()
            );
            server.idle(d, live.ready_ok as u64).await
        }
        None => None,
    };
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
    report.idle = idle;
    report.server = server.report();
    report
}

/// `smoke`: a JSON pass and a Yjs pass of 2 rooms x 4 sockets for 2 s.
/// Exit 0 only if every expected delivery arrived once and latencies exist.
pub async fn smoke(global: &Global) -> Result<u8> {
    let target = Target::resolve(&global.url).await?;
    let api = scenario::api_for(&target)?;
    let mut failures = Vec::new();
    for yjs in [false, true] {
        let since = (Instant::now(), tool_cpu());
        let mut server = ServerWatch::new(server_pid(global, &target));
        let mut plan = scenario::smoke(&api, global, yjs).await?;
        let report = execute(global, &target, &mut plan, &mut server, since).await;
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
