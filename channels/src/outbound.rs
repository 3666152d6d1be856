//! A socket's outgoing side, whatever its transport: the bounded
//! [`Outbound`] queue every channel pushes into, the [`Closer`] that asks
//! the transport to close the socket, and the close codes the server uses.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::mailbox;
use crate::serializer::Frame;
use crate::Metrics;

/// Close codes the server uses.
pub mod close_code {
    /// 1000: a normal close (idle timeout, `disconnect`).
    pub const NORMAL: u16 = 1000;
    /// 1001: the server is shutting down (phoenix.js reconnects).
    pub const GOING_AWAY: u16 = 1001;
    /// 1008: a policy violation (message rate, a client too slow to read).
    pub const POLICY: u16 = 1008;
    /// 1009: a frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
}

/// A socket's bounded outgoing queue, in frames and in bytes. Sending never
/// waits: a full queue means the client cannot keep up, and the socket is
/// closed (1008) instead of buffering. The bytes are counted when a frame is
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

/// Asks a socket's transport to close it, with a code.
#[derive(Debug, Default)]
pub struct Closer {
    token: CancellationToken,
    code: AtomicU16,
}

impl Closer {
    /// Asks for a close with `code`; the first code asked for wins.
    pub fn close(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
        self.token.cancel();
    }

    /// The code asked for (1000 if none was).
    pub fn code(&self) -> u16 {
        match self.code.load(Ordering::Relaxed) {
            0 => close_code::NORMAL,
            c => c,
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
                self.closer.close(close_code::POLICY);
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
        assert_eq!(closer.code(), close_code::POLICY);
        assert_eq!(Metrics::get(&metrics.slow_disconnects), 1);
    }
}
