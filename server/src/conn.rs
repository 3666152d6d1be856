//! HTTP connections: the accept loop behind [`crate::app::serve`]. Every
//! TCP connection is served by hyper-util's auto builder (HTTP/1.1 with
//! upgrades; built without HTTP/2, as `axum::serve` was, so a client that
//! opens with the HTTP/2 preface is closed) in a task of its own, which
//! also enforces what hyper alone does not:
//!
//! - **Waiting for a request.** A new connection must send a complete request
//!   head within the header timeout. Between two requests a kept-alive
//!   connection may stay silent for the keep-alive timeout; once the first
//!   byte of its next request arrives, the head must be complete within the
//!   header timeout. Past that the connection is closed. hyper 1.12's own
//!   `header_read_timeout` starts when hyper begins to wait for a head,
//!   which is not during the auto builder's sniff of the first bytes (so a
//!   silent new connection never starts it) but is at the start of a
//!   keep-alive pause (so it would cut keep-alive short): it is set to the
//!   keep-alive plus the header timeout, a backstop this task's own timer
//!   always beats.
//! - **Requests in progress are never cut here**: a request counts from the
//!   moment hyper hands it over until its response body is written. Bodies
//!   have their own deadline where they are read (the extractors, long-poll).
//!   A connection upgraded to a WebSocket leaves hyper and this task: its
//!   socket has its own idle timeout.
//! - **Connections per client address** are capped, upgraded sockets
//!   included (the count lives in the stream itself, which the WebSocket
//!   keeps); beyond the cap a new connection is closed at once. Loopback
//!   addresses are exempt unless configured otherwise: a reverse proxy on
//!   the same host is one address for all its clients.
//!
//! Each request carries, in its extensions, axum's `ConnectInfo` (the
//! peer), the [`ListenAddr`] (`check_origin` compares `Origin` with it) and
//! the [`BodyTimeout`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::channels::transport::{BodyTimeout, ListenAddr};

/// How long a stop waits for requests in progress before moving on.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// An accept error other than a client's (EMFILE: out of file descriptors)
/// is logged and accepting pauses this long, instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// The "too many connections" warning is logged at most this often: an
/// attacker must not be able to flood the log.
const WARN_EVERY_MS: u64 = 1000;

/// What the HTTP server enforces on every connection (see the module doc).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// A request head must be complete within this.
    pub header_timeout: Duration,
    /// A kept-alive connection may wait this long, silent, for its next request.
    pub keepalive: Duration,
    /// A request body must arrive within this (enforced where it is read).
    pub body_timeout: Duration,
    /// Open connections per client address.
    pub max_per_addr: usize,
    /// Whether loopback clients are capped too.
    pub limit_loopback: bool,
}

/// What every connection task shares.
struct Server {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    limits: ConnLimits,
    listen: SocketAddr,
    per_addr: Arc<PerAddr>,
}

/// Accepts and serves connections until `stop` resolves; then stops
/// accepting, lets requests in progress finish (at most [`DRAIN_TIMEOUT`])
/// and returns.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let listen = listener.local_addr()?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout + limits.keepalive);
    let server = Arc::new(Server {
        builder,
        router,
        per_addr: Arc::new(PerAddr::new(limits.max_per_addr, limits.limit_loopback)),
        limits,
        listen,
    });
    let closing = CancellationToken::new();
    let tasks = TaskTracker::new();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = server.per_addr.admit(peer.ip()) else {
            continue; // dropped: closed at once
        };
        // Frames are written whole: Nagle's delay would only add latency.
        let _ = tcp.set_nodelay(true);
        let io = Tracked {
            tcp,
            activity: Arc::new(Activity::new()),
            _slot: slot,
        };
        tasks.spawn(serve_connection(server.clone(), io, peer, closing.clone()));
    }
    drop(listener);
    closing.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        warn!("some HTTP requests did not finish in time");
    }
    Ok(())
}

