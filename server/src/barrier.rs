//! The read barrier: a read never misses a write that was acknowledged or pushed before it.
//!
//! Why it exists: the applying thread of [`crate::commit`] answers a batch's requests and sends
//! its pushes as soon as the batch is durable in the write-ahead log ([`crate::wal`]), and only
//! then applies it to the store (sled, ~200 µs for a message's writes), so that no ack or push
//! waits for sled. A client that got an ack or a push and at once reads (pulls the message,
//! syncs, queries its conversations, searches) must still see the write. So every batch answered
//! before the store has it is announced here first ([`Barrier::answering`]), the applier says
//! when the store has it ([`Barrier::applied`]), and a read first waits
//! ([`Barrier::wait`]) until the store has applied every batch answered before the read
//! arrived. A read that arrives when nothing is pending pays two atomic loads.
//!
//! [`Gated`] is the store every reader gets (`Shared::store`): each of its reads waits at the
//! barrier, so no read path can forget it. A read of many steps waits once instead
//! ([`Gated::settled`]) and then reads the store directly.
//!
//! If the store fails to apply a batch that was already answered, the batch is in the log (the
//! answers were true, and a restart replays it) but the store misses it: every later read that
//! must wait for it fails (fail-stop, like the writes; [`Barrier::fail`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::store::{Op, Pair, Store};

/// Longest a read waits for the store to catch up before it fails (the applier normally takes
/// well under a millisecond; this only bounds a stuck or dead applying thread).
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Batch numbers answered and applied, and the condition readers wait on.
#[derive(Debug, Default)]
pub struct Barrier {
    /// The last batch whose answers or pushes may have left.
    answered: AtomicU64,
    /// The last batch the store has applied.
    applied: AtomicU64,
    /// An answered batch could not be applied: waiting for it is futile.
    failed: AtomicBool,
    /// Readers blocked (or about to block) on `moved`: the applier skips the wake-up system call
    /// when there are none, which is nearly always.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    moved: Condvar,
}

impl Barrier {
    /// A barrier with nothing answered.
    pub fn new() -> Self {
        Self::default()
    }

    /// The applier: batch `number` (numbers rise) is durable and its answers and pushes are
    /// about to leave, before the store has it. Called before the first of them leaves.
    pub fn answering(&self, number: u64) {
        self.answered.fetch_max(number, Ordering::AcqRel);
    }

    /// The applier: the store has applied every batch up to `number`.
    pub fn applied(&self, number: u64) {
        self.applied.fetch_max(number, Ordering::SeqCst);
        self.wake();
    }

    /// The applier: an answered batch could not be applied; readers waiting for it fail.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Whether the store has applied every batch answered so far.
    pub fn is_settled(&self) -> bool {
        self.applied.load(Ordering::Acquire) >= self.answered.load(Ordering::Acquire)
    }

