//! The engine's local store, behind a small trait so that sled can be replaced (SQLite, say)
//! without touching the actors.
//!
//! The trait is split by access pattern: point reads ([`Store::get`]), ordered range scans
//! ([`Store::scan`]) and batched writes applied atomically ([`Store::apply`]). Every logical table
//! is a key prefix (see [`keys`]); each actor writes only its own prefixes, so "the only writer of
//! its trees" holds while one batch stays atomic. Two backends: [`SledStore`] (one database per
//! `<data_dir>/<sdk_app_id>/<user_id>/`, explicit small cache, a write-behind overlay in front:
//! `sled_store`'s module doc says when it drains and what a crash can lose) and [`MemoryStore`];
//! both run the same conformance suite (`store_conformance!`), the sled store with its overlay
//! and written through.

mod checkpoint;
mod drainer;
pub(crate) mod fields;
mod journal;
pub mod keys;
mod memory;
mod overlay;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::{SledStore, WriteCounts, write_counts};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend reported an error.
    #[error("store backend: {0}")]
    Backend(String),
    /// A stored value could not be decoded.
    #[error("corrupt value under {key}: {reason}")]
    Corrupt {
        /// The key, printed lossily.
        key: String,
        /// The decoder's complaint.
        reason: String,
    },
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or overwrite.
    Put(Vec<u8>, Vec<u8>),
    /// Remove (no-op when absent).
    Delete(Vec<u8>),
}

/// A change set applied atomically by [`Store::apply`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
    /// Index in `ops` of the put that [`WriteBatch::gather`] appends to.
    gathered: Option<usize>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(WriteOp::Put(key, value));
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push(WriteOp::Delete(key));
    }

    /// Appends to the value of the batch's one *gathering* put, adding that put under `key()`
    /// on the first call: several writers of one batch share one key instead of a key each (the
    /// search index queues every message a batch stores under one entry,
    /// `crate::search_index::Memory::stage_add`). Only one gathering put per batch.
    pub fn gather(&mut self, key: impl FnOnce() -> Vec<u8>, append: impl FnOnce(&mut Vec<u8>)) {
        let i = match self.gathered {
            Some(i) => i,
            None => {
                self.ops.push(WriteOp::Put(key(), Vec::new()));
                let i = self.ops.len() - 1;
                self.gathered = Some(i);
                i
            }
        };
        if let Some(WriteOp::Put(_, v)) = self.ops.get_mut(i) {
            append(v);
        }
    }

    /// Whether the batch holds no writes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The writes, in order (a later write to a key wins).
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }
}

/// A key/value pair read from the store.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered key/value store.
pub trait Store: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` entries with `start <= key < end`, ascending, or descending when `reverse`.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
    /// Applies every write of `batch`, all or nothing.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// The conformance suite every [`Store`] backend runs: `store_conformance!(mod_name, || store)`.
#[cfg(test)]
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            use $crate::store::{Store, WriteBatch};

            fn batch(puts: &[(&str, &str)]) -> WriteBatch {
                let mut b = WriteBatch::new();
                for (k, v) in puts {
                    b.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
                }
                b
            }

            fn keys(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<String> {
                entries
                    .into_iter()
                    .map(|(k, _)| String::from_utf8(k).unwrap())
                    .collect()
            }

            #[test]
            fn get_put_delete() {
                let (_guard, store) = $make();
                assert_eq!(store.get(b"a").unwrap(), None);
                store.apply(batch(&[("a", "1")])).unwrap();
                assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
                let mut b = WriteBatch::new();
                b.delete(b"a".to_vec());
                b.delete(b"missing".to_vec());
                store.apply(b).unwrap();
                assert_eq!(store.get(b"a").unwrap(), None);
            }

            #[test]
            fn later_write_in_a_batch_wins() {
                let (_guard, store) = $make();
                let mut b = batch(&[("k", "1"), ("k", "2")]);
                b.put(b"j".to_vec(), b"x".to_vec());
                b.delete(b"j".to_vec());
                store.apply(b).unwrap();
                assert_eq!(store.get(b"k").unwrap(), Some(b"2".to_vec()));
                assert_eq!(store.get(b"j").unwrap(), None);
            }

            #[test]
            fn scans_are_ordered_bounded_and_limited() {
                let (_guard, store) = $make();
                store
                    .apply(batch(&[
                        ("m1", ""),
                        ("m3", ""),
                        ("m2", ""),
                        ("n1", ""),
                        ("l9", ""),
                    ]))
                    .unwrap();
                assert_eq!(
                    keys(store.scan(b"m", b"n", false, 10).unwrap()),
                    ["m1", "m2", "m3"]
                );
                assert_eq!(
                    keys(store.scan(b"m", b"n", true, 10).unwrap()),
                    ["m3", "m2", "m1"]
                );
                assert_eq!(keys(store.scan(b"m", b"n", true, 2).unwrap()), ["m3", "m2"]);
                assert_eq!(keys(store.scan(b"m2", b"m3", false, 10).unwrap()), ["m2"]);
                assert!(store.scan(b"x", b"y", false, 10).unwrap().is_empty());
                assert!(store.scan(b"m", b"n", false, 0).unwrap().is_empty());
            }

            #[test]
            fn flush_keeps_data() {
                let (_guard, store) = $make();
                store.apply(batch(&[("z", "26")])).unwrap();
                store.flush().unwrap();
                assert_eq!(store.get(b"z").unwrap(), Some(b"26".to_vec()));
            }
        }
    };
}

#[cfg(test)]
mod conformance {
    store_conformance!(memory, || ((), crate::store::MemoryStore::new()));
    store_conformance!(sled, || {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        (dir, store)
    });
    store_conformance!(sled_write_through, || {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open_with(
            dir.path(),
            crate::store::checkpoint::Tuning::DEFAULT,
            crate::store::overlay::Bounds::WRITE_THROUGH,
        )
        .unwrap();
        (dir, store)
    });

    #[test]
    fn gathered_pieces_share_one_put() {
        use crate::store::{WriteBatch, WriteOp};
        let mut b = WriteBatch::new();
        b.put(b"a".to_vec(), b"1".to_vec());
        b.gather(|| b"g1".to_vec(), |v| v.extend_from_slice(b"x"));
        b.delete(b"b".to_vec());
        // The key of a later call is not asked for: the first call's put gathers.
        b.gather(|| unreachable!(), |v| v.extend_from_slice(b"y"));
        assert_eq!(
            b.ops(),
            [
                WriteOp::Put(b"a".to_vec(), b"1".to_vec()),
                WriteOp::Put(b"g1".to_vec(), b"xy".to_vec()),
                WriteOp::Delete(b"b".to_vec()),
            ]
        );
    }

    #[test]
    fn sled_data_survives_reopen() {
        use crate::store::{SledStore, Store, WriteBatch};
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            let mut b = WriteBatch::new();
            b.put(b"k".to_vec(), b"v".to_vec());
            s.apply(b).unwrap();
            s.flush().unwrap();
        }
        // sled's flusher thread may hold the lock a moment after the drop.
        let s = (0..100)
            .find_map(|_| {
                SledStore::open(dir.path())
                    .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(50)))
                    .ok()
            })
            .unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    }
}
