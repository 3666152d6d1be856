//! [`Mailbox`]: a small queue between tasks that allocates only while items
//! wait. A tokio mpsc channel holds a 32-slot block and a cache-padded
//! header (about 1 KiB) from the start, which is most of what an idle
//! socket would cost; sockets and channels have several of these.
//!
//! A mailbox is bounded in items and, when made with [`weighed`], in the
//! total [`Weigh::weight`] of its items too (a socket's outgoing queue
//! counts bytes): one sum next to the items, added when an item is queued
//! and taken off when it is received. The sum and both bounds are 32-bit,
//! so they fit where the item count and padding already were: the shared
//! state is as large as before (120 bytes for frames).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Above this many slots an emptied queue gives its memory back.
const KEEP_SLOTS: usize = 64;

/// What an item counts against a mailbox's weight bound: nothing, unless
/// its type says otherwise (a frame: its bytes).
pub trait Weigh {
    /// What this item counts against the bound; 0 by default.
    fn weight(&self) -> usize {
        0
    }
}

struct State<T> {
    items: VecDeque<T>,
    /// The sum of the waiting items' weights (saturating).
    weight: u32,
    /// No more items will come (the sending side closed).
    closed: bool,
    /// Nobody will read: sends fail.
    receiver_gone: bool,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    space: Notify,
    /// Items at most.
    capacity: u32,
    /// The most the waiting items may weigh together; one item alone on an
    /// empty queue is always accepted, whatever its weight.
    max_weight: u32,
}

/// Why an item could not be queued; the item comes back.
#[derive(Debug)]
pub enum SendError<T> {
    /// The queue is at its item or weight bound.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// The sending side (cheap to clone).
pub struct Mailbox<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox {
            inner: self.inner.clone(),
        }
    }
}

/// The receiving side (one task).
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// A mailbox holding at most `capacity` items (`usize::MAX`: unbounded).
pub fn mailbox<T>(capacity: usize) -> (Mailbox<T>, Receiver<T>) {
    weighed(capacity, usize::MAX)
}