/// A failed `accept`: a client's own failure is ignored; anything else
/// (out of file descriptors) is logged and accepting pauses, so the loop
/// does not spin while nothing can be accepted.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(cause = %err, "accept failed");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Serves one connection until it ends, is upgraded, waits too long for a
/// request, or the server stops (then requests in progress finish first).
async fn serve_connection(
    server: Arc<Server>,
    io: Tracked,
    peer: SocketAddr,
    closing: CancellationToken,
) {
    let activity = io.activity.clone();
    let service = hyper::service::service_fn({
        let server = server.clone();
        let activity = activity.clone();
        move |req| handle(&server, &activity, peer, req)
    });
    let conn = server
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        // While a request is in progress there is no deadline: look again later.
        let wake = activity
            .deadline(&server.limits)
            .unwrap_or_else(|| Instant::now() + server.limits.header_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    debug!(cause = %err, %peer, "connection ended with an error");
                }
                return;
            }
            () = closing.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(wake) => {
                if activity.deadline(&server.limits).is_some_and(|d| d <= Instant::now()) {
                    debug!(%peer, "closing a connection that waited too long for a request");
                    return;
                }
            }
        }
    }
}

/// Hands a request to the router with the connection's facts attached,
/// and keeps the connection busy until its response body is written.
fn handle(
    server: &Server,
    activity: &Arc<Activity>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static {
    let busy = activity.begin();
    let mut req = req.map(Body::new);
    let extensions = req.extensions_mut();
    extensions.insert(ConnectInfo(peer));
    extensions.insert(ListenAddr(server.listen));
    extensions.insert(BodyTimeout(server.limits.body_timeout));
    let call = tower::ServiceExt::oneshot(server.router.clone(), req);
    async move {
        let res = call.await?;
        Ok(res.map(|body| Body::new(BusyBody { body, _busy: busy })))
    }
}

/// Marks "no request since" in [`Activity`]: the first read byte.
const NO_BYTE: u64 = u64::MAX;

/// When a connection last did what, to tell how long it has been waiting.
/// Times are milliseconds since the connection was accepted.
struct Activity {
    born: Instant,
    /// Requests in progress (one at a time in HTTP/1; a count all the same).
    busy: AtomicU32,
    /// A request has come: the connection is kept alive, not new.
    served: AtomicBool,
    /// When the last request in progress ended.
    idle_since: AtomicU64,
    /// The first byte read since then, or [`NO_BYTE`].
    first_byte: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            born: Instant::now(),
            busy: AtomicU32::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NO_BYTE),
        }
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Bytes were read from the client.
    fn on_read(&self) {
        if self.busy.load(Ordering::Relaxed) == 0
            && self.first_byte.load(Ordering::Relaxed) == NO_BYTE
        {
            self.first_byte.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    /// When the connection has waited too long for a request; `None`
    /// while a request is in progress.
    fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let at = |ms: u64, plus: Duration| self.born + Duration::from_millis(ms) + plus;
        if !self.served.load(Ordering::SeqCst) {
            return Some(at(0, limits.header_timeout));
        }
        Some(match self.first_byte.load(Ordering::SeqCst) {
            NO_BYTE => at(self.idle_since.load(Ordering::SeqCst), limits.keepalive),
            first => at(first, limits.header_timeout),
        })
    }
}

/// A request in progress; dropped once its response body is written.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.first_byte.store(NO_BYTE, Ordering::SeqCst);
        activity
            .idle_since
            .store(activity.now_ms(), Ordering::SeqCst);
        activity.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its request's [`Busy`] until it is done.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The TCP stream, noting reads in its [`Activity`] and holding its
