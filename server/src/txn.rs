//! A write transaction of the commit task: staged writes over the store, read back by later
//! commands of the same group commit before anything is applied (read-your-writes), then applied
//! as one atomic batch.
//!
//! Change-log moves ("this conversation changed for this user") are collected with
//! [`Txn::touch`] and applied once per (user, conversation) at the end of the batch, so a burst of
//! messages in one conversation costs one log move, not one per message.

use std::collections::{HashMap, HashSet};

use crate::error::StoreError;
use crate::store::{Op, Store};

/// Staged writes over a store.
pub struct Txn<'a> {
    store: &'a dyn Store,
    staged: HashMap<Vec<u8>, Option<Vec<u8>>>,
    touched: Vec<(u64, String, Vec<u8>)>,
    touched_set: HashSet<(u64, String, Vec<u8>)>,
}

impl<'a> Txn<'a> {
    /// An empty transaction over `store`.
    pub fn new(store: &'a dyn Store) -> Self {
        Self {
            store,
            staged: HashMap::new(),
            touched: Vec::new(),
            touched_set: HashSet::new(),
        }
    }

    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.staged.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store.get(key),
        }
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
    /// the batch, once per triple, in first-touch order).
    pub fn touch(&mut self, app: u64, user: &str, conv: &[u8]) {
        let t = (app, user.to_owned(), conv.to_vec());
        if self.touched_set.insert(t.clone()) {
            self.touched.push(t);
        }
    }

    /// Takes the touched (app, user, conv) triples.
    pub fn take_touched(&mut self) -> Vec<(u64, String, Vec<u8>)> {
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

    /// The staged writes, for [`Store::apply`].
    pub fn into_ops(self) -> Vec<Op> {
        self.staged.into_iter().collect()
    }
}
