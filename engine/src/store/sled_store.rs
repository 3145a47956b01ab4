//! The sled backend: one database per `<data_dir>/<sdk_app_id>/<user_id>/`, one tree, tables as
//! key prefixes so that a [`WriteBatch`] is one atomic `apply_batch`.

use std::path::Path;

use super::{Entry, Store, StoreError, WriteBatch, WriteOp};

/// sled's default page cache is 1 GiB; an engine embedded in a game must stay small.
const CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;
/// Background flush period: a crash loses at most this much of the newest writes.
const FLUSH_EVERY_MS: u64 = 200;

/// A [`Store`] over one sled database.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
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
        Ok(Self { db })
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
        let mut b = sled::Batch::default();
        for op in batch.ops {
            match op {
                WriteOp::Put(k, v) => b.insert(k, v),
                WriteOp::Delete(k) => b.remove(k),
            }
        }
        self.db.apply_batch(b).map_err(backend)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(backend)
    }
}
