//! The write-behind overlay of a sled store: the I/O-free part — the in-memory map of writes not
//! yet in sled, the exact merge of it with sled's entries for reads, and what a drain writes.
//!
//! Why: many of an engine's writes are transient or rewritten within milliseconds (the outbox
//! entry and pending record of a send, removed at its ack ~1 ms later; a message record written
//! at the send and again at the ack; a conversation record rewritten on every message), and a
//! sled insert costs several µs (sled 0.34 clones its leaf on every insert). So
//! [`super::SledStore`] records each batch here, and a *drain* later writes the coalesced result
//! to sled as one atomic batch: a key rewritten N times within one drain window costs one sled
//! write, a key put and deleted costs none (nor does a delete of a key sled never had).
//!
//! The overlay has two maps: `pending`, which takes the batches, and `draining`, the frozen map
//! a drain is writing — readable until sled has all of it, so reads stay exact throughout.
//! A read sees, per key, the newest of `pending`, `draining` and sled; a delete is kept as a
//! `None` value (a tombstone) so that it hides sled's entry.
//!
//! Whole batches only: a batch is recorded under one lock and a freeze takes the whole map, so a
//! drain holds whole batches, in order (see [`super::sled_store`] for the durability this gives).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use super::{Entry, StoreError, WriteOp};

/// Writes by key: the value, or `None` for a delete.
pub(super) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One item of a merged read: a key and its value, `None` for a delete.
type Item = Result<(Vec<u8>, Option<Vec<u8>>), StoreError>;

/// When a store drains its overlay.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// At the latest this long after the first write of a window (the process-wide drainer).
    pub age: Duration,
    /// As soon as the overlay holds more keys than this (the writer drains inline).
    pub entries: usize,
    /// As soon as the overlay holds more bytes of keys and values than this (likewise).
    pub bytes: usize,
}

impl Bounds {
    /// The engine's numbers: a SIGKILL loses at most `age` plus sled's own flush period of the
    /// newest writes; an overlay holds at most about 64 KiB besides the one being drained.
    ///
    /// The byte bound is kept under sled 0.34's blob threshold (a log item over a quarter of
    /// its 512 KiB segment, ~128 KiB, is written as a file of its own in `blobs/`, created and
    /// later unlinked): a drain is one journal value, and with a 1 MiB bound the drains of a
    /// busy engine became blob files — ~50 file creations and unlinks per engine in a 20 × 1,000
    /// W2 run, which made the store's CPU through logout ~60 % *higher* than without the
    /// overlay (docs/performance.md, "Engine store write-behind (issue 2, session 7)").
    pub const DEFAULT: Bounds = Bounds {
        age: Duration::from_millis(50),
        entries: 4096,
        bytes: 64 * 1024,
    };

    /// Every write goes to sled at once (the store without an overlay, for tests).
    #[cfg(test)]
    pub const WRITE_THROUGH: Bounds = Bounds {
        age: Duration::ZERO,
        entries: 0,
        bytes: 0,
    };
}

/// The writes of a store that sled does not have yet.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    /// Batches applied since the last freeze.
    pending: Writes,
    /// Bytes of keys and values in `pending`.
    bytes: usize,
    /// The map a drain is writing to sled; read (under `pending`) until it is in.
    draining: Option<Arc<Writes>>,
    /// Whether the process-wide drainer has this store queued for `pending`'s writes.
    pub queued: bool,
}

impl Overlay {
    /// Records a batch; later writes to a key win.
    pub fn apply(&mut self, ops: Vec<WriteOp>) {
        for op in ops {
            let (k, v) = match op {
                WriteOp::Put(k, v) => (k, Some(v)),
                WriteOp::Delete(k) => (k, None),
            };
            let added = k.len() + v.as_ref().map_or(0, Vec::len);
            match self.pending.get_mut(&k) {
                Some(old) => {
                    self.bytes -= old.as_ref().map_or(0, Vec::len);
                    self.bytes += v.as_ref().map_or(0, Vec::len);
                    *old = v;
                }
                None => {
                    self.bytes += added;
                    self.pending.insert(k, v);
                }
            }
        }
    }

    /// Whether `pending` is past `bounds`' size: time to drain.
    pub fn full(&self, bounds: &Bounds) -> bool {
        self.pending.len() > bounds.entries || self.bytes > bounds.bytes
    }

    /// What the overlay says of `key`: `None` when it holds nothing of it (sled decides),
    /// `Some(None)` when it deletes it.
    pub fn get(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.pending
            .get(key)
            .or_else(|| self.draining.as_ref()?.get(key))
            .cloned()
    }

    /// Starts a drain: `pending` becomes the frozen `draining` map, returned (`None` when there
    /// is nothing to drain). Only one drain at a time: the previous one must have ended.
    pub fn freeze(&mut self) -> Option<Arc<Writes>> {
        self.queued = false;
        if self.pending.is_empty() {
            return None;
        }
        let frozen = Arc::new(std::mem::take(&mut self.pending));
        self.bytes = 0;
        self.draining = Some(Arc::clone(&frozen));
        Some(frozen)
    }

