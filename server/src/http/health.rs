//! `GET /healthz` (200 once the database answers and its file is in place;
//! in a cluster, with the node's name and the live nodes it sees) and
//! `GET /metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;

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

async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::telemetry::render(
        &state.endpoint.metrics,
        state.rooms.loaded(),
        state.endpoint.longpoll.len(),
        &state.persist_latency,
        state.rooms.edit_latency(),
    );
    let body = match &state.cluster {
        Some(cluster) => body + &cluster_metrics(cluster, state.rooms.bus_stats()),
        None => body,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The bus's counters, in the same text format.
fn cluster_metrics(
    cluster: &crate::cluster::Cluster,
    rooms: &crate::challenges::room::BusStats,
) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let c = cluster.counters();
    let mut out = String::new();
    let rows: [(&str, &str, &str, u64); 8] = [
        (
            "duet_cluster_nodes",
            "gauge",
            "Live nodes this node sees, itself included.",
            cluster.live_nodes() as u64,
        ),
        (
            "duet_bus_published_total",
            "counter",
            "Frames published on the bus.",
            c.published.load(Relaxed),
        ),
        (
            "duet_bus_received_total",
            "counter",
            "Frames received from the bus.",
            c.received.load(Relaxed),
        ),
        (
            "duet_bus_dropped_total",
            "counter",
            "Frames not published (queue full or Redis unreachable).",
            c.dropped.load(Relaxed),
        ),
        (
            "duet_bus_presence_resyncs_total",
            "counter",
            "Presence partitions asked for after a loss.",
            c.resyncs.load(Relaxed),
        ),
        (
            "duet_bus_nodes_down_total",
            "counter",
            "Nodes seen going down.",
            c.nodes_down.load(Relaxed),
        ),
        (
            "duet_bus_duplicate_updates_total",
            "counter",
            "Updates heard again or already held, ignored.",
            rooms.duplicates.load(Relaxed),
        ),
        (
            "duet_bus_fetched_updates_total",
            "counter",
            "Updates read from the database because the bus lost them.",
            rooms.fetched.load(Relaxed),
        ),
    ];
    for (name, kind, help, value) in rows {
        crate::telemetry::write_value(&mut out, name, help, kind, value);
    }
    out
}
