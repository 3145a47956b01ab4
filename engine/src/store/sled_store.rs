//! The sled backend: one database per `<data_dir>/<sdk_app_id>/<user_id>/`, one tree, tables as
//! key prefixes, with a **write-behind overlay** in front ([`super::overlay`]).
//!
//! **Writes.** [`Store::apply`] records a batch in the overlay (memory only) and returns; reads
//! merge the overlay over sled exactly. A *drain* writes the overlay, coalesced (one write per
//! key, none for a key put and deleted within the window), to sled as **one** batch. A batch of
//! several operations is atomic through the store's own redo journal ([`super::journal`]), never
//! through `sled::Batch` (see there why); drains are serialised (one lock per store), so that
//! the log holds them in the order the journal's [`journal::plan`] relies on. A store drains:
//! - by age: the process-wide drainer ([`super::drainer`]) drains it [`Bounds::age`] (50 ms)
//!   after the first write following a drain;
//! - by size: the writer drains inline when the overlay holds more than [`Bounds::entries`] keys
//!   or [`Bounds::bytes`] bytes (memory stays bounded: that much pending plus one drain);
//! - at [`Store::flush`] (the message actor's close at logout and `un_init_sdk`), before a
//!   checkpoint, and when the store is closed (its last `Arc` dropped).
//!
//! **What a crash loses.** A drain holds whole batches (a batch enters the overlay under one
//! lock, a drain takes all of it), in order, and is one journal batch: a crash at any raw write
//! recovers whole drains, hence whole batches — a prefix of them. A SIGKILL of the process loses
//! at most the writes of the last drain age plus sled's flush period ([`FLUSH_EVERY_MS`]): about
//! 250 ms of the newest writes (200 ms without the overlay). A failing disk shows at the drain:
//! an inline drain's error is [`Store::apply`]'s, a background one is logged and its writes stay
//! in the overlay for the next drain.
//!
//! **Checkpoints.** sled 0.34 writes its recovery snapshot only when a database is opened, so the
//! store closes and reopens its database when [`super::checkpoint`] says so: during the session
//! at an idle moment, and at close. The open database sits behind a reader/writer lock: every
//! sled operation (a whole drain with its journal entry) holds it shared, a checkpoint
//! exclusively — so it never splits a batch, loses or reorders a write, and leaves the journal
//! empty; the actors keep their one `Arc` of the store throughout.
//!
//! Lock order: the drain lock, then the database lock, then the overlay's; the overlay's lock
//! is never held while another is taken.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use super::checkpoint::{Activity, Tuning};
use super::drainer::{self, Drainable};
use super::overlay::{self, Bounds, Overlay};
use super::{Entry, Store, StoreError, WriteBatch, WriteOp, journal};

/// sled's default page cache is 1 GiB; an engine embedded in a game must stay small.
const CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;
/// Background flush period: a crash loses at most this much of the newest writes sled took.
const FLUSH_EVERY_MS: u64 = 200;
/// How long a checkpoint waits for sled to release the database just closed (its background
/// threads may hold the lock file a moment after the handle is dropped).
const REOPEN_WAIT: Duration = Duration::from_secs(10);
/// Pause between attempts to reopen.
const REOPEN_RETRY: Duration = Duration::from_millis(20);

/// Writes the process's stores were given in batches, counted as a store without the overlay
/// writes them (each operation, plus the journal entry of a batch of several).
static BATCHED_WRITES: AtomicU64 = AtomicU64::new(0);
/// Raw writes (inserts and removes) the process's stores made to sled.
static SLED_WRITES: AtomicU64 = AtomicU64::new(0);

/// How many writes the stores of this process took and made (for benchmarks: the overlay's
/// saving is `batched - sled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteCounts {
    /// Writes a store without the overlay would have made to sled for the batches applied.
    pub batched: u64,
    /// Raw writes made to sled (drains, their journal entries, replays at open).
    pub sled: u64,
}

/// The write counts of every store of this process so far.
pub fn write_counts() -> WriteCounts {
    WriteCounts {
        batched: BATCHED_WRITES.load(Ordering::Relaxed),
        sled: SLED_WRITES.load(Ordering::Relaxed),
    }
}

/// A [`Store`] over one sled database.
#[derive(Debug)]
pub struct SledStore {
    shared: Arc<Shared>,
}

