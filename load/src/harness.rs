//! Running a plan: spawn one task per client, wait until all are joined,
//! move the phase to `Run` and then `Stop`, and add the clients' stats up
//! into a `Partial`. Also the connection target (loopback check) and a
//! sampler of the server's RSS.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use reqwest::Url;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cli::Global;
use crate::client::{run_client, ClientSpec, ClientStats, Ctx, EditMode, Event, Phase};
use crate::report::{Hists, Kind, Partial};
use crate::stats::ShardedHistogram;

/// Everything a scenario decided before any socket opens.
pub struct Plan {
    pub name: &'static str,
    pub params: serde_json::Value,
    pub kind: Kind,
    pub mode: EditMode,
    pub text_bytes: usize,
    pub specs: Vec<ClientSpec>,
    /// Length of the run phase (edits or churn); `None` for idle runs.
    pub run: Option<Duration>,
    /// Idle time after everyone joined, before reading the server's RSS.
    pub idle: Option<Duration>,
    /// Actions (edits, join cycles) the schedule offers during the run.
    pub offered: f64,
    /// Deliveries one action should cause (room size - 1, watchers, ...).
    pub per_action_deliveries: f64,
    pub reconnect: bool,
}

/// Host and port of one node to connect to, and the URLs built from them.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: Url,
    pub addr: SocketAddr,
    pub ws_url: String,
    pub origin: String,
}

impl Target {
    /// Parses `--url` and refuses anything that is not a loopback address.
    pub async fn resolve(url: &str) -> Result<Self> {
        let base = Url::parse(url).with_context(|| format!("--url {url:?}"))?;
        if base.scheme() != "http" {
            bail!("--url must be http://host:port (the tool derives ws:// from it)");
        }
        let host = base.host_str().context("--url has no host")?.to_string();
        let port = base.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .find(|a| a.is_ipv4())
            .with_context(|| format!("{host} has no IPv4 address"))?;
        if !addr.ip().is_loopback() {
            bail!("refusing {addr}: the load tool only targets loopback addresses (127.0.0.0/8)");
        }
        let authority = format!("{host}:{port}");
        Ok(Self {
            ws_url: format!("ws://{authority}/socket/websocket?vsn=2.0.0&token="),
            origin: format!("http://{authority}"),
            base,
            addr,
        })
    }

    /// Every `--url` (one per node), in order; at least one.
    pub async fn resolve_all(urls: &[String]) -> Result<Vec<Self>> {
        if urls.is_empty() {
            bail!("--url: give at least one server URL");
        }
        let mut out = Vec::with_capacity(urls.len());
        for u in urls {
            out.push(Self::resolve(u.trim()).await?);
        }
        Ok(out)
    }
}

/// Source addresses 127.0.0.1 .. 127.0.0.n.
pub fn sources(n: u8) -> Vec<Ipv4Addr> {
    (1..=n.max(1))
        .map(|i| Ipv4Addr::new(127, 0, 0, i))
        .collect()
}

/// Unix micros now.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Clients running; created by `Live::start`.
pub struct Live {
    pub ctx: Arc<Ctx>,
    phase: watch::Sender<Phase>,
    pub events: mpsc::UnboundedReceiver<Event>,
    handles: Vec<JoinHandle<ClientStats>>,
    /// The wall clock and the monotonic clock at start, to convert.
    base_unix_us: u64,
    base: Instant,
    pub first_connect_us: u64,
    pub last_ready_us: u64,
    pub ready_ok: usize,
    pub ready_failed: usize,
}

impl Live {
    pub fn start(global: &Global, targets: &[Target], plan: &mut Plan) -> Self {
        let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shards = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            * 4;
        let mut node_of = vec![0u16; plan.specs.len()];
        for spec in &plan.specs {
            if let Some(n) = node_of.get_mut(spec.idx as usize) {
                *n = spec.node as u16;
            }
        }
        let ctx = Arc::new(Ctx {
            targets: targets.to_vec(),
            node_of,
            sources: sources(global.sources),
            connect_permits: Semaphore::new(global.connect_concurrency.max(1)),
            epoch: std::time::Instant::now(),
            mode: plan.mode,
            text_bytes: plan.text_bytes,
            reconnect: plan.reconnect,
            phase: phase_rx,
            events: events_tx,
            delivery: ShardedHistogram::new(shards),
            delivery_same: ShardedHistogram::new(shards),
            delivery_cross: ShardedHistogram::new(shards),
            ack: ShardedHistogram::new(shards),
            connect: ShardedHistogram::new(shards),
            join: ShardedHistogram::new(shards),
            presence: ShardedHistogram::new(shards),
            presence_same: ShardedHistogram::new(shards),
            presence_cross: ShardedHistogram::new(shards),
        });
        let base = Instant::now();
        let base_unix_us = unix_us();
        let handles = std::mem::take(&mut plan.specs)
            .into_iter()
            .map(|spec| tokio::spawn(run_client(ctx.clone(), spec)))
            .collect();
        Self {
            ctx,
            phase: phase_tx,
            events: events_rx,
            handles,
            base_unix_us,
            base,
            first_connect_us: base_unix_us,
            last_ready_us: base_unix_us,
            ready_ok: 0,
            ready_failed: 0,
        }
    }

