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
//! ([`stage_add`]: `q location`); [`flush`] (the MessageActor runs it every [`FLUSH_EVERY`] and at
//! logout) reads the queued messages and writes, per trigram, **one chunk** holding the
//! locations of every queued message that has it (`s trigram \0 chunk-number` → locations), and
//! removes the queue entries — in one atomic batch. A crash loses nothing: the queue is in the
//! store with the messages, and is flushed after the restart. Until then [`candidates`] answers
//! every queued location too, so a message is found from the moment it is stored.
//!
//! Postings are never removed one by one: a removed message leaves locations that no longer hold
//! it (the candidate check finds nothing there, or a message whose text no longer matches), and a
//! changed message is queued again at its location ([`stage_del`] then [`stage_add`]). Revoked
//! messages are not indexed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chime_proto::search::{Piece, grams};

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

/// Queues `m`, stored at `loc`, for indexing (revoked messages are not indexed). A message being
/// sent is not queued by its sender: its outbox entry makes it a candidate until the ack moves
/// it to its seq key (one queue write and delete fewer per sent message).
pub fn stage_add(b: &mut WriteBatch, loc: &[u8], m: &StoredMessage) {
    if !m.revoked {
        b.put(keys::index_queue(loc), Vec::new());
    }
}

/// `m` leaves `loc` (or changes there): takes it off the queue. Postings already written for it
/// stay and no longer match (see the module doc).
pub fn stage_del(b: &mut WriteBatch, loc: &[u8], _m: &StoredMessage) {
    b.delete(keys::index_queue(loc));
}

fn queue_bounds() -> (Vec<u8>, Vec<u8>) {
    keys::table_bounds(keys::table::INDEX_QUEUE)
}

/// Indexes up to [`FLUSH_BATCH`] queued messages: one posting chunk per trigram, the queue
/// entries removed, in one batch. Answers how many queue entries it took.
pub fn flush(store: &dyn Store) -> Result<usize, StoreError> {
    let (lo, hi) = queue_bounds();
    let queued = store.scan(&lo, &hi, false, FLUSH_BATCH)?;
    if queued.is_empty() {
        return Ok(0);
    }
    let meta = keys::meta(keys::META_SEARCH_CHUNK);
    let chunk = store
        .get(&meta)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let mut postings: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut b = WriteBatch::new();
    for (qk, _) in &queued {
        let loc = &qk[1..];
        if let Some(v) = store.get(loc)? {
            match prost::Message::decode(v.as_slice()) {
                Ok(m) => {
                    let m: StoredMessage = m;
                    if !m.revoked {
                        for g in grams(&searchable_text(&m)) {
                            fields::put(postings.entry(g).or_default(), loc);
                        }
                    }
                }
                // Not indexed; a search that scans reports the corrupt value.
                Err(e) => tracing::warn!("search index: undecodable message: {e}"),
            }
        }
        b.delete(qk.clone());
    }
    for (g, locs) in postings {
        b.put(chunk_key(&g, chunk), locs);
    }
    b.put(meta, (chunk + 1).to_be_bytes().to_vec());
    store.apply(b)?;
    Ok(queued.len())
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
    // queued: the outbox lists them, see `stage_add`).
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
    }

    fn has_queued(store: &MemoryStore) -> bool {
        let (lo, hi) = queue_bounds();
        !store.scan(&lo, &hi, false, 1).unwrap().is_empty()
    }

    /// Stores `m` at `loc` with its queue entry, as the MessageActor's batches do.
    fn store_at(store: &MemoryStore, loc: &[u8], m: &StoredMessage) {
        let mut b = WriteBatch::new();
        stage_add(&mut b, loc, m);
        b.put(loc.to_vec(), prost::Message::encode_to_vec(m));
        store.apply(b).unwrap();
    }

    fn set(locs: &[&[u8]]) -> Option<BTreeSet<Vec<u8>>> {
        Some(locs.iter().map(|l| l.to_vec()).collect())
    }

    #[test]
    fn queued_messages_are_candidates_until_flushed_into_chunks() {
        let store = MemoryStore::new();
        store_at(&store, b"m-1", &msg("hello world"));
        store_at(&store, b"m-2", &msg("yellow"));
        let c = |k: &str| candidates(&store, k).unwrap();
        // Not indexed yet: every queued message may match.
        assert!(has_queued(&store));
        assert_eq!(c("world"), set(&[b"m-1", b"m-2"]));
        assert_eq!(flush(&store).unwrap(), 2);
        assert!(!has_queued(&store));
        assert_eq!(flush(&store).unwrap(), 0);
        assert_eq!(c("ello"), set(&[b"m-1", b"m-2"]));
        assert_eq!(c("world"), set(&[b"m-1"]));
        assert_eq!(c("zzz"), set(&[]));
        assert_eq!(c("he"), None);
        // A second flush writes second chunks; a gram's chunks are read together.
        store_at(&store, b"m-3", &msg("mellow world"));
        assert_eq!(flush(&store).unwrap(), 1);
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
            stage_add(&mut b, b"m-1", &msg("zephyrine"));
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
        assert_eq!(flush(&store).unwrap(), 1);
        assert_eq!(c("zephyr"), set(&[b"m-1"]));
        let (lo, hi) = queue_bounds();
        assert!(store.scan(&lo, &hi, false, 1).unwrap().is_empty());
    }

    #[test]
    fn changed_removed_and_revoked_messages() {
        let store = MemoryStore::new();
        store_at(&store, b"m-1", &msg("hello world"));
        flush(&store).unwrap();
        // Edited in place: queued again, found by its new text; the old postings stay.
        let mut b = WriteBatch::new();
        stage_del(&mut b, b"m-1", &msg("hello world"));
        stage_add(&mut b, b"m-1", &msg("goodbye"));
        b.put(
            b"m-1".to_vec(),
            prost::Message::encode_to_vec(&msg("goodbye")),
        );
        store.apply(b).unwrap();
        flush(&store).unwrap();
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("goodbye"), set(&[b"m-1"]));
        assert_eq!(c("world"), set(&[b"m-1"]), "stale: the check rejects it");
        // Removed before its flush: never indexed, no longer a candidate.
        store_at(&store, b"m-2", &msg("yellow"));
        let mut b = WriteBatch::new();
        stage_del(&mut b, b"m-2", &msg("yellow"));
        b.delete(b"m-2".to_vec());
        store.apply(b).unwrap();
        assert_eq!(c("yellow"), set(&[b"m-1"]), "m-1's stale `ell`, not m-2");
        assert_eq!(flush(&store).unwrap(), 0);
        // Revoked messages are not queued.
        let mut revoked = msg("yellow");
        revoked.revoked = true;
        store_at(&store, b"m-3", &revoked);
        assert!(!has_queued(&store));
        assert_eq!(c("yellow"), set(&[b"m-1"]));
    }
}
