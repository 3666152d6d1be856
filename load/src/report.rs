//! Results: `Partial` is what one process measured (raw counts and
//! histograms, mergeable across `--processes` children); `Report` is the
//! run's summary with rates and percentiles, printed as text and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::client::ClientStats;
use crate::stats::{
    histogram_from_pairs, histogram_to_pairs, per_sec, Deliveries, Percentiles, ProcSample,
    ShardedHistogram,
};

/// Raw results of one process; summed when several processes share a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Partial {
    pub clients: u64,
    pub connected: u64,
    pub joined: u64,
    pub failed: u64,
    /// Error text (trimmed) → clients that hit it.
    pub errors: BTreeMap<String, u64>,
    /// Wall clock (unix micros) of the first connect and the last ready.
    pub first_connect_us: u64,
    pub last_ready_us: u64,
    pub connect_hist: Vec<(u64, u64)>,
    pub join_hist: Vec<(u64, u64)>,
    pub delivery_hist: Vec<(u64, u64)>,
    pub ack_hist: Vec<(u64, u64)>,
    pub presence_hist: Vec<(u64, u64)>,
    pub run_secs: f64,
    /// Actions (edits or join cycles) the schedule offered.
    pub offered: f64,
    pub edits_sent: u64,
    pub edits_ok: u64,
    pub edits_err: u64,
    pub edit_error_sample: Option<String>,
    pub deliveries: Deliveries,
    pub joins_sent: u64,
    pub joins_ok: u64,
    pub joins_err: u64,
    pub churn_skipped: u64,
    pub presence: Deliveries,
    pub sockets_lost: u64,
    pub channel_errors: u64,
    pub reconnects: u64,
    pub undecodable: u64,
    pub tool_cpu_secs: f64,
    pub tool_peak_rss_kib: u64,
    /// Machine-wide listen-queue overflows during the run (set by the
    /// process that watches the server, not summed).
    pub listen_overflows: u64,
    /// Nodes the clients were spread over (one per `--url`).
    #[serde(default)]
    pub nodes: usize,
    /// Clients joined at least once, by node (churners not counted).
    #[serde(default)]
    pub joined_per_node: Vec<u64>,
    /// Delivery and presence latencies split by whether sender and receiver
    /// were on one node (empty with one node).
    #[serde(default)]
    pub delivery_same_hist: Vec<(u64, u64)>,
    #[serde(default)]
    pub delivery_cross_hist: Vec<(u64, u64)>,
    #[serde(default)]
    pub presence_same_hist: Vec<(u64, u64)>,
    #[serde(default)]
    pub presence_cross_hist: Vec<(u64, u64)>,
}

/// Hists shared by the clients of one process.
pub struct Hists<'a> {
    pub connect: &'a ShardedHistogram,
    pub join: &'a ShardedHistogram,
    pub delivery: &'a ShardedHistogram,
    pub delivery_same: &'a ShardedHistogram,
    pub delivery_cross: &'a ShardedHistogram,
    pub ack: &'a ShardedHistogram,
    pub presence: &'a ShardedHistogram,
    pub presence_same: &'a ShardedHistogram,
    pub presence_cross: &'a ShardedHistogram,
}

fn trim_error(e: &str) -> String {
    let mut s: String = e.chars().take(160).collect();
    if s.len() < e.len() {
        s.push('…');
    }
    s
}

