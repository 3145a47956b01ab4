//! The sled backend: one database per `<data_dir>/<sdk_app_id>/<user_id>/`, one tree, tables as
//! key prefixes. A [`WriteBatch`] of several operations is atomic through the store's own redo
//! journal ([`super::journal`]), never through `sled::Batch` (see there why).
//!
//! **Checkpoint at close.** sled 0.34 recovers by reading its whole log from the last snapshot,
//! and writes a snapshot only when a database is opened: the next open after a session that wrote
//! a lot (a first sync of a big account, a day of chatting) reads all of it again — for 100,000
//! messages about 300 ms of the app's cold start (docs/performance.md). So closing a store that
//! took more than [`CHECKPOINT_AFTER_BYTES`] in this session opens the closed database once more,
//! which writes the snapshot then, at logout / `un_init_sdk`, not at the next start. A process
//! that is killed skips it; its next open recovers as before (correct, only slower).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Entry, Store, StoreError, WriteBatch, WriteOp, journal};

/// sled's default page cache is 1 GiB; an engine embedded in a game must stay small.
const CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;
/// Background flush period: a crash loses at most this much of the newest writes.
const FLUSH_EVERY_MS: u64 = 200;
/// Keys and values written in a session above which closing the store checkpoints it (recovering
/// this much costs the next open some 25 ms; below it the close stays instant).
const CHECKPOINT_AFTER_BYTES: u64 = 8 * 1024 * 1024;
/// How long the checkpoint waits for sled to release the database just closed.
const CHECKPOINT_LOCK_WAIT: Duration = Duration::from_secs(2);

/// A [`Store`] over one sled database.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// Number of the next journal entry.
    next_journal: AtomicU64,
    /// Declared after `db`, so dropped after it: reopens the closed database when due.
    checkpoint: Checkpoint,
}

/// The checkpoint at close (module doc): what this session wrote, and where.
#[derive(Debug)]
struct Checkpoint {
    dir: PathBuf,
    /// Bytes of keys and values written since open.
    written: AtomicU64,
}

impl Checkpoint {
    fn due(&self) -> bool {
        self.written.load(Ordering::Relaxed) > CHECKPOINT_AFTER_BYTES
    }
}

