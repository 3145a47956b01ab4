//! Atomic multi-key batches on sled without `sled::Batch`.
//!
//! sled 0.34 makes `apply_batch` (and transactions) atomic with a **process-wide** reader/writer
//! lock: the first batch anywhere in the process switches every later read and write of every
//! database into that lock, and each batch takes it exclusively. With many engines in one process
//! (one database each) that serialises them all and turns the engines' time into futex wake-ups
//! and context switches (measured: ~2.8x the CPU per delivered message; docs/performance.md).
//!
//! So a batch of several operations is made atomic here with a redo journal inside the same
//! database: the whole batch is first written under one journal key (a single insert, atomic in
//! sled), then applied key by key with plain inserts and removes, then the journal key is removed.
//! sled recovers a crash as a prefix of its log, so after a crash a journal entry is either absent
//! (nothing of the batch was written) or present (the batch may be partly applied); opening the
//! store replays every present entry in order — puts and deletes are idempotent — and removes it.

use super::{StoreError, WriteOp, fields};

/// Prefix of journal keys: outside every table's prefix (tables are ASCII letters).
pub const PREFIX: &[u8] = b"\xffjournal\0";

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// The journal key of batch number `n`.
pub fn key(n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + 8);
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The batch number of a journal key.
pub fn number(key: &[u8]) -> Option<u64> {
    let tail = key.strip_prefix(PREFIX)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
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
    fn keys_sort_by_number_and_parse_back() {
        assert!(key(1) < key(2) && key(255) < key(256));
        assert_eq!(number(&key(77)), Some(77));
        assert_eq!(number(b"mabc"), None);
    }
}
