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

use tokio::time::Instant;

use super::wsframe::{self, Decoder, Event, Violation, MAX_HEADER};
use super::{origin_allowed, token_from_protocol, vsn_supported};
use crate::serializer::Frame;
use crate::socket::{RateLimited, Socket};
use crate::{CloseCode, Closer, ConnectInfo, Connected, Endpoint, Outbound, OutboundRx};

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
    let conn = WsConn {
        input: Input {
            reader,
            decoder: Decoder::new(endpoint.limits.max_frame_bytes),
        },
        writer,
        closer,
        idle,
        deadline: Instant::now() + idle,
    };
    let socket = Socket::new(endpoint, connected, outbound);
    let span = tracing::info_span!("socket", socket_id = socket.id().unwrap_or(""));
    live(conn, socket, out_rx).instrument(span)
}

/// The connection's life: frames from the client go to the [`Socket`],
/// frames from its outgoing queue go to the client, until a [`Stop`].
///
/// Every idle socket's task is this future (its size is under test
/// below), so: not an `async fn`, whose arguments would be kept twice
/// (as arguments and as the body's locals); the large and rare futures
/// (the socket handling a message, writes while it does, pongs, the
/// close) are boxed; and nothing held across the wait is a buffer.
#[allow(clippy::manual_async_fn)] // an `async fn` would keep its arguments twice
fn live(
    mut conn: WsConn,
    mut socket: Socket,
    mut out_rx: OutboundRx,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        info!("connected");
        let stop = loop {
            // A close asked for wins over traffic that keeps every branch ready.
            if conn.closer.token().is_cancelled() {
                break conn.server_stop();
            }
            let deadline = conn.deadline;
            // Not biased: neither a stream of output nor of input starves
            // the other (heartbeat replies must not wait behind a busy room).
            // A write watches the closer and the deadline ([`give_up`]).
            let step = tokio::select! {
                () = conn.closer.token().cancelled() => Err(conn.server_stop()),
                frame = out_rx.recv() => match frame {
                    Some(frame) => conn.write(frame, &mut out_rx).await,
                    None => Err(Stop::Broken),
                },
                read = conn.input.read_events() => {
                    on_read(&mut conn, read, &mut socket, &mut out_rx).await
                }
                () = tokio::time::sleep_until(deadline) => Err(Stop::Idle),
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        drop(socket); // ends the channels: presence leaves now
        conn.close(stop, &mut out_rx).await;
        info!(code = stop.code().map(u16::from), "disconnected");
    }
}

/// Hands what one read brought to the socket, in order; pings are
/// answered, a client's close is answered and ends the connection.
async fn on_read(
    conn: &mut WsConn,
    read: Read,
    socket: &mut Socket,
    out_rx: &mut OutboundRx,
) -> Result<(), Stop> {
    // The list is gone before the next wait: an idle socket keeps no buffer.
    for event in read.events {
        match event {
            Event::Text(b) => dispatch(conn, Frame::Text(b), socket, out_rx).await?,
            Event::Binary(b) => dispatch(conn, Frame::Binary(b), socket, out_rx).await?,
            Event::Ping(payload) => {
                conn.heard();
                // Boxed: rare (browsers never ping), and large.
                Box::pin(conn.pong(&payload)).await?;
            }
            Event::Pong => conn.heard(),
            Event::Close(code) => {
                conn.answer_close(code, out_rx).await;
                return Err(Stop::ClientClose);
            }
        }
    }
    read.end.map_or(Ok(()), Err)
}

/// Runs the socket on one message from the client.
async fn dispatch(
    conn: &mut WsConn,
    frame: Frame,
    socket: &mut Socket,
    out_rx: &mut OutboundRx,
) -> Result<(), Stop> {
    conn.heard();
    // Boxed: the join and dispatch futures are large and rare, and an idle
    // socket's task should not carry them.
    let mut handled = Box::pin(socket.handle_frame(frame));
    // A channel whose inbox is full makes us wait: keep writing meanwhile,
    // its replies are what frees it (boxed: rare).
    loop {
        tokio::select! {
            biased;
            done = &mut handled => return done.map_err(|RateLimited| Stop::RateLimited),
            Some(frame) = out_rx.recv() => Box::pin(conn.write(frame, out_rx)).await?,
            () = conn.closer.token().cancelled() => return Err(conn.server_stop()),
        }
    }
}

/// Why a connection stops, and so what the client is still owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The server asked, through the socket's [`Closer`]: 1001 at shutdown,
    /// 1000 on a `disconnect` broadcast, 1008 for a client too slow to read.
    Server(CloseCode),
    /// Nothing came from the client (not even a heartbeat) for the idle
    /// timeout: 1000.
    Idle,
    /// The client sent messages faster than its rate limit: 1008.
    RateLimited,
    /// The client's frames broke the protocol: 1002, 1007 or 1009.
    Violation(Violation),
    /// The client closed; its close was answered already.
    ClientClose,
    /// A write was cut off mid-frame to close with this code: the stream
    /// cannot carry a close frame any more, the connection is dropped.
    CutOff(CloseCode),
    /// The stream ended or failed.
    Broken,
}