impl Partial {
    /// Adds up client stats; the expected counts are worked out per room.
    pub fn from_clients(stats: &[ClientStats], hists: Hists<'_>, nodes: usize) -> Self {
        let mut p = Partial {
            clients: stats.len() as u64,
            nodes: nodes.max(1),
            joined_per_node: vec![0; nodes.max(1)],
            ..Default::default()
        };
        let mut rooms: BTreeMap<usize, Vec<&ClientStats>> = BTreeMap::new();
        for s in stats {
            rooms.entry(s.room).or_default().push(s);
            p.connected += u64::from(s.connected);
            if s.was_joined && !s.churner {
                if let Some(n) = p.joined_per_node.get_mut(s.node) {
                    *n += 1;
                }
            }
            p.joined += u64::from(if s.churner { s.connected } else { s.was_joined });
            for e in [&s.connect_error, &s.join_error, &s.lost_socket]
                .into_iter()
                .flatten()
            {
                *p.errors.entry(trim_error(e)).or_default() += 1;
            }
            p.failed +=
                u64::from(s.connect_error.is_some() || (s.join_error.is_some() && !s.was_joined));
            p.edits_sent += s.edits_sent;
            p.edits_ok += s.edits_ok;
            p.edits_err += s.edits_err;
            if p.edit_error_sample.is_none() {
                p.edit_error_sample.clone_from(&s.edit_error_sample);
            }
            p.deliveries.unique += s.deliveries_unique;
            p.deliveries.total += s.deliveries_total;
            p.joins_sent += s.joins_sent;
            p.joins_ok += s.joins_ok;
            p.joins_err += s.joins_err;
            p.churn_skipped += s.churn_skipped;
            p.presence.unique += s.presence_seen;
            p.presence.total += s.presence_seen + s.presence_dups;
            p.sockets_lost += u64::from(s.lost_socket.is_some());
            p.channel_errors += s.channel_errors;
            p.reconnects += s.reconnects;
            p.undecodable += s.undecodable;
        }
        for members in rooms.values() {
            let receivers = members
                .iter()
                .filter(|s| s.was_joined && !s.churner)
                .count() as u64;
            for s in members {
                // Every accepted edit should reach every other joined member.
                if s.was_joined && !s.churner {
                    p.deliveries.expected +=
                        s.edits_sent.saturating_sub(s.edits_err) * receivers.saturating_sub(1);
                }
            }
            // Every accepted churn join should reach every watcher.
            let churn_joins: u64 = members.iter().map(|s| s.joins_ok).sum();
            p.presence.expected += churn_joins * receivers;
        }
        p.connect_hist = histogram_to_pairs(&hists.connect.merged());
        p.join_hist = histogram_to_pairs(&hists.join.merged());
        p.delivery_hist = histogram_to_pairs(&hists.delivery.merged());
        p.ack_hist = histogram_to_pairs(&hists.ack.merged());
        p.presence_hist = histogram_to_pairs(&hists.presence.merged());
        p.delivery_same_hist = histogram_to_pairs(&hists.delivery_same.merged());
        p.delivery_cross_hist = histogram_to_pairs(&hists.delivery_cross.merged());
        p.presence_same_hist = histogram_to_pairs(&hists.presence_same.merged());
        p.presence_cross_hist = histogram_to_pairs(&hists.presence_cross.merged());
        p
    }

