//! The write-ahead log that makes a group commit durable with one cheap `fdatasync`.
//!
//! sled's own `flush` costs about a millisecond per call on this kind of machine (it goes
//! through its I/O threads), which would bound single-message latency. Instead, the applier
//! appends each batch's writes to this log and makes them durable **before** applying the batch
//! to sled; a checkpoint (sled `flush` on a background thread) now and then makes the log's older
//! records unnecessary — only records the store has applied: the applier answers a batch right
//! after its `fdatasync`, before applying it, so it names the last applied record
//! ([`Wal::request_checkpoint`]) and the records logged after it stay in the live log. The
//! store is therefore always a prefix of the logged batches, and every write is an absolute put
//! or delete, so replaying the log's records after the last checkpoint, in order, brings the
//! store to exactly the last logged batch (replaying more than that is harmless: the same writes
//! again, in the same order).
//!
//! **Why segments, preallocated.** `fdatasync` on a file that grows must also commit its new size
//! and extents through the filesystem journal; on blocks that already exist and were written
//! (zeros), it flushes the data only, which on this machine's disk is several times cheaper
//! (`server/examples/wal_probe.rs`, figures in `docs/performance.md`). So the log is a set of
//! segment files under `wal/`, each zero-filled ahead of the write position
//! ([`Wal::prepare_ahead`], called between batches) and, once the checkpoint covers all its
//! records, **recycled** (overwritten from the start without being zeroed again).
//!
//! **Record**: `u32 length | u32 crc32 | u64 lsn | payload`, big-endian; the crc covers the lsn
//! and the payload; payload = ops of `u8 kind (1 put, 0 delete) | u32 key length | key |
//! [u32 value length | value]`. The lsn (log sequence number) rises by one per record, and never
//! falls across restarts. A segment is read from its start while records are intact and their
//! lsns consecutive: a zero length (the zeroed tail), a bad checksum (a torn write: that batch
//! was never acknowledged) or a stale record of the segment's previous use (a lower lsn) ends it.
//! The live log is the chain of segments whose lsns continue one another, ending with the segment
//! holding the newest records; the file `wal/checkpoint` holds the lsn up to which the store is
//! known durable, so that replay skips what was checkpointed.
//!
//! A log of the previous format (`commit.wal`: records without an lsn, one growing file) is
//! replayed first when present, and removed by the next [`Wal::reset`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{Op, Store};

/// An owned write, as replayed from the log.
pub type OwnedOp = (Vec<u8>, Option<Vec<u8>>);

/// A segment is left for the next one once its records reach this size.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Zeros are written this far ahead of the write position ...
const ZERO_AHEAD: u64 = 1024 * 1024;
/// ... whenever less than this is left prepared.
const LOW_WATER: u64 = 256 * 1024;
/// A checkpoint is asked for after this many logged bytes ...
const CHECKPOINT_BYTES: u64 = SEGMENT_BYTES / 2;
/// ... or this long after the last one, while writing.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Record header: length, crc, lsn.
const HEADER: usize = 16;
/// The log of the previous format.
const LEGACY: &str = "commit.wal";

/// One segment file of the log.
struct Segment {
    path: PathBuf,
    file: File,
    /// Bytes from the start known to be allocated and written (zeros or records).
    prepared: u64,
    /// Lsns of the first and last record of its current use (`None`: no record).
    span: Option<(u64, u64)>,
}

/// The log: its segments, the write position and the checkpoint state.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Index of the segment written to (`None` until the first append after opening).
    current: Option<usize>,
    /// Write offset in the current segment.
    pos: u64,
    /// Lsn of the next record.
    next_lsn: u64,
    /// Records with an lsn up to this are in the durable store (shared with the checkpointer).
    mark: Arc<Mark>,
    /// Bytes logged since the last checkpoint was asked for, and when that was.
    since_bytes: u64,
    since: Instant,
    checkpointer: Option<Checkpointer>,
    legacy: bool,
}

