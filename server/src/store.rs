//! Durable storage behind a small ordered key-value trait.
//!
//! The server's data model (the key layout of [`crate::keys`]) needs only point reads, ordered
//! range scans and multi-key write batches, so that is all a backend must provide: sled
//! today ([`SledStore`]), a PostgreSQL-protocol table `(key bytea primary key, value bytea)` later.
//! [`MemStore`] is the in-memory backend; both run the same conformance suite.
//!
//! Writes come only from the commit module ([`crate::commit`]), which logs each group commit in
//! the write-ahead log ([`crate::wal`], one `fdatasync`), then applies it here; [`Store::flush`]
//! runs at checkpoints, after which the log is emptied.
//!
//! A batch need not be atomic here, and sled's is not used: its `apply_batch` costs ~90 µs of CPU
//! for a few keys against ~10 µs for the same keys as plain inserts (it seals a log buffer per
//! batch, and once used, makes every later read and write of the process take its batch lock).
//! Atomicity comes from the two layers around the store instead: no reader sees a batch being
//! applied, because the commit pipeline announces the batch at the read barrier before applying
//! it and every reader waits there until the store has it ([`crate::barrier`]); and a crash in
//! the middle of a batch leaves the whole batch in the write-ahead log, which the next start
//! replays from the top (puts and deletes of whole values, so replaying what was already applied
//! is harmless).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::StoreError;

pub mod idem_blocks;

pub use idem_blocks::IdemBlocks;

/// One write: `Some(value)` puts, `None` deletes.
pub type Op<'a> = (&'a [u8], Option<&'a [u8]>);

/// A key-value pair from a scan.
pub type Pair = (Vec<u8>, Vec<u8>);

/// An ordered byte-key store with write batches.
pub trait Store: Send + Sync + 'static {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` pairs with `start <= key < end`, ascending, or descending when `reverse`.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Pair>, StoreError>;
    /// Applies the writes in order. Concurrent readers may see part of the batch (the commit
    /// pipeline hides a batch being applied behind the read barrier), and a crash may leave part
    /// of it (the write-ahead log replays all of it).
    fn apply(&self, ops: &[Op<'_>]) -> Result<(), StoreError>;
    /// Makes every applied write durable (fsync).
    fn flush(&self) -> Result<(), StoreError>;
}

/// The server's store: sled, with the idempotency entries packed in blocks
/// ([`idem_blocks`]).
pub type SledStore = IdemBlocks<SledTree>;

impl SledStore {
    /// Opens (or creates) the store in `dir` with a page cache of `cache_bytes`
    /// ([`SledTree::open`]).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Ok(IdemBlocks::new(SledTree::open(dir, cache_bytes)?))
    }
}

/// The sled backend: one tree with an explicit small page cache.
pub struct SledTree {
    db: sled::Db,
}

impl SledTree {
    /// Opens (or creates) the store in `dir` with a page cache of `cache_bytes`.
    ///
    /// sled holds an exclusive lock on its files until its background threads have exited, which
    /// is shortly *after* the last handle is dropped (or after the previous server process
    /// exited); an open that finds the lock still taken is retried for up to [`LOCK_WAIT`].
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Durability comes from the commit task's explicit flush, not from a timer.
            .flush_every_ms(None);
        let started = Instant::now();
        loop {
            match config.open() {
                Ok(db) => return Ok(Self { db }),
                Err(e) if is_lock_held(&e) && started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// How long [`SledTree::open`] waits for another holder of the database's file lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// The pause between two attempts to take the lock.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Whether sled refused to open because another handle (in this process or another) still
/// holds the database's exclusive file lock. sled 0.34 reports it as an I/O error of kind
/// `Other` whose message starts with "could not acquire lock".
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

impl Store for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Pair>, StoreError> {
        let mut out = Vec::new();
        if start >= end || limit == 0 {
            return Ok(out);
        }
        let iter = self.db.range(start..end);
        let mut push = |item: sled::Result<(sled::IVec, sled::IVec)>| -> Result<bool, StoreError> {
            let (k, v) = item?;
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

    fn apply(&self, ops: &[Op<'_>]) -> Result<(), StoreError> {
        // Plain inserts, not `apply_batch` (the module doc says why that is safe and cheaper).
        for &(k, v) in ops {
            match v {
                Some(v) => self.db.insert(k, v)?,
                None => self.db.remove(k)?,
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// The in-memory backend (tests, and a reference for new backends).
#[derive(Default)]
pub struct MemStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-written (each op is one call),
        // so a poisoned lock is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Pair>, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let map = self.lock();
        let range = map.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)));
        let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if reverse {
            range.rev().take(limit).map(clone).collect()
        } else {
            range.take(limit).map(clone).collect()
        })
    }

    fn apply(&self, ops: &[Op<'_>]) -> Result<(), StoreError> {
        let mut map = self.lock();
        for &(k, v) in ops {
            match v {
                Some(v) => map.insert(k.to_vec(), v.to_vec()),
                None => map.remove(k),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The conformance suite every backend must pass: `store_conformance!(name, || make_store())`.
#[cfg(test)]
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn get_put_delete_and_scan_order() {
                let (_guard, store) = $make();
                assert_eq!(store.get(b"a").unwrap(), None);
                let ops: [(&[u8], Option<&[u8]>); 4] = [
                    (b"a1", Some(b"1")),
                    (b"a3", Some(b"3")),
                    (b"a2", Some(b"2")),
                    (b"b1", Some(b"x")),
                ];
                store.apply(&ops).unwrap();
                store.flush().unwrap();
                assert_eq!(store.get(b"a2").unwrap(), Some(b"2".to_vec()));
                let keys = |v: Vec<Pair>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
                assert_eq!(
                    keys(store.scan(b"a", b"b", 10, false).unwrap()),
                    vec![b"a1".to_vec(), b"a2".to_vec(), b"a3".to_vec()]
                );
                assert_eq!(
                    keys(store.scan(b"a", b"b", 2, true).unwrap()),
                    vec![b"a3".to_vec(), b"a2".to_vec()]
                );
                assert_eq!(store.scan(b"b", b"a", 10, false).unwrap(), vec![]);
                let a1: &[u8] = b"a1";
                let a2: &[u8] = b"a2";
                store.apply(&[(a2, None), (a1, Some(b"9"))]).unwrap();
                assert_eq!(store.get(b"a2").unwrap(), None);
                assert_eq!(
                    store.scan(b"a", b"b", 10, false).unwrap(),
                    vec![
                        (b"a1".to_vec(), b"9".to_vec()),
                        (b"a3".to_vec(), b"3".to_vec())
                    ]
                );
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sled_store() -> (tempfile::TempDir, Box<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        (dir, Box::new(store))
    }

    fn sled_tree() -> (tempfile::TempDir, Box<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledTree::open(dir.path(), 1 << 20).unwrap();
        (dir, Box::new(store))
    }

    fn mem_blocks() -> ((), Box<dyn Store>) {
        ((), Box::new(IdemBlocks::new(MemStore::default())))
    }

    fn mem_store() -> ((), Box<dyn Store>) {
        ((), Box::new(MemStore::default()))
    }

    store_conformance!(sled_backend, sled_store);
    store_conformance!(sled_tree_backend, sled_tree);
    store_conformance!(mem_blocks_backend, mem_blocks);
    store_conformance!(mem_backend, mem_store);

    #[test]
    fn sled_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path(), 1 << 20).unwrap();
            let k: &[u8] = b"k";
            s.apply(&[(k, Some(b"v"))]).unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    }
}