/// address's slot for as long as it is open (after an upgrade too).
struct Tracked {
    tcp: TcpStream,
    activity: Arc<Activity>,
    _slot: Option<AddrSlot>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Open connections by client address, capped.
struct PerAddr {
    max: usize,
    limit_loopback: bool,
    open: Mutex<HashMap<IpAddr, usize>>,
    started: Instant,
    /// When the last "too many connections" warning was logged (ms since
    /// `started`, plus one; 0: never).
    warned_at: AtomicU64,
}

/// Too many connections from that address.
#[derive(Debug)]
struct OverCap;

impl PerAddr {
    fn new(max: usize, limit_loopback: bool) -> Self {
        PerAddr {
            max,
            limit_loopback,
            open: Mutex::default(),
            started: Instant::now(),
            warned_at: AtomicU64::new(0),
        }
    }

    /// A slot for one more connection from `ip` (`None`: not counted).
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Option<AddrSlot>, OverCap> {
        // An IPv4 client of a dual-stack listener is `::ffff:a.b.c.d`.
        let ip = ip.to_canonical();
        if ip.is_loopback() && !self.limit_loopback {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            drop(open);
            self.warn_refused(ip);
            return Err(OverCap);
        }
        *count += 1;
        Ok(Some(AddrSlot {
            per_addr: self.clone(),
            ip,
        }))
    }

    fn warn_refused(&self, ip: IpAddr) {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        if (last == 0 || now >= last + WARN_EVERY_MS)
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                addr = %ip,
                max = self.max,
                "too many connections from one address: closing its new ones (DUET_MAX_CONNECTIONS_PER_ADDR)"
            );
        }
    }
}

/// One counted connection; gives its place back when dropped.
struct AddrSlot {
    per_addr: Arc<PerAddr>,
    ip: IpAddr,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut open = self.per_addr.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_addr_caps_each_address_and_gives_slots_back() {
        let caps = Arc::new(PerAddr::new(2, false));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = caps.admit(a).unwrap();
        let second = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_err(), "a third connection from a");
        assert!(caps.admit(b).unwrap().is_some(), "b has its own count");
        drop(first);
        let again = caps.admit(a).unwrap();
        assert!(again.is_some());
        drop((second, again));
        assert!(caps.open.lock().unwrap().is_empty(), "no entry left behind");
    }

    #[test]
    fn loopback_is_exempt_unless_asked() {
        let exempt = Arc::new(PerAddr::new(1, false));
        for ip in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let slots: Vec<_> = (0..3).map(|_| exempt.admit(ip).unwrap()).collect();
            assert!(slots.iter().all(Option::is_none), "{ip} is not counted");
        }
        let capped = Arc::new(PerAddr::new(1, true));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let _one = capped.admit(ip).unwrap();
        assert!(capped.admit(ip).is_err());
        // The same client through a dual-stack listener counts as the same address.
        assert!(capped.admit("::ffff:127.0.0.1".parse().unwrap()).is_err());
    }

    fn limits() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(75),
            body_timeout: Duration::from_secs(15),
            max_per_addr: 1,
            limit_loopback: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_waits_header_timeout_new_keepalive_between_requests() {
        let limits = limits();
        let a = Arc::new(Activity::new());
        let born = a.born;
        // New, even after its first bytes: the head is due 10 s after the start.
        assert_eq!(a.deadline(&limits), Some(born + limits.header_timeout));
        tokio::time::advance(Duration::from_secs(3)).await;
        a.on_read();
        assert_eq!(a.deadline(&limits), Some(born + limits.header_timeout));
        // In progress: no deadline.
        let busy = a.begin();
        assert_eq!(a.deadline(&limits), None);
        a.on_read(); // a body's bytes
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(busy);
        // Kept alive and silent: 75 s from the end of the request.
        let idle = Instant::now();
        assert_eq!(a.deadline(&limits), Some(idle + limits.keepalive));
        // The next request's first byte: its head is due 10 s later.
        tokio::time::advance(Duration::from_secs(30)).await;
        a.on_read();
        assert_eq!(
            a.deadline(&limits),
            Some(idle + Duration::from_secs(30) + limits.header_timeout)
        );
    }
}
