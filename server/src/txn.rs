//! A write transaction of the commit task: staged writes over the store, read back by later
//! commands of the same group commit before anything is applied (read-your-writes), then applied
//! as one atomic batch.
//!
//! Change-log moves ("this conversation changed for this user") are collected with
//! [`Txn::touch`] and applied once per (user, conversation) at the end of the batch, so a burst of
//! messages in one conversation costs one log move, not one per message. Each touch is still a
//! change of its own: it gets its own change version ([`crate::change_log`]), answered by the
//! [`Touch`] ticket.
//!
//! The staging thread lends the transaction its read cache ([`Txn::with_cache`]): reads of the
//! small records every send needs are then answered from memory instead of the batches in flight
//! and the store ([`crate::read_cache`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::change_log::Touch;
use crate::error::StoreError;
use crate::read_cache::{self, ReadCache};
use crate::store::Store;

/// The writes of one batch: key → `Some(value)` (put) or `None` (delete).
pub type Staged = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// Staged writes over a store (and over earlier batches still being applied).
pub struct Txn<'a> {
    store: &'a dyn Store,
    /// Batches staged before this one and not yet applied, oldest first.
    layers: &'a [Arc<Staged>],
    staged: Staged,
    /// The touched triples in first-touch order, each with how many times it was touched.
    touched: Vec<(u64, String, Vec<u8>, u32)>,
    /// The touched triples, encoded as one key each → their index in `touched`.
    touched_set: HashMap<Vec<u8>, u32>,
    /// Messages stored by this transaction for the cloud search index: (app, conv, seq,
    /// searchable text), in append order ([`crate::search_index::Memory`]).
    indexed: Vec<(u64, Vec<u8>, u64, String)>,
    /// The staging thread's read cache, when lent ([`Txn::with_cache`]).
    cache: Option<RefCell<ReadCache>>,
}

impl<'a> Txn<'a> {
    /// An empty transaction over `store` and the not-yet-applied batches `layers` (oldest
    /// first).
    pub fn new(store: &'a dyn Store, layers: &'a [Arc<Staged>]) -> Self {
        Self {
            store,
            layers,
            staged: HashMap::new(),
            touched: Vec::new(),
            touched_set: HashMap::new(),
            indexed: Vec::new(),
            cache: None,
        }
    }

