//! `GET /healthz` (200 once the database answers and its file is in place;
//! in a cluster, with the node's name and the live nodes it sees) and
//! `GET /metrics`.

use axum::extract::State;
use std::sync::atomic::Ordering::Relaxed;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use prometheus_client::registry::Registry;

use crate::app::AppState;
use crate::challenges::room::Rooms;
use crate::channels::Endpoint;
use crate::cluster::Cluster;
use crate::telemetry::{reading, Histogram, Sampled};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let (status, mut body) = match state.store.health().await {
        Ok(()) => (StatusCode::OK, json!({ "status": "ok" })),
        Err(why) => {
            tracing::error!(cause = why, "unhealthy");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "unavailable", "error": why }),
            )
        }
    };
    if let Some(cluster) = &state.cluster {
        body["node"] = json!(cluster.name());
        body["nodes"] = json!(cluster.live_nodes());
    }
    (status, Json(body)).into_response()
}

/// The OpenMetrics type, for a scraper that asks for it (Prometheus does);
/// anyone else gets the plain-text type of the same body (CONTRACT §1).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PLAIN_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics { OPENMETRICS } else { PLAIN_TEXT };
    let body = crate::telemetry::render(&state.metrics);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Everything `/metrics` shows: one line per metric.
pub fn registry(
    endpoint: &Endpoint,
    rooms: &Rooms,
    persist_latency: &Histogram,
    cluster: Option<&Cluster>,
) -> Registry {
    // `register` ends each help with a period of its own.
    let mut registry = Registry::default();
    registry.register(
        "duet_persist_seconds",
        "Time to commit one batch of document updates",
        persist_latency.clone(),
    );
    registry.register(
        "duet_edit_seconds",
        "Time from an edit reaching its room's channel to its ack (committed)",
        rooms.edit_latency().clone(),
    );
    let (e, r) = (endpoint, rooms);
    let mut sampled = Sampled::default()
        .gauge(
            "duet_sockets",
            "Connected sockets (WebSocket and long-poll).",
            reading(e, |e| e.metrics.sockets.load(Relaxed)),
        )
        .gauge(
            "duet_channels",
            "Joined channels.",
            reading(e, |e| e.metrics.channels.load(Relaxed)),
        )
        .gauge(
            "duet_rooms_loaded",
            "Challenge rooms loaded in memory.",
            reading(r, |r| r.loaded() as u64),
        )
        .gauge(
            "duet_longpoll_sessions",
            "Live long-poll sessions.",
            reading(e, |e| e.longpoll.len() as u64),
        )
        .counter(
            "duet_messages_in",
            "Messages received from clients.",
            reading(e, |e| e.metrics.messages_in.load(Relaxed)),
        )
        .counter(
            "duet_messages_out",
            "Frames queued to clients.",
            reading(e, |e| e.metrics.messages_out.load(Relaxed)),
        )
        .counter(
            "duet_slow_disconnects",
            "Clients disconnected for not keeping up.",
            reading(e, |e| e.metrics.slow_disconnects.load(Relaxed)),
        );
    if let Some(cluster) = cluster {
        sampled = bus_metrics(sampled, cluster, r);
    }
    registry.register_collector(Box::new(sampled));
    registry
}

/// The bus's counters (a node of a cluster).
fn bus_metrics(sampled: Sampled, c: &Cluster, r: &Rooms) -> Sampled {
    sampled
        .gauge(
            "duet_cluster_nodes",
            "Live nodes this node sees, itself included.",
            reading(c, |c| c.live_nodes() as u64),
        )
        .counter(
            "duet_bus_published",
            "Frames published on the bus.",
            reading(c, |c| c.counters().published.load(Relaxed)),
        )
        .counter(
            "duet_bus_received",
            "Frames received from the bus.",
            reading(c, |c| c.counters().received.load(Relaxed)),
        )
        .counter(
            "duet_bus_dropped",
            "Frames not published (queue full or Redis unreachable).",
            reading(c, |c| c.counters().dropped.load(Relaxed)),
        )
        .counter(
            "duet_bus_presence_resyncs",
            "Presence partitions asked for after a loss.",
            reading(c, |c| c.counters().resyncs.load(Relaxed)),
        )
        .counter(
            "duet_bus_nodes_down",
            "Nodes seen going down.",
            reading(c, |c| c.counters().nodes_down.load(Relaxed)),
        )
        .counter(
            "duet_bus_duplicate_updates",
            "Updates heard again or already held, ignored.",
            reading(r, |r| r.bus_stats().duplicates.load(Relaxed)),
        )
        .counter(
            "duet_bus_fetched_updates",
            "Updates read from the database because the bus lost them.",
            reading(r, |r| r.bus_stats().fetched.load(Relaxed)),
        )
}
