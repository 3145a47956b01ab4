//! The staging thread's write-through read cache of the small records every send reads.
//!
//! Staging a C2C message reads the conversation head (`H`), the sender's profile (stamped on the
//! message), the receiver's block list entry for the sender, the receiver's receive option (`o`),
//! the conversation's search mark (`i`), and at the end of the batch the change-log cursor and
//! version (`C`, `V`) of both users. Each read that misses the batch's own writes walks the
//! batches in flight and then sled: a tree walk and the epoch garbage it leaves, several times
//! per message. These records change rarely (or, like the head, once per conversation per batch)
//! and are read again and again, so the staging thread keeps them.
//!
//! **Why it cannot go stale.** The staging thread is the only writer of the store at run time
//! (every mutation is an [`crate::commit::Op`] staged on it; the apply thread applies exactly the
//! staged batches; the write-ahead log is replayed before the pipeline starts). The cache holds
//! each key's value *as of every batch staged so far*: a read of the current batch looks at the
//! batch's own writes first ([`crate::txn::Txn::get`]), then here, then the batches in flight
//! and the store (and fills the cache from there); when a batch has been staged in full,
//! [`ReadCache::absorb`] writes its puts and deletes into every cached key they touch. A batch
//! whose writes are refused is not absorbed, and the pipeline clears the cache when it stops
//! taking writes (fail-stop). A restart starts cold and reads through.
//!
//! **Bounded.** Two generations: entries are filled into the young one; a hit in the old one
//! moves the entry to the young one; when the young one holds [`GENERATION_ENTRIES`] entries or
//! [`GENERATION_BYTES`] bytes the old one is dropped and the young one becomes old. So the
//! records in use stay, and at most two generations' worth are held.

use std::collections::HashMap;

use crate::keys::tag;

/// Most entries in one generation.
pub const GENERATION_ENTRIES: usize = 50_000;

/// Most key and value bytes in one generation.
pub const GENERATION_BYTES: usize = 8 << 20;

/// Bytes counted per entry besides its key and value (the map's slot and the vector headers).
const ENTRY_OVERHEAD: usize = 64;

/// A cached value: `None` records that the key is absent.
type Value = Option<Vec<u8>>;

/// One generation of entries and its size in bytes.
#[derive(Debug, Default)]
struct Generation {
    map: HashMap<Vec<u8>, Value>,
    bytes: usize,
}

impl Generation {
    fn cost(key: &[u8], value: &Value) -> usize {
        key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
    }