    /// Adds another process's results into this one.
    pub fn merge(&mut self, o: &Partial) {
        let sum_hist = |a: &[(u64, u64)], b: &[(u64, u64)]| {
            let mut h = histogram_from_pairs(a);
            h.add(histogram_from_pairs(b)).expect("same bounds");
            histogram_to_pairs(&h)
        };
        self.clients += o.clients;
        self.connected += o.connected;
        self.joined += o.joined;
        self.failed += o.failed;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.first_connect_us = match (self.first_connect_us, o.first_connect_us) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.last_ready_us = self.last_ready_us.max(o.last_ready_us);
        self.connect_hist = sum_hist(&self.connect_hist, &o.connect_hist);
        self.join_hist = sum_hist(&self.join_hist, &o.join_hist);
        self.delivery_hist = sum_hist(&self.delivery_hist, &o.delivery_hist);
        self.ack_hist = sum_hist(&self.ack_hist, &o.ack_hist);
        self.presence_hist = sum_hist(&self.presence_hist, &o.presence_hist);
        self.delivery_same_hist = sum_hist(&self.delivery_same_hist, &o.delivery_same_hist);
        self.delivery_cross_hist = sum_hist(&self.delivery_cross_hist, &o.delivery_cross_hist);
        self.presence_same_hist = sum_hist(&self.presence_same_hist, &o.presence_same_hist);
        self.presence_cross_hist = sum_hist(&self.presence_cross_hist, &o.presence_cross_hist);
        self.nodes = self.nodes.max(o.nodes);
        if self.joined_per_node.len() < o.joined_per_node.len() {
            self.joined_per_node.resize(o.joined_per_node.len(), 0);
        }
        for (a, b) in self.joined_per_node.iter_mut().zip(&o.joined_per_node) {
            *a += b;
        }
        self.run_secs = self.run_secs.max(o.run_secs);
        self.offered += o.offered;
        self.edits_sent += o.edits_sent;
        self.edits_ok += o.edits_ok;
        self.edits_err += o.edits_err;
        if self.edit_error_sample.is_none() {
            self.edit_error_sample.clone_from(&o.edit_error_sample);
        }
        for (a, b) in [
            (&mut self.deliveries, &o.deliveries),
            (&mut self.presence, &o.presence),
        ] {
            a.expected += b.expected;
            a.unique += b.unique;
            a.total += b.total;
        }
        self.joins_sent += o.joins_sent;
        self.joins_ok += o.joins_ok;
        self.joins_err += o.joins_err;
        self.churn_skipped += o.churn_skipped;
        self.sockets_lost += o.sockets_lost;
        self.channel_errors += o.channel_errors;
        self.reconnects += o.reconnects;
        self.undecodable += o.undecodable;
        self.tool_cpu_secs += o.tool_cpu_secs;
        self.tool_peak_rss_kib += o.tool_peak_rss_kib;
    }
}

