//! The commit pipeline's hand-offs: how a command reaches the staging, and a staged batch the
//! applying thread, with as few wake-ups of sleeping threads as possible.
//!
//! Why: on this kind of virtual machine a wake-up of a sleeping thread costs 20–40 µs, and one
//! message in flight (W1 in `docs/performance.md`) paid two of them before its `fdatasync`: the
//! reading task → the staging thread, the staging thread → the applying thread. So:
//! - **Inline staging.** The stager's state ([`Stage`]: the [`Core`], the queue's receiving end,
//!   the applier's sending end) is behind one lock, and whoever holds it stages. When the
//!   applier is idle (every batch handed to it is applied) and nobody stages, the task that
//!   submits a command ([`Sender::send`]) stages it itself: first whatever waits in the queue,
//!   then its command, as one batch, handed straight to the applier. Otherwise the command goes
//!   to the queue, whose thread ([`run_stager`]) stages every command waiting as one batch, as
//!   before (group commit under load). A command leaves the queue only under the lock, and an
//!   inline batch takes the queue's commands first, so every submitter's commands are staged in
//!   the order it submitted them, and batches reach the applier in their number order.
//!
//! Measured and not kept: waking a sleeping applier as the staging starts, for it to spin
//! (bounded) for the batch. On a loaded 2-core machine the woken applier often shares the
//! stager's CPU and its spin delays the very staging it waits for (W1 p50 worse, not better:
//! `docs/performance.md`, "W1 hand-offs (issue 2, session 7)").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use tokio::sync::mpsc;

use super::{Command, Core, MAX_BATCH, Msg, Pending};

/// The stager's state: whoever holds its lock stages.
pub(super) struct Stage {
    core: Core,
    rx: mpsc::Receiver<Msg>,
    /// `None` once stopped.
    to_applier: Option<SyncSender<Pending>>,
}

impl Stage {
    /// Takes the queued commands into `cmds` (up to [`MAX_BATCH`] in all); true when a
    /// [`Msg::Shutdown`] was among them (nothing after it is taken).
    fn drain(&mut self, cmds: &mut Vec<Command>) -> bool {
        while cmds.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(Msg::Cmd(c)) => cmds.push(c),
                Ok(Msg::Shutdown) => return true,
                Err(_) => break,
            }
        }
        false
    }
}

/// What the stagers and the applier share about the batches between them.
pub(super) struct Hand {
    /// Batches handed to the applier and not yet applied.
    queued: AtomicUsize,
}

impl Hand {
    /// Nothing handed over yet.
    pub(super) fn new() -> Self {
        Self {
            queued: AtomicUsize::new(0),
        }
    }

    /// The applier's next batch (waiting for it); `None` once the stager has stopped.
    pub(super) fn next(&self, rx: &Receiver<Pending>) -> Option<Pending> {
        rx.recv().ok()
    }

