//! A connection's outbound queue: the frames waiting for its writer, bounded, and allocated only
//! while something waits.
//!
//! It exists because memory per idle connection is what bounds how many connections a server
//! holds: tokio's bounded channel allocates a block of slots up front (~1.5 KB per connection
//! for a queue that is empty nearly all the time). Here the queue is a `VecDeque` behind a mutex
//! that holds no buffer while empty (the writer takes the filled buffer, writes it out and drops
//! it once idle), and a [`Notify`] wakes the writer. The bound is the same as before: a push that
//! finds `capacity` frames queued is refused and the connection killed, so a slow client cannot
//! grow the server's memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// What a connection's writer sends.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded frame.
    Frame(Bytes),
    /// Close the connection after everything queued before.
    Close,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// `capacity` frames were already waiting (the connection has been told to stop).
    #[error("outbound queue full")]
    Full,
    /// The writer is gone (the connection ended).
    #[error("connection closed")]
    Closed,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Outbound>,
    /// The writer has gone: nothing more is queued.
    closed: bool,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    capacity: usize,
    /// Wakes the writer when something is queued.
    ready: Notify,
    /// Tells the session to stop at once (queue overflow).
    kill: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The queueing side (cloned into the registry, the commit task's replies and pushes).
#[derive(Debug, Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

/// The writer's side (one per connection).
#[derive(Debug)]
pub struct Receiver {
    inner: Arc<Inner>,
    /// The buffer the writer last drained, reused while frames keep coming.
    spare: VecDeque<Outbound>,
}

/// A queue that holds at most `capacity` frames (at least one).
pub fn queue(capacity: usize) -> (Sender, Receiver) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State::default()),
        capacity: capacity.max(1),
        ready: Notify::new(),
        kill: Notify::new(),
    });
    let rx = Receiver {
        inner: Arc::clone(&inner),
        spare: VecDeque::new(),
    };
    (Sender { inner }, rx)
}

impl Sender {
    /// Queues `out`. When the queue is full nothing is queued and the session is told to stop
    /// (see [`Sender::killed`]).
    pub fn push(&self, out: Outbound) -> Result<(), PushError> {
        {
            let mut st = self.inner.lock();
            if st.closed {
                return Err(PushError::Closed);
            }
            if st.items.len() >= self.inner.capacity {
                drop(st);
                self.inner.kill.notify_one();
                return Err(PushError::Full);
            }
            st.items.push_back(out);
        }
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Tells the session to stop at once (without queueing anything).
    pub fn kill(&self) {
        self.inner.kill.notify_one();
    }

    /// Completes when the session must stop at once: the queue overflowed or [`Sender::kill`]
    /// was called (a call made while nobody waits is kept for the next wait).
    pub async fn killed(&self) {
        self.inner.kill.notified().await;
    }
}

impl Receiver {
    /// The frames queued since the last call, oldest first, waiting until there is at least
    /// one. The batch is the caller's to drain; the next call reuses its buffer.
    pub async fn recv(&mut self) -> &mut VecDeque<Outbound> {
        self.spare.clear();
        loop {
            {
                let mut st = self.inner.lock();
                if !st.items.is_empty() {
                    std::mem::swap(&mut st.items, &mut self.spare);
                    return &mut self.spare;
                }
            }
            // Idle: hold no buffer while waiting.
            if self.spare.capacity() > 0 {
                self.spare = VecDeque::new();
            }
            // A push between the check and this wait left a permit: no wake-up is lost.
            self.inner.ready.notified().await;
        }
    }
}

impl Receiver {
    /// How many frames wait to be taken.
    pub fn waiting(&self) -> usize {
        self.inner.lock().items.len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.closed = true;
        st.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: &'static [u8]) -> Outbound {
        Outbound::Frame(Bytes::from_static(b))
    }

    fn bytes(batch: &VecDeque<Outbound>) -> Vec<&[u8]> {
        batch
            .iter()
            .map(|o| match o {
                Outbound::Frame(b) => &b[..],
                Outbound::Close => b"<close>",
            })
            .collect()
    }

    #[tokio::test]
    async fn frames_come_out_in_order_in_batches() {
        let (tx, mut rx) = queue(8);
        tx.push(frame(b"a")).unwrap();
        tx.push(frame(b"b")).unwrap();
        assert_eq!(bytes(rx.recv().await), vec![&b"a"[..], b"b"]);
        tx.push(frame(b"c")).unwrap();
        tx.push(Outbound::Close).unwrap();
        assert_eq!(bytes(rx.recv().await), vec![&b"c"[..], b"<close>"]);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_on_push() {
        let (tx, mut rx) = queue(8);
        let pusher = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.push(frame(b"x")).unwrap();
            tx
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .map(|b| bytes(b).len());
        assert_eq!(got, Ok(1));
        drop(pusher.await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_kills() {
        let (tx, mut rx) = queue(2);
        tx.push(frame(b"1")).unwrap();
        tx.push(frame(b"2")).unwrap();
        assert_eq!(tx.push(frame(b"3")), Err(PushError::Full));
        // The kill was recorded although nobody waited yet.
        tokio::time::timeout(std::time::Duration::from_secs(5), tx.killed())
            .await
            .unwrap();
        // What was queued before the overflow still comes out, and room frees up after.
        assert_eq!(bytes(rx.recv().await), vec![&b"1"[..], b"2"]);
        assert_eq!(tx.push(frame(b"4")), Ok(()));
    }

    #[tokio::test]
    async fn pushes_after_the_writer_ends_are_refused() {
        let (tx, rx) = queue(4);
        tx.push(frame(b"lost")).unwrap();
        drop(rx);
        assert_eq!(tx.push(frame(b"late")), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn an_idle_queue_holds_no_buffer() {
        let (tx, mut rx) = queue(4);
        tx.push(frame(b"a")).unwrap();
        assert_eq!(rx.recv().await.len(), 1);
        // The writer waits again: its drained buffer is released.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), rx.recv()).await;
        assert!(waiting.is_err());
        assert_eq!(rx.spare.capacity(), 0);
        assert_eq!(tx.inner.lock().items.capacity(), 0);
    }
}
