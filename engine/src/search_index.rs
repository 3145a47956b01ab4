//! The local search index: character trigrams of each stored message's searchable text, so that
//! `search_local_messages` reads the postings of a keyword instead of every message.
//!
//! Keywords match as case-insensitive substrings (the seed's rule, which also serves languages
//! written without spaces), so the index holds every trigram of the lowercased text. A keyword of
//! three characters or more selects the messages holding all of its trigrams; each candidate is
//! then checked against the full criteria, so the index only narrows and never decides. Keywords
//! shorter than three characters (and searches by sender or type alone) scan the messages instead.
//!
//! **Written in chunks, behind a queue.** A message has about one trigram per character, and one
//! store key per (trigram, message) made the postings most of the engine's writes per message.
//! So the write batch that stores a message only adds its location to a persistent queue
//! ([`Memory::stage_add`]: `q location` → a token); [`flush`] (the MessageActor runs it every
//! [`FLUSH_EVERY`] and at logout) writes, per trigram, **one chunk** holding the locations of
//! every queued message that has it (`s trigram \0 chunk-number` → locations), and removes the
//! queue entries. Until then [`candidates`] answers every queued location too, so a message is
//! found from the moment it is stored.
//!
//! **Texts in memory.** Reading each queued message back and decoding it was most of a flush's
//! cost, yet the MessageActor has the message at hand when it queues it: [`Memory`] keeps the
//! searchable text of each queued location with the token its queue entry was written with. A
//! flush uses the text when the queue entry still holds that token — the token is written in the
//! same atomic batch as the message, and tokens never repeat, so a match means the message at
//! the location is the one whose text was kept — and reads the message back otherwise (after a
//! restart the memory is empty and every queued message is read back, as before).
//!
//! **Crash-safe order, no journal.** The flush's writes are applied one by one, in this order:
//! the chunks, then the next chunk number, then the queue removals. The store keeps a prefix of
//! them after a crash (sled recovers a prefix of its log), and every prefix is safe: chunks
//! written without the new chunk number are overwritten by the next flush under the same number
//! with the messages still queued (a stale location left in such a chunk only adds a candidate
//! that the check rejects); a queue entry is removed only after its chunks and the chunk number
//! past them are stored, so a queued message is never lost from search. A message indexed twice
//! is one more candidate for the same location.
//!
//! Postings are never removed one by one: a removed message leaves locations that no longer hold
//! it (the candidate check finds nothing there, or a message whose text no longer matches), and a
//! changed message is queued again at its location ([`stage_del`] then [`Memory::stage_add`]).
//! Revoked messages are not indexed.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chime_proto::search::{Piece, gram_slices, grams};

use crate::model::{StoredMessage, elem_kind};
use crate::store::{Store, StoreError, WriteBatch, fields, keys};

/// Candidate count below which the remaining grams are not scanned (the candidates are checked
/// against the keyword itself anyway).
const NARROW_ENOUGH: usize = 256;
/// Most queued messages indexed by one [`flush`] batch.
pub const FLUSH_BATCH: usize = 1024;
/// How often the MessageActor flushes the queue. The longer, the more messages share a chunk
/// (a frequent trigram costs one key per flush, not per message); a search reads the queued
/// messages directly, so this bounds that extra reading, not freshness (docs/performance.md has
/// the W2 figures of 250 ms and 2 s).
pub const FLUSH_EVERY: Duration = Duration::from_millis(2000);
/// Bytes of texts (and their locations) [`Memory`] keeps at most; messages queued beyond it (a
/// large catch-up between two flushes) are read back by the flush instead.
const MEMORY_CAP_BYTES: usize = 4 * 1024 * 1024;