/// The durable checkpoint lsn and the file that holds it.
struct Mark {
    lsn: AtomicU64,
    /// Serialises writers of the file (the background checkpoint and a final one).
    file: Mutex<PathBuf>,
}

impl Mark {
    /// Records that every record up to `lsn` is durable in the store (never moves back).
    fn advance(&self, lsn: u64) -> std::io::Result<()> {
        let path = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if lsn <= self.lsn.load(Ordering::Acquire) {
            return Ok(());
        }
        let tmp = path.with_extension("tmp");
        let mut bytes = lsn.to_be_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &*path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.lsn.store(lsn, Ordering::Release);
        Ok(())
    }

    /// Reads the checkpoint file: 0 when missing or unreadable (then replay starts earlier,
    /// which is harmless).
    fn read(path: &Path) -> u64 {
        let Ok(bytes) = std::fs::read(path) else {
            return 0;
        };
        match (bytes.get(..8), bytes.get(8..12)) {
            (Some(v), Some(c)) if bytes.len() == 12 && crc32fast::hash(v).to_be_bytes() == c => {
                v.try_into().map_or(0, u64::from_be_bytes)
            }
            _ => 0,
        }
    }
}

/// The background checkpoint thread: flushes the store, then advances the mark.
struct Checkpointer {
    tx: Option<std::sync::mpsc::SyncSender<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes());
}

