//! The write-ahead log that makes a group commit durable with one `fdatasync`.
//!
//! sled's own `flush` costs about a millisecond per call on this kind of machine (it goes
//! through its I/O threads), which would bound single-message latency. Instead, the applier
//! appends each batch's writes to this file and `fdatasync`s it **before** applying the batch to
//! sled, then checkpoints now and then (sled `flush`, then truncate the log). The store is
//! therefore always a prefix of the logged batches, and every write is an absolute put or delete,
//! so replaying the log in order at startup brings the store to exactly the last logged batch.
//!
//! Record: `u32 length | u32 crc32 | payload`, payload = ops of `u8 kind (1 put, 0 delete) |
//! u32 key length | key | [u32 value length | value]`, all big-endian. A torn or corrupt tail
//! (a crash mid-append) ends the replay; that batch was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::store::Op;

/// An owned write, as replayed from the log.
pub type OwnedOp = (Vec<u8>, Option<Vec<u8>>);

/// The log file.
pub struct Wal {
    file: File,
    path: PathBuf,
    len: u64,
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes());
}

fn encode(ops: &[Op<'_>]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|(k, v)| 9 + k.len() + v.map_or(0, |v| 4 + v.len()))
        .sum();
    let mut payload = Vec::with_capacity(size);
    for &(k, v) in ops {
        payload.push(u8::from(v.is_some()));
        put_u32(&mut payload, k.len());
        payload.extend_from_slice(k);
        if let Some(v) = v {
            put_u32(&mut payload, v.len());
            payload.extend_from_slice(v);
        }
    }
    let mut record = Vec::with_capacity(8 + payload.len());
    put_u32(&mut record, payload.len());
    record.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    record.extend_from_slice(&payload);
    record
}

fn read_u32(b: &[u8], at: &mut usize) -> Option<usize> {
    let v: [u8; 4] = b.get(*at..*at + 4)?.try_into().ok()?;
    *at += 4;
    Some(u32::from_be_bytes(v) as usize)
}

fn decode_payload(p: &[u8]) -> Option<Vec<OwnedOp>> {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < p.len() {
        let kind = *p.get(at)?;
        at += 1;
        let klen = read_u32(p, &mut at)?;
        let key = p.get(at..at + klen)?.to_vec();
        at += klen;
        let value = if kind == 1 {
            let vlen = read_u32(p, &mut at)?;
            let v = p.get(at..at + vlen)?.to_vec();
            at += vlen;
            Some(v)
        } else {
            None
        };
        ops.push((key, value));
    }
    Some(ops)
}

/// Parses whole, intact records; stops at the first torn or corrupt one.
fn decode_records(bytes: &[u8]) -> Vec<Vec<OwnedOp>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = read_u32(bytes, &mut at) {
        let Some(crc) = read_u32(bytes, &mut at) else {
            break;
        };
        let Some(payload) = bytes.get(at..at + len) else {
            break;
        };
        if crc32fast::hash(payload) as usize != crc {
            break;
        }
        let Some(ops) = decode_payload(payload) else {
            break;
        };
        at += len;
        out.push(ops);
    }
    out
}

impl Wal {
    /// Opens (or creates) the log in `dir`; returns it with the batches to replay, in order.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<Vec<OwnedOp>>)> {
        let path = dir.join("commit.wal");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let records = decode_records(&bytes);
        let len = bytes.len() as u64;
        Ok((Self { file, path, len }, records))
    }

    /// Appends one batch and makes it durable (`fdatasync`).
    pub fn append(&mut self, ops: &[Op<'_>]) -> std::io::Result<()> {
        let record = encode(ops);
        self.file.write_all(&record)?;
        self.file.sync_data()?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Bytes in the log since the last checkpoint.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the log (after the store has been flushed).
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        Ok(())
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_replay_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, replay) = Wal::open(dir.path()).unwrap();
            assert!(replay.is_empty());
            let k1: &[u8] = b"k1";
            let k2: &[u8] = b"k2";
            wal.append(&[(k1, Some(b"v1")), (k2, None)]).unwrap();
            wal.append(&[(k1, Some(b""))]).unwrap();
        }
        // A crash mid-append: half a record at the end.
        let path = dir.path().join("commit.wal");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
        drop(f);
        let (mut wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            replay,
            vec![
                vec![
                    (b"k1".to_vec(), Some(b"v1".to_vec())),
                    (b"k2".to_vec(), None)
                ],
                vec![(b"k1".to_vec(), Some(Vec::new()))],
            ]
        );
        wal.reset().unwrap();
        assert!(wal.is_empty());
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert!(replay.is_empty());
    }

    #[test]
    fn a_corrupt_record_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            let k: &[u8] = b"k";
            wal.append(&[(k, Some(b"a"))]).unwrap();
            wal.append(&[(k, Some(b"b"))]).unwrap();
        }
        let path = dir.path().join("commit.wal");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(replay, vec![vec![(b"k".to_vec(), Some(b"a".to_vec()))]]);
    }
}