    /// Lends the transaction `cache`, which holds values as of every batch staged before this
    /// one (taken back with [`Txn::into_parts`]).
    pub fn with_cache(mut self, cache: ReadCache) -> Self {
        self.cache = Some(RefCell::new(cache));
        self
    }

    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.staged.get(key) {
            return Ok(v.clone());
        }
        let Some(cache) = self.cache.as_ref().filter(|_| read_cache::cacheable(key)) else {
            return self.read_through(key);
        };
        if let Some(v) = cache.borrow_mut().get(key) {
            return Ok(v);
        }
        let v = self.read_through(key)?;
        cache.borrow_mut().fill(key.to_vec(), v.clone());
        Ok(v)
    }

    /// The write of `key` staged by this transaction, if any (`Some(None)`: a delete).
    pub fn get_staged(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.staged.get(key)
    }

    /// The keys in `[lo, hi)` that the batches in flight or this transaction write (puts and
    /// deletes alike), and up to `limit` keys of the store in that range.
    pub fn keys_in(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let within = |k: &&Vec<u8>| k.as_slice() >= lo && k.as_slice() < hi;
        let mut keys: Vec<Vec<u8>> = self
            .store
            .scan(lo, hi, limit, false)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for layer in self.layers.iter().map(|l| &**l).chain([&self.staged]) {
            keys.extend(layer.keys().filter(within).cloned());
        }
        Ok(keys)
    }

    /// The value of `key` in the batches in flight (newest first), else in the store.
    fn read_through(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.get(key) {
                return Ok(v.clone());
            }
        }
        self.store.get(key)
    }

    /// A u64 value (big-endian), 0 when absent.
    pub fn get_u64(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .get(key)?
            .and_then(|v| crate::keys::be_u64(&v, 0))
            .unwrap_or(0))
    }

    /// Stages a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.staged.insert(key, Some(value));
    }

    /// Stages a delete.
    pub fn del(&mut self, key: Vec<u8>) {
        self.staged.insert(key, None);
    }

    /// Records that `conv` changed for `user` of `app` (applied by the commit task at the end of
    /// the batch, once per triple, in first-touch order). Answers the change's ticket: its change
    /// version once the batch's log moves are made ([`crate::change_log::Versions`]).
    pub fn touch(&mut self, app: u64, user: &str, conv: &[u8]) -> Touch {
        let mut k = Vec::with_capacity(10 + user.len() + conv.len());
        k.extend_from_slice(&app.to_be_bytes());
        k.push(user.len() as u8);
        k.extend_from_slice(user.as_bytes());
        k.extend_from_slice(conv);
        match self.touched_set.get(&k) {
            Some(&index) => {
                let entry = &mut self.touched[index as usize];
                let slot = entry.3;
                entry.3 += 1;
                Touch { index, slot }
            }
            None => {
                let index = self.touched.len() as u32;
                self.touched_set.insert(k, index);
                self.touched.push((app, user.to_owned(), conv.to_vec(), 1));
                Touch { index, slot: 0 }
            }
        }
    }

    /// Records that the message at `seq` of `conv` with searchable `text` was stored (for the
    /// cloud search index, which takes them with [`Txn::take_indexed`]).
    pub fn index(&mut self, app: u64, conv: &[u8], seq: u64, text: String) {
        self.indexed.push((app, conv.to_vec(), seq, text));
    }

    /// Takes what [`Txn::index`] recorded, in order.
    pub fn take_indexed(&mut self) -> Vec<(u64, Vec<u8>, u64, String)> {
        std::mem::take(&mut self.indexed)
    }

    /// Takes the touched (app, user, conv) triples with their touch counts, in first-touch order
    /// (a [`Touch`]'s `index` is its position here).
    pub fn take_touched(&mut self) -> Vec<(u64, String, Vec<u8>, u32)> {
        self.touched_set.clear();
        std::mem::take(&mut self.touched)
    }

    /// Whether anything is staged (writes or touches).
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty() && self.touched.is_empty()
    }

    /// Number of staged writes (a savepoint for [`Txn::len`]-based checks).
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// The staged writes.
    pub fn into_staged(self) -> Staged {
        self.staged
    }

    /// The staged writes and the read cache lent with [`Txn::with_cache`].
    pub fn into_parts(self) -> (Staged, Option<ReadCache>) {
        (self.staged, self.cache.map(RefCell::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn reads_see_staged_then_inflight_layers_then_the_store() {
        let store = MemStore::default();
        let k: &[u8] = b"k";
        store
            .apply(&[(k, Some(b"store")), (b"only-store", Some(b"s"))])
            .unwrap();
        let older: Staged = [(b"k".to_vec(), Some(b"older".to_vec()))].into();
        let newer: Staged = [(b"k".to_vec(), Some(b"newer".to_vec()))].into();
        let deleted: Staged = [(b"only-store".to_vec(), None)].into();
        let layers = vec![Arc::new(older), Arc::new(newer), Arc::new(deleted)];
        let mut txn = Txn::new(&store, &layers);
        assert_eq!(txn.get(b"k").unwrap(), Some(b"newer".to_vec()));
        assert_eq!(txn.get(b"only-store").unwrap(), None);
        txn.put(b"k".to_vec(), b"mine".to_vec());
        assert_eq!(txn.get(b"k").unwrap(), Some(b"mine".to_vec()));
        assert_eq!(txn.touch(1, "u", b"c"), Touch { index: 0, slot: 0 });
        assert_eq!(txn.touch(1, "v", b"c"), Touch { index: 1, slot: 0 });
        assert_eq!(txn.touch(1, "u", b"c"), Touch { index: 0, slot: 1 });
        assert_eq!(
            txn.take_touched(),
            vec![
                (1, "u".to_owned(), b"c".to_vec(), 2),
                (1, "v".to_owned(), b"c".to_vec(), 1)
            ]
        );
        assert_eq!(txn.into_staged().len(), 1);
    }
}
