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
//! ([`Memory::stage_add`]); [`flush`] writes, per trigram, **one chunk** holding the locations of
//! every queued message that has it (`s trigram \0 chunk-number` → locations), and removes the
//! queue entries. Until then [`candidates`] answers every queued location too, so a message is
//! found from the moment it is stored.
//!
//! **When to flush** ([`Memory::flush_due`], asked every [`FLUSH_EVERY`]): once [`FLUSH_BATCH`]
//! messages are queued, once the oldest queued message has waited [`FLUSH_AFTER`], at the first
//! tick of a session (whatever an earlier one left queued), and at logout. The more messages
//! one flush takes, the more of them share each chunk: a frequent trigram costs one store write
//! per flush, not per message (W2's texts: 1.75 chunk writes per message at 160 messages a
//! flush, 1.1 at 1,024; docs/performance.md). The price is the queue a search reads directly:
//! at most about a batch, or [`FLUSH_AFTER`]'s worth of messages.
//!
//! **One queue entry per batch.** The messages one write batch stores (a burst of pushes, a
//! burst of acks) are queued under one entry, `q \0 n` → (location, token) pairs
//! ([`WriteBatch::gather`]), so queueing costs one store write per batch and its removal one
//! more, instead of two per message. The key's `n` is the token of the batch's first message
//! (tokens of one holder never repeat, those of different holders start at random points of a
//! 63-bit range). Entries of the earlier format, `q location` → token, are still read. A list
//! entry cannot be edited: a message removed or re-queued elsewhere stays listed in its entry, so
//! a location listed by several entries of one flush is read back rather than trusted to a kept
//! text (the last listing within one entry is the one that counts: a batch is written in order),
//! and a removed message's listing leaves stale postings, which the check rejects like any other.
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

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chime_proto::search::{Piece, gram_slices, grams};

use crate::model::{StoredMessage, elem_kind};
use crate::store::{Store, StoreError, WriteBatch, fields, keys};

/// Candidate count below which the remaining grams are not scanned (the candidates are checked
/// against the keyword itself anyway).
const NARROW_ENOUGH: usize = 256;
/// Most queued messages indexed by one [`flush`] batch.
pub const FLUSH_BATCH: usize = 1024;
/// How often the MessageActor asks [`Memory::flush_due`].
pub const FLUSH_EVERY: Duration = Duration::from_millis(2000);
/// Longest a queued message waits for a flush (to within [`FLUSH_EVERY`]) when fewer than
/// [`FLUSH_BATCH`] are queued. A search reads the queued messages directly, so this bounds that
/// extra reading, not freshness.
pub const FLUSH_AFTER: Duration = Duration::from_secs(10);
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
    /// Messages queued since the last flush (this session's; a batch that failed to apply
    /// still counts, which only brings the flush forward).
    queued: Cell<usize>,
    /// When the oldest of them was queued.
    oldest: Cell<Option<Instant>>,
    /// Whether this session flushed yet (its first tick flushes what an earlier one left).
    flushed: Cell<bool>,
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
            queued: Cell::new(0),
            oldest: Cell::new(None),
            flushed: Cell::new(false),
        }
    }
}