/// The searchable text of a message, lowercased: text elems, custom elems' description,
/// extension and UTF-8 data (the rule the server's cloud search shares: `chime_proto::search`).
pub fn searchable_text(m: &StoredMessage) -> String {
    chime_proto::search::searchable_text(m.elems.iter().map(|e| match e.kind {
        elem_kind::TEXT => Piece::Text(&e.text),
        elem_kind::CUSTOM => Piece::Custom {
            description: &e.description,
            extension: &e.extension,
            data: &e.data,
        },
        _ => Piece::Other,
    }))
}

/// `s gram \0`: the prefix of every chunk of `gram`.
fn posting_prefix(gram: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + gram.len() + 8);
    k.push(keys::table::SEARCH);
    k.extend_from_slice(gram.as_bytes());
    k.push(0);
    k
}

fn chunk_key(gram: &str, chunk: u64) -> Vec<u8> {
    let mut k = posting_prefix(gram);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// The searchable texts of the queued messages, as the MessageActor queued them (module doc,
/// "Texts in memory"). One per account holder; it only saves reads, so losing any of it (a
/// restart, the cap) costs a read back at the flush and never a wrong posting. Interior
/// mutability: the actor queues messages from methods that read the rest of it.
#[derive(Debug)]
pub struct Memory {
    kept: RefCell<Kept>,
    /// The next token. Starts at a random value, so that tokens of different holders (and of a
    /// queue entry whose batch failed in an earlier session) do not meet.
    next_token: Cell<u64>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Location → (token of its queue entry, searchable text).
    texts: HashMap<Vec<u8>, (u64, String)>,
    /// Bytes of the locations and texts.
    bytes: usize,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            kept: RefCell::default(),
            next_token: Cell::new(rand::random::<u64>() >> 1),
        }
    }
}

impl Memory {
    /// Queues `m`, stored at `loc` by `b`, for indexing, and keeps its searchable text (revoked
    /// messages are not indexed). A message being sent is not queued by its sender: its outbox
    /// entry makes it a candidate until the ack moves it to its seq key (one queue write and
    /// delete fewer per sent message).
    pub fn stage_add(&self, b: &mut WriteBatch, loc: &[u8], m: &StoredMessage) {
        if m.revoked {
            return;
        }
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        b.put(keys::index_queue(loc), token.to_be_bytes().to_vec());
        let text = searchable_text(m);
        let mut kept = self.kept.borrow_mut();
        if kept.bytes + loc.len() + text.len() > MEMORY_CAP_BYTES {
            return;
        }
        kept.bytes += loc.len() + text.len();
        if let Some((_, old)) = kept.texts.insert(loc.to_vec(), (token, text)) {
            kept.bytes -= loc.len() + old.len();
        }
    }
}

impl Kept {
    /// The kept text of `loc` if its queue entry's value `queued` is the one it was kept with.
    fn text(&self, loc: &[u8], queued: &[u8]) -> Option<&str> {
        let token = u64::from_be_bytes(queued.try_into().ok()?);
        match self.texts.get(loc) {
            Some((t, text)) if *t == token => Some(text),
            _ => None,
        }
    }

    fn forget(&mut self, loc: &[u8]) {
        if let Some((_, old)) = self.texts.remove(loc) {
            self.bytes -= loc.len() + old.len();
        }
    }

    fn clear(&mut self) {
        self.texts.clear();
        self.bytes = 0;
    }
}

/// `m` leaves `loc` (or changes there): takes it off the queue. Postings already written for it
/// stay and no longer match (see the module doc); a kept text no longer matches the queue entry
/// (absent, or re-queued under a new token).
pub fn stage_del(b: &mut WriteBatch, loc: &[u8], _m: &StoredMessage) {
    b.delete(keys::index_queue(loc));
}

fn queue_bounds() -> (Vec<u8>, Vec<u8>) {
    keys::table_bounds(keys::table::INDEX_QUEUE)
}

