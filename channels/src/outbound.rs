//! A socket's outgoing side, whatever its transport: the bounded
//! [`Outbound`] queue every channel pushes into, the [`Closer`] that asks
//! the transport to close the socket, and the close codes the server uses.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::mailbox;
use crate::serializer::Frame;
use crate::Metrics;

/// A WebSocket close code (RFC 6455 §7.4). Every code the server sends is
/// one of these: the ones it chooses (the constants), and a client's own
/// code echoed back ([`CloseCode::from_peer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: a normal close (idle timeout, `disconnect`).
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is shutting down (phoenix.js reconnects).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the client's bytes break the protocol.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1007: a text message (or close reason) that is not UTF-8.
    pub const NOT_UTF8: CloseCode = CloseCode(1007);
    /// 1008: a policy violation (message rate, a client too slow to read).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message over the size limit.
    pub const TOO_BIG: CloseCode = CloseCode(1009);

    /// A code a client may put in its close frame, or `None`: §7.4.1 and
    /// the IANA registry (1012–1014 came after the RFC); 1004–1006 and
    /// 1015 are never sent; 3000–4999 are for libraries and applications.
    pub fn from_peer(code: u16) -> Option<CloseCode> {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999).then_some(CloseCode(code))
    }

    /// The code as it goes on the wire.
    pub fn as_u16(self) -> u16 {
        self.0
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// A socket's bounded outgoing queue, in frames and in bytes. Sending never
/// waits: a full queue means the client cannot keep up, and the socket is
/// closed ([`CloseCode::POLICY`]) instead of buffering. The bytes are counted when a frame is
/// queued and uncounted when the transport takes it (WebSocket or
/// long-poll, through [`OutboundRx`]); the count lives in the queue's
/// shared state, which is no larger for it (see [`mailbox`]).
#[derive(Clone)]
pub struct Outbound {
    queue: mailbox::Mailbox<Frame>,
    closer: Arc<Closer>,
    metrics: Arc<Metrics>,
}

/// The transport's end of an [`Outbound`] queue; taking a frame uncounts
/// its bytes.
pub type OutboundRx = mailbox::Receiver<Frame>;

/// A frame counts its bytes against the outgoing queue's byte bound.
impl mailbox::Weigh for Frame {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// Asks a socket's transport to close it, with a code. Its token is a
/// child of the server's shutdown token, so one wait covers both.
#[derive(Debug, Default)]
pub struct Closer {
    token: CancellationToken,
    /// The code asked for; 0 while none was.
    code: AtomicU16,
}

impl Closer {
    /// Asks for a close with `code`. The first reason wins, shutdown
    /// included: once the token is cancelled, the code stays.
    pub fn close(&self, code: CloseCode) {
        if !self.token.is_cancelled() {
            let _ = self
                .code
                .compare_exchange(0, code.0, Ordering::Relaxed, Ordering::Relaxed);
        }
        self.token.cancel();
    }

    /// The code to close with: the one asked for, or
    /// [`CloseCode::GOING_AWAY`] when the token was cancelled without one
    /// (by its parent, the server's shutdown).
    pub fn code(&self) -> CloseCode {
        match self.code.load(Ordering::Relaxed) {
            0 => CloseCode::GOING_AWAY,
            c => CloseCode(c),
        }
    }

    /// Cancelled once a close was asked for (or at shutdown).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Outbound {
    /// A queue of at most `capacity` frames and `max_bytes` bytes; its
    /// closer is cancelled with `parent` (the server's shutdown) too.
    pub fn new(
        capacity: usize,
        max_bytes: usize,
        metrics: Arc<Metrics>,
        parent: &CancellationToken,
    ) -> (Self, OutboundRx, Arc<Closer>) {
        let (queue, rx) = mailbox::weighed(capacity, max_bytes);
        let closer = Arc::new(Closer {
            token: parent.child_token(),
            code: AtomicU16::new(0),
        });
        (
            Outbound {
                queue,
                closer: closer.clone(),
                metrics,
            },
            rx,
            closer,
        )
    }

    /// Queues a frame; returns false when the socket is gone or was too slow.
    pub fn send(&self, frame: Frame) -> bool {
        match self.queue.try_send(frame) {
            Ok(()) => {
                self.metrics.messages_out.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mailbox::SendError::Full(_)) => {
                if !self.closer.token.is_cancelled() {
                    self.metrics
                        .slow_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "outgoing queue full (frames or bytes), disconnecting slow client"
                    );
                }
                self.closer.close(CloseCode::POLICY);
                false
            }
            Err(mailbox::SendError::Closed(_)) => false,
        }
    }

    /// The socket's closer.
    pub fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }

    /// Whether the socket is closing or gone: sending is pointless.
    pub fn is_closed(&self) -> bool {
        self.closer.token.is_cancelled() || self.queue.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(len: usize) -> Frame {
        Frame::Text(Bytes::from(vec![b'x'; len]))
    }

    #[test]
    fn a_queue_over_its_byte_cap_closes_with_1008_once() {
        let metrics = Arc::new(Metrics::default());
        let (out, mut rx, closer) = Outbound::new(1024, 1000, metrics.clone(), &Default::default());
        // Bigger than the cap, on an empty queue: it goes out (a joiner's
        // sync of a large document).
        assert!(out.send(frame(5000)));
        assert_eq!(rx.weight(), 5000);
        assert_eq!(rx.try_recv().map(|f| f.len()), Some(5000));
        // Taking a frame uncounts its bytes: 1000 fit again.
        assert!(out.send(frame(600)));
        assert!(out.send(frame(400)));
        assert!(!closer.token().is_cancelled());
        assert!(!out.send(frame(1)));
        assert!(!out.send(frame(1)));
        assert!(closer.token().is_cancelled());
        assert_eq!(closer.code(), CloseCode::POLICY);
        assert_eq!(Metrics::get(&metrics.slow_disconnects), 1);
    }
}
