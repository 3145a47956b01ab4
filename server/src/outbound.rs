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
//!
//! **Writing from the queueing thread.** A transport may attach a [`DirectWrite`]
//! ([`Receiver::set_direct`]): then frames queued inside a [`defer`] scope (the commit
//! pipeline's answers and pushes) are not handed to the writer task one by one; at the end of
//! the scope each touched queue is written to its socket **from that thread**, in one
//! non-blocking write, when its writer task is idle — no task wake-up and no second thread on
//! the way from the durable write to the socket (on this kind of virtual machine a wake-up of an
//! idle thread costs tens of microseconds). Whatever the socket does not take at once, and every
//! queue whose writer is busy, is left to the writer task, in order. The writer is "busy" from
//! taking a batch until it comes back and finds the queue empty, so at any time exactly one of
//! the two writes to the socket.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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

/// A transport's way to write queued frames to its socket from the thread that queued them
/// (see the module doc).
pub trait DirectWrite: Send + Sync + std::fmt::Debug {
    /// Called holding the queue's lock while the writer task is idle, with at least one frame
    /// queued. Writes as many frames from the front as the socket takes without blocking and
    /// removes them from `items`; a frame written only in part is the transport's to finish,
    /// before anything else, on its writer's next round. Returns whether the writer task must
    /// run (frames are left, or part of one).
    fn write_now(&self, items: &mut VecDeque<Outbound>) -> bool;
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Outbound>,
    /// The writer has gone: nothing more is queued.
    closed: bool,
    /// The writer task took a batch and has not come back for more: it owns the socket.
    busy: bool,
    /// The writer must run even with nothing queued (the transport has bytes of its own).
    kick: bool,
    /// Listed in this thread's [`defer`] scope, to be written at its end.
    deferred: bool,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    capacity: usize,
    /// The transport's direct write, when it has one.
    direct: OnceLock<Box<dyn DirectWrite>>,
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
        direct: OnceLock::new(),
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
            if self.inner.direct.get().is_some() && defer_in_scope(&self.inner, &mut st) {
                // Written (or handed to the writer) at the end of the scope.
                return Ok(());
            }
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
    /// one (or, with a [`DirectWrite`], until the transport's own bytes wait: then the batch may
    /// be empty). The batch is the caller's to drain; the next call reuses its buffer. From
    /// this call's return until the next call finds nothing queued, the writer owns the socket.
    pub async fn recv(&mut self) -> &mut VecDeque<Outbound> {
        self.spare.clear();
        loop {
            {
                let mut st = self.inner.lock();
                if !st.items.is_empty() || st.kick {
                    st.kick = false;
                    st.busy = true;
                    std::mem::swap(&mut st.items, &mut self.spare);
                    return &mut self.spare;
                }
                // Idle from here: a direct write may use the socket.
                st.busy = false;
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

    /// Attaches the transport's direct write (once; a second call is ignored).
    pub fn set_direct(&self, direct: Box<dyn DirectWrite>) {
        let _ = self.inner.direct.set(direct);
    }

    /// A handle that makes the writer run although nothing is queued (for bytes the transport
    /// keeps itself, e.g. WebSocket control frames).
    pub fn kicker(&self) -> Kicker {
        Kicker {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Makes a queue's writer run ([`Receiver::kicker`]).
#[derive(Debug, Clone)]
pub struct Kicker {
    inner: Arc<Inner>,
}

impl Kicker {
    /// Wakes the writer for one round, even with nothing queued.
    pub fn kick(&self) {
        self.inner.lock().kick = true;
        self.inner.ready.notify_one();
    }
}

thread_local! {
    /// The queues written to inside this thread's [`defer`] scope (`None`: no scope open).
    static DEFERRED: RefCell<Option<Vec<Arc<Inner>>>> = const { RefCell::new(None) };
}

/// Most queues one [`defer`] scope writes itself; the frames of further queues go to their
/// writer tasks at once (a group message's fan-out is spread over the runtime's threads).
const DEFER_QUEUES: usize = 16;

/// Lists `inner` (whose lock `st` is) in this thread's open [`defer`] scope; false when no
/// scope is open or it is full.
fn defer_in_scope(inner: &Arc<Inner>, st: &mut State) -> bool {
    DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(_) if st.deferred => true,
        Some(list) if list.len() < DEFER_QUEUES => {
            st.deferred = true;
            list.push(Arc::clone(inner));
            true
        }
        _ => false,
    })
}

/// A scope in which frames queued by this thread on queues with a [`DirectWrite`] are written
/// when the scope ends (the guard drops), each queue in one write from this thread when its
/// writer is idle, else by its writer. A scope opened inside another adds to the outer one.
pub fn defer() -> Deferred {
    let outer = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        let outer = d.is_some();
        if !outer {
            *d = Some(Vec::new());
        }
        outer
    });
    Deferred {
        outer,
        _thread: std::marker::PhantomData,
    }
}

/// The guard of a [`defer`] scope (bound to its thread).
#[derive(Debug)]
pub struct Deferred {
    /// Opened inside another scope, which writes everything.
    outer: bool,
    _thread: std::marker::PhantomData<*const ()>,
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if self.outer {
            return;
        }
        let touched = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
        for inner in touched {
            let wake = {
                let mut st = inner.lock();
                st.deferred = false;
                if st.closed || st.items.is_empty() || st.busy {
                    // A busy writer comes back for what is queued before it idles.
                    false
                } else if let Some(direct) = inner.direct.get() {
                    let wake = direct.write_now(&mut st.items);
                    st.kick |= wake;
                    wake
                } else {
                    true
                }
            };
            if wake {
                inner.ready.notify_one();
            }
        }
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

    /// A direct write that takes at most `take` frames per call and records them.
    #[derive(Debug)]
    struct Taking {
        take: usize,
        written: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl DirectWrite for Taking {
        fn write_now(&self, items: &mut VecDeque<Outbound>) -> bool {
            let n = self.take.min(items.len());
            for out in items.drain(..n) {
                if let Outbound::Frame(b) = out {
                    self.written.lock().unwrap().push(b.to_vec());
                }
            }
            !items.is_empty()
        }
    }

    #[tokio::test]
    async fn a_deferred_scope_writes_directly_while_the_writer_idles() {
        let (tx, mut rx) = queue(8);
        let written = Arc::new(Mutex::new(Vec::new()));
        rx.set_direct(Box::new(Taking {
            take: 2,
            written: Arc::clone(&written),
        }));
        // Idle writer: the scope's frames go out directly, in order, at the end of the scope;
        // what the direct write leaves (the third) is the writer's.
        {
            let _scope = defer();
            for f in [&b"a"[..], b"b", b"c"] {
                tx.push(Outbound::Frame(Bytes::copy_from_slice(f))).unwrap();
            }
            assert!(
                written.lock().unwrap().is_empty(),
                "nothing before the scope ends"
            );
        }
        assert_eq!(*written.lock().unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(bytes(rx.recv().await), vec![&b"c"[..]]);
        // The writer took a batch and has not come back: it owns the socket, so a scope leaves
        // its frames queued for it.
        {
            let _scope = defer();
            tx.push(frame(b"d")).unwrap();
        }
        assert_eq!(written.lock().unwrap().len(), 2);
        assert_eq!(bytes(rx.recv().await), vec![&b"d"[..]]);
        // Outside a scope a push wakes the writer as before.
        tx.push(frame(b"e")).unwrap();
        assert_eq!(bytes(rx.recv().await), vec![&b"e"[..]]);
        assert_eq!(written.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_scope_writes_at_most_its_share_of_queues_itself() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let queues: Vec<_> = (0..=DEFER_QUEUES)
            .map(|_| {
                let (tx, rx) = queue(4);
                rx.set_direct(Box::new(Taking {
                    take: 1,
                    written: Arc::clone(&written),
                }));
                (tx, rx)
            })
            .collect();
        let mut queues = {
            let _scope = defer();
            for (tx, _) in &queues {
                tx.push(frame(b"x")).unwrap();
            }
            // The queue past the share was handed to its writer at once.
            assert_eq!(queues[DEFER_QUEUES].1.waiting(), 1);
            assert!(written.lock().unwrap().is_empty());
            queues
        };
        assert_eq!(written.lock().unwrap().len(), DEFER_QUEUES);
        let (_, last) = &mut queues[DEFER_QUEUES];
        assert_eq!(bytes(last.recv().await), vec![&b"x"[..]]);
        assert!(
            queues[..DEFER_QUEUES]
                .iter()
                .all(|(_, rx)| rx.waiting() == 0)
        );
    }

    #[tokio::test]
    async fn a_kick_runs_the_writer_with_nothing_queued() {
        let (_tx, mut rx) = queue(4);
        rx.kicker().kick();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .map(|b| b.len());
        assert_eq!(got, Ok(0));
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