/// The searchable text of the message stored at `loc`, read back; `None` when it is gone,
/// revoked or undecodable.
fn read_back(store: &dyn Store, loc: &[u8]) -> Result<Option<String>, StoreError> {
    let Some(v) = store.get(loc)? else {
        return Ok(None);
    };
    match prost::Message::decode(v.as_slice()) {
        Ok(m) => {
            let m: StoredMessage = m;
            Ok((!m.revoked).then(|| searchable_text(&m)))
        }
        // Not indexed; a search that scans reports the corrupt value.
        Err(e) => {
            tracing::warn!("search index: undecodable message: {e}");
            Ok(None)
        }
    }
}

/// Applies `ops` one at a time, in order (each alone: no journal). Answers the first error.
fn apply_in_order(
    store: &dyn Store,
    ops: impl IntoIterator<Item = WriteBatch>,
) -> Result<(), StoreError> {
    for b in ops {
        store.apply(b)?;
    }
    Ok(())
}

fn one_put(key: Vec<u8>, value: Vec<u8>) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(key, value);
    b
}

fn one_delete(key: Vec<u8>) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.delete(key);
    b
}

/// Indexes up to [`FLUSH_BATCH`] queued messages: one posting chunk per trigram, then the next
/// chunk number, then the queue entries removed, each write on its own in that order (module
/// doc, "Crash-safe order"). Texts come from `memory` where it has them. Answers how many queue
/// entries it took.
pub fn flush(store: &dyn Store, memory: &Memory) -> Result<usize, StoreError> {
    let (lo, hi) = queue_bounds();
    let queued = store.scan(&lo, &hi, false, FLUSH_BATCH)?;
    if queued.is_empty() {
        memory.kept.borrow_mut().clear();
        return Ok(0);
    }
    let meta = keys::meta(keys::META_SEARCH_CHUNK);
    let chunk = store
        .get(&meta)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let kept = memory.kept.borrow();
    // Texts not in memory, read back first (the postings borrow every text).
    let mut read = Vec::new();
    for (i, (qk, v)) in queued.iter().enumerate() {
        let loc = &qk[1..];
        if kept.text(loc, v).is_none()
            && let Some(text) = read_back(store, loc)?
        {
            read.push((i, text));
        }
    }
    // Gram (as a number: integer keys compare in one step) → (ordinal + 1 of the last message
    // added, the gram, its locations): a message adds its location once per gram however often
    // the gram repeats in it.
    let mut postings: BTreeMap<u128, (usize, &str, Vec<u8>)> = BTreeMap::new();
    let mut read_iter = read.iter().peekable();
    for (i, (qk, v)) in queued.iter().enumerate() {
        let loc = &qk[1..];
        let text = match kept.text(loc, v) {
            Some(t) => t,
            None => match read_iter.next_if(|(j, _)| *j == i) {
                Some((_, t)) => t.as_str(),
                None => continue,
            },
        };
        for g in gram_slices(text) {
            let (last, _, locs) = postings.entry(gram_number(g)).or_insert((0, g, Vec::new()));
            if *last != i + 1 {
                *last = i + 1;
                fields::put(locs, loc);
            }
        }
    }
    let chunks: Vec<WriteBatch> = postings
        .into_values()
        .map(|(_, g, locs)| one_put(chunk_key(g, chunk), locs))
        .collect();
    drop(kept);
    apply_in_order(store, chunks)?;
    apply_in_order(store, [one_put(meta, (chunk + 1).to_be_bytes().to_vec())])?;
    let taken = queued.len();
    {
        let mut kept = memory.kept.borrow_mut();
        if taken < FLUSH_BATCH {
            // The queue is empty once this flush is done: whatever memory still holds is for
            // entries gone since. (Forgetting before the removals are written is harmless: a
            // text not kept is read back.)
            kept.clear();
        } else {
            for (qk, _) in &queued {
                kept.forget(&qk[1..]);
            }
        }
    }
    apply_in_order(store, queued.into_iter().map(|(qk, _)| one_delete(qk)))?;
    Ok(taken)
}