/// A mailbox holding at most `capacity` items weighing at most
/// `max_weight` together (an item on an empty mailbox always fits, so no
/// item is refused forever). Both bounds count up to `u32::MAX` (4 Gi
/// items, 4 GiB): beyond, they are that.
pub fn weighed<T>(capacity: usize, max_weight: usize) -> (Mailbox<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            items: VecDeque::new(),
            weight: 0,
            closed: false,
            receiver_gone: false,
        }),
        ready: Notify::new(),
        space: Notify::new(),
        capacity: clamp(capacity.max(1)),
        max_weight: clamp(max_weight),
    });
    (
        Mailbox {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an item of `weight` may join the waiting ones.
    fn fits(&self, state: &State<T>, weight: u32) -> bool {
        state.items.is_empty()
            || (state.items.len() < self.capacity as usize
                && state.weight.saturating_add(weight) <= self.max_weight)
    }
}

impl<T: Weigh> Mailbox<T> {
    /// Queues an item now, or says why not.
    pub fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        {
            let mut state = self.inner.lock();
            if state.receiver_gone || state.closed {
                return Err(SendError::Closed(item));
            }
            let weight = clamp(item.weight());
            if !self.inner.fits(&state, weight) {
                return Err(SendError::Full(item));
            }
            state.weight = state.weight.saturating_add(weight);
            state.items.push_back(item);
        }
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Queues an item even when the mailbox is full (for a channel's own
    /// messages to itself, which must not be lost); `Err` when closed.
    pub fn force_send(&self, item: T) -> Result<(), T> {
        {
            let mut state = self.inner.lock();
            if state.receiver_gone || state.closed {
                return Err(item);
            }
            state.weight = state.weight.saturating_add(clamp(item.weight()));
            state.items.push_back(item);
        }
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Queues an item, waiting for space; `Err` gives it back when the
    /// receiver is gone.
    pub async fn send(&self, mut item: T) -> Result<(), T> {
        loop {
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(SendError::Closed(back)) => return Err(back),
                Err(SendError::Full(back)) => {
                    item = back;
                    let space = self.inner.space.notified();
                    tokio::pin!(space);
                    space.as_mut().enable();
                    if self.inner.fits(&self.inner.lock(), clamp(item.weight())) {
                        continue;
                    }
                    space.await;
                }
            }
        }
    }

    /// No more items: the receiver gets `None` once the queue is drained.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.ready.notify_one();
    }

    /// True when the receiver is gone.
    pub fn is_closed(&self) -> bool {
        let state = self.inner.lock();
        state.receiver_gone || state.closed
    }
}

impl<T: Weigh> Receiver<T> {
    /// The next item; `None` once the mailbox is closed and drained.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.try_recv() {
                Some(item) => return Some(item),
                None if self.inner.lock().closed => return None,
                None => self.inner.ready.notified().await,
            }
        }
    }

    /// The next item if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        let item = {
            let mut state = self.inner.lock();
            let item = state.items.pop_front();
            if let Some(item) = &item {
                state.weight = state.weight.saturating_sub(clamp(item.weight()));
            }
            if state.items.is_empty() && state.items.capacity() > KEEP_SLOTS {
                state.items = VecDeque::new();
            }
            item
        };
        if item.is_some() {
            self.inner.space.notify_one();
        }
        item
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.inner.lock().items.len()
    }

    /// What the waiting items weigh together.
    pub fn weight(&self) -> usize {
        self.inner.lock().weight as usize
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.inner.lock();
            state.receiver_gone = true;
            state.weight = 0;
            std::mem::take(&mut state.items)
        };
        drop(items);
        self.inner.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for u32 {}
    impl Weigh for [u8; 64] {}
    impl Weigh for Vec<u8> {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    #[tokio::test]
    async fn bounded_send_waits_for_space_and_close_ends_recv() {
        let (tx, mut rx) = mailbox::<u32>(1);
        tx.send(1).await.unwrap();
        assert!(matches!(tx.try_send(2), Err(SendError::Full(2))));
        let tx2 = tx.clone();
        let waiter = tokio::spawn(async move { tx2.send(2).await });
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await, Some(1));
        waiter.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
        tx.close();
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn sends_fail_once_the_receiver_is_gone() {
        let (tx, rx) = mailbox::<u32>(4);
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(1).await, Err(1));
    }

    #[test]
    fn weight_is_bounded_added_on_send_and_removed_on_receive() {
        let (tx, mut rx) = weighed::<Vec<u8>>(10, 100);
        // Alone on an empty mailbox, an item of any weight fits.
        tx.try_send(vec![0; 150]).unwrap();
        assert!(matches!(tx.try_send(vec![0; 1]), Err(SendError::Full(_))));
        assert_eq!(rx.try_recv().map(|v| v.len()), Some(150));
        assert_eq!(rx.weight(), 0);
        tx.try_send(vec![0; 60]).unwrap();
        tx.try_send(vec![0; 40]).unwrap();
        assert!(matches!(tx.try_send(vec![0; 1]), Err(SendError::Full(_))));
        assert_eq!(rx.weight(), 100);
        rx.try_recv();
        assert_eq!(rx.weight(), 40);
        tx.try_send(vec![0; 60]).unwrap();
        // A forced item counts too; its weight is removed when received.
        tx.force_send(vec![0; 30]).unwrap();
        assert_eq!(rx.weight(), 130);
        while rx.try_recv().is_some() {}
        assert_eq!(rx.weight(), 0);
    }

    #[tokio::test]
    async fn a_waiting_send_waits_for_weight_to_be_freed() {
        let (tx, mut rx) = weighed::<Vec<u8>>(10, 100);
        tx.try_send(vec![0; 80]).unwrap();
        let tx2 = tx.clone();
        let waiter = tokio::spawn(async move { tx2.send(vec![0; 50]).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert_eq!(rx.recv().await.map(|v| v.len()), Some(80));
        waiter.await.unwrap().unwrap();
        assert_eq!(rx.weight(), 50);
    }

    /// Every idle socket and channel holds one of these per mailbox; the
    /// weight bound must not make it larger (docs/BENCHMARKS.md, "Memory").
    #[test]
    fn the_shared_state_stays_120_bytes() {
        let size = std::mem::size_of::<Inner<crate::serializer::Frame>>();
        assert!(size <= 120, "a mailbox's shared state is {size} bytes");
    }

    #[test]
    fn idle_mailboxes_hold_no_items_memory() {
        let (tx, mut rx) = mailbox::<[u8; 64]>(1000);
        for _ in 0..200 {
            tx.try_send([0; 64]).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.inner.lock().items.capacity(), 0);
    }
}
