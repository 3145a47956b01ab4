//! The local search index: character trigrams of each stored message's searchable text, so that
//! `search_local_messages` reads the postings of a keyword instead of every message.
//!
//! Keywords match as case-insensitive substrings (the seed's rule, which also serves languages
//! written without spaces), so the index holds every trigram of the lowercased text. A keyword of
//! three characters or more selects the messages holding all of its trigrams; each candidate is
//! then checked against the full criteria, so the index only narrows and never decides. Keywords
//! shorter than three characters (and searches by sender or type alone) scan the messages instead.
//!
//! **Written in blocks, behind a queue.** A message has about one trigram per character, and one
//! store key per (trigram, message) made the postings most of the engine's writes per message;
//! one key per trigram per flush (the layout before blocks) still cost about one write per
//! message. So the write batch that stores a message only adds its location to a persistent
//! queue ([`Memory::stage_add`]), and [`flush`] writes the postings of every queued message as
//! **one block** (`s \xff block-number` → the block's table of locations, then a
//! `chime_proto::search::block`: each trigram in order with the ordinals of the locations
//! holding it, as delta varints), then removes the queue entries. Until then [`candidates`]
//! answers every queued location too, so a message is found from the moment it is stored.
//!
//! **Blocks merged tier by tier** (`chime_proto::search::tiers`, the policy the server's cloud
//! index shares): a block of 1,024 messages or more is final; smaller ones (a quiet account's
//! flushes) merge eight of one level into one of the next, up to three levels, so a search reads
//! a bounded number of small blocks and a message's postings are rewritten at most three times.
//! The index's state (`M search_blocks` → next block number, the blocks merged away by the last
//! flush, the open blocks) says which blocks a flush merges. A search reads every block: per
//! block, the locations holding all of the keyword's trigrams. Chunks of the layout before
//! blocks (`s trigram \0 chunk-number` → locations) stay readable; they are never written again.
//! `\xff` never occurs in UTF-8, so no trigram's chunks meet the blocks.
//!
//! **When to flush** ([`Memory::flush_due`], asked every [`FLUSH_EVERY`]): once [`FLUSH_BATCH`]
//! messages are queued, once the oldest queued message has waited [`FLUSH_AFTER`], at the first
//! tick of a session (whatever an earlier one left queued), and at logout. The price of a large
//! flush is the queue a search reads directly: at most about a batch, or [`FLUSH_AFTER`]'s worth
//! of messages.
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
//! (1) the blocks the state lists as merged away by the previous flush are deleted (those still
//! there) and so are blocks numbered at or above the state's next number (strays of a flush
//! that crashed); (2) the new block, then each merged block, under fresh numbers from the
//! state's next; (3) the state (next number past them, the open blocks, this flush's merged-away
//! sources); (4) the queue removals. The store keeps a prefix of them after a crash (sled
//! recovers a prefix of its log), and every prefix is safe: a block deleted in (1) is a copy of
//! a merged block the stored state already accounts for, or a stray; blocks written in (2)
//! without the state are strays holding copies (of queued messages, still queued, or of open
//! blocks, still listed), which a search may read twice and the next flush deletes; the sources
//! of a merge stay until the flush after the one that stored the merged block (duplicates only,
//! never a gap); a queue entry is removed only after the block holding its messages and the
//! state are stored, so a queued message is never lost from search. A message indexed twice is
//! one more candidate for the same location.
//!
//! Postings are never removed one by one: a removed message leaves locations that no longer hold
//! it (the candidate check finds nothing there, or a message whose text no longer matches), and a
//! changed message is queued again at its location ([`stage_del`] then [`Memory::stage_add`]).
//! Revoked messages are not indexed.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chime_proto::search::block::{self, BlockError, Postings};
use chime_proto::search::tiers::{self, OpenBlock};
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

#[cfg(test)]
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

/// `s \xff`: the prefix of every block (`\xff` starts no UTF-8 trigram: no chunk's key).
const BLOCK_PREFIX: [u8; 2] = [keys::table::SEARCH, 0xff];

