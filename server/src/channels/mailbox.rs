//! [`Mailbox`]: a small queue between tasks that allocates only while items
//! wait. A tokio mpsc channel holds a 32-slot block and a cache-padded
//! header (about 1 KiB) from the start, which is most of what an idle
//! socket would cost; sockets and channels have several of these.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Above this many slots an emptied queue gives its memory back.
const KEEP_SLOTS: usize = 64;

struct State<T> {
    items: VecDeque<T>,
    /// No more items will come (the sending side closed).
    closed: bool,
    /// Nobody will read: sends fail.
    receiver_gone: bool,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    space: Notify,
    capacity: usize,
}

/// Why an item could not be queued; the item comes back.
#[derive(Debug)]
pub enum SendError<T> {
    Full(T),
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
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            items: VecDeque::new(),
            closed: false,
            receiver_gone: false,
        }),
        ready: Notify::new(),
        space: Notify::new(),
        capacity: capacity.max(1),
    });
    (
        Mailbox {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Mailbox<T> {
    /// Queues an item now, or says why not.
    pub fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        {
            let mut state = self.inner.lock();
            if state.receiver_gone || state.closed {
                return Err(SendError::Closed(item));
            }
            if state.items.len() >= self.inner.capacity {
                return Err(SendError::Full(item));
            }
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
                    if self.inner.lock().items.len() < self.inner.capacity {
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

impl<T> Receiver<T> {
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

    pub fn try_recv(&mut self) -> Option<T> {
        let item = {
            let mut state = self.inner.lock();
            let item = state.items.pop_front();
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

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.inner.lock();
            state.receiver_gone = true;
            std::mem::take(&mut state.items)
        };
        drop(items);
        self.inner.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn idle_mailboxes_hold_no_items_memory() {
        let (tx, mut rx) = mailbox::<[u8; 64]>(1000);
        for _ in 0..200 {
            tx.try_send([0; 64]).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.inner.lock().items.capacity(), 0);
    }
}
