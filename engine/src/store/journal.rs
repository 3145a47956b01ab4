//! Atomic multi-key batches on sled without `sled::Batch`.
//!
//! sled 0.34 makes `apply_batch` (and transactions) atomic with a **process-wide** reader/writer
//! lock: the first batch anywhere in the process switches every later read and write of every
//! database into that lock, and each batch takes it exclusively. With many engines in one process
//! (one database each) that serialises them all and turns the engines' time into futex wake-ups
//! and context switches (measured: ~2.8x the CPU per delivered message; docs/performance.md).
//!
//! So a batch of several operations is made atomic here with a redo journal inside the same
//! database: the whole batch is first written under the journal's one **slot** key (a single
//! insert, atomic in sled), then applied key by key with plain inserts and removes. sled
//! recovers a crash as a prefix of its log, so after a crash the slot holds the last batch
//! begun; opening the store replays it — puts and deletes are idempotent — and removes it.
//!
//! **The slot is left in place** ([`plan`]): the next batch overwrites it, and only a
//! single-operation write removes it first (one write per batch instead of an insert and a
//! remove). Replaying a batch that was applied whole changes nothing as long as no later write
//! touched its keys, and that holds: every later write is either another batch (which replaces
//! the slot before it writes anything) or a single write (which removes the slot before it
//! writes). The store's writes are serialised, so the log's order is the order of [`plan`]'s
//! writes. Entries under numbered keys (the format before the slot) are replayed too, in order,
//! before the slot, which sorts after them.

use super::{StoreError, WriteOp, fields};

/// Prefix of journal keys: outside every table's prefix (tables are ASCII letters).
pub const PREFIX: &[u8] = b"\xffjournal\0";

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// The journal key of batch number `n` (numbered entries: the earlier format, still replayed).
pub fn key(n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + 8);
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The journal's slot: after every numbered key.
pub fn slot() -> Vec<u8> {
    key(u64::MAX)
}

/// The raw writes that apply `ops` atomically, in order, given whether the slot holds the last
/// batch (`live`), and whether it holds one after them (module doc): a batch of several writes
/// is its journal entry under the slot then its writes; a single write removes a live slot
/// first.
pub fn plan(mut ops: Vec<WriteOp>, live: bool) -> (Vec<WriteOp>, bool) {
    match ops.len() {
        0 => (ops, live),
        1 if live => {
            ops.insert(0, WriteOp::Delete(slot()));
            (ops, false)
        }
        1 => (ops, false),
        _ => {
            let entry = WriteOp::Put(slot(), encode(&ops));
            ops.insert(0, entry);
            (ops, true)
        }
    }
}

/// Encodes a batch: per operation a tag, the key, and for a put the value, each length-prefixed.
pub fn encode(ops: &[WriteOp]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            WriteOp::Put(k, v) => 1 + fields::size(k.len()) + fields::size(v.len()),
            WriteOp::Delete(k) => 1 + fields::size(k.len()),
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    for op in ops {
        match op {
            WriteOp::Put(k, v) => {
                out.push(TAG_PUT);
                fields::put(&mut out, k);
                fields::put(&mut out, v);
            }
            WriteOp::Delete(k) => {
                out.push(TAG_DELETE);
                fields::put(&mut out, k);
            }
        }
    }
    out
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_owned(),
    }
}