/// The store's state, shared with the thread that waits to checkpoint it and the drainer.
#[derive(Debug)]
struct Shared {
    /// The open database; `None` only while a checkpoint swaps it, or after a checkpoint could
    /// not reopen it (every operation then fails with [`StoreError::Backend`]).
    db: RwLock<Option<sled::Db>>,
    dir: PathBuf,
    /// Held by every drain (one at a time); whether the journal's slot holds the last batch
    /// (`journal::plan`).
    writes: Mutex<bool>,
    /// The writes sled does not have yet.
    overlay: Mutex<Overlay>,
    bounds: Bounds,
    activity: Activity,
    /// Checkpoints done during the session.
    checkpoints: AtomicU64,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn unavailable() -> StoreError {
    StoreError::Backend("store unavailable: its checkpoint could not reopen it".into())
}

fn poisoned() -> StoreError {
    StoreError::Backend("store lock poisoned".into())
}

/// The one sled configuration of an engine store.
fn config(dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY_BYTES)
        .flush_every_ms(Some(FLUSH_EVERY_MS))
        .mode(sled::Mode::HighThroughput)
}

/// Whether sled refused to open because another handle still holds the database's exclusive
/// file lock (sled 0.34: an I/O error whose message starts with "could not acquire lock").
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens the database in `dir`, retrying for up to `wait` while it is still locked.
fn open_retrying(dir: &Path, wait: Duration) -> Result<sled::Db, StoreError> {
    let t = Instant::now();
    loop {
        match config(dir).open() {
            Ok(db) => return Ok(db),
            Err(e) if t.elapsed() >= wait => return Err(backend(e)),
            Err(_) => std::thread::sleep(REOPEN_RETRY),
        }
    }
}

/// Finishes the batch a crash interrupted (replaying a finished one changes nothing:
/// [`super::journal`]) and removes the journal. Runs at open, before any other operation.
fn replay_journal(db: &sled::Db, activity: &Activity) -> Result<(), StoreError> {
    for item in db.scan_prefix(journal::PREFIX) {
        let (key, value) = item.map_err(backend)?;
        for op in journal::decode(&key, &value)? {
            apply_op(db, activity, op)?;
        }
        db.remove(key).map_err(backend)?;
    }
    Ok(())
}

/// One put or delete, counted for the checkpoint policy.
fn apply_op(db: &sled::Db, activity: &Activity, op: WriteOp) -> Result<(), StoreError> {
    let (size, r) = match op {
        WriteOp::Put(k, v) => (k.len() + v.len(), db.insert(k, v).map(drop)),
        WriteOp::Delete(k) => (k.len(), db.remove(k).map(drop)),
    };
    activity.wrote(size);
    SLED_WRITES.fetch_add(1, Ordering::Relaxed);
    r.map_err(backend)
}

/// Writes `ops` to sled atomically (journal entry first when several), given and updating
/// whether the journal's slot holds the last batch (`live`).
fn write_atomically(
    db: &sled::Db,
    activity: &Activity,
    live: &mut bool,
    ops: Vec<WriteOp>,
) -> Result<(), StoreError> {
    let (raw, after) = journal::plan(ops, *live);
    // Until every raw write is in, the slot may hold a batch: a failed single write leaves it
    // counted live (the next single write removes it again, harmlessly).
    *live |= after;
    for op in raw {
        apply_op(db, activity, op)?;
    }
    *live = after;
    Ok(())
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Tuning::DEFAULT, Bounds::DEFAULT)
    }

    /// [`SledStore::open`] with the checkpoint policy's and the overlay's numbers given.
    pub(super) fn open_with(
        dir: &Path,
        tuning: Tuning,
        bounds: Bounds,
    ) -> Result<Self, StoreError> {
        let t = Instant::now();
        let db = match config(dir).open() {
            Ok(db) => db,
            // The previous store of this account (a logout and a login again, an un_init and an
            // init) releases sled's file lock only when its background threads have exited,
            // shortly after the last handle is dropped.
            Err(e) if is_lock_held(&e) => open_retrying(dir, REOPEN_WAIT)?,
            Err(e) => return Err(backend(e)),
        };
        let activity = Activity::new(tuning);
        replay_journal(&db, &activity)?;
        let store = Self {
            shared: Arc::new(Shared {
                db: RwLock::new(Some(db)),
                dir: dir.to_path_buf(),
                writes: Mutex::new(false),
                overlay: Mutex::new(Overlay::default()),
                bounds,
                activity,
                checkpoints: AtomicU64::new(0),
            }),
        };
        tracing::debug!("store {} opened in {:?}", dir.display(), t.elapsed());
        Ok(store)
    }

    /// Runs `f` on the open database, shared with other operations, excluding a checkpoint;
    /// starts the checkpoint's waiting thread when one fell due.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&sled::Db, &Activity) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let out = self.shared.read_db(f);
        schedule_checkpoint(&self.shared);
        out
    }

    /// Checkpoints done during the session.
    #[cfg(test)]
    fn checkpoints(&self) -> u64 {
        self.shared.checkpoints.load(Ordering::Relaxed)
    }
}