/// What kind of run phase the scenario has, for the report's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Idle,
    Edits,
    Churn,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ServerReport {
    /// Index of its `--url`.
    pub node: usize,
    pub pid: u32,
    pub rss_before_kib: u64,
    pub rss_after_setup_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    pub cpu_secs_setup: f64,
    pub cpu_secs_run: f64,
    /// CPU seconds per wall second during the run phase.
    pub cores_run: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct IdleReport {
    /// Index of its `--url` (per-node reports; 0 in the total).
    pub node: usize,
    pub idle_secs: f64,
    /// Sockets joined (on this node, or in all).
    pub sockets: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub rss_per_socket_bytes: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub params: serde_json::Value,
    pub kind: Kind,
    pub processes: usize,
    pub clients: u64,
    pub connected: u64,
    pub joined: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    /// From the first connect to the last join ok.
    pub setup_secs: f64,
    pub joins_per_sec: f64,
    /// TCP connect + WebSocket upgrade.
    pub connect_latency: Percentiles,
    pub join_latency: Percentiles,
    pub run_secs: f64,
    pub offered_per_sec: f64,
    pub achieved_per_sec: f64,
    pub edits_sent: u64,
    pub edits_ok: u64,
    pub edits_err: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit_error_sample: Option<String>,
    pub offered_deliveries_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub deliveries_expected: u64,
    pub deliveries_unique: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub latency: Percentiles,
    /// With several nodes: `latency` of deliveries whose sender was on the
    /// receiver's node, and of those that crossed nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_same_node: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_cross_node: Option<Percentiles>,
    pub ack_latency: Percentiles,
    pub joins_sent: u64,
    pub joins_ok: u64,
    pub joins_err: u64,
    pub churn_skipped: u64,
    pub presence_expected: u64,
    pub presence_seen: u64,
    pub presence_lost: u64,
    pub presence_duplicates: u64,
    pub presence_latency: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_latency_same_node: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_latency_cross_node: Option<Percentiles>,
    /// Nodes the clients were spread over, and how many joined on each.
    pub nodes: usize,
    pub joined_per_node: Vec<u64>,
    pub sockets_lost: u64,
    pub channel_errors: u64,
    pub reconnects: u64,
    pub undecodable: u64,
    /// After the idle phase: the server's RSS growth per joined socket (with
    /// several nodes, all nodes' growth over all sockets)...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleReport>,
    /// ... and each node's growth over the sockets joined on it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub idle_per_node: Vec<IdleReport>,
    /// The first node's process (the only one with one node)...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerReport>,
    /// ... and every node's, with several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerReport>,
    pub tool_cpu_secs: f64,
    pub tool_cores: f64,
    pub tool_peak_rss_kib: u64,
    /// Connections dropped because a listen queue was full (machine-wide).
    pub listen_overflows: u64,
    pub wall_secs: f64,
    pub warnings: Vec<String>,
}

/// Warn when the generator itself used this share of its cores.
const TOOL_BUSY: f64 = 0.9;

/// What a scenario is, for its report.
pub struct Shape {
    pub name: &'static str,
    pub params: serde_json::Value,
    /// The kind of its run phase.
    pub kind: Kind,
    /// Deliveries one action should cause (room size - 1, watchers, ...).
    pub per_action_deliveries: f64,
}

impl Report {
    /// The summary of a run of `shape` over `processes` processes that
    /// measured `p`, on a machine of `cores` cores.
    pub fn build(
        shape: Shape,
        processes: usize,
        p: &Partial,
        wall_secs: f64,
        cores: usize,
    ) -> Self {
        let setup_secs = p.last_ready_us.saturating_sub(p.first_connect_us) as f64 / 1e6;
        let deliveries = p.deliveries;
        let achieved = match shape.kind {
            Kind::Edits => per_sec(p.edits_sent, p.run_secs),
            Kind::Churn => per_sec(p.joins_ok, p.run_secs),
            Kind::Idle => 0.0,
        };
        let offered_per_sec = if p.run_secs > 0.0 {
            p.offered / p.run_secs
        } else {
            0.0
        };
        let percentiles = |pairs: &[(u64, u64)]| Percentiles::of(&histogram_from_pairs(pairs));
        let mut r = Report {
            scenario: shape.name.into(),
            params: shape.params,
            kind: shape.kind,
            processes,
            clients: p.clients,
            connected: p.connected,
            joined: p.joined,
            failed: p.failed,
            errors: p.errors.clone(),
            setup_secs,
            joins_per_sec: per_sec(p.joined, setup_secs),
            connect_latency: percentiles(&p.connect_hist),
            join_latency: percentiles(&p.join_hist),
            run_secs: p.run_secs,
            offered_per_sec,
            achieved_per_sec: achieved,
            edits_sent: p.edits_sent,
            edits_ok: p.edits_ok,
            edits_err: p.edits_err,
            edit_error_sample: p.edit_error_sample.clone(),
            offered_deliveries_per_sec: offered_per_sec * shape.per_action_deliveries,
            deliveries_per_sec: per_sec(deliveries.unique, p.run_secs),
            deliveries_expected: deliveries.expected,
            deliveries_unique: deliveries.unique,
            lost: deliveries.lost(),
            duplicates: deliveries.duplicates(),
            latency: percentiles(&p.delivery_hist),
            latency_same_node: split(p, &p.delivery_same_hist),
            latency_cross_node: split(p, &p.delivery_cross_hist),
            ack_latency: percentiles(&p.ack_hist),
            joins_sent: p.joins_sent,
            joins_ok: p.joins_ok,
            joins_err: p.joins_err,
            churn_skipped: p.churn_skipped,
            presence_expected: p.presence.expected,
            presence_seen: p.presence.unique,
            presence_lost: p.presence.lost(),
            presence_duplicates: p.presence.duplicates(),
            presence_latency: percentiles(&p.presence_hist),
            presence_latency_same_node: split(p, &p.presence_same_hist),
            presence_latency_cross_node: split(p, &p.presence_cross_hist),
            nodes: p.nodes.max(1),
            joined_per_node: p.joined_per_node.clone(),
            sockets_lost: p.sockets_lost,
            channel_errors: p.channel_errors,
            reconnects: p.reconnects,
            undecodable: p.undecodable,
            idle: None,
            idle_per_node: Vec::new(),
            server: None,
            servers: Vec::new(),
            tool_cpu_secs: p.tool_cpu_secs,
            tool_cores: if wall_secs > 0.0 {
                p.tool_cpu_secs / wall_secs
            } else {
                0.0
            },
            tool_peak_rss_kib: p.tool_peak_rss_kib,
            listen_overflows: p.listen_overflows,
            wall_secs,
            warnings: Vec::new(),
        };
        r.warnings = r.warnings(p, cores);
        r
    }

    /// What a reader of the numbers must know: the tool was the
    /// bottleneck, the offered load was not sent, clients failed, sockets
    /// were lost.
    fn warnings(&self, p: &Partial, cores: usize) -> Vec<String> {
        let mut warnings = Vec::new();
        let (achieved, offered) = (self.achieved_per_sec, self.offered_per_sec);
        if self.tool_cores > TOOL_BUSY * cores as f64 {
            warnings.push(format!(
                "the load tool used {:.2} of {} cores: it may be the bottleneck; numbers are a lower bound",
                self.tool_cores, cores
            ));
        }
        if self.kind == Kind::Edits && offered > 0.0 && achieved < 0.95 * offered {
            warnings.push(format!(
                "only {achieved:.1} of {offered:.1} edits/s offered were sent"
            ));
        }
        if p.failed > 0 {
            warnings.push(format!(
                "{} of {} clients failed to connect or join",
                p.failed, p.clients
            ));
        }
        if p.listen_overflows > 0 {
            warnings.push(format!(
                "{} connections overflowed a listen queue (TcpExt ListenOverflows): each waited for a 1 s SYN retransmit; \
                 the server's accept backlog is too small or its accept loop too slow",
                p.listen_overflows
            ));
        }
        if p.sockets_lost > 0 {
            warnings.push(format!(
                "{} sockets were lost during the run",
                p.sockets_lost
            ));
        }
        warnings
    }

    /// The report as text, section by section.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.write_setup(&mut s);
        match self.kind {
            Kind::Edits => self.write_edits(&mut s),
            Kind::Churn => self.write_churn(&mut s),
            Kind::Idle => {}
        }
        self.write_resources(&mut s);
        for w in &self.warnings {
            let _ = writeln!(s, "WARNING: {w}");
        }
        s
    }

    /// The scenario, the clients and their errors, connect and join.
    fn write_setup(&self, s: &mut String) {
        let _ = writeln!(s, "== duet-load {} {}", self.scenario, self.params);
        if self.processes > 1 {
            let _ = writeln!(s, "processes        {}", self.processes);
        }
        let _ = writeln!(
            s,
            "clients          {} ({} connected, {} joined, {} failed)",
            self.clients, self.connected, self.joined, self.failed
        );
        for (e, n) in self.errors.iter().take(8) {
            let _ = writeln!(s, "  error x{n}: {e}");
        }
        let _ = writeln!(
            s,
            "setup            {:.2} s from first connect to last join: {:.0} joins/s",
            self.setup_secs, self.joins_per_sec
        );
        if self.nodes > 1 {
            let per: Vec<String> = self.joined_per_node.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "nodes            {} (joined on each: {})",
                self.nodes,
                per.join(" / ")
            );
        }
        let _ = writeln!(s, "connect latency  {}", self.connect_latency.line());
        let _ = writeln!(s, "join latency     {}", self.join_latency.line());
    }

    /// Edits sent and acknowledged, their deliveries and latencies.
    fn write_edits(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "edits            {} sent ({:.1}/s, offered {:.1}/s), {} ok, {} refused, {} unanswered at the end",
            self.edits_sent,
            self.achieved_per_sec,
            self.offered_per_sec,
            self.edits_ok,
            self.edits_err,
            self.edits_sent.saturating_sub(self.edits_ok + self.edits_err)
        );
        if let Some(e) = &self.edit_error_sample {
            let _ = writeln!(s, "  refusal: {e}");
        }
        let _ = writeln!(
            s,
            "deliveries       {} of {} expected ({:.0}/s, offered {:.0}/s), lost (not seen by the end of grace) {}, duplicates {}",
            self.deliveries_unique,
            self.deliveries_expected,
            self.deliveries_per_sec,
            self.offered_deliveries_per_sec,
            self.lost,
            self.duplicates
        );
        let _ = writeln!(s, "latency          {}", self.latency.line());
        split_lines(s, &self.latency_same_node, &self.latency_cross_node);
        let _ = writeln!(s, "ack latency      {}", self.ack_latency.line());
    }

    /// Churn joins and the `presence_diff`s the watchers saw.
    fn write_churn(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "churn joins      {} sent, {} ok ({:.1}/s, offered {:.1}/s), {} refused, {} ticks skipped",
            self.joins_sent,
            self.joins_ok,
            self.achieved_per_sec,
            self.offered_per_sec,
            self.joins_err,
            self.churn_skipped
        );
        let _ = writeln!(
            s,
            "presence_diff    {} of {} expected seen by watchers, lost {}, duplicates {}",
            self.presence_seen,
            self.presence_expected,
            self.presence_lost,
            self.presence_duplicates
        );
        let _ = writeln!(s, "presence latency {}", self.presence_latency.line());
        split_lines(
            s,
            &self.presence_latency_same_node,
            &self.presence_latency_cross_node,
        );
    }

    /// Losses, the server's memory and CPU, the tool's own.
    fn write_resources(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "sockets lost     {}, channel errors {}, reconnects {}, undecodable frames {}",
            self.sockets_lost, self.channel_errors, self.reconnects, self.undecodable
        );
        if let Some(i) = &self.idle {
            let _ = writeln!(
                s,
                "idle {:.0} s       server RSS {} KiB -> {} KiB: {:.0} bytes per socket{}",
                i.idle_secs,
                i.rss_before_kib,
                i.rss_after_kib,
                i.rss_per_socket_bytes,
                if self.idle_per_node.is_empty() {
                    ""
                } else {
                    " (all nodes)"
                }
            );
        }
        for i in &self.idle_per_node {
            let _ = writeln!(
                s,
                "  node {}        RSS {} KiB -> {} KiB: {:.0} bytes per socket of its {}",
                i.node, i.rss_before_kib, i.rss_after_kib, i.rss_per_socket_bytes, i.sockets
            );
        }
        let servers = if self.servers.is_empty() {
            self.server.iter().collect::<Vec<_>>()
        } else {
            self.servers.iter().collect()
        };
        for sv in servers {
            let node = if self.servers.is_empty() {
                String::new()
            } else {
                format!(" (node {})", sv.node)
            };
            let _ = writeln!(
                s,
                "server pid {}{node}   RSS before {} KiB, after setup {} KiB, peak {} KiB, end {} KiB; CPU setup {:.2} s, run {:.2} s ({:.2} cores)",
                sv.pid,
                sv.rss_before_kib,
                sv.rss_after_setup_kib,
                sv.rss_peak_kib,
                sv.rss_end_kib,
                sv.cpu_secs_setup,
                sv.cpu_secs_run,
                sv.cores_run
            );
        }
        let _ = writeln!(
            s,
            "load tool        CPU {:.2} s over {:.1} s wall = {:.2} cores, peak RSS {} KiB",
            self.tool_cpu_secs, self.wall_secs, self.tool_cores, self.tool_peak_rss_kib
        );
    }
}