    /// Waits until the store has applied every batch answered before this call. Fails when
    /// such a batch could not be applied, or after [`MAX_WAIT`].
    pub fn wait(&self) -> Result<(), StoreError> {
        let target = self.answered.load(Ordering::Acquire);
        if self.applied.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let deadline = Instant::now() + MAX_WAIT;
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Counted before the counters are checked again (both sequentially consistent): either
        // this check sees the applier's move, or the applier sees this waiter and wakes it.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            if self.applied.load(Ordering::SeqCst) >= target {
                break Ok(());
            }
            if self.failed.load(Ordering::SeqCst) {
                break Err(StoreError::Corrupt(
                    "the store failed to apply an acknowledged write; restart needed".into(),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(StoreError::Corrupt(
                    "the store did not apply acknowledged writes in time".into(),
                ));
            }
            guard = self
                .moved
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    /// Wakes the waiting readers, if any. The counters change before the waiters are counted,
    /// and a reader counts itself before it checks them, holding the lock the wake-up takes, so
    /// no wake-up is lost.
    fn wake(&self) {
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.moved.notify_all();
    }
}

/// The store as readers see it: every read waits at the [`Barrier`] first.
pub struct Gated {
    store: Arc<dyn Store>,
    barrier: Arc<Barrier>,
}

impl Gated {
    /// Reads of `store` behind `barrier`.
    pub fn new(store: Arc<dyn Store>, barrier: Arc<Barrier>) -> Self {
        Self { store, barrier }
    }

    /// Waits once at the barrier, then gives the store itself: for a read of many steps, which
    /// then sees at least every write answered before this call.
    pub fn settled(&self) -> Result<&dyn Store, StoreError> {
        self.barrier.wait()?;
        Ok(self.store.as_ref())
    }

    /// The store itself, without waiting: only for a probe on an async worker (which must not
    /// block behind an apply) whose answer may lag the latest acknowledged write because the
    /// commit pipeline checks it again (e.g. "is this account registered?" before a `Register`
    /// command, which the staging thread repeats against everything staged).
    pub fn unsettled(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

impl Store for Gated {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.barrier.wait()?;
        self.store.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Pair>, StoreError> {
        self.barrier.wait()?;
        self.store.scan(start, end, limit, reverse)
    }

    /// Writes belong to the commit pipeline, which holds the store itself; passed through.
    fn apply(&self, ops: &[Op<'_>]) -> Result<(), StoreError> {
        self.store.apply(ops)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use chime_proto::pb;
    use prost::Message as _;
    use std::sync::atomic::AtomicBool;

    /// A store whose applies fail once told to (the seam for a sled failure).
    #[derive(Default)]
    struct Failing {
        store: MemStore,
        fail: AtomicBool,
    }

    impl Store for Failing {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.store.get(key)
        }
        fn scan(&self, s: &[u8], e: &[u8], l: usize, r: bool) -> Result<Vec<Pair>, StoreError> {
            self.store.scan(s, e, l, r)
        }
        fn apply(&self, ops: &[Op<'_>]) -> Result<(), StoreError> {
            if self.fail.load(Ordering::Acquire) {
                return Err(StoreError::Corrupt("injected apply failure".into()));
            }
            self.store.apply(ops)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.store.flush()
        }
    }

    /// Sends `op` as alice through the commit pipeline and waits for the answer.
    fn call(
        tx: &tokio::sync::mpsc::Sender<crate::commit::Msg>,
        op: crate::commit::Op,
    ) -> crate::error::ApiResult<pb::response::Kind> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let cmd = crate::commit::Command {
            app: 1,
            user: "alice".into(),
            op,
            reply: crate::commit::Reply::Once(reply),
        };
        tx.blocking_send(crate::commit::Msg::Cmd(cmd)).unwrap();
        answer.blocking_recv().unwrap()
    }

    fn text_to_bob(msg_id: &str) -> crate::commit::Op {
        crate::commit::Op::Send(Box::new(pb::Message {
            msg_id: msg_id.into(),
            conv_type: pb::ConvType::C2c as i32,
            receiver: "bob".into(),
            elems: vec![pb::Elem {
                content: Some(pb::elem::Content::Text(pb::TextElem {
                    text: msg_id.into(),
                })),
            }],
            ..Default::default()
        }))
    }

    #[test]
    fn an_acknowledged_batch_the_store_failed_to_apply_is_replayed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Failing::default());
        let (wal, _) = crate::wal::Wal::open(dir.path()).unwrap();
        let (tx, thread, barrier) = crate::commit::spawn(
            Arc::clone(&store) as Arc<dyn Store>,
            wal,
            Arc::default(),
            Arc::default(),
            None,
            None,
            16,
        )
        .unwrap();
        let gated = Gated::new(Arc::clone(&store) as Arc<dyn Store>, Arc::clone(&barrier));
        let ack = |r: crate::error::ApiResult<pb::response::Kind>| match r {
            Ok(pb::response::Kind::SendMessage(a)) => a.seq,
            other => panic!("not an ack: {other:?}"),
        };
        assert_eq!(ack(call(&tx, text_to_bob("m1"))), 1);
        let conv = crate::keys::c2c_conv("alice", "bob");
        let key = |seq| {
            crate::keys::Key::new(crate::keys::tag::MSG, 1)
                .s(&conv)
                .n(seq)
                .done()
        };
        // A read after the ack sees the message.
        assert!(gated.get(&key(1)).unwrap().is_some());

        // The store fails under the next batch, after it is durable: the ack was true.
        store.fail.store(true, Ordering::Release);
        assert_eq!(ack(call(&tx, text_to_bob("m2"))), 2);
        // A read that must see it fails instead of answering without it.
        assert!(gated.get(&key(2)).is_err());
        // Every later write is refused.
        match call(&tx, text_to_bob("m3")) {
            Err(e) => assert_eq!(e.code, chime_proto::codes::ERR_SVR_INTERNAL),
            Ok(k) => panic!("a write after the failure was accepted: {k:?}"),
        }
        assert!(store.get(&key(2)).unwrap().is_none());
        tx.blocking_send(crate::commit::Msg::Shutdown).unwrap();
        thread.join().unwrap();

        // The restart: the log replays the acknowledged message into the store.
        let (_wal, replay) = crate::wal::Wal::open(dir.path()).unwrap();
        let restarted = MemStore::default();
        for batch in &replay {
            let ops: Vec<Op<'_>> = batch
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            restarted.apply(&ops).unwrap();
        }
        let stored = restarted.get(&key(2)).unwrap().expect("m2 replayed");
        let m = pb::Message::decode(&stored[..]).unwrap();
        assert_eq!(
            (m.msg_id.as_str(), m.seq, m.sender.as_str()),
            ("m2", 2, "alice")
        );
        assert!(restarted.get(&key(3)).unwrap().is_none());
    }

    #[test]
    fn a_read_waits_for_every_answered_batch_and_no_longer() {
        let barrier = Arc::new(Barrier::new());
        let store: Arc<dyn Store> = Arc::new(MemStore::default());
        let gated = Gated::new(Arc::clone(&store), Arc::clone(&barrier));
        // Nothing pending: the read goes straight through.
        assert!(barrier.is_settled());
        assert_eq!(gated.get(b"k").unwrap(), None);
        // Batch 1 answered, not yet applied: a reader blocks until the applier catches up.
        barrier.answering(1);
        assert!(!barrier.is_settled());
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let gated = Gated::new(Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let seen = gated.get(b"k").unwrap();
                tx.send(seen).unwrap();
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "the read must wait for batch 1"
        );
        store.apply(&[(b"k", Some(b"v"))]).unwrap();
        // A later batch answered meanwhile does not hold back the read that came before it.
        barrier.answering(2);
        barrier.applied(1);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            Some(b"v".to_vec())
        );
        reader.join().unwrap();
        assert!(!barrier.is_settled());
        barrier.applied(2);
        assert!(gated.settled().is_ok());
    }

    #[test]
    fn a_failed_apply_fails_the_reads_that_wait_for_it() {
        let barrier = Arc::new(Barrier::new());
        let gated = Gated::new(Arc::new(MemStore::default()), Arc::clone(&barrier));
        barrier.answering(1);
        barrier.applied(1);
        barrier.answering(2);
        let waiter = {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || barrier.wait())
        };
        barrier.fail();
        assert!(waiter.join().unwrap().is_err());
        assert!(gated.get(b"k").is_err());
        assert!(gated.scan(b"a", b"z", 10, false).is_err());
    }
}
