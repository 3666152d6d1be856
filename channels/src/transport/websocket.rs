//! The WebSocket transport: the upgrade handler is the last HTTP moment
//! (origin, token, vsn checked there; refused with 403), then one task per
//! connection reads frames into the [`Socket`] and writes its outgoing
//! queue, answers pings, closes idle sockets, closes with 1009 on an
//! oversized frame (1002/1007 on a broken one) and with 1001 at shutdown.
//!
//! The connection is served straight on its `TcpStream` with our own frame
//! codec ([`super::wsframe`]): reads go through a stack buffer, and frames
//! are written with `writev` from their encoded payloads, so an idle socket
//! holds neither a read nor a write buffer.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use std::pin::Pin;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::{debug, info, Instrument};

use super::wsframe::{self, Decoder, Event, Violation, MAX_HEADER};
use super::{origin_allowed, token_from_protocol, vsn_supported};
use crate::serializer::Frame;
use crate::socket::{CloseWith, Socket};
use crate::{close_code, Closer, ConnectInfo, Connected, Endpoint, Outbound, OutboundRx};

/// How long the closing handshake may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Frames written per `writev` at most.
const WRITE_BATCH: usize = 64;
/// Bytes read per `read` call (on the stack, never kept).
const READ_CHUNK: usize = 8 * 1024;
/// Reads in a row before other work gets a turn.
const READS_PER_TURN: usize = 16;
/// The GUID of RFC 6455 §1.3, for `Sec-WebSocket-Accept`.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `GET /socket/websocket`: checks the upgrade, origin, `vsn` and token,
/// answers 101 and spawns the connection task.
pub async fn upgrade(
    State(endpoint): State<Endpoint>,
    Query(params): Query<HashMap<String, String>>,
    mut req: Request,
) -> Response {
    let headers = req.headers();
    let key = match handshake_key(headers) {
        Ok(key) => key,
        Err(refusal) => return *refusal,
    };
    if !origin_allowed(&endpoint, headers, req.extensions()) {
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
    let protocols: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let protocol_token = protocols.iter().find_map(|p| token_from_protocol(p));
    let speaks_phoenix = protocols.contains(&"phoenix");
    let token = params
        .get("token")
        .map(String::as_str)
        .or(protocol_token.as_deref());
    let connected = match endpoint
        .handler
        .connect(ConnectInfo {
            token,
            params: &params,
        })
        .await
    {
        Ok(c) => c,
        Err(why) => {
            info!(cause = %why, "websocket refused");
            return (StatusCode::FORBIDDEN, "forbidden").into_response();
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tracker = endpoint.tracker.clone();
    tracker.spawn(async move {
        match on_upgrade.await {
            // A task of its own: this one's future (the upgrade wait) is
            // not carried for the socket's whole life.
            Ok(upgraded) => {
                let tracker = endpoint.tracker.clone();
                tracker.spawn(serve(upgraded, endpoint, connected));
            }
            Err(err) => debug!(cause = %err, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if speaks_phoenix {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("phoenix"),
        );
    }
    response
}

/// The client's `Sec-WebSocket-Key`, once the request is a valid upgrade
/// (RFC 6455 §4.2.1); otherwise the refusal to send.
fn handshake_key(headers: &HeaderMap) -> Result<String, Box<Response>> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(Box::new(
            (
                StatusCode::BAD_REQUEST,
                "expected a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)",
            )
                .into_response(),
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut r = (
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version; use 13",
        )
            .into_response();
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(r));
    }
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
    {
        Some(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
        _ => Err(Box::new(
            (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response(),
        )),
    }
}

/// `Sec-WebSocket-Accept`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WS_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

type Reader = tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>;
type Writer = tokio::io::WriteHalf<TokioIo<hyper::upgrade::Upgraded>>;

/// Sets the socket up on the upgraded connection.
fn serve(
    upgraded: hyper::upgrade::Upgraded,
    endpoint: Endpoint,
    connected: Connected,
) -> impl std::future::Future<Output = ()> + Send {
    // Split, so reading can wait while a write is under way; both halves
    // stay in this one task.
    let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
    // The closer is a child of the shutdown token: one future covers both.
    let (outbound, out_rx, closer) = Outbound::new(
        endpoint.limits.outbound_queue,
        endpoint.limits.outbound_bytes,
        endpoint.metrics.clone(),
        &endpoint.shutdown,
    );
    let idle = endpoint.limits.idle_timeout;
    let decoder = Decoder::new(endpoint.limits.max_frame_bytes);
    let socket = Socket::new(endpoint, connected, outbound);
    let span = tracing::info_span!("socket", socket_id = socket.id().unwrap_or(""));
    live(reader, writer, decoder, socket, out_rx, closer, idle).instrument(span)
}

/// What one read brought: decoded events, and whether the stream ended.
struct ReadOutcome {
    events: Vec<Event>,
    eof: bool,
}

async fn live(
    mut reader: Reader,
    mut writer: Writer,
    mut decoder: Decoder,
    mut socket: Socket,
    mut out_rx: OutboundRx,
    closer: Arc<Closer>,
    idle: Duration,
) {
    info!("connected");
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    let shutdown = socket.endpoint().shutdown.clone();
    let closed_by_server = |closer: &Closer| {
        if shutdown.is_cancelled() {
            (close_code::GOING_AWAY, "server shutting down")
        } else {
            (closer.code(), "closed by server")
        }
    };
    // A write cut off mid-frame leaves the stream unusable: no close frame
    // can follow it, the connection is just dropped.
    let mut cut_off = false;
    // Every write that can block also watches the closer and the idle
    // deadline: a client that stops reading must not hold the task.
    macro_rules! write_or_break {
        ($label:lifetime, $write:expr) => {
            tokio::select! {
                biased;
                r = $write => if r.is_err() { break $label None },
                _ = closer.token().cancelled() => {
                    cut_off = true;
                    break $label Some(closed_by_server(&closer));
                }
                _ = deadline.as_mut() => {
                    cut_off = true;
                    break $label Some((close_code::NORMAL, "idle timeout"));
                }
            }
        };
    }

    let close: Option<(u16, &'static str)> = 'conn: loop {
        if closer.token().is_cancelled() {
            break Some(closed_by_server(&closer));
        }
        // Not biased: neither a stream of output nor of input starves the
        // other (heartbeat replies must not wait behind a busy room).
        tokio::select! {
            _ = closer.token().cancelled() => break Some(closed_by_server(&closer)),
            frame = out_rx.recv() => {
                let Some(frame) = frame else { break None };
                write_or_break!('conn, write_frames(&mut writer, frame, &mut out_rx));
            }
            read = read_some(&mut reader, &mut decoder) => {
                let ReadOutcome { events, eof } = match read {
                    Ok(outcome) => outcome,
                    Err(err) => {
                        debug!(cause = %err, "websocket read failed");
                        break None;
                    }
                };
                // The list is gone before the next wait: an idle socket
                // keeps no buffer.
                for event in events {
                    let frame = match event {
                        Event::Text(b) => Frame::Text(b),
                        Event::Binary(b) => Frame::Binary(b),
                        Event::Ping(payload) => {
                            deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                            write_or_break!('conn, write_control(&mut writer, wsframe::OP_PONG, &payload));
                            continue;
                        }
                        Event::Pong => {
                            deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                            continue;
                        }
                        Event::Close(code) => {
                            // Answer the client's close (echoing its code,
                            // or ours if its frames broke the protocol).
                            let reply = match decoder.violation() {
                                Some(v) if v != Violation::Closing => {
                                    wsframe::close_frame(v.code(), v.reason())
                                }
                                _ => wsframe::close_frame(code.unwrap_or(close_code::NORMAL), ""),
                            };
                            // Boxed: rare, and the idle future should not carry it.
                            let flush = Box::pin(flush_then(&mut writer, &mut out_rx, &reply));
                            let _ = tokio::time::timeout(CLOSE_GRACE, flush).await;
                            break 'conn None;
                        }
                    };
                    deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                    // Boxed: the join and dispatch futures are large and
                    // rare, and an idle socket's task should not carry them.
                    let mut handled = Box::pin(socket.handle_frame(frame));
                    // A channel whose inbox is full makes us wait: keep
                    // writing meanwhile, its replies are what frees it.
                    let result = loop {
                        tokio::select! {
                            biased;
                            r = &mut handled => break r,
                            Some(frame) = out_rx.recv() => {
                                write_or_break!('conn, write_frames(&mut writer, frame, &mut out_rx));
                            }
                            _ = closer.token().cancelled() => break 'conn Some(closed_by_server(&closer)),
                        }
                    };
                    drop(handled);
                    if let Err(CloseWith(code)) = result {
                        break 'conn Some((code, "message rate limit exceeded"));
                    }
                }
                if eof {
                    break None;
                }
                if let Some(v) = decoder.violation() {
                    info!(code = v.code(), reason = v.reason(), "closing on a bad frame");
                    break Some((v.code(), v.reason()));
                }
            }
            _ = &mut deadline => break Some((close_code::NORMAL, "idle timeout")),
        }
    };
    drop(socket); // ends the channels: presence leaves now
    match close {
        Some((code, reason)) if !cut_off => {
            Box::pin(close_handshake(
                &mut reader,
                &mut writer,
                &mut decoder,
                &mut out_rx,
                code,
                reason,
            ))
            .await;
        }
        _ => {
            let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
        }
    }
    info!(code = close.map(|c| c.0), "disconnected");
}

/// Waits for bytes, then reads what is there (through a stack buffer that
/// exists only while polled) and decodes it.
async fn read_some(reader: &mut Reader, decoder: &mut Decoder) -> io::Result<ReadOutcome> {
    std::future::poll_fn(|cx| {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut outcome = ReadOutcome {
            events: Vec::new(),
            eof: false,
        };
        for i in 0..READS_PER_TURN {
            let mut rb = ReadBuf::uninit(&mut buf);
            match Pin::new(&mut *reader).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    outcome.eof = true;
                    return Poll::Ready(Ok(outcome));
                }
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    decoder.feed(rb.filled(), &mut outcome.events);
                    if n < READ_CHUNK || decoder.violation().is_some() {
                        return Poll::Ready(Ok(outcome));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if i == 0 => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(outcome)),
            }
        }
        Poll::Ready(Ok(outcome))
    })
    .await
}

/// Writes `first` and whatever else is queued (up to [`WRITE_BATCH`]
/// frames) with as few `writev` calls as the kernel allows.
async fn write_frames(writer: &mut Writer, first: Frame, rx: &mut OutboundRx) -> io::Result<()> {
    let mut frames = vec![first];
    while frames.len() < WRITE_BATCH {
        match rx.try_recv() {
            Some(frame) => frames.push(frame),
            None => break,
        }
    }
    let heads: Vec<([u8; MAX_HEADER], u8)> = frames
        .iter()
        .map(|f| {
            let (op, len) = match f {
                Frame::Text(b) => (wsframe::OP_TEXT, b.len()),
                Frame::Binary(b) => (wsframe::OP_BINARY, b.len()),
            };
            let mut h = [0; MAX_HEADER];
            let n = wsframe::header(op, len, &mut h);
            (h, n as u8)
        })
        .collect();
    let total: usize = frames
        .iter()
        .zip(&heads)
        .map(|(f, (_, n))| f.len() + usize::from(*n))
        .sum();
    let mut written = 0;
    while written < total {
        let n = std::future::poll_fn(|cx| poll_write_from(cx, writer, &heads, &frames, written))
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    std::future::poll_fn(|cx| Pin::new(&mut *writer).poll_flush(cx)).await
}

/// One `writev` of the frames from byte `skip` of their encoding on; the
/// slice list lives on the stack only while polled.
fn poll_write_from(
    cx: &mut std::task::Context<'_>,
    writer: &mut Writer,
    heads: &[([u8; MAX_HEADER], u8)],
    frames: &[Frame],
    mut skip: usize,
) -> Poll<io::Result<usize>> {
    let mut iov = [IoSlice::new(&[]); 2 * WRITE_BATCH];
    let mut n = 0;
    for ((h, hn), f) in heads.iter().zip(frames) {
        let payload: &Bytes = match f {
            Frame::Text(b) | Frame::Binary(b) => b,
        };
        for part in [&h[..usize::from(*hn)], &payload[..]] {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            iov[n] = IoSlice::new(&part[skip..]);
            skip = 0;
            n += 1;
        }
    }
    Pin::new(&mut *writer).poll_write_vectored(cx, &iov[..n])
}

/// Writes a control frame (a pong) with its payload.
async fn write_control(writer: &mut Writer, opcode: u8, payload: &[u8]) -> io::Result<()> {
    let payload = &payload[..payload.len().min(125)];
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.push(0x80 | opcode);
    frame.push(payload.len() as u8);
    frame.extend_from_slice(payload);
    write_raw(writer, &frame).await
}

async fn write_raw(writer: &mut Writer, bytes: &[u8]) -> io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Writes the frames queued so far (replies to what came before a close,
/// `phx_close`), then `last` (a close frame): RFC 6455 §5.5.1 lets an
/// endpoint send its pending messages before its close.
async fn flush_then(writer: &mut Writer, out_rx: &mut OutboundRx, last: &[u8]) -> io::Result<()> {
    while let Some(frame) = out_rx.try_recv() {
        write_frames(writer, frame, out_rx).await?;
    }
    write_raw(writer, last).await
}

/// The closing handshake: flush what is queued, send our close, then read
/// (and drop) what the client still sends until its close arrives, so the
/// kernel does not reset a connection with unread data before the client
/// has seen our code. A client that stopped reading gets [`CLOSE_GRACE`].
async fn close_handshake(
    reader: &mut Reader,
    writer: &mut Writer,
    decoder: &mut Decoder,
    out_rx: &mut OutboundRx,
    code: u16,
    reason: &'static str,
) {
    decoder.closing();
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let close = wsframe::close_frame(code, reason);
        if flush_then(writer, out_rx, &close).await.is_err() {
            return;
        }
        loop {
            match read_some(reader, decoder).await {
                Ok(ReadOutcome { events, eof: false })
                    if !events.iter().any(|e| matches!(e, Event::Close(_))) => {}
                _ => return,
            }
        }
    })
    .await;
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns: a future's size, without making one
    /// (an `Upgraded` cannot be made outside hyper).
    fn returned_size<A, B, C, R>(_: fn(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every idle socket's task carries this future for its whole life
    /// (docs/BENCHMARKS.md, "Memory": the connection task was 1.7 KiB with
    /// tungstenite). 1 352 bytes today: the `Socket` (152), the decoder
    /// (96), the idle deadline and the `select!` states. Reads go through a
    /// stack buffer inside `read_some`'s `poll_fn`, which must never become
    /// part of the future: [`READ_CHUNK`] alone is 8 KiB.
    const CONNECTION_FUTURE_CEILING: usize = 1_440;

    #[test]
    fn an_idle_connections_future_stays_small() {
        let size = returned_size(serve as fn(_, _, _) -> _);
        assert!(
            size <= CONNECTION_FUTURE_CEILING,
            "the connection future is {size} bytes (ceiling {CONNECTION_FUTURE_CEILING}): \
             something large is held across an await; see docs/BENCHMARKS.md"
        );
        assert!(size < READ_CHUNK / 4, "a read buffer is part of the future");
    }

    #[test]
    fn accept_key_of_rfc_6455() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