/// Meta name of the index's state ([`State`]).
const META_SEARCH_BLOCKS: &str = "search_blocks";

/// `s \xff n`: block number `n`.
fn block_key(n: u64) -> Vec<u8> {
    let mut k = BLOCK_PREFIX.to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The scan bounds of every block numbered `from` or more.
fn blocks_from(from: u64) -> (Vec<u8>, Vec<u8>) {
    (block_key(from), vec![keys::table::SEARCH + 1])
}

/// A malformed value of the index under `key`, as the store's error.
fn corrupt(key: &[u8], e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    }
}

/// The index's state (`M search_blocks`): the next block number, the blocks the last flush
/// merged away (deleted by the next flush: module doc, "Crash-safe order"), and the open
/// blocks, oldest first (`chime_proto::search::tiers`). Value: next (u64 BE), the count of
/// merged-away blocks (u64 BE) and their numbers (u64 BE each), then the open list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    next: u64,
    merged_away: Vec<u64>,
    open: Vec<OpenBlock>,
}

impl State {
    fn read(store: &dyn Store) -> Result<Self, StoreError> {
        let key = keys::meta(META_SEARCH_BLOCKS);
        let Some(v) = store.get(&key)? else {
            return Ok(Self::default());
        };
        let bad = || corrupt(&key, "search index: bad state");
        let mut r = v.as_slice();
        let mut u64_at = || {
            fields::take(&mut r, 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(bad)
        };
        let next = u64_at()?;
        let n = u64_at()?;
        let merged_away = (0..n).map(|_| u64_at()).collect::<Result<Vec<u64>, _>>()?;
        let open = tiers::decode_open(r).ok_or_else(bad)?;
        Ok(Self {
            next,
            merged_away,
            open,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + 8 * self.merged_away.len() + tiers::OPEN_BYTES * self.open.len(),
        );
        out.extend_from_slice(&self.next.to_be_bytes());
        out.extend_from_slice(&(self.merged_away.len() as u64).to_be_bytes());
        for b in &self.merged_away {
            out.extend_from_slice(&b.to_be_bytes());
        }
        tiers::encode_open(&self.open, &mut out);
        out
    }
}

/// A block's value: its table of locations (a count, then each location length-prefixed; the
/// postings' ids are ordinals into it), then the postings (`chime_proto::search::block`).
fn encode_local_block(locs: &[&[u8]], postings: Postings) -> Vec<u8> {
    let table: usize = locs.iter().map(|l| l.len() + 2).sum();
    let mut out = Vec::with_capacity(8 + table + postings.len() * 16);
    block::put_varint(&mut out, locs.len() as u64);
    for loc in locs {
        block::put_bytes(&mut out, loc);
    }
    block::append_block(&mut out, locs.len() as u64, postings);
    out
}

/// A block's table of locations and its postings' bytes.
fn split_local_block(value: &[u8]) -> Result<(Vec<&[u8]>, &[u8]), BlockError> {
    let mut r = block::Reader::new(value);
    let n = r.varint()?;
    let mut locs = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(r.rest.len()));
    for _ in 0..n {
        locs.push(r.bytes()?);
    }
    Ok((locs, r.rest))
}

/// Indexes the queued messages of whole queue entries, up to about [`FLUSH_BATCH`], into one
/// block, runs the merges the tiered policy asks for, stores the state and removes the queue
/// entries, each write on its own in the order of the module doc ("Crash-safe order"). Texts
/// come from `memory` where it has them. Answers how many messages (distinct locations) it
/// took, or at least [`FLUSH_BATCH`] when entries remain queued.
pub fn flush(store: &dyn Store, memory: &Memory) -> Result<usize, StoreError> {
    let (lo, hi) = queue_bounds();
    let scanned = store.scan(&lo, &hi, false, FLUSH_BATCH)?;
    if scanned.is_empty() {
        memory.kept.borrow_mut().clear();
        memory.flushed(0, true);
        return Ok(0);
    }
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
    let n = locs.len();
    // The block: the locations with a text (kept where it is the listed one, else read back)
    // that has a gram, and the postings of their grams.
    let mut table: Vec<&[u8]> = Vec::with_capacity(n);
    let mut postings = Postings::default();
    {
        let kept = memory.kept.borrow();
        let mut read: String;
        for &loc in &locs {
            let (_, token, several) = last.get(loc).copied().unwrap_or((0, None, true));
            let text: &str = match kept.text(loc, token) {
                Some(t) if !several => t,
                _ => match read_back(store, loc)? {
                    Some(t) => {
                        read = t;
                        &read
                    }
                    None => continue,
                },
            };
            let id = table.len() as u64;
            let mut any = false;
            for g in gram_slices(text) {
                any = true;
                block::push_gram(&mut postings, g, id);
            }
            if any {
                table.push(loc);
            }
        }
    }
    let mut state = State::read(store)?;
    let mut writes: Vec<WriteBatch> = Vec::new();
    // (1) The previous flush's merge sources and any stray of a crashed flush.
    for b in std::mem::take(&mut state.merged_away) {
        let key = block_key(b);
        if store.get(&key)?.is_some() {
            writes.push(one_delete(key));
        }
    }
    let (slo, shi) = blocks_from(state.next);
    for (key, _) in store.scan(&slo, &shi, false, usize::MAX)? {
        writes.push(one_delete(key));
    }
    // (2) The new block and the merges (a merge reads its sources, the new block among them).
    let changed = !writes.is_empty() || !table.is_empty();
    if !table.is_empty() {
        let block = state.next;
        state.next += 1;
        let value = encode_local_block(&table, postings);
        let mut next = state.next;
        let merges = tiers::add_block(&mut state.open, block, table.len() as u64, |_| {
            next += 1;
            next - 1
        });
        state.next = next;
        let mut written: HashMap<u64, Vec<u8>> = HashMap::new();
        written.insert(block, value);
        for merge in merges {
            let merged = merge_blocks(store, &written, &merge.sources)?;
            state
                .merged_away
                .extend(merge.sources.iter().map(|b| b.block));
            written.insert(merge.into.block, merged);
        }
        // A block merged within this flush (the new one, a merged one cascading) is not
        // written: the block it went into holds it.
        let mut written: Vec<(u64, Vec<u8>)> = written
            .into_iter()
            .filter(|(b, _)| !state.merged_away.contains(b))
            .collect();
        written.sort_unstable_by_key(|(b, _)| *b);
        writes.extend(
            written
                .into_iter()
                .map(|(b, value)| one_put(block_key(b), value)),
        );
    }
    // (3) The state.
    if changed {
        writes.push(one_put(keys::meta(META_SEARCH_BLOCKS), state.encode()));
    }
    // Forgetting before the removals are written is harmless: a text not kept is read back.
    let forget: Vec<Vec<u8>> = if drained {
        Vec::new()
    } else {
        locs.iter().map(|l| l.to_vec()).collect()
    };
    drop(table);
    drop(locs);
    drop(last);
    apply_in_order(store, writes)?;
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
    // (4) The queue removals.
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

/// The merge of `sources` (in order) into one block value: one table (a location listed by
/// several sources once) and their postings renumbered into it. A source is taken from
/// `written` (this flush's blocks) or read from the store; a missing one is skipped.
fn merge_blocks(
    store: &dyn Store,
    written: &HashMap<u64, Vec<u8>>,
    sources: &[OpenBlock],
) -> Result<Vec<u8>, StoreError> {
    let mut values: Vec<(u64, Cow<'_, [u8]>)> = Vec::with_capacity(sources.len());
    for b in sources {
        match written.get(&b.block) {
            Some(v) => values.push((b.block, Cow::Borrowed(v))),
            None => match store.get(&block_key(b.block))? {
                Some(v) => values.push((b.block, Cow::Owned(v))),
                None => tracing::warn!("search index: an open block is missing"),
            },
        }
    }
    let mut table: Vec<&[u8]> = Vec::new();
    let mut ids: HashMap<&[u8], u64> = HashMap::new();
    let mut postings = Postings::default();
    for (b, v) in &values {
        let bad = |e| corrupt(&block_key(*b), e);
        let (locs, rest) = split_local_block(v).map_err(bad)?;
        let renumber: Vec<u64> = locs
            .iter()
            .map(|&loc| {
                *ids.entry(loc).or_insert_with(|| {
                    table.push(loc);
                    table.len() as u64 - 1
                })
            })
            .collect();
        block::decode_block(rest, &mut postings, |i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| renumber.get(i))
                .copied()
                .unwrap_or(u64::MAX)
        })
        .map_err(bad)?;
    }
    // Ids beyond a source's table (a corrupt block) name nothing.
    for list in postings.values_mut() {
        list.retain(|&i| i != u64::MAX);
    }
    Ok(encode_local_block(&table, postings))
}

/// The locations of the messages that may contain `keyword` (lowercased), as
/// [`candidates_of`] answers for one keyword.
#[cfg(test)]
pub fn candidates(
    store: &dyn Store,
    keyword: &str,
) -> Result<Option<BTreeSet<Vec<u8>>>, StoreError> {
    Ok(candidates_of(store, &[keyword])?.pop().flatten())
}

/// Per keyword (lowercased), the locations of the messages that may contain it — a superset of
/// those that do — or `None` when the keyword is too short for the index: per block, those
/// holding every trigram of the keyword; from the chunks of the layout before blocks, those the
/// first trigrams narrow to; and every message not indexed yet. The blocks are read once for
/// all the keywords.
pub fn candidates_of(
    store: &dyn Store,
    keywords: &[&str],
) -> Result<Vec<Option<BTreeSet<Vec<u8>>>>, StoreError> {
    let gram_sets: Vec<BTreeSet<String>> = keywords.iter().map(|k| grams(k)).collect();
    let mut found: Vec<Option<BTreeSet<Vec<u8>>>> = gram_sets
        .iter()
        .map(|gs| (!gs.is_empty()).then(BTreeSet::new))
        .collect();
    if found.iter().all(Option::is_none) {
        return Ok(found);
    }
    let (lo, hi) = blocks_from(0);
    let mut ids = BTreeSet::new();
    for (key, value) in store.scan(&lo, &hi, false, usize::MAX)? {
        let bad = |e| corrupt(&key, e);
        let (locs, rest) = split_local_block(&value).map_err(bad)?;
        for (gs, out) in gram_sets.iter().zip(found.iter_mut()) {
            let Some(out) = out else { continue };
            ids.clear();
            block::block_lookup(rest, gs, &mut ids).map_err(bad)?;
            for &i in &ids {
                if let Some(loc) = usize::try_from(i).ok().and_then(|i| locs.get(i)) {
                    out.insert(loc.to_vec());
                }
            }
        }
    }
    // Messages not indexed yet may match too: the queued ones, and those being sent (never
    // queued: the outbox lists them, see [`Memory::stage_add`]).
    let mut unindexed = BTreeSet::new();
    let (lo, hi) = queue_bounds();
    for (qk, v) in store.scan(&lo, &hi, false, usize::MAX)? {
        for (loc, _) in listed(&qk, &v) {
            unindexed.insert(loc.to_vec());
        }
    }
    let (lo, hi) = keys::table_bounds(keys::table::OUTBOX);
    for (_, loc) in store.scan(&lo, &hi, false, usize::MAX)? {
        unindexed.insert(loc);
    }
    for (gs, out) in gram_sets.iter().zip(found.iter_mut()) {
        if let Some(out) = out {
            out.extend(chunk_candidates(store, gs)?);
            out.extend(unindexed.iter().cloned());
        }
    }
    Ok(found)
}

/// The candidates of the chunks of the layout before blocks (`s trigram \0 chunk` →
/// locations): the locations holding the first trigrams, until few enough remain.
fn chunk_candidates(
    store: &dyn Store,
    gs: &BTreeSet<String>,
) -> Result<BTreeSet<Vec<u8>>, StoreError> {
    let mut acc: Option<BTreeSet<Vec<u8>>> = None;
    for g in gs {
        let lo = posting_prefix(g);
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
    Ok(acc.unwrap_or_default())
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
    fn store_at(store: &MemoryStore, mem: &Memory, loc: &[u8], m: &StoredMessage) {
        let mut b = WriteBatch::new();
        mem.stage_add(&mut b, loc, m);
        b.put(loc.to_vec(), prost::Message::encode_to_vec(m));
        store.apply(b).unwrap();
    }

    fn set(locs: &[&[u8]]) -> Option<BTreeSet<Vec<u8>>> {
        Some(locs.iter().map(|l| l.to_vec()).collect())
    }

    /// The numbers of the stored blocks.
    fn blocks(store: &MemoryStore) -> Vec<u64> {
        let (lo, hi) = blocks_from(0);
        store
            .scan(&lo, &hi, false, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| u64::from_be_bytes(k[2..].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn queued_messages_are_candidates_until_flushed_into_one_block() {
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
        assert_eq!(blocks(&store), [0], "one block for the flush");
        assert_eq!(c("ello"), set(&[b"m-1", b"m-2"]));
        assert_eq!(c("world"), set(&[b"m-1"]));
        assert_eq!(c("zzz"), set(&[]));
        assert_eq!(c("he"), None);
        // A second flush writes a second block; a search reads both.
        store_at(&store, &mem, b"m-3", &msg("mellow world"));
        assert_eq!(flush(&store, &mem).unwrap(), 1);
        assert_eq!(blocks(&store), [0, 1]);
        assert_eq!(c("world"), set(&[b"m-1", b"m-3"]));
        assert_eq!(c("mel"), set(&[b"m-3"]));
        // Per block, the locations holding every gram of the keyword.
        assert_eq!(c("ellow"), set(&[b"m-2", b"m-3"]));
        let state = State::read(&store).unwrap();
        assert_eq!(state.next, 2);
        assert_eq!(
            state
                .open
                .iter()
                .map(|b| (b.block, b.messages))
                .collect::<Vec<_>>(),
            [(0, 2), (1, 1)]
        );
    }

    #[test]
    fn the_state_round_trips() {
        let store = MemoryStore::new();
        assert_eq!(State::read(&store).unwrap(), State::default());
        let state = State {
            next: 12,
            merged_away: vec![3, 4],
            open: vec![OpenBlock {
                block: 11,
                level: 1,
                messages: 40,
            }],
        };
        let mut b = WriteBatch::new();
        b.put(keys::meta(META_SEARCH_BLOCKS), state.encode());
        store.apply(b).unwrap();
        assert_eq!(State::read(&store).unwrap(), state);
        let mut b = WriteBatch::new();
        b.put(
            keys::meta(META_SEARCH_BLOCKS),
            state.encode()[..20].to_vec(),
        );
        store.apply(b).unwrap();
        assert!(matches!(
            State::read(&store),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_quiet_accounts_blocks_merge_tier_by_tier() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        let flush_one = |i: usize, text: &str| {
            store_at(&store, &mem, format!("m-{i:03}").as_bytes(), &msg(text));
            assert_eq!(flush(&store, &mem).unwrap(), 1);
        };
        for i in 0..tiers::FANOUT - 1 {
            flush_one(i, "quiet note");
        }
        assert_eq!(blocks(&store), (0..7).collect::<Vec<u64>>());
        // The FANOUT-th flush merges the eight into block 8 (its own block 7 is not written:
        // block 8 holds it); the sources stay until the next flush.
        flush_one(7, "quiet tone");
        assert_eq!(blocks(&store), [0, 1, 2, 3, 4, 5, 6, 8]);
        let state = State::read(&store).unwrap();
        assert_eq!(state.merged_away, (0..8).collect::<Vec<u64>>());
        assert_eq!(
            state.open,
            [OpenBlock {
                block: 8,
                level: 1,
                messages: 8
            }]
        );
        let all: Vec<Vec<u8>> = (0..8).map(|i| format!("m-{i:03}").into_bytes()).collect();
        let c = |k: &str| candidates(&store, k).unwrap().unwrap();
        assert_eq!(c("quiet"), all.iter().cloned().collect());
        assert_eq!(c("tone"), [all[7].clone()].into());
        flush_one(8, "quiet end");
        assert_eq!(blocks(&store), [8, 9], "merged away, then deleted");
        assert_eq!(c("quiet").len(), 9);
        // The merged block is one table: every location once, its postings renumbered.
        let merged = store.get(&block_key(8)).unwrap().unwrap();
        let (locs, _) = split_local_block(&merged).unwrap();
        assert_eq!(locs, all.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // A busy flush's block is final at once.
        let mut b = WriteBatch::new();
        for i in 0..tiers::SEAL_MESSAGES {
            let m = msg(&format!("busy {i:05}"));
            let loc = format!("n-{i:05}");
            mem.stage_add(&mut b, loc.as_bytes(), &m);
            b.put(loc.into_bytes(), prost::Message::encode_to_vec(&m));
        }
        store.apply(b).unwrap();
        assert_eq!(flush(&store, &mem).unwrap(), 1024);
        assert_eq!(blocks(&store), [8, 9, 10]);
        assert_eq!(State::read(&store).unwrap().open.len(), 2);
        assert_eq!(c("busy 00777"), [b"n-00777".to_vec()].into());
    }

    #[test]
    fn chunks_of_the_layout_before_blocks_stay_readable() {
        let store = MemoryStore::new();
        let mem = Memory::default();
        // Before blocks: one chunk per (trigram, flush), and the chunk number.
        let mut b = WriteBatch::new();
        for g in ["abc", "bcd"] {
            let mut list = Vec::new();
            fields::put(&mut list, b"m-1");
            b.put(chunk_key(g, 0), list);
        }
        b.put(
            keys::meta(keys::META_SEARCH_CHUNK),
            1u64.to_be_bytes().to_vec(),
        );
        b.put(b"m-1".to_vec(), prost::Message::encode_to_vec(&msg("abcd")));
        store.apply(b).unwrap();
        store_at(&store, &mem, b"m-2", &msg("abcde"));
        assert_eq!(flush(&store, &mem).unwrap(), 1);
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("abcd"), set(&[b"m-1", b"m-2"]));
        assert_eq!(c("bcd"), set(&[b"m-1", b"m-2"]));
        assert_eq!(c("cde"), set(&[b"m-2"]));
        // The chunks are left as they are.
        assert!(store.get(&chunk_key("abc", 0)).unwrap().is_some());
        assert_eq!(blocks(&store), [0]);
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
        assert_eq!(c("yellow"), set(&[b"m-2"]));
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
        assert_eq!(c("yellow"), set(&[b"m-2"]), "stale postings only");
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
    fn a_crash_at_any_write_of_two_flushes_loses_nothing_and_leaves_no_garbage() {
        // Seven quiet flushes (open blocks 0–6), then flush A of three messages (its block
        // completes eight: a merge), then flush B of one (deletes A's merged-away sources).
        let quiet: Vec<(Vec<u8>, String)> = (0..7)
            .map(|i| (format!("m-q{i}").into_bytes(), format!("quiet {i} omega")))
            .collect();
        let texts: [(&[u8], &str); 4] = [
            (b"m-1", "alpha beta"),
            (b"m-2", "beta gamma"),
            (b"m-3", "gamma delta"),
            (b"m-4", "delta alpha"),
        ];
        let setup = || {
            let store = MemoryStore::new();
            let mem = Memory::default();
            for (loc, text) in &quiet {
                store_at(&store, &mem, loc, &msg(text));
                assert_eq!(flush(&store, &mem).unwrap(), 1, "{text}");
            }
            (store, mem)
        };
        // Runs A and B against `store` (crashing after `left` writes); answers the writes
        // made and whether both finished.
        let run = |store: &MemoryStore, mem: &Memory, left: usize| {
            let crashing = CrashAfter {
                inner: store,
                left: left.into(),
            };
            let mut ok = true;
            for (loc, text) in &texts[..3] {
                store_at(store, mem, loc, &msg(text));
            }
            ok &= flush(&crashing, mem).is_ok();
            if ok {
                store_at(store, mem, texts[3].0, &msg(texts[3].1));
                ok &= flush(&crashing, mem).is_ok();
            }
            (left - crashing.left.into_inner(), ok)
        };
        let writes = {
            let (store, mem) = setup();
            let (writes, ok) = run(&store, &mem, usize::MAX);
            assert!(ok);
            writes
        };
        // A: merged block, state, three queue removals; B: seven deletes, block, state, one
        // removal.
        assert_eq!(writes, 5 + 10);
        let expect = |store: &MemoryStore, queued: &[&[u8]], at: usize| {
            let c = |k: &str| candidates(store, k).unwrap().unwrap();
            let with = |word: &str| -> BTreeSet<Vec<u8>> {
                let mut s: BTreeSet<Vec<u8>> = texts
                    .iter()
                    .filter(|(_, t)| t.contains(word))
                    .map(|(l, _)| l.to_vec())
                    .collect();
                s.extend(queued.iter().map(|l| l.to_vec()));
                s
            };
            for word in ["alpha", "beta", "gamma", "delta"] {
                assert_eq!(c(word), with(word), "{word}, crash after {at}");
            }
            let omega: BTreeSet<Vec<u8>> = quiet.iter().map(|(l, _)| l.clone()).collect();
            assert!(c("omega").is_superset(&omega), "crash after {at}");
            let mut q3: BTreeSet<Vec<u8>> = queued.iter().map(|l| l.to_vec()).collect();
            q3.insert(b"m-q3".to_vec());
            assert_eq!(c("quiet 3"), q3, "crash after {at}");
        };
        for crash_at in 0..=writes {
            let (store, mem) = setup();
            let (_, ok) = run(&store, &mem, crash_at);
            assert_eq!(ok, crash_at == writes, "crash after {crash_at}");
            // Whatever prefix was written, every message is still found (m-4 is stored only
            // once A is done).
            let (lo, hi) = queue_bounds();
            let entries = store.scan(&lo, &hi, false, usize::MAX).unwrap();
            let queued: Vec<&[u8]> = entries
                .iter()
                .flat_map(|(k, v)| listed(k, v))
                .map(|(l, _)| l)
                .collect();
            if store.get(b"m-4").unwrap().is_some() {
                expect(&store, &queued, crash_at);
            }
            // The restart: nothing in memory; the rest of the queue is flushed, and one more
            // message with it.
            let restarted = Memory::default();
            if store.get(b"m-4").unwrap().is_none() {
                store_at(&store, &restarted, texts[3].0, &msg(texts[3].1));
            }
            store_at(&store, &restarted, b"m-5", &msg("epsilon"));
            while flush(&store, &restarted).unwrap() > 0 {}
            assert!(!has_queued(&store));
            expect(&store, &[], crash_at);
            // No garbage: every block is open, or merged away and deleted by the next flush.
            let state = State::read(&store).unwrap();
            for b in blocks(&store) {
                assert!(
                    state.open.iter().any(|o| o.block == b) || state.merged_away.contains(&b),
                    "block {b} left over after a crash after {crash_at}: {state:?}"
                );
            }
            store_at(&store, &restarted, b"m-6", &msg("zeta"));
            flush(&store, &restarted).unwrap();
            let state = State::read(&store).unwrap();
            let open: Vec<u64> = state.open.iter().map(|o| o.block).collect();
            assert_eq!(blocks(&store), open, "crash after {crash_at}");
            expect(&store, &[], crash_at);
        }
    }
}