    /// Ends a drain: sled has the frozen map.
    pub fn drained(&mut self) {
        self.draining = None;
    }

    /// Ends a drain that failed: its writes go back under the newer ones (a later drain retries).
    pub fn undrained(&mut self) {
        let Some(frozen) = self.draining.take() else {
            return;
        };
        let frozen = Arc::try_unwrap(frozen).unwrap_or_else(|shared| (*shared).clone());
        for (k, v) in frozen {
            if !self.pending.contains_key(&k) {
                self.bytes += k.len() + v.as_ref().map_or(0, Vec::len);
                self.pending.insert(k, v);
            }
        }
    }

    /// Up to `limit` entries with `start <= key < end`, ascending or descending when `reverse`:
    /// the overlay merged over `lower` (sled's entries of that range in that order).
    pub fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        lower: impl Iterator<Item = Result<Entry, StoreError>>,
    ) -> Result<Vec<Entry>, StoreError> {
        let empty = Writes::new();
        let draining = self.draining.as_deref().unwrap_or(&empty);
        let overlay = merge(
            range(&self.pending, start, end, reverse),
            range(draining, start, end, reverse),
            reverse,
        );
        let lower = lower.map(|r| r.map(|(k, v)| (k, Some(v))));
        merge(overlay, lower, reverse)
            .filter_map(|item| match item {
                Ok((k, Some(v))) => Some(Ok((k, v))),
                Ok((_, None)) => None,
                Err(e) => Some(Err(e)),
            })
            .take(limit)
            .collect()
    }
}

/// The writes a drain of `frozen` makes, in key order: its puts, and its deletes of keys sled
/// has (`in_sled`) — a delete of a key sled never had costs nothing.
pub(super) fn drain_ops(
    frozen: &Writes,
    mut in_sled: impl FnMut(&[u8]) -> Result<bool, StoreError>,
) -> Result<Vec<WriteOp>, StoreError> {
    let mut ops = Vec::with_capacity(frozen.len());
    for (k, v) in frozen {
        match v {
            Some(v) => ops.push(WriteOp::Put(k.clone(), v.clone())),
            None if in_sled(k)? => ops.push(WriteOp::Delete(k.clone())),
            None => {}
        }
    }
    Ok(ops)
}

/// The writes of `m` with `start <= key < end`, ascending or descending.
fn range<'a>(
    m: &'a Writes,
    start: &'a [u8],
    end: &'a [u8],
    reverse: bool,
) -> Box<dyn Iterator<Item = Item> + 'a> {
    let r = m.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)));
    let own = |(k, v): (&Vec<u8>, &Option<Vec<u8>>)| Ok((k.clone(), v.clone()));
    if reverse {
        Box::new(r.rev().map(own))
    } else {
        Box::new(r.map(own))
    }
}

/// Two ordered sources merged into one; on equal keys `upper`'s item wins.
fn merge<A, B>(upper: A, lower: B, reverse: bool) -> Merge<A, B>
where
    A: Iterator<Item = Item>,
    B: Iterator<Item = Item>,
{
    Merge {
        upper: upper.peekable(),
        lower: lower.peekable(),
        reverse,
    }
}

struct Merge<A: Iterator, B: Iterator> {
    upper: Peekable<A>,
    lower: Peekable<B>,
    reverse: bool,
}