impl Stop {
    /// The close frame the client is still owed (code and reason), if the
    /// stream can carry one.
    fn close_frame(self) -> Option<(CloseCode, &'static str)> {
        match self {
            Stop::Server(CloseCode::GOING_AWAY) => {
                Some((CloseCode::GOING_AWAY, "server shutting down"))
            }
            Stop::Server(code) => Some((code, "closed by server")),
            Stop::Idle => Some((CloseCode::NORMAL, "idle timeout")),
            Stop::RateLimited => Some((CloseCode::POLICY, "message rate limit exceeded")),
            Stop::Violation(v) => Some((v.code(), v.reason())),
            Stop::ClientClose | Stop::CutOff(_) | Stop::Broken => None,
        }
    }

    /// The code the connection closed with, for the log.
    fn code(self) -> Option<CloseCode> {
        match self {
            Stop::CutOff(code) => Some(code),
            stop => stop.close_frame().map(|(code, _)| code),
        }
    }
}

/// One WebSocket connection, as mini-redis's `Connection` is one RESP
/// stream: it reads events, writes frames and closes, and knows nothing
/// of Phoenix. Every write that can block watches the closer and the idle
/// deadline, so a client that stops reading cannot hold the task.
struct WsConn {
    /// The read half and its decoder (apart, so the loop can wait on a
    /// read while it watches the closer and the deadline).
    input: Input,
    writer: Writer,
    /// The socket's closer (a child of the shutdown token).
    closer: Arc<Closer>,
    /// The idle timeout.
    idle: Duration,
    /// When the connection counts as idle: moved on by every frame from
    /// the client, pings and pongs included.
    deadline: Instant,
}

/// The reading side of a [`WsConn`].
struct Input {
    reader: Reader,
    decoder: Decoder,
}

/// What one read brought: the events decoded, then, when the connection
/// cannot go on after them, why (the stream ended, or broke the protocol).
struct Read {
    events: Vec<Event>,
    end: Option<Stop>,
}

impl Input {
    /// Waits for bytes and decodes what came.
    async fn read_events(&mut self) -> Read {
        let mut read = match read_some(&mut self.reader, &mut self.decoder).await {
            Ok(read) => read,
            Err(err) => {
                debug!(cause = %err, "websocket read failed");
                return Read {
                    events: Vec::new(),
                    end: Some(Stop::Broken),
                };
            }
        };
        if let (None, Some(v)) = (read.end, self.decoder.violation()) {
            let code = u16::from(v.code());
            if matches!(v, Violation::Closing) {
                debug!(code, "closing after the client's close");
            } else {
                info!(code, reason = v.reason(), "closing on a bad frame");
            }
            read.end = Some(Stop::Violation(v));
        }
        read
    }
}

impl WsConn {
    /// The client was heard from: the idle deadline moves on.
    fn heard(&mut self) {
        self.deadline = Instant::now() + self.idle;
    }

    /// The stop the closer asked for.
    fn server_stop(&self) -> Stop {
        Stop::Server(self.closer.code())
    }

    /// Writes `first` and what else is queued (see [`give_up`]).
    async fn write(&mut self, first: Frame, queued: &mut OutboundRx) -> Result<(), Stop> {
        tokio::select! {
            biased;
            written = write_frames(&mut self.writer, first, queued) => {
                written.map_err(|_| Stop::Broken)
            }
            stop = give_up(&self.closer, self.deadline) => Err(stop),
        }
    }