/// Starts the checkpoint's waiting thread when one fell due.
fn schedule_checkpoint(s: &Arc<Shared>) {
    if s.activity.schedule() {
        let weak = Arc::downgrade(s);
        let spawned = std::thread::Builder::new()
            .name("chime-store-checkpoint".into())
            .spawn(move || wait_and_checkpoint(&weak));
        if let Err(e) = spawned {
            tracing::warn!("store checkpoint thread: {e}");
            s.activity.unscheduled();
        }
    }
}

/// The waiting thread: polls for the store's idle pause and checkpoints then; ends when it did,
/// or when the store was closed (it holds only a weak reference between polls).
fn wait_and_checkpoint(weak: &Weak<Shared>) {
    loop {
        let Some(s) = weak.upgrade() else { return };
        let tuning = s.activity.tuning();
        if s.activity.idle_for() >= tuning.idle {
            s.checkpoint();
            s.activity.unscheduled();
            return;
        }
        drop(s);
        std::thread::sleep(tuning.poll);
    }
}

impl Shared {
    fn overlay(&self) -> Result<MutexGuard<'_, Overlay>, StoreError> {
        self.overlay.lock().map_err(|_| poisoned())
    }

    /// Runs `f` on the open database, shared with other operations, excluding a checkpoint.
    fn read_db<T>(
        &self,
        f: impl FnOnce(&sled::Db, &Activity) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.db.read().map_err(|_| poisoned())?;
        let db = guard.as_ref().ok_or_else(unavailable)?;
        let r = f(db, &self.activity);
        self.activity.touch();
        r
    }

    /// Writes the overlay's pending writes to sled as one atomic batch; reads keep seeing them
    /// in the overlay until sled has them all. On failure they stay in the overlay.
    fn drain(&self) -> Result<(), StoreError> {
        let mut live = self.writes.lock().map_err(|_| poisoned())?;
        let frozen = self.overlay()?.freeze();
        let Some(frozen) = frozen else {
            return Ok(());
        };
        let r = self.read_db(|db, activity| {
            let ops = overlay::drain_ops(&frozen, |k| db.contains_key(k).map_err(backend))?;
            write_atomically(db, activity, &mut live, ops)
        });
        let mut o = self.overlay()?;
        match r {
            Ok(()) => o.drained(),
            Err(_) => o.undrained(),
        }
        r
    }

    /// Closes and reopens the database (sled writes its snapshot at the open), excluding every
    /// operation meanwhile; drains the overlay first, so that the snapshot has all of it.
    fn checkpoint(&self) {
        if let Err(e) = self.drain() {
            tracing::warn!(
                "store drain before checkpoint of {}: {e}",
                self.dir.display()
            );
        }
        let t = Instant::now();
        let Ok(mut guard) = self.db.write() else {
            return;
        };
        let Some(db) = guard.take() else { return };
        // Everything applied reaches the log before the reopen reads it; a failing disk keeps
        // the database open as it was.
        if let Err(e) = db.flush() {
            tracing::warn!("store checkpoint of {}: flush: {e}", self.dir.display());
            *guard = Some(db);
            return;
        }
        let written = self.activity.written();
        drop(db);
        match open_retrying(&self.dir, REOPEN_WAIT) {
            Ok(db) => {
                *guard = Some(db);
                self.activity.checkpointed();
                self.checkpoints.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "store checkpoint of {} ({written} bytes written) in {:?}",
                    self.dir.display(),
                    t.elapsed()
                );
            }
            Err(e) => {
                tracing::error!("store checkpoint of {}: reopen: {e}", self.dir.display())
            }
        }
    }
}

