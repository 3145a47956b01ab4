//! Proof that a send is new without reading the store: the staging thread's set of each recent
//! sender's idempotency keys.
//!
//! Every send first looks up its idempotency entry (`I app sender msg_id`, [`crate::keys`]) to
//! answer a resend with the first answer. Almost every send is new, and a lookup of a key that is
//! not there still walks the batches in flight and the sled tree. So the staging thread keeps,
//! per sender, the hashes of **all** of the sender's idempotency keys: loaded on the sender's
//! first send (one prefix scan of the store plus the batches in flight), then kept up to date
//! with every staged batch ([`IdemFilter::absorb`]; the staging thread is the only writer, see
//! [`crate::read_cache`]). A hash that is not in the set proves the key absent; a hash in the set
//! (a resend, or a collision of the 64-bit hash) reads the store as before. So the filter never
//! answers "new" for a message it has seen: sends stay idempotent forever (ARCHITECTURE.md §3),
//! and the durable `I` entry is still written for every message.
//!
//! Bounded: a sender with more than [`SENDER_KEYS`] entries is remembered as such and read
//! through (loading it would scan too much); when the senders held count more than
//! [`TOTAL_KEYS`] entries, the least recently used are dropped and load again on their next send.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use crate::error::StoreError;
use crate::keys::{self, tag};
use crate::txn::Txn;

/// Most idempotency entries of one sender held (a sender with more is read through).
pub const SENDER_KEYS: usize = 4096;

/// Most entries held in all (each sender counts one besides its entries).
pub const TOTAL_KEYS: usize = 1 << 20;

/// What is known about one sender's idempotency entries.
#[derive(Debug)]
enum Sender {
    /// The hashes of every entry (the store's, the batches in flight's, the staged ones).
    Known { hashes: HashSet<u64>, used: u64 },
    /// More than [`SENDER_KEYS`] entries: not held.
    TooMany { used: u64 },
}

impl Sender {
    fn size(&self) -> usize {
        match self {
            Sender::Known { hashes, .. } => 1 + hashes.len(),
            Sender::TooMany { .. } => 1,
        }
    }

    fn used(&self) -> u64 {
        match self {
            Sender::Known { used, .. } | Sender::TooMany { used } => *used,
        }
    }
}

/// The per-sender sets (see the module documentation).
#[derive(Debug)]
pub struct IdemFilter {
    /// Key prefix `I app sender` → what is known.
    senders: HashMap<Vec<u8>, Sender>,
    hasher: RandomState,
    /// Sum of [`Sender::size`].
    total: usize,
    /// Counts lookups: the recency of a sender's last one.
    clock: u64,
    /// Most entries of one sender held ([`SENDER_KEYS`]).
    sender_keys: usize,
    /// Most entries held in all ([`TOTAL_KEYS`]).
    total_keys: usize,
}

impl Default for IdemFilter {
    fn default() -> Self {
        Self::with_limits(SENDER_KEYS, TOTAL_KEYS)
    }
}

/// The length of the `I app sender` prefix of an idempotency key.
fn sender_prefix_len(key: &[u8]) -> Option<usize> {
    if key.first() != Some(&tag::IDEM) {
        return None;
    }
    let len = 10 + usize::from(*key.get(9)?);
    (key.len() > len).then_some(len)
}

impl IdemFilter {
    /// An empty filter holding at most `sender_keys` entries of one sender and `total_keys` in
    /// all.
    pub fn with_limits(sender_keys: usize, total_keys: usize) -> Self {
        Self {
            senders: HashMap::new(),
            hasher: RandomState::new(),
            total: 0,
            clock: 0,
            sender_keys,
            total_keys,
        }
    }

    /// Whether the idempotency entry `key` is proven absent from the batches in flight and the
    /// store (the caller looks at the current batch's own writes first). `false` means "may be
    /// there": read it.
    pub fn proves_absent(&mut self, txn: &Txn<'_>, key: &[u8]) -> Result<bool, StoreError> {
        let Some(len) = sender_prefix_len(key) else {
            return Ok(false);
        };
        self.clock += 1;
        let clock = self.clock;
        let hash = self.hasher.hash_one(key);
        if let Some(sender) = self.senders.get_mut(&key[..len]) {
            return Ok(match sender {
                Sender::Known { hashes, used } => {
                    *used = clock;
                    !hashes.contains(&hash)
                }
                Sender::TooMany { used } => {
                    *used = clock;
                    false
                }
            });
        }
        let prefix = &key[..len];
        let found = txn.keys_in(prefix, &keys::prefix_end(prefix), self.sender_keys + 1)?;
        let hashes: HashSet<u64> = found.iter().map(|k| self.hasher.hash_one(k)).collect();
        let absent = !hashes.contains(&hash);
        let sender = if hashes.len() > self.sender_keys {
            Sender::TooMany { used: clock }
        } else {
            Sender::Known {
                hashes,
                used: clock,
            }
        };
        let proven = absent && matches!(sender, Sender::Known { .. });
        self.total += sender.size();
        self.senders.insert(prefix.to_vec(), sender);
        self.evict();
        Ok(proven)
    }

