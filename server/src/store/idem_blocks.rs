//! Idempotency entries packed in blocks: one store write per sender per batch instead of one
//! per message.
//!
//! Every stored message writes its idempotency entry (`I app sender msg_id` → seq, time, conv;
//! [`crate::keys`]), kept forever so that a resend is answered with the first answer
//! (ARCHITECTURE.md §3). In sled each of those is one insert of ~8–10 µs of CPU, half of the
//! apply of a group commit of C2C messages (docs/performance.md, "Server apply per message").
//! This layer sits between the commit pipeline and the backend and stores the entries of one
//! sender in **blocks** of up to [`BLOCK_ENTRIES`] entries under the tag `0x01`
//! (`0x01 app sender first-msg_id` → the entries), so a batch writes one block per sender it
//! touches. It is transparent to every caller of [`Store`]: `get` and `scan` of `I` keys answer
//! the entries as if each were its own key, and the blocks' range is hidden.
//!
//! The layout's one invariant: a block's key (with its tag replaced by `I`) is at most each of
//! its entries, and every entry is below the next block's key — so the block holding an entry
//! is the one with the greatest key at most the entry's key (its *floor*), found with one
//! reverse scan of limit 1. A put goes to its floor block (a new block keyed by the entry when
//! there is none); a block past [`BLOCK_ENTRIES`] is split, the new upper blocks written before
//! the shortened lower one, so that a concurrent reader always finds each entry in its floor
//! block. Entries written in the layout before this layer (one key each) stay readable: a block
//! entry wins over such a key, which is read when no block has the entry.
//!
//! Crash safety is the write-ahead log's, as for any backend: a batch is replayed from the log
//! after a crash, and replaying puts and deletes into blocks is as harmless as into keys.

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::keys::tag;
use crate::store::{Op, Pair, Store};

/// Most entries of one block (a split halves it): small enough that rewriting a sender's last
/// block once per batch stays cheap, large enough that most batches write one block per sender.
pub const BLOCK_ENTRIES: usize = 64;

/// The tag of the blocks' keys (hidden from scans; below every table tag of [`crate::keys`]).
const BLOCK_TAG: u8 = tag::IDEM_BLOCK;

/// A store whose idempotency entries live in blocks (see the module documentation).
pub struct IdemBlocks<S> {
    inner: S,
}

/// A block's entries: key remainder (after the sender prefix) → value.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// One block being rewritten: entries by key remainder (after the sender prefix).
struct Block {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    dirty: bool,
}

/// The length of the `I app sender` prefix of a well-formed idempotency key with a non-empty
/// remainder (others are stored as plain keys).
fn sender_prefix_len(key: &[u8]) -> Option<usize> {
    if key.first() != Some(&tag::IDEM) {
        return None;
    }
    let len = 10 + usize::from(*key.get(9)?);
    (key.len() > len).then_some(len)
}

/// The block-space image of an idempotency key: the same bytes under the block tag.
fn block_key(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k[0] = BLOCK_TAG;
    k
}