impl Drainable for Shared {
    fn drain_due(self: Arc<Self>) {
        if let Err(e) = self.drain() {
            tracing::warn!("store drain of {}: {e}", self.dir.display());
        }
        schedule_checkpoint(&self);
    }
}

impl Drop for Shared {
    /// Drains the overlay; then the checkpoint at close, when due: flush, close, open once more
    /// (the snapshot) and close.
    fn drop(&mut self) {
        if let Err(e) = self.drain() {
            tracing::error!("store drain at close of {}: {e}", self.dir.display());
        }
        let Some(db) = self.db.get_mut().ok().and_then(Option::take) else {
            return;
        };
        if !self.activity.due() {
            return;
        }
        let t = Instant::now();
        if let Err(e) = db.flush() {
            tracing::warn!("store flush before checkpoint: {e}");
        }
        drop(db);
        match open_retrying(&self.dir, Duration::from_secs(2)) {
            Ok(db) => {
                drop(db);
                tracing::debug!(
                    "store checkpoint of {} at close ({} bytes written) in {:?}",
                    self.dir.display(),
                    self.activity.written(),
                    t.elapsed()
                );
            }
            Err(_) => tracing::info!(
                "store checkpoint of {} skipped: still locked",
                self.dir.display()
            ),
        }
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        // Not in the overlay: sled has the newest value (a drain clears its map only after
        // sled has all of it), and anything later is newer still.
        let known = self.shared.overlay()?.get(key);
        match known {
            Some(v) => {
                self.shared.activity.touch();
                Ok(v)
            }
            None => self.with_db(|db, _| Ok(db.get(key).map_err(backend)?.map(|v| v.to_vec()))),
        }
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        self.with_db(|db, _| {
            // The overlay's lock is held while sled is read: a drain cannot end (and stop the
            // overlay from showing what it wrote) in between.
            let o = self.shared.overlay()?;
            let own = |item: sled::Result<(sled::IVec, sled::IVec)>| {
                item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend)
            };
            let iter = db.range(start..end);
            if reverse {
                o.scan(start, end, true, limit, iter.rev().map(own))
            } else {
                o.scan(start, end, false, limit, iter.map(own))
            }
        })
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let n = batch.ops.len() as u64;
        if n == 0 {
            return Ok(());
        }
        BATCHED_WRITES.fetch_add(n + u64::from(n > 1), Ordering::Relaxed);
        let s = &self.shared;
        let (mut full, enqueue) = {
            let mut o = s.overlay()?;
            o.apply(batch.ops);
            let full = o.full(&s.bounds);
            let enqueue = !full && !o.queued;
            o.queued |= enqueue;
            (full, enqueue)
        };
        s.activity.touch();
        if enqueue {
            let weak: Weak<dyn Drainable> = Arc::downgrade(s) as Weak<dyn Drainable>;
            if !drainer::enqueue(weak, Instant::now() + s.bounds.age) {
                full = true;
            }
        }
        if full {
            s.drain()?;
            schedule_checkpoint(s);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.shared.drain()?;
        self.with_db(|db, _| db.flush().map(drop).map_err(backend))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The open database of `s`, for writing what a crash leaves behind.
    fn raw(s: &SledStore) -> sled::Db {
        s.shared.db.read().unwrap().clone().unwrap()
    }

    /// Opens again a database just dropped: sled's flusher thread may hold its lock a moment.
    /// Opens the store again (the open itself waits while the previous handle's lock is held).
    fn reopen_with(dir: &Path, tuning: Tuning, bounds: Bounds) -> SledStore {
        SledStore::open_with(dir, tuning, bounds).unwrap()
    }

    fn reopen_tuned(dir: &Path, tuning: Tuning) -> SledStore {
        reopen_with(dir, tuning, Bounds::DEFAULT)
    }

    fn reopen(dir: &Path) -> SledStore {
        reopen_tuned(dir, Tuning::DEFAULT)
    }

    /// Checkpoints only at close.
    const NEVER_IDLE: Tuning = Tuning {
        idle: Duration::from_secs(3600),
        ..Tuning::DEFAULT
    };

    /// Checkpoints during the session after 64 KiB and a 20 ms pause.
    const EAGER: Tuning = Tuning {
        after_bytes: 64 * 1024,
        idle: Duration::from_millis(20),
        poll: Duration::from_millis(5),
    };

    fn put(s: &SledStore, key: &[u8], value: Vec<u8>) {
        let mut b = WriteBatch::new();
        b.put(key.to_vec(), value);
        s.apply(b).unwrap();
    }

    #[test]
    fn an_interrupted_batch_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            // What a crash after the journal write and the first operation leaves behind.
            let s = SledStore::open(dir.path()).unwrap();
            let db = raw(&s);
            db.insert(b"old", b"x").unwrap();
            let ops = vec![
                WriteOp::Put(b"a".to_vec(), b"1".to_vec()),
                WriteOp::Delete(b"old".to_vec()),
                WriteOp::Put(b"b".to_vec(), b"2".to_vec()),
            ];
            // A numbered entry (the earlier format), then the slot of a later batch that
            // rewrites one of its keys: replayed in that order.
            db.insert(journal::key(41), journal::encode(&ops)).unwrap();
            db.insert(b"a", b"1").unwrap();
            let later = vec![
                WriteOp::Put(b"b".to_vec(), b"3".to_vec()),
                WriteOp::Put(b"c".to_vec(), b"3".to_vec()),
            ];
            db.insert(journal::slot(), journal::encode(&later)).unwrap();
            db.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(b"old").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.get(b"c").unwrap(), Some(b"3".to_vec()));
        assert_eq!(raw(&s).scan_prefix(journal::PREFIX).count(), 0);
        assert!(!*s.shared.writes.lock().unwrap());
    }

    /// The names of sled's snapshot files in `dir` (`snap.<stable log offset, hex>`).
    fn snapshots(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("snap.") && !n.contains(".generating"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn closing_after_a_big_session_checkpoints_and_after_a_small_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let small = {
            let s = reopen_tuned(dir.path(), NEVER_IDLE);
            let mut b = WriteBatch::new();
            b.put(b"k0".to_vec(), vec![1; 1000]);
            b.put(b"k1".to_vec(), vec![2; 1000]);
            s.apply(b).unwrap();
            assert!(!s.shared.activity.due());
            snapshots(dir.path())
        };
        // A small session leaves the snapshot its open wrote.
        assert_eq!(snapshots(dir.path()), small);
        {
            let s = reopen_tuned(dir.path(), NEVER_IDLE);
            for i in 0..9u8 {
                put(&s, &[b'b', i], vec![i; 1024 * 1024]);
            }
            assert!(s.shared.activity.due());
            assert_eq!(s.checkpoints(), 0);
        }
        // The big one wrote a new snapshot at close, past everything it wrote.
        let after = snapshots(dir.path());
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(!small.contains(&after[0]), "{small:?} / {after:?}");
        let s = reopen(dir.path());
        assert_eq!(snapshots(dir.path()), after);
        assert_eq!(s.get(&[b'b', 8]).unwrap(), Some(vec![8; 1024 * 1024]));
        assert_eq!(s.get(b"k1").unwrap(), Some(vec![2; 1000]));
    }

    /// Waits until `s` did `n` checkpoints during its session; bounded in time, not in rounds
    /// (the idle timer's thread may wait long for a core on a loaded machine).
    fn await_checkpoints(s: &SledStore, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if s.checkpoints() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} checkpoints, expected {n}", s.checkpoints());
    }

    #[test]
    fn an_idle_store_checkpoints_during_the_session_and_a_kill_after_it_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let killed = tempfile::tempdir().unwrap();
        drop(reopen(dir.path()));
        // The second open of a database writes a snapshot.
        let s = reopen_tuned(dir.path(), EAGER);
        let at_open = snapshots(dir.path());
        assert_eq!(at_open.len(), 1, "{at_open:?}");
        // Under the amount: no checkpoint however idle.
        put(&s, b"a0", vec![0; 1024]);
        std::thread::sleep(EAGER.idle * 5);
        assert_eq!(s.checkpoints(), 0);
        for i in 1..80u8 {
            put(&s, &[b'a', i], vec![i; 1024]);
        }
        await_checkpoints(&s, 1);
        let after = snapshots(dir.path());
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0] > at_open[0], "{at_open:?} / {after:?}");
        assert_eq!(s.shared.activity.written(), 0);
        // The swapped database takes reads and writes as before.
        assert_eq!(s.get(&[b'a', 5]).unwrap(), Some(vec![5; 1024]));
        let mut b = WriteBatch::new();
        b.put(b"c".to_vec(), b"after".to_vec());
        b.delete(vec![b'a', 0]);
        s.apply(b).unwrap();
        s.flush().unwrap();
        // What a kill now leaves behind: the files as they are, with no close.
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), killed.path().join(e.file_name())).unwrap();
            }
        }
        let copy = reopen_tuned(killed.path(), NEVER_IDLE);
        assert_eq!(copy.get(b"c").unwrap(), Some(b"after".to_vec()));
        assert_eq!(copy.get(&[b'a', 0]).unwrap(), None);
        for i in 1..80u8 {
            assert_eq!(copy.get(&[b'a', i]).unwrap(), Some(vec![i; 1024]), "{i}");
        }
        // It started from the checkpoint's snapshot (and wrote its own, later one).
        assert!(snapshots(killed.path())[0] >= after[0]);
    }

    #[test]
    fn checkpoints_between_concurrent_batches_lose_and_reorder_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(reopen_tuned(dir.path(), EAGER));
        let writers: Vec<_> = (0..3u8)
            .map(|w| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..300u16 {
                        // Each batch overwrites the writer's counter and adds a row: a torn or
                        // lost batch shows as a counter without its row or the reverse.
                        let mut b = WriteBatch::new();
                        b.put(vec![b'n', w], i.to_be_bytes().to_vec());
                        let mut row = vec![b'r', w];
                        row.extend_from_slice(&i.to_be_bytes());
                        b.put(row, vec![w; 512]);
                        s.apply(b).unwrap();
                        if i % 50 == 49 {
                            // Pauses for the checkpoints to run in.
                            std::thread::sleep(EAGER.idle * 4);
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        await_checkpoints(&s, 1);
        for w in 0..3u8 {
            assert_eq!(
                s.get(&[b'n', w]).unwrap(),
                Some(299u16.to_be_bytes().to_vec())
            );
            let mut start = vec![b'r', w];
            let end = vec![b'r', w + 1];
            let rows = s.scan(&start, &end, false, 1000).unwrap();
            assert_eq!(rows.len(), 300, "writer {w}");
            start.extend_from_slice(&0u16.to_be_bytes());
            assert_eq!(rows[0].0, start);
        }
        // At most the slot, holding the last drain.
        s.flush().unwrap();
        let journal: Vec<_> = raw(&s)
            .scan_prefix(journal::PREFIX)
            .map(|e| e.unwrap().0.to_vec())
            .collect();
        assert!(journal.len() <= 1 && journal.iter().all(|k| *k == journal::slot()));
    }

    #[test]
    fn a_batch_leaves_its_slot_until_a_single_write_and_a_reopen_replays_it_harmlessly() {
        let dir = tempfile::tempdir().unwrap();
        let slot = |s: &SledStore| raw(s).get(journal::slot()).unwrap().map(|v| v.to_vec());
        {
            let s =
                SledStore::open_with(dir.path(), Tuning::DEFAULT, Bounds::WRITE_THROUGH).unwrap();
            put(&s, b"a", b"0".to_vec());
            let mut b = WriteBatch::new();
            b.put(b"a".to_vec(), b"1".to_vec());
            b.put(b"b".to_vec(), b"2".to_vec());
            b.delete(b"a".to_vec());
            // Coalesced, in key order.
            let entry = journal::encode(&[
                WriteOp::Delete(b"a".to_vec()),
                WriteOp::Put(b"b".to_vec(), b"2".to_vec()),
            ]);
            s.apply(b).unwrap();
            assert_eq!(s.get(b"a").unwrap(), None);
            assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
            assert_eq!(slot(&s), Some(entry));
            // A single write removes the slot first: a replay would undo it otherwise.
            put(&s, b"b", b"single".to_vec());
            assert_eq!(slot(&s), None);
            assert_eq!(raw(&s).scan_prefix(journal::PREFIX).count(), 0);
            let mut b = WriteBatch::new();
            b.put(b"c".to_vec(), b"3".to_vec());
            b.put(b"d".to_vec(), b"4".to_vec());
            s.apply(b).unwrap();
            assert!(slot(&s).is_some());
            s.flush().unwrap();
        }
        // The last batch is replayed at open, changing nothing, and the slot removed.
        let s = reopen(dir.path());
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"single".to_vec()));
        assert_eq!(s.get(b"c").unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.get(b"d").unwrap(), Some(b"4".to_vec()));
        assert_eq!(slot(&s), None);
    }

    /// Every key and value of `s` outside the journal.
    fn contents(s: &SledStore) -> Vec<Entry> {
        s.scan(b"", b"\xff", false, usize::MAX).unwrap()
    }

    #[test]
    fn a_drain_cut_after_any_raw_write_recovers_whole_drains() {
        let p = |k: &str, v: &str| WriteOp::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        let d = |k: &str| WriteOp::Delete(k.as_bytes().to_vec());
        let seed = vec![p("old", "0"), p("keep", "0"), p("msg", "0")];
        // The batches of one drain window: a transient outbox entry, rewrites, deletes of a
        // key sled has and of one it never had.
        let window = vec![
            vec![p("out", "1"), p("msg", "1"), p("conv", "1")],
            vec![d("out"), p("msg", "2"), d("never")],
            vec![d("old"), p("conv", "2")],
        ];
        let mut before = std::collections::BTreeMap::new();
        for op in &seed {
            if let WriteOp::Put(k, v) = op {
                before.insert(k.clone(), v.clone());
            }
        }
        let mut ov = Overlay::default();
        for ops in &window {
            ov.apply(ops.clone());
        }
        let frozen = ov.freeze().unwrap();
        let ops = overlay::drain_ops(&frozen, |k| Ok(before.contains_key(k))).unwrap();
        assert_eq!(
            ops,
            [p("conv", "2"), p("msg", "2"), d("old")],
            "one write per key, none for the transient one"
        );
        let mut after = before.clone();
        for op in &ops {
            match op {
                WriteOp::Put(k, v) => after.insert(k.clone(), v.clone()),
                WriteOp::Delete(k) => after.remove(k),
            };
        }
        let as_vec = |m: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<Entry> {
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let (raw_ops, _) = journal::plan(ops.clone(), false);
        assert_eq!(raw_ops.len(), 4, "the journal entry, then three writes");
        for n in 0..=raw_ops.len() {
            let dir = tempfile::tempdir().unwrap();
            {
                let s = SledStore::open(dir.path()).unwrap();
                let mut b = WriteBatch::new();
                for op in &seed {
                    if let WriteOp::Put(k, v) = op {
                        b.put(k.clone(), v.clone());
                    }
                }
                s.apply(b).unwrap();
                s.flush().unwrap();
                // A single write clears the seed's slot, so the drain is planned from `false`.
                put(&s, b"keep", b"0".to_vec());
                s.flush().unwrap();
                assert!(!*s.shared.writes.lock().unwrap());
                // What a crash after the drain's n-th raw write leaves behind.
                let db = raw(&s);
                let activity = Activity::new(Tuning::DEFAULT);
                for op in raw_ops[..n].iter().cloned() {
                    apply_op(&db, &activity, op).unwrap();
                }
                db.flush().unwrap();
            }
            let s = reopen(dir.path());
            let want = if n == 0 { &before } else { &after };
            assert_eq!(contents(&s), as_vec(want), "crash after raw write {n}");
        }
    }

    #[test]
    fn transient_writes_never_reach_sled_and_reads_see_them_until_drained() {
        let dir = tempfile::tempdir().unwrap();
        // Only the explicit flushes drain (no age-driven drain after a stall of the test thread).
        let bounds = Bounds {
            age: Duration::from_secs(3600),
            ..Bounds::DEFAULT
        };
        let s = reopen_with(dir.path(), Tuning::DEFAULT, bounds);
        put(&s, b"old", b"0".to_vec());
        s.flush().unwrap();
        let at_start = s.shared.activity.written();
        let mut b = WriteBatch::new();
        b.put(b"out".to_vec(), b"pending".to_vec());
        b.put(b"msg".to_vec(), b"v1".to_vec());
        s.apply(b).unwrap();
        let mut b = WriteBatch::new();
        b.delete(b"out".to_vec());
        b.put(b"msg".to_vec(), b"v2".to_vec());
        b.delete(b"never".to_vec());
        b.delete(b"old".to_vec());
        s.apply(b).unwrap();
        // Read before any drain: the overlay hides "old" and holds "msg".
        assert_eq!(s.get(b"msg").unwrap(), Some(b"v2".to_vec()));
        assert_eq!(s.get(b"old").unwrap(), None);
        assert_eq!(raw(&s).get(b"old").unwrap().as_deref(), Some(&b"0"[..]));
        assert_eq!(contents(&s), [(b"msg".to_vec(), b"v2".to_vec())]);
        s.flush().unwrap();
        // One drain: the journal entry, "msg" once, the delete of "old"; nothing of "out".
        let db = raw(&s);
        assert_eq!(db.get(b"out").unwrap(), None);
        assert_eq!(db.get(b"old").unwrap(), None);
        assert_eq!(db.get(b"msg").unwrap().as_deref(), Some(&b"v2"[..]));
        let entry = journal::encode(&[
            WriteOp::Put(b"msg".to_vec(), b"v2".to_vec()),
            WriteOp::Delete(b"old".to_vec()),
        ]);
        assert_eq!(
            s.shared.activity.written() - at_start,
            (journal::slot().len() + entry.len() + 3 + 2 + 3) as u64
        );
    }

    #[test]
    fn the_drainer_drains_by_age_and_the_writer_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            age: Duration::from_millis(20),
            entries: 3,
            bytes: 1 << 20,
        };
        let s = reopen_with(dir.path(), NEVER_IDLE, bounds);
        put(&s, b"a", b"1".to_vec());
        // Bounded in time, not in rounds: the one drainer serves every store of the process.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !raw(&s).contains_key(b"a").unwrap() {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(raw(&s).contains_key(b"a").unwrap(), "drained by age");
        let mut b = WriteBatch::new();
        for k in [b"w", b"x", b"y", b"z"] {
            b.put(k.to_vec(), b"2".to_vec());
        }
        s.apply(b).unwrap();
        // Four keys are past the bound: in sled when `apply` returns.
        assert!(raw(&s).contains_key(b"z").unwrap(), "drained by size");
    }

    #[test]
    fn reads_stay_exact_while_drains_run_concurrently() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            age: Duration::from_millis(1),
            entries: 16,
            bytes: 1 << 20,
        };
        let s = reopen_with(dir.path(), EAGER, bounds);
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut model = std::collections::BTreeMap::<Vec<u8>, Vec<u8>>::new();
        let key = |rng: &mut rand::rngs::StdRng| vec![b'k', rng.gen_range(0..40u8)];
        for step in 0..3000u32 {
            let mut b = WriteBatch::new();
            for _ in 0..rng.gen_range(1..5) {
                let k = key(&mut rng);
                if rng.gen_bool(0.3) {
                    model.remove(&k);
                    b.delete(k);
                } else {
                    let v = step.to_be_bytes().repeat(rng.gen_range(1..64));
                    model.insert(k.clone(), v.clone());
                    b.put(k, v);
                }
            }
            s.apply(b).unwrap();
            if step % 500 == 499 {
                s.flush().unwrap();
            }
            let k = key(&mut rng);
            assert_eq!(s.get(&k).unwrap(), model.get(&k).cloned(), "step {step}");
            let (a, z) = (key(&mut rng), key(&mut rng));
            if a < z {
                let reverse = rng.gen_bool(0.5);
                let limit = rng.gen_range(1..10);
                let r = model.range(a.clone()..z.clone());
                let r: Box<dyn Iterator<Item = _>> = if reverse {
                    Box::new(r.rev())
                } else {
                    Box::new(r)
                };
                let want: Vec<Entry> = r.take(limit).map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(s.scan(&a, &z, reverse, limit).unwrap(), want, "step {step}");
            }
        }
        s.flush().unwrap();
        drop(s);
        let s = reopen(dir.path());
        let want: Vec<Entry> = model.into_iter().collect();
        assert_eq!(contents(&s), want);
    }
}