impl<A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = Item>,
    B: Iterator<Item = Item>,
{
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let order = match (self.upper.peek(), self.lower.peek()) {
            (None, _) => return self.lower.next(),
            (Some(_), None) | (Some(Err(_)), _) => return self.upper.next(),
            (_, Some(Err(_))) => return self.lower.next(),
            (Some(Ok((u, _))), Some(Ok((l, _)))) => u.cmp(l),
        };
        let order = if self.reverse { order.reverse() } else { order };
        match order {
            std::cmp::Ordering::Less => self.upper.next(),
            std::cmp::Ordering::Greater => self.lower.next(),
            std::cmp::Ordering::Equal => {
                self.lower.next();
                self.upper.next()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> WriteOp {
        WriteOp::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    fn del(k: &str) -> WriteOp {
        WriteOp::Delete(k.as_bytes().to_vec())
    }

    fn sled_like(entries: &[(&str, &str)]) -> Vec<Entry> {
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn scan(o: &Overlay, lower: &[Entry], reverse: bool, limit: usize) -> Vec<String> {
        let mut lower = lower.to_vec();
        if reverse {
            lower.reverse();
        }
        o.scan(b"a", b"z", reverse, limit, lower.into_iter().map(Ok))
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8(k).unwrap(),
                    String::from_utf8(v).unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn puts_win_and_deletes_hide_across_pending_draining_and_sled() {
        let sled = sled_like(&[("b", "s"), ("c", "s"), ("d", "s"), ("f", "s")]);
        let mut o = Overlay::default();
        o.apply(vec![put("c", "d1"), del("d"), put("e", "d1")]);
        assert!(o.freeze().is_some());
        o.apply(vec![put("d", "p2"), del("e"), del("f"), put("a", "p2")]);
        assert_eq!(scan(&o, &sled, false, 10), ["a=p2", "b=s", "c=d1", "d=p2"]);
        assert_eq!(scan(&o, &sled, true, 10), ["d=p2", "c=d1", "b=s", "a=p2"]);
        assert_eq!(scan(&o, &sled, true, 2), ["d=p2", "c=d1"]);
        assert_eq!(scan(&o, &sled, false, 0), Vec::<String>::new());
        assert_eq!(o.get(b"e"), Some(None));
        assert_eq!(o.get(b"c"), Some(Some(b"d1".to_vec())));
        assert_eq!(o.get(b"b"), None);
        // After the drain sled has the frozen writes; the pending ones still win.
        o.drained();
        let sled = sled_like(&[("b", "s"), ("c", "d1"), ("e", "d1"), ("f", "s")]);
        assert_eq!(scan(&o, &sled, false, 10), ["a=p2", "b=s", "c=d1", "d=p2"]);
    }

    #[test]
    fn a_put_then_delete_in_one_window_drains_to_nothing() {
        let mut o = Overlay::default();
        o.apply(vec![put("out", "1"), put("msg", "v1")]);
        o.apply(vec![del("out"), put("msg", "v2"), del("never")]);
        o.apply(vec![put("msg", "v3"), del("old")]);
        let frozen = o.freeze().unwrap();
        let ops = drain_ops(&frozen, |k| Ok(k == b"old")).unwrap();
        assert_eq!(ops, [put("msg", "v3"), del("old")]);
        assert!(
            o.freeze().is_none(),
            "a drain is running: nothing new to freeze"
        );
    }

    #[test]
    fn size_counts_follow_rewrites_and_a_failed_drain_goes_back_under_newer_writes() {
        let bounds = Bounds {
            entries: 2,
            bytes: 10,
            ..Bounds::DEFAULT
        };
        let mut o = Overlay::default();
        o.apply(vec![put("k", "12345")]);
        o.apply(vec![put("k", "123")]);
        assert_eq!(o.bytes, 4);
        assert!(!o.full(&bounds));
        o.apply(vec![put("j", "1234567")]);
        assert!(o.full(&bounds), "12 bytes");
        o.freeze().unwrap();
        assert_eq!(o.bytes, 0);
        o.apply(vec![put("k", "new")]);
        o.undrained();
        assert_eq!(o.get(b"k"), Some(Some(b"new".to_vec())));
        assert_eq!(o.get(b"j"), Some(Some(b"1234567".to_vec())));
        assert_eq!(o.bytes, 4 + 8);
        assert!(o.draining.is_none());
    }

    #[test]
    fn random_ops_read_like_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let key = |rng: &mut rand::rngs::StdRng| vec![b'a' + rng.gen_range(0..20u8)];
        for _round in 0..50 {
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut sled: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut o = Overlay::default();
            for step in 0..60u32 {
                match rng.gen_range(0..10) {
                    0 => {
                        // A drain: freeze, write the frozen map to the fake sled, end it.
                        if let Some(frozen) = o.freeze() {
                            let ops = drain_ops(&frozen, |k| Ok(sled.contains_key(k))).unwrap();
                            for op in ops {
                                match op {
                                    WriteOp::Put(k, v) => sled.insert(k, v),
                                    WriteOp::Delete(k) => sled.remove(&k),
                                };
                            }
                            if rng.gen_bool(0.7) {
                                o.drained();
                            }
                        }
                    }
                    _ => {
                        let mut ops = Vec::new();
                        for _ in 0..rng.gen_range(1..4) {
                            let k = key(&mut rng);
                            if rng.gen_bool(0.3) {
                                model.remove(&k);
                                ops.push(WriteOp::Delete(k));
                            } else {
                                let v = step.to_be_bytes().to_vec();
                                model.insert(k.clone(), v.clone());
                                ops.push(WriteOp::Put(k, v));
                            }
                        }
                        o.apply(ops);
                    }
                }
                let k = key(&mut rng);
                let got = o.get(&k).unwrap_or_else(|| sled.get(&k).cloned());
                assert_eq!(got, model.get(&k).cloned());
                let (s, e) = (key(&mut rng), key(&mut rng));
                let reverse = rng.gen_bool(0.5);
                let limit = rng.gen_range(0..8);
                let lower: Vec<Entry> = sled
                    .range(s.clone()..e.clone().max(s.clone()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let lower: Box<dyn Iterator<Item = Entry>> = if reverse {
                    Box::new(lower.into_iter().rev())
                } else {
                    Box::new(lower.into_iter())
                };
                let got = if s < e {
                    o.scan(&s, &e, reverse, limit, lower.map(Ok)).unwrap()
                } else {
                    Vec::new()
                };
                let want: Vec<Entry> = if s < e {
                    let r = model.range(s.clone()..e.clone());
                    let r: Box<dyn Iterator<Item = _>> = if reverse {
                        Box::new(r.rev())
                    } else {
                        Box::new(r)
                    };
                    r.take(limit).map(|(k, v)| (k.clone(), v.clone())).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(got, want);
            }
        }
    }
}