    /// Answers a ping with its payload (see [`give_up`]).
    async fn pong(&mut self, payload: &[u8]) -> Result<(), Stop> {
        tokio::select! {
            biased;
            written = write_control(&mut self.writer, wsframe::OP_PONG, payload) => {
                written.map_err(|_| Stop::Broken)
            }
            stop = give_up(&self.closer, self.deadline) => Err(stop),
        }
    }

    /// Answers the client's close: its code echoed, or ours if its frames
    /// broke the protocol, after what is already queued.
    async fn answer_close(&mut self, code: Option<CloseCode>, out_rx: &mut OutboundRx) {
        let reply = match self.input.decoder.violation() {
            Some(v) if v != Violation::Closing => wsframe::close_frame(v.code(), v.reason()),
            _ => wsframe::close_frame(code.unwrap_or(CloseCode::NORMAL), ""),
        };
        // Boxed: rare, and the idle future should not carry it.
        let flush = Box::pin(flush_then(&mut self.writer, out_rx, &reply));
        let _ = tokio::time::timeout(CLOSE_GRACE, flush).await;
    }

    /// Ends the connection as `stop` requires: the closing handshake when
    /// a close frame can still be sent, or just the end of the stream.
    async fn close(&mut self, stop: Stop, out_rx: &mut OutboundRx) {
        match stop.close_frame() {
            // Boxed: rare, and the idle future should not carry it.
            Some((code, reason)) => Box::pin(self.close_handshake(out_rx, code, reason)).await,
            None => {
                let _ = tokio::time::timeout(CLOSE_GRACE, self.writer.shutdown()).await;
            }
        }
    }

    /// The closing handshake: flush what is queued, send our close, then
    /// read (and drop) what the client still sends until its close
    /// arrives, so the kernel does not reset a connection with unread data
    /// before the client has seen our code. A client that stopped reading
    /// gets [`CLOSE_GRACE`].
    async fn close_handshake(
        &mut self,
        out_rx: &mut OutboundRx,
        code: CloseCode,
        reason: &'static str,
    ) {
        let Input { reader, decoder } = &mut self.input;
        decoder.closing();
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            let close = wsframe::close_frame(code, reason);
            if flush_then(&mut self.writer, out_rx, &close).await.is_err() {
                return;
            }
            loop {
                match read_some(reader, decoder).await {
                    Ok(Read { events, end: None })
                        if !events.iter().any(|e| matches!(e, Event::Close(_))) => {}
                    _ => return,
                }
            }
        })
        .await;
        let _ = self.writer.shutdown().await;
    }
}

/// When a write that blocks is given up: the closer fires, or the idle
/// deadline passes (a client that stops reading must not hold the task).
/// A write given up mid-frame leaves the stream unusable, hence
/// [`Stop::CutOff`].
async fn give_up(closer: &Closer, deadline: Instant) -> Stop {
    tokio::select! {
        biased;
        () = closer.token().cancelled() => Stop::CutOff(closer.code()),
        () = tokio::time::sleep_until(deadline) => Stop::CutOff(CloseCode::NORMAL),
    }
}

/// Waits for bytes, then reads what is there (through a stack buffer that
/// exists only while polled) and decodes it.
async fn read_some(reader: &mut Reader, decoder: &mut Decoder) -> io::Result<Read> {
    std::future::poll_fn(|cx| {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut outcome = Read {
            events: Vec::new(),
            end: None,
        };
        for i in 0..READS_PER_TURN {
            let mut rb = ReadBuf::uninit(&mut buf);
            match Pin::new(&mut *reader).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    outcome.end = Some(Stop::Broken);
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
    /// tungstenite). 1 032 bytes today: the `Socket` (152) and the
    /// `WsConn` (152, the decoder's 96 in it), then the largest state: the
    /// idle `select!` is 759 bytes, the deepest unboxed path (a read being
    /// handed to the socket) 991; the span takes the rest. It was 1 352
    /// while `live` was an `async fn` keeping its arguments twice. Reads go through a stack buffer inside `read_some`'s
    /// `poll_fn`, which must never become part of the future:
    /// [`READ_CHUNK`] alone is 8 KiB.
    const CONNECTION_FUTURE_CEILING: usize = 1_096;

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