    fn insert(&mut self, key: Vec<u8>, value: Value) {
        let key_len = key.len();
        self.bytes += Self::cost(&key, &value);
        if let Some(old) = self.map.insert(key, value) {
            // The key was there: it is counted once, with its new value.
            self.bytes -= key_len + old.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD;
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<Value> {
        let (k, v) = self.map.remove_entry(key)?;
        self.bytes -= Self::cost(&k, &v);
        Some(v)
    }
}

/// Whether reads of `key` are cached: the heads, change-log cursors and versions, accounts,
/// receive options, search marks, and the relationship records read on every send (profiles and
/// block-list entries).
pub fn cacheable(key: &[u8]) -> bool {
    match key.first() {
        Some(&(tag::HEAD | tag::CURSOR | tag::VER | tag::USER | tag::RECV_OFF)) => true,
        Some(&tag::SEARCH_QUEUE) => true,
        Some(&tag::RELATION) => crate::relations::keys::read_on_send(key),
        _ => false,
    }
}

/// The cache (see the module documentation).
#[derive(Debug, Default)]
pub struct ReadCache {
    young: Generation,
    old: Generation,
    hits: u64,
    misses: u64,
}

impl ReadCache {
    /// The cached value of `key`: `Some(None)` when it is known to be absent, `None` when it is
    /// not cached.
    pub fn get(&mut self, key: &[u8]) -> Option<Value> {
        if let Some(v) = self.young.map.get(key) {
            self.hits += 1;
            return Some(v.clone());
        }
        match self.old.remove(key) {
            Some(v) => {
                self.hits += 1;
                self.fill(key.to_vec(), v.clone());
                Some(v)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Records the value of `key` as read through to the batches in flight and the store.
    pub fn fill(&mut self, key: Vec<u8>, value: Value) {
        if self.young.map.len() >= GENERATION_ENTRIES || self.young.bytes >= GENERATION_BYTES {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    /// Writes a staged batch's puts (`Some`) and deletes (`None`) into the keys cached.
    pub fn absorb<'k>(&mut self, writes: impl IntoIterator<Item = (&'k [u8], &'k Value)>) {
        if self.is_empty() {
            return;
        }
        for (key, value) in writes {
            if !cacheable(key) {
                continue;
            }
            if let Some(slot) = self.young.map.get_mut(key) {
                let before = slot.as_ref().map_or(0, Vec::len);
                let after = value.as_ref().map_or(0, Vec::len);
                slot.clone_from(value);
                self.young.bytes = self.young.bytes + after - before;
            } else if self.old.map.contains_key(key) {
                self.old.remove(key);
                self.fill(key.to_vec(), value.clone());
            }
        }
    }

    /// Forgets everything (the pipeline stopped taking writes).
    pub fn clear(&mut self) {
        self.young = Generation::default();
        self.old = Generation::default();
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.young.map.is_empty() && self.old.map.is_empty()
    }

    /// Number of entries held (both generations).
    pub fn len(&self) -> usize {
        self.young.map.len() + self.old.map.len()
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;

    fn head(conv: &str) -> Vec<u8> {
        Key::new(tag::HEAD, 1).s(conv.as_bytes()).done()
    }

    #[test]
    fn only_the_send_path_records_are_cacheable() {
        assert!(cacheable(&head("c")));
        assert!(cacheable(&Key::new(tag::CURSOR, 1).s(b"u").done()));
        assert!(cacheable(&crate::relations::keys::profile(1, "u")));
        assert!(cacheable(&crate::relations::keys::black(1, "u", "v")));
        assert!(!cacheable(&crate::relations::keys::friend(1, "u", "v")));
        assert!(!cacheable(&Key::new(tag::MSG, 1).s(b"c").n(1).done()));
        assert!(!cacheable(&Key::new(tag::IDEM, 1).s(b"u").s(b"m").done()));
        assert!(!cacheable(&[]));
    }

    #[test]
    fn absorb_updates_and_deletes_cached_keys_only() {
        let mut c = ReadCache::default();
        c.fill(head("a"), Some(vec![1]));
        c.fill(head("b"), None);
        let writes: Vec<(Vec<u8>, Value)> = vec![
            (head("a"), None),
            (head("b"), Some(vec![2])),
            (head("c"), Some(vec![3])),
        ];
        c.absorb(writes.iter().map(|(k, v)| (k.as_slice(), v)));
        assert_eq!(c.get(&head("a")), Some(None));
        assert_eq!(c.get(&head("b")), Some(Some(vec![2])));
        // Not read before: not cached (the next read fills it from the batches in flight).
        assert_eq!(c.get(&head("c")), None);
        assert_eq!(c.counts(), (2, 1));
    }

    #[test]
    fn generations_bound_the_entries_and_keep_what_is_used() {
        let mut c = ReadCache::default();
        c.fill(head("kept"), Some(vec![7]));
        for i in 0..GENERATION_ENTRIES {
            c.fill(head(&format!("x{i}")), None);
        }
        // "kept" is in the old generation now; a hit moves it to the young one.
        assert_eq!(c.get(&head("kept")), Some(Some(vec![7])));
        for i in 0..GENERATION_ENTRIES {
            c.fill(head(&format!("y{i}")), None);
        }
        assert!(c.len() <= 2 * GENERATION_ENTRIES);
        assert_eq!(c.get(&head("kept")), Some(Some(vec![7])));
        // The first filler generation is gone.
        assert_eq!(c.get(&head("x0")), None);
        // A write to a key of the old generation lands in the young one.
        let w: Vec<(Vec<u8>, Value)> = vec![(head("y0"), Some(vec![9]))];
        c.absorb(w.iter().map(|(k, v)| (k.as_slice(), v)));
        assert_eq!(c.get(&head("y0")), Some(Some(vec![9])));
    }

    #[test]
    fn bytes_are_counted_once_per_key() {
        let mut c = ReadCache::default();
        c.fill(head("a"), Some(vec![0; 100]));
        let one = c.young.bytes;
        c.fill(head("a"), Some(vec![0; 10]));
        assert_eq!(c.young.bytes, one - 90);
        let w: Vec<(Vec<u8>, Value)> = vec![(head("a"), None)];
        c.absorb(w.iter().map(|(k, v)| (k.as_slice(), v)));
        assert_eq!(c.young.bytes, one - 100);
        c.clear();
        assert!(c.is_empty());
    }
}