/// Decodes a journal entry written by [`encode`].
pub fn decode(key: &[u8], mut bytes: &[u8]) -> Result<Vec<WriteOp>, StoreError> {
    fn field(bytes: &mut &[u8]) -> Option<Vec<u8>> {
        fields::next(bytes).map(<[u8]>::to_vec)
    }
    let mut ops = Vec::new();
    while let Some(tag) = fields::take(&mut bytes, 1) {
        let op = match tag[0] {
            TAG_PUT => field(&mut bytes)
                .zip(field(&mut bytes))
                .map(|(k, v)| WriteOp::Put(k, v)),
            TAG_DELETE => field(&mut bytes).map(WriteOp::Delete),
            _ => return Err(corrupt(key, "unknown journal operation")),
        };
        ops.push(op.ok_or_else(|| corrupt(key, "truncated journal entry"))?);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn round_trip_keeps_order_and_kinds() {
        let ops = vec![
            WriteOp::Put(b"ma".to_vec(), b"1".to_vec()),
            WriteOp::Delete(b"pa".to_vec()),
            WriteOp::Put(b"x".to_vec(), Vec::new()),
        ];
        let bytes = encode(&ops);
        assert_eq!(
            bytes.len(),
            (1 + 4 + 2 + 4 + 1) + (1 + 4 + 2) + (1 + 4 + 1 + 4)
        );
        assert_eq!(decode(b"k", &bytes).unwrap(), ops);
    }

    #[test]
    fn truncated_or_unknown_entries_are_errors() {
        let bytes = encode(&[WriteOp::Put(b"key".to_vec(), b"value".to_vec())]);
        for cut in 1..bytes.len() {
            assert!(decode(b"k", &bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(b"k", &[9]).is_err());
    }

    #[test]
    fn keys_sort_by_number_and_the_slot_last() {
        assert!(key(1) < key(2) && key(255) < key(256));
        assert!(key(u64::MAX - 1) < slot());
        assert!(slot().starts_with(PREFIX));
    }

    /// A model of the store's log: the state after the first `n` raw writes, with the journal
    /// replayed as `SledStore::open` does (numbered entries, then the slot).
    fn recovered(log: &[WriteOp], n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut state = BTreeMap::new();
        for op in &log[..n] {
            model_apply(&mut state, op.clone());
        }
        let journal: Vec<(Vec<u8>, Vec<u8>)> = state
            .range(PREFIX.to_vec()..)
            .filter(|(k, _)| k.starts_with(PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in journal {
            for op in decode(&k, &v).unwrap() {
                model_apply(&mut state, op);
            }
            state.remove(&k);
        }
        state
    }

    fn model_apply(state: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: WriteOp) {
        match op {
            WriteOp::Put(k, v) => {
                state.insert(k, v);
            }
            WriteOp::Delete(k) => {
                state.remove(&k);
            }
        }
    }

    fn without_journal(mut s: BTreeMap<Vec<u8>, Vec<u8>>) -> BTreeMap<Vec<u8>, Vec<u8>> {
        s.retain(|k, _| !k.starts_with(PREFIX));
        s
    }

    #[test]
    fn a_crash_after_any_raw_write_recovers_whole_batches() {
        let put = |k: &str, v: &str| WriteOp::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        let del = |k: &str| WriteOp::Delete(k.as_bytes().to_vec());
        // Batches and single writes touching each other's keys, in the patterns the actors
        // produce: batch after batch, single writes between, a batch undoing a single write.
        let writes: Vec<Vec<WriteOp>> = vec![
            vec![put("a", "1"), put("b", "1"), put("c", "1")],
            vec![put("a", "2"), del("b")],
            vec![put("b", "3")],
            vec![put("c", "4")],
            vec![put("a", "5"), put("c", "5"), del("d")],
            vec![put("d", "6"), put("b", "6")],
            vec![del("a")],
            vec![put("a", "7"), del("c")],
            vec![],
            vec![put("e", "8"), put("a", "8")],
        ];
        // The raw log; per logical write its raw writes' range, whether it is a batch, and the
        // logical state before and after it.
        let mut log = Vec::new();
        let mut live = false;
        let mut state = BTreeMap::new();
        let mut spans = Vec::new();
        for ops in writes {
            let before = state.clone();
            for op in &ops {
                model_apply(&mut state, op.clone());
            }
            let batch = ops.len() > 1;
            let (raw, now) = plan(ops, live);
            live = now;
            let start = log.len();
            log.extend(raw);
            spans.push((start, log.len(), batch, before, state.clone()));
        }
        assert!(live, "the last write was a batch: its slot stays");
        assert!(recovered(&log, 0).is_empty());
        for n in 1..=log.len() {
            // The write cut after its n-th raw write: whole if that was its last one, or if it
            // is a batch (its journal entry is its first raw write); absent otherwise.
            let (_, end, batch, before, after) = spans
                .iter()
                .find(|(start, end, ..)| *start < n && n <= *end)
                .unwrap();
            let expected = if n == *end || *batch { after } else { before };
            assert_eq!(
                &without_journal(recovered(&log, n)),
                expected,
                "crash after raw write {n}"
            );
        }
    }

    #[test]
    fn plan_writes_one_journal_write_per_batch() {
        let put = |k: &[u8]| WriteOp::Put(k.to_vec(), b"v".to_vec());
        let (raw, live) = plan(vec![put(b"a"), put(b"b")], false);
        assert!(live);
        assert_eq!(raw.len(), 3);
        assert_eq!(
            raw[0],
            WriteOp::Put(slot(), encode(&[put(b"a"), put(b"b")]))
        );
        // The next batch overwrites the slot; nothing removes it in between.
        let (raw, live) = plan(vec![put(b"c"), put(b"d")], live);
        assert!(live);
        assert_eq!(raw.len(), 3);
        // A single write after a batch removes the slot first, then writes alone.
        let (raw, live) = plan(vec![put(b"e")], live);
        assert!(!live);
        assert_eq!(raw, vec![WriteOp::Delete(slot()), put(b"e")]);
        let (raw, live) = plan(vec![put(b"f")], live);
        assert!(!live);
        assert_eq!(raw, vec![put(b"f")]);
        assert_eq!(plan(Vec::new(), true), (Vec::new(), true));
    }
}