impl Memory {
    /// Queues `m`, stored at `loc` by `b`, for indexing (in `b`'s one queue entry, with the
    /// other messages `b` stores), and keeps its searchable text (revoked messages are not
    /// indexed). A message being sent is not queued by its sender: its outbox entry makes it a
    /// candidate until the ack moves it to its seq key (one queue write and delete fewer per sent
    /// message).
    pub fn stage_add(&self, b: &mut WriteBatch, loc: &[u8], m: &StoredMessage) {
        if m.revoked {
            return;
        }
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        self.queued.set(self.queued.get() + 1);
        if self.oldest.get().is_none() {
            self.oldest.set(Some(Instant::now()));
        }
        b.gather(
            || keys::index_queue_list(token),
            |list| {
                fields::put(list, loc);
                fields::put(list, &token.to_be_bytes());
            },
        );
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

impl Memory {
    /// Whether the queue should be flushed now (module doc, "When to flush").
    pub fn flush_due(&self, now: Instant) -> bool {
        !self.flushed.get()
            || self.queued.get() >= FLUSH_BATCH
            || self
                .oldest
                .get()
                .is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_AFTER)
    }

    /// The session ended (its queue flushed whole): the next one's first tick flushes again.
    pub fn session_ended(&self) {
        self.flushed.set(false);
    }

    /// A flush took `n` messages and `drained` the queue.
    fn flushed(&self, n: usize, drained: bool) {
        self.flushed.set(true);
        if drained {
            self.queued.set(0);
            self.oldest.set(None);
        } else {
            self.queued.set(self.queued.get().saturating_sub(n));
        }
    }
}

impl Kept {
    /// The kept text of `loc` if `token`, its queue listing's, is the one it was kept with.
    fn text(&self, loc: &[u8], token: Option<u64>) -> Option<&str> {
        match self.texts.get(loc) {
            Some((t, text)) if Some(*t) == token => Some(text),
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

/// `m` leaves `loc` (or changes there): takes it off the queue where it has an entry of its own
/// (the earlier format). A listing in a batch's entry stays (see the module doc); postings
/// already written for it stay and no longer match.
pub fn stage_del(b: &mut WriteBatch, loc: &[u8], _m: &StoredMessage) {
    b.delete(keys::index_queue(loc));
}

fn queue_bounds() -> (Vec<u8>, Vec<u8>) {
    keys::table_bounds(keys::table::INDEX_QUEUE)
}

/// The messages a queue entry lists, in order: `(location, token)`; the token is `None` when
/// unreadable (the message is then read back). A list entry (`q \0 n`) holds pairs of fields; an
/// entry of the earlier format (`q location` → token) one message.
fn listed<'a>(key: &'a [u8], value: &'a [u8]) -> Vec<(&'a [u8], Option<u64>)> {
    let token = |t: &[u8]| <[u8; 8]>::try_from(t).ok().map(u64::from_be_bytes);
    let Some(rest) = key.get(1..) else {
        return Vec::new();
    };
    if rest.first() != Some(&0) {
        return vec![(rest, token(value))];
    }
    let mut out = Vec::new();
    let mut r = value;
    while let Some(loc) = fields::next(&mut r) {
        let Some(t) = fields::next(&mut r) else {
            tracing::warn!("search index: truncated queue entry");
            break;
        };
        out.push((loc, token(t)));
    }
    out
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

/// Indexes the queued messages of whole queue entries, up to about [`FLUSH_BATCH`]: one posting
/// chunk per trigram, then the next chunk number, then the queue entries removed, each write on
/// its own in that order (module doc, "Crash-safe order"). Texts come from `memory` where it has
/// them. Answers how many messages (distinct locations) it took, or at least [`FLUSH_BATCH`]
/// when entries remain queued.
pub fn flush(store: &dyn Store, memory: &Memory) -> Result<usize, StoreError> {
    let (lo, hi) = queue_bounds();
    let scanned = store.scan(&lo, &hi, false, FLUSH_BATCH)?;
    if scanned.is_empty() {
        memory.kept.borrow_mut().clear();
        memory.flushed(0, true);
        return Ok(0);
    }
    let meta = keys::meta(keys::META_SEARCH_CHUNK);
    let chunk = store
        .get(&meta)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    // Whole entries (at least one) until FLUSH_BATCH messages; each location once, with the
    // entry and token of its last listing and whether several entries list it.
    let mut taken = 0;
    let mut count = 0;
    let mut locs: Vec<&[u8]> = Vec::new();
    let mut last: HashMap<&[u8], (usize, Option<u64>, bool)> = HashMap::new();
    for (e, (k, v)) in scanned.iter().enumerate() {
        if taken > 0 && count >= FLUSH_BATCH {
            break;
        }
        taken += 1;
        for (loc, token) in listed(k, v) {
            count += 1;
            match last.get_mut(loc) {
                None => {
                    last.insert(loc, (e, token, false));
                    locs.push(loc);
                }
                Some(seen) => *seen = (e, token, seen.2 || seen.0 != e),
            }
        }
    }
    let drained = taken == scanned.len() && scanned.len() < FLUSH_BATCH;
    let kept = memory.kept.borrow();
    // Kept texts where they are the listed ones, the others read back (the postings borrow
    // every text).
    let mut texts: Vec<(&[u8], Cow<'_, str>)> = Vec::with_capacity(locs.len());
    for &loc in &locs {
        let (_, token, several) = last.get(loc).copied().unwrap_or((0, None, true));
        let text = match kept.text(loc, token) {
            Some(t) if !several => Cow::Borrowed(t),
            _ => match read_back(store, loc)? {
                Some(t) => Cow::Owned(t),
                None => continue,
            },
        };
        texts.push((loc, text));
    }
    // Gram (as a number: integer keys compare in one step) → (ordinal + 1 of the last message
    // added, the gram, its locations): a message adds its location once per gram however often
    // the gram repeats in it.
    let mut postings: BTreeMap<u128, (usize, &str, Vec<u8>)> = BTreeMap::new();
    for (i, (loc, text)) in texts.iter().enumerate() {
        for g in gram_slices(text) {
            let (seen, _, list) = postings.entry(gram_number(g)).or_insert((0, g, Vec::new()));
            if *seen != i + 1 {
                *seen = i + 1;
                fields::put(list, loc);
            }
        }
    }
    let chunks: Vec<WriteBatch> = postings
        .into_values()
        .map(|(_, g, list)| one_put(chunk_key(g, chunk), list))
        .collect();
    let n = locs.len();
    // Forgetting before the removals are written is harmless: a text not kept is read back.
    let forget: Vec<Vec<u8>> = if drained {
        Vec::new()
    } else {
        locs.iter().map(|l| l.to_vec()).collect()
    };
    drop(texts);
    drop(kept);
    apply_in_order(store, chunks)?;
    apply_in_order(store, [one_put(meta, (chunk + 1).to_be_bytes().to_vec())])?;
    {
        let mut kept = memory.kept.borrow_mut();
        if drained {
            // The queue is empty once this flush is done: whatever memory still holds is for
            // listings gone since.
            kept.clear();
        } else {
            for loc in &forget {
                kept.forget(loc);
            }
        }
    }
    apply_in_order(
        store,
        scanned
            .into_iter()
            .take(taken)
            .map(|(key, _)| one_delete(key)),
    )?;
    memory.flushed(count, drained);
    Ok(if drained { n } else { n.max(FLUSH_BATCH) })
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
    for (qk, v) in store.scan(&lo, &hi, false, usize::MAX)? {
        for (loc, _) in listed(&qk, &v) {
            acc.insert(loc.to_vec());
        }
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
    fn a_flush_is_due_at_a_batch_after_a_wait_and_at_a_sessions_first_tick() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        let now = Instant::now();
        // The session's first tick flushes (an earlier session may have left a queue).
        assert!(mem.flush_due(now));
        assert_eq!(flush(&store, &mem).unwrap(), 0);
        assert!(!mem.flush_due(now));
        // A few messages wait for FLUSH_AFTER...
        store_at(&store, &mem, b"m-1", &msg("one"));
        store_at(&store, &mem, b"m-2", &msg("two"));
        let later = Instant::now();
        assert!(!mem.flush_due(later));
        assert!(!mem.flush_due(later + FLUSH_AFTER - FLUSH_EVERY));
        assert!(mem.flush_due(later + FLUSH_AFTER + FLUSH_EVERY));
        assert_eq!(flush(&store, &mem).unwrap(), 2);
        assert!(!mem.flush_due(later + FLUSH_AFTER * 2));
        // ... unless a batch's worth is queued.
        let mut b = WriteBatch::new();
        for i in 0..FLUSH_BATCH - 1 {
            mem.stage_add(&mut b, format!("m-{i:05}").as_bytes(), &msg("many"));
        }
        store.apply(b).unwrap();
        assert!(!mem.flush_due(Instant::now()));
        store_at(&store, &mem, b"m-last", &msg("last"));
        assert!(mem.flush_due(Instant::now()));
        assert_eq!(flush(&store, &mem).unwrap(), FLUSH_BATCH);
        assert!(!mem.flush_due(Instant::now()));
        assert!(!has_queued(&store));
        // The next session's first tick flushes again.
        mem.session_ended();
        assert!(mem.flush_due(Instant::now()));
    }

    fn queue_keys(store: &MemoryStore) -> Vec<Vec<u8>> {
        let (lo, hi) = queue_bounds();
        store
            .scan(&lo, &hi, false, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn a_batch_queues_its_messages_under_one_entry() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        let mut b = WriteBatch::new();
        for (loc, text) in [(b"m-1", "amber"), (b"m-2", "ambient"), (b"m-3", "umbra")] {
            mem.stage_add(&mut b, loc, &msg(text));
            b.put(loc.to_vec(), prost::Message::encode_to_vec(&msg(text)));
        }
        // Three messages and one queue entry.
        assert_eq!(b.ops().len(), 4);
        store.apply(b).unwrap();
        assert_eq!(queue_keys(&store).len(), 1);
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("mb"), None);
        assert_eq!(c("amb"), set(&[b"m-1", b"m-2", b"m-3"]), "queued: all");
        assert_eq!(flush(&store, &mem).unwrap(), 3);
        assert!(queue_keys(&store).is_empty());
        assert_eq!(c("amb"), set(&[b"m-1", b"m-2"]));
        assert_eq!(c("umbra"), set(&[b"m-3"]));
    }

    #[test]
    fn entries_of_the_earlier_format_are_still_read() {
        let store = MemoryStore::new();
        // `q loc` → token, as stores written before the list entries hold them.
        let mut b = WriteBatch::new();
        b.put(keys::index_queue(b"m-1"), 7u64.to_be_bytes().to_vec());
        b.put(
            b"m-1".to_vec(),
            prost::Message::encode_to_vec(&msg("heliotrope")),
        );
        store.apply(b).unwrap();
        store_at(&store, &Memory::default(), b"m-2", &msg("helium"));
        assert_eq!(queue_keys(&store).len(), 2);
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("heliotrope"), set(&[b"m-1", b"m-2"]), "queued: all");
        assert_eq!(flush(&store, &Memory::default()).unwrap(), 2);
        assert!(queue_keys(&store).is_empty());
        assert_eq!(c("otrope"), set(&[b"m-1"]));
        assert_eq!(c("lium"), set(&[b"m-2"]));
    }

    #[test]
    fn a_flush_takes_whole_entries_up_to_its_batch() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        // FLUSH_BATCH + 5 entries of one message each.
        for i in 0..FLUSH_BATCH + 5 {
            let loc = format!("m-{i:05}");
            store_at(&store, &mem, loc.as_bytes(), &msg(&format!("note {i:05}")));
        }
        assert_eq!(flush(&store, &mem).unwrap(), FLUSH_BATCH, "more queued");
        assert_eq!(queue_keys(&store).len(), 5);
        assert_eq!(flush(&store, &mem).unwrap(), 5);
        assert_eq!(flush(&store, &mem).unwrap(), 0);
        // One entry longer than the batch is taken whole.
        let mut b = WriteBatch::new();
        for i in 0..FLUSH_BATCH + 5 {
            let loc = format!("n-{i:05}");
            let m = msg(&format!("memo {i:05}"));
            mem.stage_add(&mut b, loc.as_bytes(), &m);
            b.put(loc.into_bytes(), prost::Message::encode_to_vec(&m));
        }
        store.apply(b).unwrap();
        assert_eq!(flush(&store, &mem).unwrap(), FLUSH_BATCH + 5);
        assert!(queue_keys(&store).is_empty());
        // Every message is in the postings (candidates are a superset: the first grams with
        // few enough locations decide).
        let c = |k: &str| candidates(&store, k).unwrap().unwrap();
        assert!(c("note 00007").contains(&b"m-00007"[..]));
        assert!(c("note 01028").contains(&b"m-01028"[..]));
        assert!(c("memo 01028").contains(&b"n-01028"[..]));
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
        // Removed before its flush: still listed in its batch's queue entry, so a candidate
        // (stale: the check finds no message there) until flushed, and then a stale posting.
        store_at(&store, &mem, b"m-2", &msg("yellow"));
        let mut b = WriteBatch::new();
        stage_del(&mut b, b"m-2", &msg("yellow"));
        b.delete(b"m-2".to_vec());
        store.apply(b).unwrap();
        assert_eq!(c("yellow"), set(&[b"m-1", b"m-2"]));
        assert_eq!(flush(&store, &mem).unwrap(), 1);
        assert!(!has_queued(&store));
        // After a restart (nothing kept) a removed message is not indexed at all.
        store_at(&store, &mem, b"m-4", &msg("marigold"));
        let mut b = WriteBatch::new();
        b.delete(b"m-4".to_vec());
        store.apply(b).unwrap();
        assert_eq!(flush(&store, &Memory::default()).unwrap(), 1);
        assert_eq!(c("marigold"), set(&[]));
        // Revoked messages are not queued.
        let mut revoked = msg("yellow");
        revoked.revoked = true;
        store_at(&store, &mem, b"m-3", &revoked);
        assert!(!has_queued(&store));
        assert_eq!(c("yellow"), set(&[b"m-1", b"m-2"]), "stale postings only");
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
