//! A write transaction of the commit task: staged writes over the store, read back by later
//! commands of the same group commit before anything is applied (read-your-writes), then applied
//! as one atomic batch.

use std::collections::HashMap;

use crate::error::StoreError;
use crate::store::{Op, Store};

/// Staged writes over a store.
pub struct Txn<'a> {
    store: &'a dyn Store,
    staged: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    /// An empty transaction over `store`.
    pub fn new(store: &'a dyn Store) -> Self {
        Self {
            store,
            staged: HashMap::new(),
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

    /// Whether anything is staged.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
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