/// A gram as a number, one to one: its bytes and its length. A gram is `GRAM` (3) characters
/// of at most 4 bytes each, so its 12 bytes at most fit beside the length byte.
fn gram_number(g: &str) -> u128 {
    let mut b = [0u8; 16];
    let n = g.len().min(15);
    b[..n].copy_from_slice(&g.as_bytes()[..n]);
    b[15] = n as u8;
    u128::from_ne_bytes(b)
}

/// The locations of the messages that may contain `keyword` (lowercased) — a superset of those
/// that do — or `None` when the keyword is too short for the index.
pub fn candidates(
    store: &dyn Store,
    keyword: &str,
) -> Result<Option<BTreeSet<Vec<u8>>>, StoreError> {
    let gs = grams(keyword);
    if gs.is_empty() {
        return Ok(None);
    }
    let mut acc: Option<BTreeSet<Vec<u8>>> = None;
    for g in gs {
        let lo = posting_prefix(&g);
        // The prefix ends in `\0`: every chunk of the gram sorts below the same prefix ending
        // in `\x01`.
        let mut hi = lo.clone();
        if let Some(last) = hi.last_mut() {
            *last = 1;
        }
        let mut locs = BTreeSet::new();
        for (_, chunk) in store.scan(&lo, &hi, false, usize::MAX)? {
            let mut r = chunk.as_slice();
            while let Some(loc) = fields::next(&mut r) {
                if acc.as_ref().is_none_or(|a| a.contains(loc)) {
                    locs.insert(loc.to_vec());
                }
            }
        }
        let small = locs.len() <= NARROW_ENOUGH;
        acc = Some(locs);
        // Few enough candidates: reading and checking them costs less than scanning the
        // postings of the remaining grams (which may be common ones).
        if small {
            break;
        }
    }
    // Messages not indexed yet may match too: the queued ones, and those being sent (never
    // queued: the outbox lists them, see [`Memory::stage_add`]).
    let (lo, hi) = queue_bounds();
    let mut acc = acc.unwrap_or_default();
    for (qk, _) in store.scan(&lo, &hi, false, usize::MAX)? {
        acc.insert(qk[1..].to_vec());
    }
    let (lo, hi) = keys::table_bounds(keys::table::OUTBOX);
    for (_, loc) in store.scan(&lo, &hi, false, usize::MAX)? {
        acc.insert(loc);
    }
    Ok(Some(acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::text_elem;
    use crate::store::MemoryStore;

    fn msg(text: &str) -> StoredMessage {
        StoredMessage {
            elems: vec![text_elem(text)],
            ..Default::default()
        }
    }

    #[test]
    fn grams_are_lowercase_character_trigrams() {
        assert_eq!(
            grams(&searchable_text(&msg("AbCd"))),
            ["abc", "bcd"].into_iter().map(String::from).collect()
        );
        assert!(grams("ab").is_empty());
        assert_eq!(grams("你好吗").len(), 1);
        // The flush's gram numbers are one to one, up to 4-byte characters.
        let gs = [
            "abc",
            "ab\u{0}",
            "abcd",
            "你好吗",
            "你好",
            "😀😀😀",
            "😀😀😁",
            "a😀b",
        ];
        let numbers: BTreeSet<u128> = gs.iter().map(|g| gram_number(g)).collect();
        assert_eq!(numbers.len(), gs.len());
    }

    fn has_queued(store: &MemoryStore) -> bool {
        let (lo, hi) = queue_bounds();
        !store.scan(&lo, &hi, false, 1).unwrap().is_empty()
    }

    /// Stores `m` at `loc` with its queue entry, as the MessageActor's batches do.
    fn store_at(store: &MemoryStore, mem: &Memory, loc: &[u8], m: &StoredMessage) {
        let mut b = WriteBatch::new();
        mem.stage_add(&mut b, loc, m);
        b.put(loc.to_vec(), prost::Message::encode_to_vec(m));
        store.apply(b).unwrap();
    }

    fn set(locs: &[&[u8]]) -> Option<BTreeSet<Vec<u8>>> {
        Some(locs.iter().map(|l| l.to_vec()).collect())
    }

    #[test]
    fn queued_messages_are_candidates_until_flushed_into_chunks() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        store_at(&store, &mem, b"m-1", &msg("hello world"));
        store_at(&store, &mem, b"m-2", &msg("yellow"));
        let c = |k: &str| candidates(&store, k).unwrap();
        // Not indexed yet: every queued message may match.
        assert!(has_queued(&store));
        assert_eq!(c("world"), set(&[b"m-1", b"m-2"]));
        assert_eq!(flush(&store, &mem).unwrap(), 2);
        assert!(!has_queued(&store));
        assert_eq!(flush(&store, &mem).unwrap(), 0);
        assert_eq!(c("ello"), set(&[b"m-1", b"m-2"]));
        assert_eq!(c("world"), set(&[b"m-1"]));
        assert_eq!(c("zzz"), set(&[]));
        assert_eq!(c("he"), None);
        // A second flush writes second chunks; a gram's chunks are read together.
        store_at(&store, &mem, b"m-3", &msg("mellow world"));
        assert_eq!(flush(&store, &mem).unwrap(), 1);
        assert_eq!(c("world"), set(&[b"m-1", b"m-3"]));
        assert_eq!(c("mel"), set(&[b"m-3"]));
        // The first gram's candidates are few enough: the others are not read (a superset).
        assert_eq!(c("ellow"), set(&[b"m-1", b"m-2", b"m-3"]));
        let (lo, hi) = (posting_prefix("wor"), posting_prefix("wos"));
        assert_eq!(store.scan(&lo, &hi, false, 10).unwrap().len(), 2);
        assert_eq!(
            store.get(&keys::meta(keys::META_SEARCH_CHUNK)).unwrap(),
            Some(2u64.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn a_queue_left_by_a_crash_is_indexed_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The message and its queue entry are stored; the process ends before any flush.
            let store = crate::store::SledStore::open(dir.path()).unwrap();
            let mut b = WriteBatch::new();
            Memory::default().stage_add(&mut b, b"m-1", &msg("zephyrine"));
            b.put(
                b"m-1".to_vec(),
                prost::Message::encode_to_vec(&msg("zephyrine")),
            );
            store.apply(b).unwrap();
            store.flush().unwrap();
        }
        // sled's flusher thread may hold the lock a moment after the drop.
        let store = (0..100)
            .find_map(|_| {
                crate::store::SledStore::open(dir.path())
                    .inspect_err(|_| std::thread::sleep(Duration::from_millis(50)))
                    .ok()
            })
            .unwrap();
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("zephyr"), set(&[b"m-1"]), "searchable before the flush");
        // A new process: nothing in memory, the message is read back.
        let mem = Memory::default();
        assert_eq!(flush(&store, &mem).unwrap(), 1);
        assert_eq!(c("zephyr"), set(&[b"m-1"]));
        let (lo, hi) = queue_bounds();
        assert!(store.scan(&lo, &hi, false, 1).unwrap().is_empty());
    }

    #[test]
    fn changed_removed_and_revoked_messages() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        store_at(&store, &mem, b"m-1", &msg("hello world"));
        flush(&store, &mem).unwrap();
        // Edited in place: queued again, found by its new text; the old postings stay.
        let mut b = WriteBatch::new();
        stage_del(&mut b, b"m-1", &msg("hello world"));
        mem.stage_add(&mut b, b"m-1", &msg("goodbye"));
        b.put(
            b"m-1".to_vec(),
            prost::Message::encode_to_vec(&msg("goodbye")),
        );
        store.apply(b).unwrap();
        flush(&store, &mem).unwrap();
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("goodbye"), set(&[b"m-1"]));
        assert_eq!(c("world"), set(&[b"m-1"]), "stale: the check rejects it");
        // Removed before its flush: never indexed, no longer a candidate.
        store_at(&store, &mem, b"m-2", &msg("yellow"));
        let mut b = WriteBatch::new();
        stage_del(&mut b, b"m-2", &msg("yellow"));
        b.delete(b"m-2".to_vec());
        store.apply(b).unwrap();
        assert_eq!(c("yellow"), set(&[b"m-1"]), "m-1's stale `ell`, not m-2");
        assert_eq!(flush(&store, &mem).unwrap(), 0);
        // Revoked messages are not queued.
        let mut revoked = msg("yellow");
        revoked.revoked = true;
        store_at(&store, &mem, b"m-3", &revoked);
        assert!(!has_queued(&store));
        assert_eq!(c("yellow"), set(&[b"m-1"]));
    }

    #[test]
    fn a_flush_takes_kept_texts_and_reads_back_only_the_others() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        // Queued with its text kept, but the message itself is not in the store: only the kept
        // text can index it.
        let mut b = WriteBatch::new();
        mem.stage_add(&mut b, b"m-1", &msg("kept text"));
        store.apply(b).unwrap();
        // Queued by another holder (a token this memory never handed out): read back.
        store_at(&store, &Memory::default(), b"m-2", &msg("read back"));
        // Kept here, then queued again at the same location by another holder with a new
        // message: the stale kept text must not be used.
        store_at(&store, &mem, b"m-3", &msg("stale words"));
        store_at(&store, &Memory::default(), b"m-3", &msg("fresh words"));
        assert_eq!(flush(&store, &mem).unwrap(), 3);
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("kept"), set(&[b"m-1"]));
        assert_eq!(c("read back"), set(&[b"m-2"]));
        assert_eq!(c("fresh"), set(&[b"m-3"]));
        assert_eq!(c("stale"), set(&[]));
        assert_eq!(c("words"), set(&[b"m-3"]));
        // The queue is drained: nothing is kept any more.
        assert!(mem.kept.borrow().texts.is_empty());
        assert_eq!(mem.kept.borrow().bytes, 0);
        // After a restart (empty memory) a queued message is read back; one whose message is
        // gone is dropped from the queue without postings.
        let mut b = WriteBatch::new();
        mem.stage_add(&mut b, b"m-4", &msg("orphan"));
        store.apply(b).unwrap();
        store_at(&store, &mem, b"m-5", &msg("survivor"));
        let restarted = Memory::default();
        assert_eq!(flush(&store, &restarted).unwrap(), 2);
        assert_eq!(c("orphan"), set(&[]));
        assert_eq!(c("survivor"), set(&[b"m-5"]));
    }

    #[test]
    fn kept_texts_stay_under_the_cap_and_follow_re_queues() {
        let mem = Memory::default();
        let mut b = WriteBatch::new();
        mem.stage_add(&mut b, b"m-1", &msg("abcd"));
        mem.stage_add(&mut b, b"m-1", &msg("abcdef"));
        assert_eq!(
            mem.kept.borrow().bytes,
            3 + searchable_text(&msg("abcdef")).len(),
            "the re-queue replaced the text"
        );
        let big = "x".repeat(MEMORY_CAP_BYTES);
        mem.stage_add(&mut b, b"m-2", &msg(&big));
        assert_eq!(mem.kept.borrow().texts.len(), 1, "over the cap: not kept");
        // Queued all the same.
        let store = MemoryStore::new();
        store.apply(b).unwrap();
        let mut b = WriteBatch::new();
        b.put(b"m-2".to_vec(), prost::Message::encode_to_vec(&msg(&big)));
        store.apply(b).unwrap();
        assert_eq!(flush(&store, &mem).unwrap(), 2);
        assert_eq!(candidates(&store, "xxxx").unwrap(), set(&[b"m-2"]));
        assert_eq!(candidates(&store, "cdef").unwrap(), set(&[b"m-1"]));
    }

    /// A store that stops applying (a crash) after a number of successful `apply` calls.
    struct CrashAfter<'a> {
        inner: &'a MemoryStore,
        left: std::sync::atomic::AtomicUsize,
    }

    impl Store for CrashAfter<'_> {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            reverse: bool,
            limit: usize,
        ) -> Result<Vec<crate::store::Entry>, StoreError> {
            self.inner.scan(start, end, reverse, limit)
        }
        fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
            use std::sync::atomic::Ordering;
            if self
                .left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err()
            {
                return Err(StoreError::Backend("crashed".into()));
            }
            self.inner.apply(batch)
        }
        fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn a_crash_at_any_write_of_a_flush_loses_nothing() {
        let texts: [(&[u8], &str); 4] = [
            (b"m-1", "alpha beta"),
            (b"m-2", "beta gamma"),
            (b"m-3", "gamma delta"),
            (b"m-4", "delta alpha"),
        ];
        let expect = |store: &MemoryStore| {
            let c = |k: &str| candidates(store, k).unwrap().unwrap();
            for (loc, text) in texts {
                for word in text.split(' ') {
                    assert!(c(word).contains(loc), "{word} finds {loc:?}");
                }
            }
        };
        // One flush of the first three messages without a crash counts its writes.
        let writes = {
            let store = MemoryStore::new();
            let mem = Memory::default();
            for (loc, text) in &texts[..3] {
                store_at(&store, &mem, loc, &msg(text));
            }
            let counting = CrashAfter {
                inner: &store,
                left: usize::MAX.into(),
            };
            flush(&counting, &mem).unwrap();
            usize::MAX - counting.left.into_inner()
        };
        // Chunks (one per distinct gram), the chunk number, three queue removals.
        assert!(writes > 3 + 1 + 3, "{writes}");
        for crash_at in 0..=writes {
            let store = MemoryStore::new();
            let mem = Memory::default();
            // A first flush (chunk 0) of m-4, then three queued messages.
            store_at(&store, &mem, texts[3].0, &msg(texts[3].1));
            assert_eq!(flush(&store, &mem).unwrap(), 1);
            for (loc, text) in &texts[..3] {
                store_at(&store, &mem, loc, &msg(text));
            }
            let crashing = CrashAfter {
                inner: &store,
                left: crash_at.into(),
            };
            let r = flush(&crashing, &mem);
            assert_eq!(r.is_ok(), crash_at == writes, "crash after {crash_at}");
            // Whatever prefix was written, every message is still found.
            expect(&store);
            // The restart: nothing in memory; the rest of the queue is flushed.
            let restarted = Memory::default();
            while flush(&store, &restarted).unwrap() > 0 {}
            expect(&store);
            let (lo, hi) = queue_bounds();
            assert!(store.scan(&lo, &hi, false, 1).unwrap().is_empty());
            // Exact after the recovery: only stale duplicates may remain, never a wrong one.
            let c = |k: &str| candidates(&store, k).unwrap();
            assert_eq!(c("alpha"), set(&[b"m-1", b"m-4"]), "crash after {crash_at}");
            assert_eq!(c("gamma"), set(&[b"m-2", b"m-3"]), "crash after {crash_at}");
            // The chunk number moved past the crashed flush's chunks only once they were all
            // written; a crash among the queue removals leaves the rest to a further chunk.
            let chunks = writes - 1 - 3;
            let next: u64 = if crash_at <= chunks || crash_at == writes {
                2
            } else {
                3
            };
            assert_eq!(
                store.get(&keys::meta(keys::META_SEARCH_CHUNK)).unwrap(),
                Some(next.to_be_bytes().to_vec()),
                "crash after {crash_at}"
            );
        }
    }
}