    /// The applier has applied a batch it took from [`Hand::next`].
    pub(super) fn done(&self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether every batch handed over is applied (then the applier's slot is free).
    fn idle(&self) -> bool {
        self.queued.load(Ordering::SeqCst) == 0
    }
}

/// The stager's state and the hand-off, shared by every [`Sender`] and the staging thread.
pub(super) struct Pipe {
    stage: Mutex<Stage>,
    hand: Arc<Hand>,
    /// The staging thread (woken when an inline batch took the queue's shutdown).
    stager: OnceLock<Thread>,
}

impl Pipe {
    /// The pipe of `core`, taking commands from `rx` and handing batches to `to_applier`.
    pub(super) fn new(
        core: Core,
        rx: mpsc::Receiver<Msg>,
        to_applier: SyncSender<Pending>,
        hand: Arc<Hand>,
    ) -> Self {
        Self {
            stage: Mutex::new(Stage {
                core,
                rx,
                to_applier: Some(to_applier),
            }),
            hand,
            stager: OnceLock::new(),
        }
    }

    /// The stager's state. A holder that panicked (a bug while staging) leaves the pipeline
    /// stopped: no one stages on top of a half-staged batch.
    fn lock(&self) -> MutexGuard<'_, Stage> {
        match self.stage.lock() {
            Ok(st) => st,
            Err(poisoned) => {
                let mut st = poisoned.into_inner();
                self.finish(&mut st);
                st
            }
        }
    }

    /// Stages `cmds` as one batch and hands it to the applier (waiting while the applier
    /// still holds a batch, when called by the staging thread).
    fn hand_off(&self, st: &mut Stage, cmds: Vec<Command>) {
        if st.to_applier.is_none() {
            return;
        }
        let pending = st.core.stage_batch(cmds);
        self.hand.queued.fetch_add(1, Ordering::SeqCst);
        let sent = st.to_applier.as_ref().map(|tx| tx.send(pending));
        if !matches!(sent, Some(Ok(()))) {
            tracing::error!("the apply thread stopped");
            self.hand.queued.fetch_sub(1, Ordering::SeqCst);
            self.finish(st);
        }
    }

    /// Stops: logs the totals, refuses further commands (the queued ones are dropped, as at
    /// a stop before), lets the applier finish and the staging thread end.
    fn finish(&self, st: &mut Stage) {
        if st.to_applier.take().is_none() {
            return;
        }
        st.core.log_totals();
        st.rx.close();
        while st.rx.try_recv().is_ok() {}
        if let Some(stager) = self.stager.get() {
            stager.unpark();
        }
    }
}

/// Wakes the staging thread when a command is queued.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The staging thread: stages the queued commands (all that wait, as one batch) whenever the
/// queue has some, until a [`Msg::Shutdown`] or every sender is gone.
pub(super) fn run_stager(pipe: &Pipe) {
    let me = std::thread::current();
    let _ = pipe.stager.set(me.clone());
    let waker = Waker::from(Arc::new(Unpark(me)));
    let mut cx = Context::from_waker(&waker);
    loop {
        let mut st = pipe.lock();
        if st.to_applier.is_none() {
            break;
        }
        let mut cmds = Vec::new();
        let stop = match st.rx.poll_recv(&mut cx) {
            Poll::Pending => {
                drop(st);
                // Woken by the queue's next command (the waker is registered), or by a stop.
                std::thread::park();
                continue;
            }
            Poll::Ready(None | Some(Msg::Shutdown)) => true,
            Poll::Ready(Some(Msg::Cmd(c))) => {
                cmds.push(c);
                st.drain(&mut cmds)
            }
        };
        if !cmds.is_empty() {
            pipe.hand_off(&mut st, cmds);
        }
        if stop {
            pipe.finish(&mut st);
            break;
        }
    }
}

/// The commit pipeline's sending end (`Shared::commit`): [`Sender::send`] stages the command
/// at once when the pipeline is idle, else queues it (see the module doc).
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<Msg>,
    pipe: Arc<Pipe>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("commit::Sender").finish_non_exhaustive()
    }
}

impl Sender {
    pub(super) fn new(tx: mpsc::Sender<Msg>, pipe: Arc<Pipe>) -> Self {
        Self { tx, pipe }
    }

    /// Hands `msg` to the pipeline: staged by this thread when the pipeline is idle, else
    /// queued (waiting while the queue is full). Fails, giving `msg` back, once the pipeline
    /// has stopped.
    pub async fn send(&self, msg: Msg) -> Result<(), mpsc::error::SendError<Msg>> {
        match self.try_inline(msg) {
            None => Ok(()),
            Some(msg) => self.tx.send(msg).await,
        }
    }

    /// [`Sender::send`] from a thread outside the async runtime (tests); false once the
    /// pipeline has stopped.
    #[cfg(test)]
    pub(crate) fn blocking_send(&self, msg: Msg) -> bool {
        match self.try_inline(msg) {
            None => true,
            Some(msg) => self.tx.blocking_send(msg).is_ok(),
        }
    }

    /// Stages the command of `msg` here when the applier is idle and nobody stages (`None`);
    /// gives `msg` back otherwise.
    fn try_inline(&self, msg: Msg) -> Option<Msg> {
        let Msg::Cmd(cmd) = msg else {
            return Some(msg);
        };
        let hand = &self.pipe.hand;
        if !hand.idle() {
            return Some(Msg::Cmd(cmd));
        }
        let mut st = match self.pipe.stage.try_lock() {
            Ok(st) => st,
            Err(TryLockError::WouldBlock) => return Some(Msg::Cmd(cmd)),
            // A holder panicked: stopped (the queue refuses the command).
            Err(TryLockError::Poisoned(p)) => {
                let mut st = p.into_inner();
                self.pipe.finish(&mut st);
                return Some(Msg::Cmd(cmd));
            }
        };
        // Under the lock only this thread hands batches over: every batch applied ⇒ the
        // applier's slot is free, and this hand-off does not wait.
        if st.to_applier.is_none() || !hand.idle() {
            return Some(Msg::Cmd(cmd));
        }
        let mut cmds = Vec::new();
        let stop = st.drain(&mut cmds);
        if stop || cmds.len() >= MAX_BATCH {
            // The queue's commands first; this one after them, through the queue.
            if !cmds.is_empty() {
                self.pipe.hand_off(&mut st, cmds);
            }
            if stop {
                self.pipe.finish(&mut st);
            }
            return Some(Msg::Cmd(cmd));
        }
        cmds.push(cmd);
        st.core.stats.inline += 1;
        self.pipe.hand_off(&mut st, cmds);
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chime_proto::pb;

    use crate::commit::{Command, Msg, Op, Reply, Sender};
    use crate::error::{ApiResult, StoreError};
    use crate::store::{MemStore, Op as StoreOp, Pair, Store};

    /// A store whose every apply takes a while, so that commands arrive while the applier is
    /// busy and go through the queue.
    #[derive(Default)]
    struct Slow(MemStore);

    impl Store for Slow {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(key)
        }
        fn scan(&self, s: &[u8], e: &[u8], l: usize, r: bool) -> Result<Vec<Pair>, StoreError> {
            self.0.scan(s, e, l, r)
        }
        fn apply(&self, ops: &[StoreOp<'_>]) -> Result<(), StoreError> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.apply(ops)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.0.flush()
        }
    }

    fn start(
        dir: &tempfile::TempDir,
    ) -> (
        Sender,
        std::thread::JoinHandle<()>,
        Arc<crate::barrier::Barrier>,
    ) {
        let (wal, _) = crate::wal::Wal::open(dir.path()).unwrap();
        let store: Arc<dyn Store> = Arc::new(Slow::default());
        crate::commit::spawn(store, wal, Arc::default(), Arc::default(), None, None, 64).unwrap()
    }

    /// `user`'s text `msg_id` to bob, answered on the returned channel.
    fn send(
        tx: &Sender,
        user: &str,
        msg_id: &str,
    ) -> tokio::sync::oneshot::Receiver<ApiResult<pb::response::Kind>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let msg = pb::Message {
            msg_id: msg_id.into(),
            conv_type: pb::ConvType::C2c as i32,
            receiver: "bob".into(),
            elems: vec![pb::Elem {
                content: Some(pb::elem::Content::Text(pb::TextElem {
                    text: msg_id.into(),
                })),
            }],
            ..Default::default()
        };
        // Refused once stopped: the answer's sender is dropped with the command.
        let _ = tx.blocking_send(Msg::Cmd(Command {
            app: 1,
            user: user.into(),
            op: Op::Send(Box::new(msg)),
            reply: Reply::Once(reply),
        }));
        answer
    }