/// Encodes a block's entries: per entry u16 remainder length, remainder, u16 value length,
/// value.
fn encode(entries: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(entries.iter().map(|(k, v)| 4 + k.len() + v.len()).sum());
    for (k, v) in entries {
        for part in [k, v] {
            let len = u16::try_from(part.len())
                .map_err(|_| StoreError::Corrupt("idempotency entry over 64 KiB".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(out)
}

/// Decodes what [`encode`] wrote.
fn decode(mut bytes: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
    let corrupt = || StoreError::Corrupt("truncated idempotency block".into());
    let take = |bytes: &mut &[u8]| -> Result<Vec<u8>, StoreError> {
        let (len, rest) = bytes.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let len = usize::from(u16::from_be_bytes(*len));
        let part = rest.get(..len).ok_or_else(corrupt)?.to_vec();
        *bytes = &rest[len..];
        Ok(part)
    };
    let mut out = BTreeMap::new();
    while !bytes.is_empty() {
        let k = take(&mut bytes)?;
        let v = take(&mut bytes)?;
        out.insert(k, v);
    }
    Ok(out)
}

/// The key-space segments of a scan, in ascending order: `(lo, hi, kind)`; an empty `hi` is
/// unbounded.
const SEGMENTS: [(&[u8], &[u8], Segment); 5] = [
    (b"", &[BLOCK_TAG], Segment::Plain),
    (&[BLOCK_TAG], &[BLOCK_TAG + 1], Segment::Hidden),
    (&[BLOCK_TAG + 1], b"I", Segment::Plain),
    (b"I", b"J", Segment::Idem),
    (b"J", b"", Segment::Plain),
];

/// How a segment of the key space is scanned.
#[derive(Clone, Copy, PartialEq)]
enum Segment {
    /// Keys as stored.
    Plain,
    /// Idempotency entries: plain ones merged with the blocks' ones.
    Idem,
    /// The blocks themselves: never answered.
    Hidden,
}

impl<S: Store> IdemBlocks<S> {
    /// The layer over `inner` (which may hold entries in either layout).
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The entries of the floor block of the idempotency key `key` (whose sender prefix is
    /// `prefix` long).
    fn floor(&self, key: &[u8], prefix: usize) -> Result<Option<Entries>, StoreError> {
        let lo = block_key(&key[..prefix]);
        let mut hi = block_key(key);
        hi.push(0);
        match self.inner.scan(&lo, &hi, 1, true)?.pop() {
            Some((_, v)) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Applies one sender's idempotency writes (`prefix` = `I app sender`; remainders and
    /// values in order) to its blocks.
    fn apply_sender(&self, prefix: &[u8], ops: &[Op<'_>]) -> Result<(), StoreError> {
        let (Some(min), Some(max)) = (ops.iter().map(|o| o.0).min(), ops.iter().map(|o| o.0).max())
        else {
            return Ok(());
        };
        // Every block that can be the floor of a key in [min, max]: the floor of min and the
        // blocks keyed within the range. Keyed by remainder.
        let bprefix = block_key(prefix);
        let mut blocks: BTreeMap<Vec<u8>, Block> = BTreeMap::new();
        let with = |rest: &[u8]| [bprefix.as_slice(), rest].concat();
        let mut hi = with(max);
        hi.push(0);
        let below = self.inner.scan(&bprefix, &with(min), 1, true)?;
        let within = self.inner.scan(&with(min), &hi, usize::MAX, false)?;
        for (k, v) in below.into_iter().chain(within) {
            let rest = k[bprefix.len()..].to_vec();
            let entries = decode(&v)?;
            blocks.insert(
                rest,
                Block {
                    entries,
                    dirty: false,
                },
            );
        }
        let mut plain_deletes = Vec::new();
        for &(rest, value) in ops {
            let floor = blocks
                .range_mut::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(rest)))
                .next_back();
            match (value, floor) {
                (Some(v), Some((_, block))) => {
                    block.entries.insert(rest.to_vec(), v.to_vec());
                    block.dirty = true;
                }
                (Some(v), None) => {
                    let entries = BTreeMap::from([(rest.to_vec(), v.to_vec())]);
                    blocks.insert(
                        rest.to_vec(),
                        Block {
                            entries,
                            dirty: true,
                        },
                    );
                }
                (None, floor) => {
                    if let Some((_, block)) = floor
                        && block.entries.remove(rest).is_some()
                    {
                        block.dirty = true;
                    }
                    // An entry of the layout before blocks goes too.
                    plain_deletes.push([prefix, rest].concat());
                }
            }
        }
        // Split the oversized, then write: the new upper blocks first (see the module doc).
        let mut uppers = Vec::new();
        let mut lowers = Vec::new();
        for (rest, block) in blocks.into_iter().filter(|(_, b)| b.dirty) {
            let mut entries = block.entries;
            let mut parts = Vec::new();
            while entries.len() > BLOCK_ENTRIES {
                let Some(at) = entries
                    .keys()
                    .nth(entries.len() - BLOCK_ENTRIES / 2)
                    .cloned()
                else {
                    break;
                };
                let upper = entries.split_off(&at);
                parts.push((at, upper));
            }
            uppers.extend(parts);
            lowers.push((rest, entries));
        }
        for (rest, entries) in uppers {
            self.inner
                .apply(&[(&with(&rest), Some(&encode(&entries)?))])?;
        }
        for (rest, entries) in lowers {
            let key = with(&rest);
            if entries.is_empty() {
                self.inner.apply(&[(&key, None)])?;
            } else {
                self.inner.apply(&[(&key, Some(&encode(&entries)?))])?;
            }
        }
        let deletes: Vec<Op<'_>> = plain_deletes.iter().map(|k| (k.as_slice(), None)).collect();
        self.inner.apply(&deletes)
    }

    /// Up to `limit` idempotency entries with `start <= key < end` (both within the `I` table
    /// or its end), in the scan's order: the blocks' merged over the plain keys'.
    fn scan_idem(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Pair>, StoreError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .inner
            .scan(start, end, limit, reverse)?
            .into_iter()
            .collect();
        let bstart = block_key(start);
        let bend = if end.first() == Some(&tag::IDEM) {
            block_key(end)
        } else {
            vec![BLOCK_TAG + 1]
        };
        // Every block keyed within the range holds only entries of the range, except the last
        // (entries up to the next block's key): limit + 1 of them hold `limit` entries; and the
        // floor of `start` may hold some.
        let mut blocks = self
            .inner
            .scan(&bstart, &bend, limit.saturating_add(1), reverse)?;
        blocks.extend(self.inner.scan(&[BLOCK_TAG], &bstart, 1, true)?);
        for (k, v) in blocks {
            let Some(prefix) = sender_prefix_len(&[&[tag::IDEM], &k[1..]].concat()) else {
                continue;
            };
            for (rest, value) in decode(&v)? {
                let mut key = k[..prefix].to_vec();
                key[0] = tag::IDEM;
                key.extend_from_slice(&rest);
                if key.as_slice() >= start && key.as_slice() < end {
                    merged.insert(key, value);
                }
            }
        }
        Ok(if reverse {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        })
    }
}

impl<S: Store> Store for IdemBlocks<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if key.first() == Some(&BLOCK_TAG) {
            return Ok(None);
        }
        if let Some(prefix) = sender_prefix_len(key)
            && let Some(mut entries) = self.floor(key, prefix)?
            && let Some(v) = entries.remove(&key[prefix..])
        {
            return Ok(Some(v));
        }
        self.inner.get(key)
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
        let mut segments = SEGMENTS.to_vec();
        if reverse {
            segments.reverse();
        }
        for (lo, hi, kind) in segments {
            let s = start.max(lo);
            let e = if hi.is_empty() { end } else { end.min(hi) };
            if s >= e || kind == Segment::Hidden {
                continue;
            }
            let want = limit - out.len();
            let part = match kind {
                Segment::Idem => self.scan_idem(s, e, want, reverse)?,
                _ => self.inner.scan(s, e, want, reverse)?,
            };
            out.extend(part);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn apply(&self, ops: &[Op<'_>]) -> Result<(), StoreError> {
        let mut plain: Vec<Op<'_>> = Vec::with_capacity(ops.len());
        let mut senders: BTreeMap<&[u8], Vec<Op<'_>>> = BTreeMap::new();
        for &(k, v) in ops {
            if k.first() == Some(&BLOCK_TAG) {
                return Err(StoreError::Corrupt(
                    "a write to the idempotency blocks' reserved tag".into(),
                ));
            }
            match sender_prefix_len(k) {
                Some(p) => senders.entry(&k[..p]).or_default().push((&k[p..], v)),
                None => plain.push((k, v)),
            }
        }
        self.inner.apply(&plain)?;
        for (prefix, sender_ops) in senders {
            self.apply_sender(prefix, &sender_ops)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;
    use crate::store::MemStore;

    /// A tiny deterministic generator (xorshift), so failures replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn idem(app: u64, sender: &str, msg_id: &str) -> Vec<u8> {
        Key::new(tag::IDEM, app)
            .s(sender.as_bytes())
            .s(msg_id.as_bytes())
            .done()
    }

    /// Every read the layer answers equals the model's (a plain map of the same writes).
    fn assert_same(layered: &dyn Store, model: &MemStore, rng: &mut Rng, keys: &[Vec<u8>]) {
        for k in keys {
            assert_eq!(layered.get(k).unwrap(), model.get(k).unwrap(), "get {k:?}");
        }
        let bounds = [
            b"".to_vec(),
            b"I".to_vec(),
            Key::new(tag::IDEM, 7).done(),
            Key::new(tag::IDEM, 7).s(b"alice").done(),
            Key::new(tag::IDEM, 7).s(b"bob").done(),
            Key::new(tag::IDEM, 8).done(),
            b"J".to_vec(),
            b"z".to_vec(),
            vec![0xff],
        ];
        for _ in 0..25 {
            let mut a = bounds[rng.below(bounds.len() as u64) as usize].clone();
            let mut b = bounds[rng.below(bounds.len() as u64) as usize].clone();
            if rng.below(2) == 0 {
                a = keys[rng.below(keys.len() as u64) as usize].clone();
            }
            if rng.below(3) == 0 {
                b = keys[rng.below(keys.len() as u64) as usize].clone();
            }
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            for limit in [1, 3, 64, 1000] {
                for reverse in [false, true] {
                    assert_eq!(
                        layered.scan(&lo, &hi, limit, reverse).unwrap(),
                        model.scan(&lo, &hi, limit, reverse).unwrap(),
                        "scan {lo:?}..{hi:?} limit {limit} reverse {reverse}"
                    );
                }
            }
        }
    }

    #[test]
    fn blocks_answer_like_plain_keys_through_splits_deletes_and_old_entries() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let layered = IdemBlocks::new(MemStore::default());
        let model = MemStore::default();
        // Entries of the layout before blocks: one key each, straight in the inner store.
        let old: Vec<Vec<u8>> = (0..20)
            .map(|i| idem(7, "alice", &format!("old{i}")))
            .collect();
        for k in &old {
            layered.inner.apply(&[(k, Some(b"first"))]).unwrap();
            model.apply(&[(k, Some(b"first"))]).unwrap();
        }
        let mut keys = old.clone();
        keys.push(b"M1".to_vec());
        for round in 0..30 {
            let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            for _ in 0..rng.below(120) {
                let sender = ["alice", "bob", "carol"][rng.below(3) as usize];
                let app = 7 + rng.below(2);
                // Time-ordered ids, decimal counters and random ones: appends and inserts.
                let id = match rng.below(3) {
                    0 => format!("{round:04}-{:04}", rng.below(10_000)),
                    1 => format!("w-{}", rng.below(5_000)),
                    _ => format!("old{}", rng.below(25)),
                };
                let k = idem(app, sender, &id);
                let v = (rng.below(6) != 0).then(|| format!("v{round}-{id}").into_bytes());
                keys.push(k.clone());
                writes.push((k, v));
            }
            writes.push((format!("M{round}").into_bytes(), Some(b"msg".to_vec())));
            writes.push((b"I".to_vec(), Some(b"short".to_vec())));
            let ops: Vec<Op<'_>> = writes
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            layered.apply(&ops).unwrap();
            model.apply(&ops).unwrap();
            assert_same(&layered, &model, &mut rng, &keys);
        }
        // The entries did go to blocks, several per sender (splits).
        let blocks = layered
            .inner
            .scan(&[BLOCK_TAG], &[BLOCK_TAG + 1], 10_000, false)
            .unwrap();
        assert!(blocks.len() > 6, "{} blocks", blocks.len());
        for (_, v) in &blocks {
            let n = decode(v).unwrap().len();
            assert!((1..=BLOCK_ENTRIES).contains(&n), "a block of {n}");
        }
    }

    #[test]
    fn a_batch_writes_one_block_per_sender() {
        let layered = IdemBlocks::new(MemStore::default());
        let keys: Vec<Vec<u8>> = (0..40)
            .flat_map(|i| {
                [
                    idem(1, "a", &format!("{i:03}")),
                    idem(1, "b", &format!("{i:03}")),
                ]
            })
            .collect();
        let ops: Vec<Op<'_>> = keys
            .iter()
            .map(|k| (k.as_slice(), Some(&b"v"[..])))
            .collect();
        layered.apply(&ops).unwrap();
        let all = layered.inner.scan(b"", &[0xff], 1000, false).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, block_key(&idem(1, "a", "000")));
        assert_eq!(decode(&all[1].1).unwrap().len(), 40);
        assert_eq!(
            layered.get(&idem(1, "b", "017")).unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(layered.get(&idem(1, "b", "040")).unwrap(), None);
        // The blocks' tag is reserved and hidden.
        assert_eq!(layered.get(&all[0].0).unwrap(), None);
        assert!(matches!(
            layered.apply(&[(&all[0].0, Some(b"x"))]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
