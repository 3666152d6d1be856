//! The WebSocket transport: the upgrade handler is the last HTTP moment
//! (origin, token, vsn checked there; refused with 403), then one task per
//! connection reads frames into the [`Socket`] and writes its outgoing
//! queue, closes idle sockets, and closes with 1009 on an oversized frame
//! and with 1001 at shutdown.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tracing::{debug, info, Instrument};

use super::{origin_allowed, token_from_protocol, vsn_supported};
use crate::channels::serializer::Frame;
use crate::channels::socket::{CloseWith, Socket};
use crate::channels::{close_code, ConnectInfo, Connected, Endpoint, Outbound};

/// Read buffer per connection. tungstenite's default (128 KiB) would cost
/// more than everything else an idle socket holds; it grows when needed.
const READ_BUFFER: usize = 512;
/// Bytes written before tungstenite flushes on its own; we flush after each
/// batch anyway.
const WRITE_BUFFER: usize = 8 * 1024;
/// How long the closing handshake may take.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Frames written per batch before flushing.
const WRITE_BATCH: usize = 64;

pub async fn upgrade(
    State(endpoint): State<Endpoint>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&endpoint, &headers) {
        info!(origin = ?headers.get("origin"), "websocket refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    if !vsn_supported(&params) {
        return (
            StatusCode::FORBIDDEN,
            "unsupported protocol version; use vsn=2.0.0",
        )
            .into_response();
    }
    let protocol_token = ws
        .requested_protocols()
        .find_map(|p| p.to_str().ok().and_then(token_from_protocol));
    let token = params
        .get("token")
        .map(String::as_str)
        .or(protocol_token.as_deref());
    let connected = match endpoint.handler.connect(&ConnectInfo {
        token,
        params: &params,
    }) {
        Ok(c) => c,
        Err(why) => {
            info!(cause = %why, "websocket refused");
            return (StatusCode::FORBIDDEN, "forbidden").into_response();
        }
    };
    let limits = endpoint.limits.clone();
    let ws = if protocol_token.is_some() {
        ws.protocols(["phoenix"])
    } else {
        ws
    };
    let tracker = endpoint.tracker.clone();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| tracker.track_future(serve(socket, endpoint, connected)))
}

fn serve(
    ws: WebSocket,
    endpoint: Endpoint,
    connected: Connected,
) -> impl std::future::Future<Output = ()> + Send {
    // Set up synchronously: an async fn would keep `ws`, `endpoint` and
    // `connected` in its future for the socket's whole life.
    let span = tracing::info_span!("socket", socket_id = connected.id.as_deref().unwrap_or(""));
    // The closer is a child of the shutdown token: one future covers both.
    let (outbound, out_rx, closer) = Outbound::new(
        endpoint.limits.outbound_queue,
        endpoint.metrics.clone(),
        &endpoint.shutdown,
    );
    let idle = endpoint.limits.idle_timeout;
    let socket = Socket::new(endpoint, connected, outbound);
    let (sink, stream) = ws.split();
    live(socket, sink, stream, out_rx, closer, idle).instrument(span)
}

async fn live(
    mut socket: Socket,
    mut sink: futures_util::stream::SplitSink<WebSocket, WsMessage>,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    mut out_rx: crate::channels::OutboundRx,
    closer: std::sync::Arc<crate::channels::Closer>,
    idle: std::time::Duration,
) {
    {
        info!("connected");
        let deadline = tokio::time::sleep(idle);
        tokio::pin!(deadline);

        let close: Option<(u16, &'static str)> = loop {
            tokio::select! {
                biased;
                _ = closer.token().cancelled() => break Some(if socket.endpoint().shutdown.is_cancelled() {
                    (close_code::GOING_AWAY, "server shutting down")
                } else {
                    (closer.code(), "closed by server")
                }),
                frame = out_rx.recv() => {
                    let Some(frame) = frame else { break None };
                    let mut ok = sink.feed(to_ws(frame)).await.is_ok();
                    let mut n = 1;
                    while ok && n < WRITE_BATCH {
                        match out_rx.try_recv() {
                            Some(frame) => ok = sink.feed(to_ws(frame)).await.is_ok(),
                            None => break,
                        }
                        n += 1;
                    }
                    if !ok || sink.flush().await.is_err() {
                        break None;
                    }
                }
                msg = stream.next() => {
                    let frame = match msg {
                        None | Some(Ok(WsMessage::Close(_))) => break None,
                        Some(Err(err)) => {
                            if is_too_big(&err) {
                                info!("frame over the size limit, closing with 1009");
                                break Some((close_code::TOO_BIG, "frame too large"));
                            }
                            debug!(cause = %err, "websocket read failed");
                            break None;
                        }
                        Some(Ok(m @ WsMessage::Text(_))) => Frame::Text(m.into_data()),
                        Some(Ok(m @ WsMessage::Binary(_))) => Frame::Binary(m.into_data()),
                        Some(Ok(_)) => {
                            deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                            continue;
                        }
                    };
                    deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                    // Boxed: the join and dispatch futures are large and rare,
                    // and an idle socket's task should not carry their space.
                    if let Err(CloseWith(code)) = Box::pin(socket.handle_frame(frame)).await {
                        break Some((code, "message rate limit exceeded"));
                    }
                }
                _ = &mut deadline => break Some((close_code::NORMAL, "idle timeout")),
            }
        };
        drop(socket); // ends the channels: presence leaves now
        if let Some((code, reason)) = close {
            Box::pin(close_handshake(&mut sink, &mut stream, code, reason)).await;
        }
        info!(code = close.map(|c| c.0), "disconnected");
    }
}

/// The closing handshake: send our close, then read (and drop) what the
/// client still sends until its close arrives, so the kernel does not reset
/// a connection with unread data before the client has seen our code. A
/// client that stopped reading gets [`CLOSE_GRACE`]. After a read error
/// (an oversized frame) tokio-tungstenite has ended the stream: then we only
/// wait, so the client reads our close before the connection goes.
async fn close_handshake(
    sink: &mut futures_util::stream::SplitSink<WebSocket, WsMessage>,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    code: u16,
    reason: &'static str,
) {
    let stream_broken = code == close_code::TOO_BIG;
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if sink.send(WsMessage::Close(Some(frame))).await.is_err() {
            return;
        }
        if stream_broken {
            tokio::time::sleep(CLOSE_GRACE / 2).await;
            return;
        }
        while let Some(msg) = stream.next().await {
            if matches!(msg, Ok(WsMessage::Close(_)) | Err(_)) {
                break;
            }
        }
    })
    .await;
}

fn to_ws(frame: Frame) -> WsMessage {
    match frame {
        Frame::Binary(b) => WsMessage::Binary(b),
        Frame::Text(b) => match Utf8Bytes::try_from(b) {
            Ok(t) => WsMessage::Text(t),
            // The serializer only produces JSON, which is UTF-8.
            Err(_) => WsMessage::Text(Utf8Bytes::from_static("")),
        },
    }
}

fn is_too_big(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}