    /// Adds a staged batch's new idempotency entries to the senders held.
    pub fn absorb<'k>(
        &mut self,
        writes: impl IntoIterator<Item = (&'k [u8], &'k Option<Vec<u8>>)>,
    ) {
        for (key, value) in writes {
            if value.is_none() {
                // A delete leaves the hash: "may be there" is always safe.
                continue;
            }
            let Some(len) = sender_prefix_len(key) else {
                continue;
            };
            let Some(sender) = self.senders.get_mut(&key[..len]) else {
                continue;
            };
            let Sender::Known { hashes, used } = sender else {
                continue;
            };
            if hashes.insert(self.hasher.hash_one(key)) {
                self.total += 1;
            }
            if hashes.len() > self.sender_keys {
                self.total -= hashes.len();
                *sender = Sender::TooMany { used: *used };
            }
        }
        self.evict();
    }

    /// Drops the least recently used senders while more than `total_keys` entries are held.
    fn evict(&mut self) {
        if self.total <= self.total_keys {
            return;
        }
        let mut by_use: Vec<(u64, Vec<u8>)> = self
            .senders
            .iter()
            .map(|(k, s)| (s.used(), k.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, k) in by_use {
            if self.total <= self.total_keys / 4 * 3 {
                break;
            }
            if let Some(s) = self.senders.remove(&k) {
                self.total -= s.size();
            }
        }
    }

    /// Forgets everything (the pipeline stopped taking writes).
    pub fn clear(&mut self) {
        self.senders.clear();
        self.total = 0;
    }

    /// Number of senders held.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::Key;
    use crate::store::{MemStore, Store as _};
    use crate::txn::Staged;

    fn idem(sender: &str, msg_id: &str) -> Vec<u8> {
        Key::new(tag::IDEM, 1)
            .s(sender.as_bytes())
            .s(msg_id.as_bytes())
            .done()
    }

    fn absorb(f: &mut IdemFilter, keys: &[Vec<u8>]) {
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            keys.iter().map(|k| (k.clone(), Some(vec![1]))).collect();
        f.absorb(writes.iter().map(|(k, v)| (k.as_slice(), v)));
    }

    #[test]
    fn never_proves_absent_a_key_of_the_store_the_batches_in_flight_or_a_later_batch() {
        let store = MemStore::default();
        store.apply(&[(&idem("u", "stored"), Some(b"x"))]).unwrap();
        let inflight: Staged = [(idem("u", "flying"), Some(b"x".to_vec()))].into();
        let layers = vec![Arc::new(inflight)];
        let txn = Txn::new(&store, &layers);
        let mut f = IdemFilter::default();
        assert!(!f.proves_absent(&txn, &idem("u", "stored")).unwrap());
        assert!(!f.proves_absent(&txn, &idem("u", "flying")).unwrap());
        assert!(f.proves_absent(&txn, &idem("u", "new")).unwrap());
        // Another sender's key with the same id is another key.
        assert!(f.proves_absent(&txn, &idem("v", "stored")).unwrap());
        absorb(&mut f, &[idem("u", "new")]);
        assert!(!f.proves_absent(&txn, &idem("u", "new")).unwrap());
        assert_eq!(f.senders(), 2);
        // Not an idempotency key: never proven.
        assert!(
            !f.proves_absent(&txn, &Key::new(tag::HEAD, 1).s(b"c").done())
                .unwrap()
        );
    }

    #[test]
    fn a_sender_over_the_limit_is_read_through() {
        let store = MemStore::default();
        let keys: Vec<Vec<u8>> = (0..=SENDER_KEYS)
            .map(|i| idem("big", &i.to_string()))
            .collect();
        let ops: Vec<(&[u8], Option<&[u8]>)> = keys
            .iter()
            .map(|k| (k.as_slice(), Some(&b"x"[..])))
            .collect();
        store.apply(&ops).unwrap();
        let txn = Txn::new(&store, &[]);
        let mut f = IdemFilter::default();
        assert!(!f.proves_absent(&txn, &idem("big", "new")).unwrap());
        assert_eq!(f.total, 1);

        // A sender that grows past the limit stops being held.
        let small: Vec<Vec<u8>> = (0..SENDER_KEYS)
            .map(|i| idem("grows", &i.to_string()))
            .collect();
        assert!(f.proves_absent(&txn, &idem("grows", "x")).unwrap());
        absorb(&mut f, &small);
        assert!(f.proves_absent(&txn, &idem("grows", "x")).unwrap());
        absorb(&mut f, &[idem("grows", "one more")]);
        assert!(!f.proves_absent(&txn, &idem("grows", "x")).unwrap());
        assert_eq!(f.total, 2);
    }

    #[test]
    fn eviction_keeps_the_recent_senders() {
        let store = MemStore::default();
        let txn = Txn::new(&store, &[]);
        let mut f = IdemFilter::with_limits(10, 8);
        assert!(f.proves_absent(&txn, &idem("old", "a")).unwrap());
        assert!(f.proves_absent(&txn, &idem("recent", "a")).unwrap());
        absorb(&mut f, &[idem("old", "1"), idem("old", "2")]);
        absorb(&mut f, &[idem("recent", "1"), idem("recent", "2")]);
        assert_eq!(f.total, 6);
        // "old" was looked up first: over the limit, it goes, down to 3/4 of the limit.
        assert!(!f.proves_absent(&txn, &idem("recent", "1")).unwrap());
        absorb(
            &mut f,
            &[
                idem("recent", "3"),
                idem("recent", "4"),
                idem("recent", "5"),
            ],
        );
        assert_eq!(f.senders(), 1);
        assert_eq!(f.total, 6);
        assert!(!f.proves_absent(&txn, &idem("recent", "5")).unwrap());
        // "old" loads again from the store on its next send (nothing stored: all absent).
        assert!(f.proves_absent(&txn, &idem("old", "1")).unwrap());
        f.clear();
        assert_eq!((f.senders(), f.total), (0, 0));
    }
}