    pub fn clients(&self) -> usize {
        self.handles.len()
    }

    fn to_unix_us(&self, at: Instant) -> u64 {
        self.base_unix_us + at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// Waits until every client reported ready (joined or failed), or the
    /// deadline. Returns false on the deadline.
    pub async fn wait_ready(&mut self, deadline: Instant) -> bool {
        let n = self.clients();
        let mut progress = 0u64;
        while self.ready_ok + self.ready_failed < n {
            let ev = tokio::time::timeout_at(deadline, self.events.recv()).await;
            match ev {
                Ok(Some(Event::Ready { ok, at })) => {
                    if ok {
                        self.ready_ok += 1;
                        self.last_ready_us = self.to_unix_us(at);
                    } else {
                        self.ready_failed += 1;
                    }
                    let done = (self.ready_ok + self.ready_failed) as u64;
                    if n >= 2000 && done * 10 / n as u64 > progress {
                        progress = done * 10 / n as u64;
                        eprintln!("  {done}/{n} clients ready ({} failed)", self.ready_failed);
                    }
                }
                Ok(Some(Event::Rejoined { .. } | Event::Lost { .. })) => {}
                Ok(None) | Err(_) => return false,
            }
        }
        true
    }

    /// Runs the action phase for `run` (if any), listens for `grace` more,
    /// then stops every client and returns their stats and the run's length.
    pub async fn run(
        mut self,
        run: Option<Duration>,
        grace: Duration,
    ) -> (Vec<ClientStats>, f64, Arc<Ctx>) {
        let mut run_secs = 0.0;
        if let Some(d) = run {
            let start = Instant::now();
            let end = start + d;
            let _ = self.phase.send(Phase::Run { start, end });
            tokio::time::sleep_until(end + grace).await;
            run_secs = d.as_secs_f64();
        }
        self.stop().await;
        crate::stats::timeline::print();
        let mut stats = Vec::with_capacity(self.handles.len());
        for h in self.handles.drain(..) {
            match h.await {
                Ok(s) => stats.push(s),
                Err(e) => eprintln!("a client task failed: {e}"),
            }
        }
        (stats, run_secs, self.ctx)
    }

    pub async fn stop(&mut self) {
        let _ = self.phase.send(Phase::Stop);
        // Let clients drain the events channel's senders without blocking.
        while let Ok(_ev) = self.events.try_recv() {}
    }
}

/// Adds up the stats of a finished run.
pub fn partial(
    stats: &[ClientStats],
    ctx: &Ctx,
    plan_offered: f64,
    run_secs: f64,
    live_times: (u64, u64),
) -> Partial {
    let hists = Hists {
        connect: &ctx.connect,
        join: &ctx.join,
        delivery: &ctx.delivery,
        delivery_same: &ctx.delivery_same,
        delivery_cross: &ctx.delivery_cross,
        ack: &ctx.ack,
        presence: &ctx.presence,
        presence_same: &ctx.presence_same,
        presence_cross: &ctx.presence_cross,
    };
    let mut p = Partial::from_clients(stats, hists, ctx.targets.len());
    p.offered = plan_offered;
    p.run_secs = run_secs;
    p.first_connect_us = live_times.0;
    p.last_ready_us = live_times.1;
    if let Some(me) = crate::stats::sample_proc("self") {
        p.tool_cpu_secs = me.cpu_secs;
        p.tool_peak_rss_kib = me.peak_rss_kib;
    }
    p
}

/// Samples a process's RSS every 500 ms and keeps the peak.
pub struct PeakSampler {
    peak: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl PeakSampler {
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if let Some(s) = crate::stats::sample_proc(&pid.to_string()) {
                    p.fetch_max(s.rss_kib, Ordering::Relaxed);
                }
            }
        });
        Self { peak, task }
    }

    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