    fn seq(answer: tokio::sync::oneshot::Receiver<ApiResult<pb::response::Kind>>) -> u64 {
        match answer.blocking_recv().unwrap() {
            Ok(pb::response::Kind::SendMessage(a)) => a.seq,
            other => panic!("not an ack: {other:?}"),
        }
    }

    fn inline_batches(tx: &Sender) -> u64 {
        tx.pipe.stage.lock().unwrap().core.stats.inline
    }

    #[test]
    fn an_idle_pipeline_stages_on_the_sending_thread_and_a_busy_one_queues() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, thread, _barrier) = start(&dir);
        // Idle: staged here, before `send` returns.
        let first = send(&tx, "alice", "m1");
        assert_eq!(inline_batches(&tx), 1);
        assert_eq!(seq(first), 1);
        // The applier is still applying m1 (its store takes 2 ms): these go through the queue,
        // and are staged after m1 in the order sent.
        let queued: Vec<_> = (2..=6)
            .map(|i| send(&tx, "alice", &format!("m{i}")))
            .collect();
        let seqs: Vec<u64> = queued.into_iter().map(seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
        assert!(inline_batches(&tx) < 6);
        assert!(tx.blocking_send(Msg::Shutdown));
        thread.join().unwrap();
    }

    #[test]
    fn every_senders_commands_are_staged_in_the_order_it_sent_them() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, thread, _barrier) = start(&dir);
        // Four senders, each to its own conversation, none waiting for its answers: some
        // commands are staged inline, some by the staging thread, and each conversation's
        // seqs must follow its sender's order.
        let senders: Vec<_> = ["u0", "u1", "u2", "u3"]
            .into_iter()
            .map(|user| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let answers: Vec<_> = (1..=40)
                        .map(|i| send(&tx, user, &format!("{user}-{i}")))
                        .collect();
                    answers.into_iter().map(seq).collect::<Vec<u64>>()
                })
            })
            .collect();
        for s in senders {
            assert_eq!(s.join().unwrap(), (1..=40).collect::<Vec<u64>>());
        }
        assert!(tx.blocking_send(Msg::Shutdown));
        thread.join().unwrap();
    }

    #[test]
    fn a_shutdown_taken_by_an_inline_batch_stops_the_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, thread, _barrier) = start(&dir);
        assert_eq!(seq(send(&tx, "alice", "m1")), 1);
        // Wait until m1 is applied (idle again), then queue a shutdown behind a busy stage
        // lock, so that the next send's inline batch is the one that takes it.
        for _ in 0..500 {
            if tx.pipe.hand.idle() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(tx.pipe.hand.idle());
        {
            let _staging = tx.pipe.stage.lock().unwrap();
            assert!(tx.tx.try_send(Msg::Shutdown).is_ok());
        }
        // The staging thread may have taken the shutdown itself by now; either way the
        // pipeline stops, the threads end and a later command is refused (answer dropped).
        let late = send(&tx, "alice", "m2");
        assert!(late.blocking_recv().is_err());
        thread.join().unwrap();
    }
}