/// Percentiles of one side of a node split; `None` with a single node.
fn split(p: &Partial, pairs: &[(u64, u64)]) -> Option<Percentiles> {
    (p.nodes > 1).then(|| Percentiles::of(&histogram_from_pairs(pairs)))
}

/// The same-node / cross-node lines under a latency line.
fn split_lines(s: &mut String, same: &Option<Percentiles>, cross: &Option<Percentiles>) {
    if let (Some(same), Some(cross)) = (same, cross) {
        let _ = writeln!(s, "  same node      {}", same.line());
        let _ = writeln!(s, "  cross node     {}", cross.line());
    }
}

/// A server sample taken now, if a pid was given and is alive.
pub fn server_sample(pid: Option<u32>) -> Option<ProcSample> {
    pid.and_then(|p| crate::stats::sample_proc(&p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(room: usize, sent: u64, err: u64, unique: u64, total: u64) -> ClientStats {
        ClientStats {
            room,
            connected: true,
            joined: true,
            was_joined: true,
            edits_sent: sent,
            edits_err: err,
            edits_ok: sent - err,
            deliveries_unique: unique,
            deliveries_total: total,
            ..Default::default()
        }
    }

    #[test]
    fn expected_deliveries_are_per_room() {
        let sh = ShardedHistogram::new(1);
        let hists = Hists {
            connect: &sh,
            join: &sh,
            delivery: &sh,
            delivery_same: &sh,
            delivery_cross: &sh,
            ack: &sh,
            presence: &sh,
            presence_same: &sh,
            presence_cross: &sh,
        };
        // Room 0: 3 members, 10 + 5 accepted edits -> 15 * 2 = 30 expected.
        // Room 1: 2 members, one never joined -> 0 expected from its 4 edits.
        let mut absent = member(1, 0, 0, 0, 0);
        absent.was_joined = false;
        absent.join_error = Some("join refused: not found".into());
        let stats = vec![
            member(0, 10, 0, 5, 5),
            member(0, 6, 1, 10, 11),
            member(0, 0, 0, 14, 14),
            member(1, 4, 0, 0, 0),
            absent,
        ];
        let p = Partial::from_clients(&stats, hists, 1);
        assert_eq!(p.deliveries.expected, 30);
        assert_eq!(p.deliveries.unique, 29);
        assert_eq!(p.deliveries.lost(), 1);
        assert_eq!(p.deliveries.duplicates(), 1);
        assert_eq!(p.failed, 1);
        assert_eq!(p.errors.get("join refused: not found"), Some(&1));
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = Partial {
            clients: 2,
            first_connect_us: 100,
            last_ready_us: 500,
            ..Default::default()
        };
        a.delivery_hist = vec![(1000, 3)];
        a.deliveries = Deliveries {
            expected: 4,
            unique: 3,
            total: 3,
        };
        let mut b = Partial {
            clients: 3,
            first_connect_us: 50,
            last_ready_us: 400,
            ..Default::default()
        };
        b.delivery_hist = vec![(2000, 1)];
        b.deliveries = Deliveries {
            expected: 1,
            unique: 1,
            total: 2,
        };
        a.merge(&b);
        assert_eq!(a.clients, 5);
        assert_eq!((a.first_connect_us, a.last_ready_us), (50, 500));
        assert_eq!(
            a.deliveries,
            Deliveries {
                expected: 5,
                unique: 4,
                total: 5
            }
        );
        assert_eq!(histogram_from_pairs(&a.delivery_hist).len(), 4);
    }

    #[test]
    fn report_rates() {
        let p = Partial {
            clients: 8,
            joined: 8,
            connected: 8,
            first_connect_us: 1_000_000,
            last_ready_us: 3_000_000,
            run_secs: 2.0,
            offered: 20.0,
            edits_sent: 20,
            edits_ok: 20,
            deliveries: Deliveries {
                expected: 60,
                unique: 60,
                total: 60,
            },
            tool_cpu_secs: 1.0,
            ..Default::default()
        };
        let shape = Shape {
            name: "fanout",
            params: serde_json::json!({}),
            kind: Kind::Edits,
            per_action_deliveries: 3.0,
        };
        let r = Report::build(shape, 1, &p, 4.0, 2);
        assert_eq!(r.setup_secs, 2.0);
        assert_eq!(r.joins_per_sec, 4.0);
        assert_eq!(r.offered_per_sec, 10.0);
        assert_eq!(r.achieved_per_sec, 10.0);
        assert_eq!(r.offered_deliveries_per_sec, 30.0);
        assert_eq!(r.deliveries_per_sec, 30.0);
        assert_eq!(r.tool_cores, 0.25);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert!(r.text().contains("60 of 60 expected"));
    }
}