impl Drop for Checkpoint {
    /// Runs after the database handle was dropped: opening it again makes sled recover the
    /// session's log once and write a snapshot past it.
    fn drop(&mut self) {
        if !self.due() {
            return;
        }
        let t = Instant::now();
        // sled's background threads may hold the database's lock a moment after the drop.
        while t.elapsed() < CHECKPOINT_LOCK_WAIT {
            match config(&self.dir).open() {
                Ok(db) => {
                    drop(db);
                    tracing::debug!(
                        "store checkpoint of {} ({} bytes written) in {:?}",
                        self.dir.display(),
                        self.written.load(Ordering::Relaxed),
                        t.elapsed()
                    );
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        tracing::info!(
            "store checkpoint of {} skipped: still locked",
            self.dir.display()
        );
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The one sled configuration of an engine store.
fn config(dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY_BYTES)
        .flush_every_ms(Some(FLUSH_EVERY_MS))
        .mode(sled::Mode::HighThroughput)
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let t = Instant::now();
        let db = config(dir).open().map_err(backend)?;
        let store = Self {
            db,
            next_journal: AtomicU64::new(0),
            checkpoint: Checkpoint {
                dir: dir.to_path_buf(),
                written: AtomicU64::new(0),
            },
        };
        let last = store.replay_journal()?;
        store.next_journal.store(last + 1, Ordering::Relaxed);
        tracing::debug!("store {} opened in {:?}", dir.display(), t.elapsed());
        Ok(store)
    }

    fn apply_op(&self, op: WriteOp) -> Result<(), StoreError> {
        let size = match &op {
            WriteOp::Put(k, v) => k.len() + v.len(),
            WriteOp::Delete(k) => k.len(),
        };
        self.checkpoint
            .written
            .fetch_add(size as u64, Ordering::Relaxed);
        match op {
            WriteOp::Put(k, v) => self.db.insert(k, v).map(drop),
            WriteOp::Delete(k) => self.db.remove(k).map(drop),
        }
        .map_err(backend)
    }

    /// Finishes every batch a crash interrupted, in order; answers the highest journal number
    /// seen (0 if none).
    fn replay_journal(&self) -> Result<u64, StoreError> {
        let mut last = 0;
        for item in self.db.scan_prefix(journal::PREFIX) {
            let (key, value) = item.map_err(backend)?;
            last = last.max(journal::number(&key).unwrap_or(0));
            for op in journal::decode(&key, &value)? {
                self.apply_op(op)?;
            }
            self.db.remove(key).map_err(backend)?;
        }
        Ok(last)
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(backend)?.map(|v| v.to_vec()))
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
        let iter = self.db.range(start..end);
        let mut out = Vec::new();
        let mut push = |item: sled::Result<(sled::IVec, sled::IVec)>| -> Result<bool, StoreError> {
            let (k, v) = item.map_err(backend)?;
            out.push((k.to_vec(), v.to_vec()));
            Ok(out.len() < limit)
        };
        if reverse {
            for item in iter.rev() {
                if !push(item)? {
                    break;
                }
            }
        } else {
            for item in iter {
                if !push(item)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut ops = batch.ops;
        if ops.len() <= 1 {
            return ops.pop().map_or(Ok(()), |op| self.apply_op(op));
        }
        let key = journal::key(self.next_journal.fetch_add(1, Ordering::Relaxed));
        let entry = journal::encode(&ops);
        self.checkpoint
            .written
            .fetch_add(entry.len() as u64, Ordering::Relaxed);
        self.db.insert(key.as_slice(), entry).map_err(backend)?;
        for op in ops {
            self.apply_op(op)?;
        }
        self.db.remove(key).map_err(backend)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(backend)
    }
}

impl Drop for SledStore {
    /// Everything applied reaches the log before a checkpoint reads it.
    fn drop(&mut self) {
        if self.checkpoint.due()
            && let Err(e) = self.db.flush()
        {
            tracing::warn!("store flush before checkpoint: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens again a database just dropped: sled's flusher thread may hold its lock a moment.
    fn reopen(dir: &Path) -> SledStore {
        for _ in 0..100 {
            if let Ok(s) = SledStore::open(dir) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        SledStore::open(dir).unwrap()
    }

    #[test]
    fn an_interrupted_batch_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            // What a crash after the journal write and the first operation leaves behind.
            let s = SledStore::open(dir.path()).unwrap();
            s.db.insert(b"old", b"x").unwrap();
            let ops = vec![
                WriteOp::Put(b"a".to_vec(), b"1".to_vec()),
                WriteOp::Delete(b"old".to_vec()),
                WriteOp::Put(b"b".to_vec(), b"2".to_vec()),
            ];
            s.db.insert(journal::key(41), journal::encode(&ops))
                .unwrap();
            s.db.insert(b"a", b"1").unwrap();
            s.db.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(b"old").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.db.scan_prefix(journal::PREFIX).count(), 0);
        // Numbering goes on after the highest entry seen.
        assert_eq!(s.next_journal.load(Ordering::Relaxed), 42);
    }

    /// The names of sled's snapshot files in `dir`.
    fn snapshots(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("snap.") && !n.ends_with(".in___motion"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn closing_after_a_big_session_checkpoints_and_after_a_small_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let small = {
            let s = reopen(dir.path());
            let mut b = WriteBatch::new();
            b.put(b"k0".to_vec(), vec![1; 1000]);
            b.put(b"k1".to_vec(), vec![2; 1000]);
            s.apply(b).unwrap();
            assert!(!s.checkpoint.due());
            snapshots(dir.path())
        };
        // A small session leaves the snapshot its open wrote.
        assert_eq!(snapshots(dir.path()), small);
        {
            let s = reopen(dir.path());
            for i in 0..9u8 {
                let mut b = WriteBatch::new();
                b.put(vec![b'b', i], vec![i; 1024 * 1024]);
                s.apply(b).unwrap();
            }
            assert!(s.checkpoint.due());
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

    #[test]
    fn a_batch_leaves_no_journal_entry() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let mut b = WriteBatch::new();
        b.put(b"a".to_vec(), b"1".to_vec());
        b.put(b"b".to_vec(), b"2".to_vec());
        b.delete(b"a".to_vec());
        s.apply(b).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.db.scan_prefix(journal::PREFIX).count(), 0);
    }
}