fn encode(lsn: u64, ops: &[Op<'_>]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|(k, v)| 5 + k.len() + v.map_or(0, |v| 4 + v.len()))
        .sum();
    let mut record = Vec::with_capacity(HEADER + size);
    record.extend_from_slice(&[0; 8]);
    record.extend_from_slice(&lsn.to_be_bytes());
    for &(k, v) in ops {
        record.push(u8::from(v.is_some()));
        put_u32(&mut record, k.len());
        record.extend_from_slice(k);
        if let Some(v) = v {
            put_u32(&mut record, v.len());
            record.extend_from_slice(v);
        }
    }
    let len = (record.len() - HEADER) as u32;
    record[..4].copy_from_slice(&len.to_be_bytes());
    let crc = crc32fast::hash(&record[8..]);
    record[4..8].copy_from_slice(&crc.to_be_bytes());
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

/// The intact records at the start of a segment: `(lsn, ops)`, lsns consecutive; the byte
/// offset where they end.
fn decode_segment(bytes: &[u8]) -> (Vec<(u64, Vec<OwnedOp>)>, usize) {
    let mut out: Vec<(u64, Vec<OwnedOp>)> = Vec::new();
    let mut at = 0;
    loop {
        let mut p = at;
        let (Some(len), Some(crc)) = (read_u32(bytes, &mut p), read_u32(bytes, &mut p)) else {
            break;
        };
        let Some(body) = bytes.get(p..p + 8 + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(body) as usize != crc {
            break;
        }
        let lsn = body[..8].try_into().map_or(0, u64::from_be_bytes);
        if out.last().is_some_and(|(last, _)| *last + 1 != lsn) {
            break;
        }
        let Some(ops) = decode_payload(&body[8..]) else {
            break;
        };
        at = p + 8 + len;
        out.push((lsn, ops));
    }
    (out, at)
}

/// Records of the previous format (no lsn), up to the first torn or corrupt one.
fn decode_legacy(bytes: &[u8]) -> Vec<Vec<OwnedOp>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(crc)) = (read_u32(bytes, &mut at), read_u32(bytes, &mut at)) {
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

/// Which segments hold the live log, oldest first: the chain ending with the segment whose
/// records are the newest, walked back while each segment's first lsn continues its
/// predecessor's last, until one starts at or before `from`.
fn live_chain(spans: &[Option<(u64, u64)>], from: u64) -> Vec<usize> {
    let Some(newest) = (0..spans.len())
        .filter(|&i| spans[i].is_some())
        .max_by_key(|&i| spans[i].map(|s| s.0))
    else {
        return Vec::new();
    };
    let mut chain = vec![newest];
    while let Some((first, _)) = spans[chain[chain.len() - 1]] {
        if first <= from {
            break;
        }
        match (0..spans.len()).find(|&i| spans[i].is_some_and(|(_, last)| last + 1 == first)) {
            Some(prev) if !chain.contains(&prev) => chain.push(prev),
            _ => break,
        }
    }
    chain.reverse();
    chain
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl Wal {
    /// Opens (or creates) the log in `dir`; returns it with the batches to replay, in order.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<Vec<OwnedOp>>)> {
        let wal_dir = dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let mark_path = wal_dir.join("checkpoint");
        let checkpointed = Mark::read(&mark_path);

        let mut replay = Vec::new();
        let legacy_path = dir.join(LEGACY);
        let legacy = legacy_path.exists();
        if legacy {
            replay.extend(decode_legacy(&std::fs::read(&legacy_path)?));
        }

        let mut names: Vec<PathBuf> = std::fs::read_dir(&wal_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        names.sort();
        let mut segments = Vec::with_capacity(names.len());
        let mut records = Vec::with_capacity(names.len());
        for path in names {
            let mut file = open_rw(&path)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let (recs, _) = decode_segment(&bytes);
            let span = recs.first().zip(recs.last()).map(|(f, l)| (f.0, l.0));
            segments.push(Segment {
                path,
                file,
                prepared: bytes.len() as u64,
                span,
            });
            records.push(recs);
        }
        let spans: Vec<_> = segments.iter().map(|s| s.span).collect();
        let chain = live_chain(&spans, checkpointed + 1);
        let newest = spans.iter().flatten().map(|s| s.1).max().unwrap_or(0);
        if let Some(&first) = chain.first()
            && spans[first].is_some_and(|(f, _)| f > checkpointed + 1)
        {
            tracing::error!(
                checkpointed,
                first = ?spans[first],
                "write-ahead log: records after the checkpoint are missing; replaying what is there"
            );
        }
        for i in chain {
            for (lsn, ops) in std::mem::take(&mut records[i]) {
                if lsn > checkpointed {
                    replay.push(ops);
                }
            }
        }
        let wal = Self {
            dir: wal_dir,
            segments,
            current: None,
            pos: 0,
            next_lsn: newest.max(checkpointed) + 1,
            mark: Arc::new(Mark {
                lsn: AtomicU64::new(checkpointed),
                file: Mutex::new(mark_path),
            }),
            since_bytes: 0,
            since: Instant::now(),
            checkpointer: None,
            legacy,
        };
        Ok((wal, replay))
    }

    /// Starts the background checkpoint thread over `store` (see [`Wal::request_checkpoint`]).
    pub fn start_checkpoints(&mut self, store: Arc<dyn Store>) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(1);
        let mark = Arc::clone(&self.mark);
        let thread = std::thread::Builder::new()
            .name("chime-checkpoint".into())
            .spawn(move || {
                for lsn in rx {
                    let done = store
                        .flush()
                        .map_err(|e| e.to_string())
                        .and_then(|()| mark.advance(lsn).map_err(|e| e.to_string()));
                    // The log still holds everything: a later checkpoint or a restart recovers.
                    if let Err(e) = done {
                        tracing::error!("checkpoint failed: {e}");
                    }
                }
            })?;
        self.checkpointer = Some(Checkpointer {
            tx: Some(tx),
            thread: Some(thread),
        });
        Ok(())
    }

    /// Appends one batch and makes it durable (`fdatasync` of data blocks written before);
    /// returns its lsn (for [`Wal::request_checkpoint`] once the store has applied it). An empty
    /// batch writes nothing and returns the lsn of the last record.
    pub fn append(&mut self, ops: &[Op<'_>]) -> std::io::Result<u64> {
        if ops.is_empty() {
            return Ok(self.next_lsn - 1);
        }
        let record = encode(self.next_lsn, ops);
        let len = record.len() as u64;
        if self.current.is_none() || (self.pos > 0 && self.pos + len > SEGMENT_BYTES) {
            self.rotate()?;
        }
        let at = self.pos;
        let lsn = self.next_lsn;
        let seg = self.segment()?;
        // Normally prepared between batches ([`Wal::prepare_ahead`]); otherwise (a record
        // larger than what is left) the file grows here, by the record and the usual margin.
        let grew = seg.prepared < at + len && Self::zero_fill(seg, at + len + ZERO_AHEAD)?;
        seg.file.write_all_at(&record, at)?;
        if grew {
            seg.file.sync_all()?;
        } else {
            seg.file.sync_data()?;
        }
        seg.span = Some((seg.span.map_or(lsn, |s| s.0), lsn));
        self.next_lsn += 1;
        self.pos += len;
        self.since_bytes += len;
        Ok(lsn)
    }

    /// Between batches: keeps [`ZERO_AHEAD`] bytes zero-filled ahead of the write position (so
    /// that an append never grows a file), moving to the next segment when this one is full.
    pub fn prepare_ahead(&mut self) -> std::io::Result<()> {
        if self.current.is_none() || self.pos + LOW_WATER > SEGMENT_BYTES {
            self.rotate()?;
        }
        let pos = self.pos;
        let seg = self.segment()?;
        if seg.prepared < pos + LOW_WATER && Self::zero_fill(seg, pos + ZERO_AHEAD)? {
            seg.file.sync_all()?;
        }
        Ok(())
    }

    /// Asks the checkpoint thread to make the store durable up to the record `applied` (the
    /// caller has applied every record up to it to the store; records after it, logged but not
    /// yet applied, stay in the live log), when enough was logged since the last request. Never
    /// waits: a request while one runs is dropped and asked again later.
    pub fn request_checkpoint(&mut self, applied: u64) {
        let due = self.since_bytes > CHECKPOINT_BYTES
            || (self.since_bytes > 0 && self.since.elapsed() > CHECKPOINT_EVERY);
        let Some(tx) = self.checkpointer.as_ref().and_then(|c| c.tx.as_ref()) else {
            return;
        };
        if due && tx.try_send(applied.min(self.next_lsn - 1)).is_ok() {
            self.since_bytes = 0;
            self.since = Instant::now();
        }
    }

    /// Records that the store is durable up to every record appended so far (after its
    /// `flush`): all of the log becomes reusable, and replay will skip it.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.mark.advance(self.next_lsn - 1)?;
        if self.legacy {
            std::fs::remove_file(self.dir.with_file_name(LEGACY).as_path()).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            self.legacy = false;
        }
        self.since_bytes = 0;
        self.since = Instant::now();
        Ok(())
    }

    /// Bytes logged since the last checkpoint was asked for.
    pub fn len(&self) -> u64 {
        self.since_bytes
    }

    /// Whether nothing was logged since the last checkpoint was asked for.
    pub fn is_empty(&self) -> bool {
        self.since_bytes == 0
    }

    /// The log's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn segment(&mut self) -> std::io::Result<&mut Segment> {
        self.current
            .and_then(|i| self.segments.get_mut(i))
            .ok_or_else(|| std::io::Error::other("write-ahead log: no current segment"))
    }

    /// Writes zeros from the prepared end up to at least `upto`; whether the file grew.
    fn zero_fill(seg: &mut Segment, upto: u64) -> std::io::Result<bool> {
        if seg.prepared >= upto {
            return Ok(false);
        }
        let zeros = vec![0u8; (upto - seg.prepared) as usize];
        seg.file.write_all_at(&zeros, seg.prepared)?;
        seg.prepared = upto;
        Ok(true)
    }

    /// Moves the write position to the start of a reusable segment (all its records
    /// checkpointed, or none), or of a new one.
    fn rotate(&mut self) -> std::io::Result<()> {
        let checkpointed = self.mark.lsn.load(Ordering::Acquire);
        let free = (0..self.segments.len())
            .find(|&i| self.segments[i].span.is_none_or(|s| s.1 <= checkpointed));
        let index = match free {
            Some(i) => i,
            None => {
                let path = self.dir.join(format!("{:08}.seg", self.segments.len() + 1));
                let file = open_rw(&path)?;
                File::open(&self.dir)?.sync_all()?;
                self.segments.push(Segment {
                    path,
                    file,
                    prepared: 0,
                    span: None,
                });
                self.segments.len() - 1
            }
        };
        self.segments[index].span = None;
        self.current = Some(index);
        self.pos = 0;
        tracing::debug!(segment = %self.segments[index].path.display(), "write-ahead log segment");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(v: &[(&'static [u8], Option<&'static [u8]>)]) -> Vec<OwnedOp> {
        v.iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn batches_replay_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let k1: &[u8] = b"k1";
        let k2: &[u8] = b"k2";
        {
            let (mut wal, replay) = Wal::open(dir.path()).unwrap();
            assert!(replay.is_empty());
            wal.append(&[(k1, Some(b"v1")), (k2, None)]).unwrap();
            wal.append(&[(k1, Some(b""))]).unwrap();
            wal.prepare_ahead().unwrap();
        }
        let seg = &segment_files(dir.path())[0];
        let bytes = std::fs::read(seg).unwrap();
        let (recs, end) = decode_segment(&bytes);
        assert_eq!(recs.len(), 2);
        // Preallocated: zeros after the records.
        assert!(bytes.len() as u64 >= end as u64 + LOW_WATER);
        assert!(bytes[end..].iter().all(|&b| b == 0));
        // A crash mid-append: half a record after the last one.
        let torn = encode(3, &[(k2, Some(b"lost"))]);
        let f = OpenOptions::new().write(true).open(seg).unwrap();
        f.write_all_at(&torn[..torn.len() - 2], end as u64).unwrap();
        drop(f);
        let (mut wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            replay,
            vec![
                ops(&[(b"k1", Some(b"v1")), (b"k2", None)]),
                ops(&[(b"k1", Some(b""))]),
            ]
        );
        // Checkpointed: nothing to replay, and the next lsn continues after the torn one.
        wal.reset().unwrap();
        assert_eq!(wal.next_lsn, 3);
        wal.append(&[(k2, Some(b"v2"))]).unwrap();
        drop(wal);
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(replay, vec![ops(&[(b"k2", Some(b"v2"))])]);
    }

    #[test]
    fn a_corrupt_record_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            let k: &[u8] = b"k";
            wal.append(&[(k, Some(b"a"))]).unwrap();
            wal.append(&[(k, Some(b"b"))]).unwrap();
            wal.append(&[(k, Some(b"c"))]).unwrap();
        }
        let seg = &segment_files(dir.path())[0];
        let mut bytes = std::fs::read(seg).unwrap();
        // Flip a byte of the second record's payload (the third one stays intact).
        let second = encode(1, &[(b"k", Some(b"a"))]).len();
        bytes[second + HEADER + 5] ^= 0xff;
        std::fs::write(seg, &bytes).unwrap();
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(replay, vec![ops(&[(b"k", Some(b"a"))])]);
    }

    #[test]
    fn a_recycled_segment_stops_at_its_stale_records() {
        let dir = tempfile::tempdir().unwrap();
        let k: &[u8] = b"k";
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        for v in [b"1", b"2", b"3"] {
            wal.append(&[(k, Some(v))]).unwrap();
        }
        // Checkpointed: the segment is reused from its start; the old third record stays behind
        // the new ones (same sizes, so exactly where the next record would start).
        wal.reset().unwrap();
        wal.rotate().unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1);
        for v in [b"4", b"5"] {
            wal.append(&[(k, Some(v))]).unwrap();
        }
        drop(wal);
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            replay,
            vec![ops(&[(b"k", Some(b"4"))]), ops(&[(b"k", Some(b"5"))])]
        );
    }

    #[test]
    fn replay_follows_the_chain_across_segments_from_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let k: &[u8] = b"k";
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&[(k, Some(b"1"))]).unwrap();
        wal.reset().unwrap();
        wal.append(&[(k, Some(b"2"))]).unwrap();
        // The segment is not checkpointed past lsn 1: a new one is created, not the first reused.
        wal.rotate().unwrap();
        wal.append(&[(k, Some(b"3"))]).unwrap();
        wal.rotate().unwrap();
        wal.append(&[(k, Some(b"4"))]).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 3);
        drop(wal);
        let (mut wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            replay,
            vec![
                ops(&[(b"k", Some(b"2"))]),
                ops(&[(b"k", Some(b"3"))]),
                ops(&[(b"k", Some(b"4"))]),
            ]
        );
        // All checkpointed: the next segment is a recycled one.
        wal.reset().unwrap();
        wal.append(&[(k, Some(b"5"))]).unwrap();
        wal.rotate().unwrap();
        wal.append(&[(k, Some(b"6"))]).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 3);
        drop(wal);
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            replay,
            vec![ops(&[(b"k", Some(b"5"))]), ops(&[(b"k", Some(b"6"))])]
        );
    }

    #[test]
    fn a_log_of_the_previous_format_is_replayed_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut payload = vec![1u8];
        put_u32(&mut payload, 1);
        payload.push(b'k');
        put_u32(&mut payload, 1);
        payload.push(b'v');
        let mut record = Vec::new();
        put_u32(&mut record, payload.len());
        record.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        record.extend_from_slice(&payload);
        std::fs::write(dir.path().join(LEGACY), &record).unwrap();
        let (mut wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(replay, vec![ops(&[(b"k", Some(b"v"))])]);
        wal.reset().unwrap();
        assert!(!dir.path().join(LEGACY).exists());
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert!(replay.is_empty());
    }

    #[test]
    fn the_checkpoint_thread_advances_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::MemStore::default());
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.start_checkpoints(store).unwrap();
        let k: &[u8] = b"k";
        wal.append(&[(k, Some(b"1"))]).unwrap();
        wal.since = Instant::now() - CHECKPOINT_EVERY * 2;
        wal.request_checkpoint(1);
        assert!(wal.is_empty());
        drop(wal);
        assert_eq!(
            Mark::read(&dir.path().join("wal").join("checkpoint")),
            1,
            "the thread finished its checkpoint before stopping"
        );
        let (_wal, replay) = Wal::open(dir.path()).unwrap();
        assert!(replay.is_empty());
    }

    #[test]
    fn a_checkpoint_never_covers_records_not_yet_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::MemStore::default());
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.start_checkpoints(store).unwrap();
        let k: &[u8] = b"k";
        assert_eq!(wal.append(&[(k, Some(b"1"))]).unwrap(), 1);
        // Logged (and answered) but not yet applied to the store when the checkpoint is asked.
        assert_eq!(wal.append(&[(k, Some(b"2"))]).unwrap(), 2);
        wal.since = Instant::now() - CHECKPOINT_EVERY * 2;
        wal.request_checkpoint(1);
        drop(wal);
        assert_eq!(Mark::read(&dir.path().join("wal").join("checkpoint")), 1);
        let (mut wal, replay) = Wal::open(dir.path()).unwrap();
        assert_eq!(replay, vec![ops(&[(b"k", Some(b"2"))])]);
        // Its segment is not reused while it holds the unapplied record.
        wal.rotate().unwrap();
        assert_eq!(wal.append(&[(k, Some(b"3"))]).unwrap(), 3);
        assert_eq!(segment_files(dir.path()).len(), 2);
    }

    #[test]
    fn the_live_chain_ends_with_the_newest_segment() {
        // Segments: 0 = lsns 5..=9, 1 = stale 1..=4, 2 = 10..=12, 3 = empty.
        let spans = [Some((5, 9)), Some((1, 4)), Some((10, 12)), None];
        assert_eq!(live_chain(&spans, 11), vec![2]);
        assert_eq!(live_chain(&spans, 7), vec![0, 2]);
        assert_eq!(live_chain(&spans, 1), vec![1, 0, 2]);
        assert_eq!(live_chain(&[None, None], 1), Vec::<usize>::new());
    }
}
