//! The sled backend: one database per `<data_dir>/<sdk_app_id>/<user_id>/`, one tree, tables as
//! key prefixes. A [`WriteBatch`] of several operations is atomic through the store's own redo
//! journal ([`super::journal`]), never through `sled::Batch` (see there why).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Entry, Store, StoreError, WriteBatch, WriteOp, journal};

/// sled's default page cache is 1 GiB; an engine embedded in a game must stay small.
const CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;
/// Background flush period: a crash loses at most this much of the newest writes.
const FLUSH_EVERY_MS: u64 = 200;

/// A [`Store`] over one sled database.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// Number of the next journal entry.
    next_journal: AtomicU64,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(backend)?;
        let store = Self {
            db,
            next_journal: AtomicU64::new(0),
        };
        let last = store.replay_journal()?;
        store.next_journal.store(last + 1, Ordering::Relaxed);
        Ok(store)
    }

    fn apply_op(&self, op: WriteOp) -> Result<(), StoreError> {
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
        self.db
            .insert(key.as_slice(), journal::encode(&ops))
            .map_err(backend)?;
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
